"""License references and notes, look-up by full key, search, plain dates and past expiries:
the admin API (SQLite and PostgreSQL) and the CLI (the database, and the admin API)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from software_dna.server.cli import _common
from software_dna.server.testing import InProcessServer, LocalServer
from tests.server.test_cli_vendor import ENV_CLEARED, Runner, _clean_env, _init, _issued_key
from tests.threaded import ThreadedServer


@pytest.fixture(scope="module")
def server(inprocess_any_server: InProcessServer) -> InProcessServer:
    return inprocess_any_server


@pytest.fixture(scope="module")
def product(server: InProcessServer) -> str:
    pid = "refs-" + secrets.token_hex(4)
    server.admin.setup_product(pid, features=["pro"])
    return pid


def call(server: InProcessServer, method: str, path: str, **kwargs: Any) -> requests.Response:
    with server.session() as http:
        return http.request(method, server.url + "/v1/admin" + path,
                            headers={"Authorization": f"Bearer {server.admin_key}"}, **kwargs)


def error(answer: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()["error"]
    return body


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _next_midnight(day: date) -> str:
    return (day + timedelta(days=1)).isoformat() + "T00:00:00Z"


# --------------------------------------------------------------------------- admin API


def test_references_are_set_at_issue_and_by_patch(server: InProcessServer, product: str) -> None:
    issued = call(server, "POST", "/licenses", json={
        "product": product, "customer_ref": "  ACME-7 ", "order_ref": "SO-1001",
        "notes": "Two seats for the lab.\nRenew in May."})
    assert issued.status_code == 201, issued.text
    body = issued.json()
    assert (body["customer_ref"], body["order_ref"]) == ("ACME-7", "SO-1001")
    assert body["notes"].endswith("Renew in May.")
    lid = body["id"]
    patched = call(server, "PATCH", f"/licenses/{lid}", json={"order_ref": "SO-1002",
                                                              "notes": None})
    assert patched.status_code == 200
    assert (patched.json()["customer_ref"], patched.json()["order_ref"],
            patched.json()["notes"]) == ("ACME-7", "SO-1002", None)
    cleared = call(server, "PATCH", f"/licenses/{lid}", json={"customer_ref": ""}).json()
    assert cleared["customer_ref"] is None
    for field, size in (("customer_ref", 101), ("order_ref", 101), ("notes", 2001)):
        too_long = call(server, "PATCH", f"/licenses/{lid}", json={field: "x" * size})
        assert too_long.status_code == 400, field
    assert call(server, "PATCH", f"/licenses/{lid}",
                json={"customer_ref": "a\nb"}).status_code == 400


def test_lookup_by_full_key(server: InProcessServer, product: str) -> None:
    issued = server.admin.issue_license(product, customer_ref="LOOK-1")
    key = issued["license_key"]
    for typed in (key, key.lower(), " " + key.replace("-", " ") + " "):
        found = call(server, "POST", "/licenses/lookup", json={"key": typed})
        assert found.status_code == 200 and found.json()["id"] == issued["id"], typed
        assert "license_key" not in found.json()
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    missing = call(server, "POST", "/licenses/lookup", json={"key": wrong})
    assert missing.status_code == 404 and error(missing)["code"] == "not_found"
    assert call(server, "POST", "/licenses/lookup", json={"key": "not a key!"}).status_code \
        == 404
    assert server.admin.lookup_license(key)["id"] == issued["id"]
    # A key as a query parameter would land in access logs: refused, pointing at lookup.
    in_url = call(server, "GET", "/licenses", params={"q": key})
    assert in_url.status_code == 400 and "/licenses/lookup" in error(in_url)["message"]


def test_search(server: InProcessServer, product: str) -> None:
    tag = secrets.token_hex(3).upper()
    buyer = f"Buyer.{tag}@Example.com"
    one = server.admin.issue_license(product, customer_ref=f"Cust-{tag}",
                                     order_ref=f"ORD-{tag}-1", email=buyer)
    two = server.admin.issue_license(product, customer_ref=f"cust-{tag}-b")
    three = server.admin.issue_license(product)

    def ids(q: str, **params: Any) -> set[str]:
        return {lic["id"] for lic in server.admin.search_licenses(q, **params)}

    assert ids(f"CUST-{tag}") == {one["id"], two["id"]}
    assert ids(f"ord-{tag.lower()}") == {one["id"]}
    assert ids(buyer.lower()) == {one["id"]}  # the keyed email index, any case
    assert ids(three["license_key"][-4:]) >= {three["id"]}
    assert three["id"] in ids("\u2026-" + three["license_key"][-4:])
    assert ids(one["id"]) == {one["id"]}
    assert ids(f"Cust-{tag}", status="revoked") == set()
    assert ids("%") == set() or all(
        (lic.get("customer_ref") or "").startswith("%") for lic in
        server.admin.search_licenses("%"))  # a LIKE wildcard is a plain character
    assert ids("nobody-here@example.com") == set()


def test_plain_dates_and_past_expiries(server: InProcessServer, product: str) -> None:
    day = _today() + timedelta(days=40)
    issued = call(server, "POST", "/licenses", json={"product": product,
                                                     "expires_at": day.isoformat()})
    assert issued.status_code == 201, issued.text
    assert issued.json()["expires_at"] == _next_midnight(day)  # valid through that day
    lid = issued.json()["id"]
    past = (_today() - timedelta(days=2)).isoformat()
    for method, path, body, field in (
            ("POST", "/licenses", {"product": product, "expires_at": past}, "expires_at"),
            ("PATCH", f"/licenses/{lid}", {"expires_at": past}, "expires_at"),
            ("PATCH", f"/licenses/{lid}", {"expires_at": "2001-01-01T00:00:00Z"},
             "expires_at")):
        refused = call(server, method, path, json=body)
        assert refused.status_code == 400, (method, body)
        assert error(refused)["code"] == "invalid_request"
        assert "in the past" in error(refused)["message"]
        assert field in error(refused)["message"]
    assert call(server, "GET", f"/licenses/{lid}").json()["expires_at"] == _next_midnight(day)
    allowed = call(server, "PATCH", f"/licenses/{lid}", json={"expires_at": past,
                                                              "allow_past": True})
    assert allowed.status_code == 200
    # extend --until: a plain date, later than the end; a past one needs the confirmation.
    later = day + timedelta(days=10)
    refused = call(server, "POST", f"/licenses/{lid}/extend", json={"until": past})
    assert refused.status_code == 400 and "in the past" in error(refused)["message"]
    moved = call(server, "POST", f"/licenses/{lid}/extend", json={"until": later.isoformat()})
    assert moved.status_code == 200 and moved.json()["expires_at"] == _next_midnight(later)
    for bad in ("2030-02-30", "31/01/2030", "2030-01-01T00:00:00"):
        answer = call(server, "POST", "/licenses", json={"product": product, "expires_at": bad})
        assert answer.status_code == 400, bad


def test_refs_are_in_no_audit_detail(server: InProcessServer, product: str) -> None:
    issued = server.admin.issue_license(product, customer_ref="AUDIT-REF", notes="n")
    entries = server.admin.audit(license_id=issued["id"])
    assert entries and "AUDIT-REF" not in str(entries)


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("refs-home")
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, folder)
        _init(folder)
        yield folder


@pytest.fixture(scope="module")
def remote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    folder = tmp_path_factory.mktemp("refs-remote")
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_CLEARED:
            mp.delenv(name, raising=False)
        with ThreadedServer(folder / "server") as srv:
            yield srv


@pytest.fixture(params=["direct", "remote"])
def sdna(request: pytest.FixtureRequest, tmp_path: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Runner:
    if request.param == "direct":
        request.getfixturevalue("home")
    else:
        srv: LocalServer = request.getfixturevalue("remote_server")
        _clean_env(monkeypatch, tmp_path / "no-such-home")
        monkeypatch.setenv(_common.ENV_SERVER_URL, srv.url)
        monkeypatch.setenv(_common.ENV_ADMIN_KEY, srv.admin_key)
    return Runner(capsys, monkeypatch)


def test_cli_refs_show_by_key_and_find(sdna: Runner) -> None:
    pid = "cli-" + secrets.token_hex(4)
    sdna("products", "create", pid, "--features", "pro")
    sdna("keys", "generate", pid)
    tag = secrets.token_hex(3).upper()
    issued = sdna("licenses", "issue", pid, "--customer", f"C-{tag}", "--order", f"O-{tag}",
                  "--notes", "bought at the fair")
    key = _issued_key(issued)
    lid = sdna("licenses", "find", key[-4:], "--json").json()["licenses"][0]["id"]
    shown = sdna("licenses", "show", key.lower())
    assert f"C-{tag}" in shown.out and f"O-{tag}" in shown.out and "bought at the fair" \
        in shown.out and lid in shown.out
    assert sdna("licenses", "show", lid, "--json").json()["customer_ref"] == f"C-{tag}"
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert "No such license" in sdna.fail("licenses", "show", wrong)
    found = sdna("licenses", "find", f"c-{tag}")
    assert lid in found.out and f"O-{tag}" in found.out
    assert sdna("licenses", "find", key, "--json").json()["licenses"][0]["id"] == lid
    assert "No license matches." in sdna("licenses", "find", "zz-no-such-ref").out
    sdna("licenses", "set", lid, "--order", "", "--notes", "renewed")
    after = sdna("licenses", "show", lid, "--json").json()
    assert (after["order_ref"], after["notes"]) == (None, "renewed")


def test_cli_plain_dates_and_past(sdna: Runner) -> None:
    pid = "cld-" + secrets.token_hex(4)
    sdna("products", "create", pid)
    sdna("keys", "generate", pid)
    day = _today() + timedelta(days=20)
    issued = sdna("licenses", "issue", pid, "--expires", day.isoformat(), "--json").json()
    assert issued["expires_at"] == _next_midnight(day)
    lid = issued["id"]
    past = (_today() - timedelta(days=1)).isoformat()
    refused = sdna.fail("licenses", "issue", pid, "--expires", past)
    assert "in the past" in refused and "expires_at" in refused
    assert "in the past" in sdna.fail("licenses", "set", lid, "--expires", past)
    assert "in the past" in sdna.fail("licenses", "extend", lid, "--until", past)
    sdna("licenses", "set", lid, "--expires", past, "--allow-past")
    ended = sdna("licenses", "show", lid, "--json").json()["expires_at"]
    assert ended == _next_midnight(date.fromisoformat(past))
    later = _today() + timedelta(days=60)
    moved = sdna("licenses", "extend", lid, "--until", later.isoformat(), "--json").json()
    assert moved["expires_at"] == _next_midnight(later)
    assert "YYYY-MM-DD" in sdna.fail("licenses", "issue", pid, "--expires", "2030-02-30",
                                     code=2)
    assert "next day's 00:00 UTC" in " ".join(sdna("licenses", "issue", "--help").out.split())
