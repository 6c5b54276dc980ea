"""Air-gapped activation, server side: the /v1/offline routes and `software-dna offline`.

Runs on SQLite and PostgreSQL (``any_server``). Requests are built with the
SDK's own format code and fake machines (``helpers.fingerprint``). The server
listens on a real socket (tests/threaded.py) because ``software-dna offline``
is also run in its remote mode, which opens its own connections.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests

from software_dna.server import cli
from software_dna.server.adminclient import AdminError
from software_dna.server.cli import _common
from software_dna.server.testing import LocalServer
from software_dna.wire import airgap as off
from software_dna.wire.claims import Protection, sign_receipt
from software_dna.wire.identity import to_json
from software_dna.wire.paseto import SecretKey
from tests.server.helpers import check_receipt, check_token, fingerprint, nonce

from ..threaded import ThreadedServer


@pytest.fixture(scope="module")
def any_server(threaded_any_server: LocalServer) -> LocalServer:
    """The app in this process behind a real socket (the CLI's remote mode opens its own)."""
    return threaded_any_server

PASSWORD = "correct horse"


def make_request(product: str, key: str, machine: str = "m1", **extra: Any) -> tuple[str, str]:
    """An armored request from a fake machine; returns (text, nonce). It holds no password:
    :func:`post` sends one beside it."""
    n = nonce()
    fields: dict[str, Any] = {"created_at": datetime.now(timezone.utc), **extra}
    return off.build_request(product=product, license_key=key, fingerprint=fingerprint(machine),
                             nonce=n, **fields), n


def post(server: LocalServer, route: str, body: Any,
         password: str | None = PASSWORD) -> requests.Response:
    """POST to ``/v1/offline/<route>``; a request goes with ``password`` beside it (the end
    user types it on the connected machine), unless None."""
    if route == "activations" and isinstance(body, dict) and "request" in body \
            and password is not None:
        body = {"password": password, **body}
    return requests.post(f"{server.url}/v1/offline/{route}", json=body, timeout=30)


def error(answer: requests.Response) -> tuple[int, str]:
    assert answer.headers["content-type"].startswith("application/json")
    return answer.status_code, answer.json()["error"]["code"]


def setup(server: LocalServer, *, seats: int = 1, **policy: Any) -> tuple[str, list[str],
                                                                          dict[str, Any]]:
    product = "o-" + secrets.token_hex(4)
    policy.setdefault("air_gapped", True)  # an explicit opt-in (off for new products)
    keys = server.admin.setup_product(product, features=["pro"], **policy)
    issued = server.admin.issue_license(product, seats=seats, password=PASSWORD)
    return product, keys, issued


def seats_in_use(server: LocalServer, license_id: str) -> int:
    return int(server.admin.get_license(license_id)["seats_in_use"])


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --------------------------------------------------------------------------- respond


def test_respond_applies_the_activation_rules(any_server: LocalServer) -> None:
    product, keys, issued = setup(any_server, protection="mandatory", refresh_interval=3600,
                                  offline_grace_period=600)
    key = issued["license_key"]
    assert error(post(any_server, "activations", {"request": make_request(product, key)[0]},
                      password=None)) == (403, "wrong_password")
    text, _ = make_request(product, key, email="a@example.com")
    assert error(post(any_server, "activations", {"request": text})) == (400, "consent_required")
    text, _ = make_request(product, "AAAA-BBBB-CCCC-DDDD")
    assert error(post(any_server, "activations", {"request": text})) \
        == (404, "unknown_license_key")

    text, sent_nonce = make_request(product, key)
    answer = post(any_server, "activations", {"request": text})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    response = off.parse_response(body["response"])
    assert response.activation_id == body["activation_id"] and response.nonce == sent_nonce
    assert body["license_id"] == issued["id"] and body["product"] == product
    lic = check_token(response.token, keys, product)
    assert lic.protection is Protection.OFFLINE and lic.refresh_by is None
    # A finite lifetime (the product's air_gapped_token_days, 365 by default).
    assert lic.expires_at is not None and lic.nonce == sent_nonce
    assert abs(lic.expires_at - lic.issued_at - timedelta(days=365)) < timedelta(seconds=1)
    assert to_json(lic.fingerprint) == fingerprint("m1")["components"]
    assert response.activation_secret.startswith("sas_")
    assert seats_in_use(any_server, issued["id"]) == 1

    text, _ = make_request(product, key, machine="m2")
    assert error(post(any_server, "activations", {"request": text})) == (409, "no_seats_left")
    any_server.admin.revoke_license(issued["id"])
    text, _ = make_request(product, key, machine="m3")
    assert error(post(any_server, "activations", {"request": text})) == (403, "license_revoked")


def test_a_request_outside_the_freshness_window_is_refused(any_server: LocalServer) -> None:
    product, _, issued = setup(any_server)
    for age in (off.REQUEST_LIFETIME + timedelta(minutes=1), -timedelta(days=2)):
        text, _ = make_request(product, issued["license_key"],
                               created_at=datetime.now(timezone.utc) - age)
        assert error(post(any_server, "activations", {"request": text})) \
            == (400, "request_expired")
    assert seats_in_use(any_server, issued["id"]) == 0


def _armored(kind: str, document: dict[str, Any]) -> str:
    return off.armor(kind, document)


def _valid_doc(product: str, key: str) -> dict[str, Any]:
    return {"type": "activation_request", "v": 1, "product": product, "license_key": key,
            "fingerprint": fingerprint("m9"), "nonce": nonce(),
            "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "consent": False, "password": PASSWORD}


BAD_BODIES: dict[str, Any] = {
    "empty object": {},
    "not a string": {"request": 5},
    "empty string": {"request": ""},
    "unknown field": {"request": "x", "more": 1},
    "a list": [1, 2],
    "garbage text": {"request": "hello vendor, please activate me"},
    "too long": {"request": "A" * (49 * 1024)},
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_bodies_get_a_4xx(any_server: LocalServer, case: str) -> None:
    answer = post(any_server, "activations", BAD_BODIES[case])
    assert 400 <= answer.status_code < 500 and answer.json()["error"]["code"]
    answer = post(any_server, "deactivations", {"receipt": BAD_BODIES[case]}
                  if case != "empty object" else {})
    assert 400 <= answer.status_code < 500 and answer.json()["error"]["code"]


def _raw_block(lines: list[str], payload: bytes) -> str:
    """A block around any bytes, with a correct checksum (only the JSON rules can refuse it)."""
    body = b64(payload)
    return "\n".join([lines[0], *(body[i:i + 64] for i in range(0, len(body), 64)),
                      "=" + b64(hashlib.sha256(payload).digest()[:6]), lines[-1]])


def _mutations(product: str, key: str) -> dict[str, str]:
    doc = _valid_doc(product, key)
    bad_fp = dict(doc, fingerprint=dict(doc["fingerprint"], components={"mac": "short"}))
    good = _armored(off.REQUEST, doc)
    lines = good.splitlines()
    payload = json.dumps(doc).encode()
    return {
        "bad fingerprint component": _armored(off.REQUEST, bad_fp),
        "bad nonce alphabet": _armored(off.REQUEST, dict(doc, nonce="no spaces allowed here!")),
        "password too long": _armored(off.REQUEST, dict(doc, password="p" * 300)),
        "consent not a bool": _armored(off.REQUEST, dict(doc, consent="yes")),
        "unknown field": _armored(off.REQUEST, dict(doc, admin=True)),
        "missing nonce": _armored(off.REQUEST, {k: v for k, v in doc.items() if k != "nonce"}),
        "future version": _armored(off.REQUEST, dict(doc, v=3)),
        "password in a version 2 block": _armored(off.REQUEST, dict(doc, v=2)),
        "version as a string": _armored(off.REQUEST, dict(doc, v="1")),
        "naive time": _armored(off.REQUEST, dict(doc, created_at="2026-11-29T12:00:00")),
        "a receipt block": _armored(off.RECEIPT, {"type": "deactivation_receipt", "v": 1}),
        "checksum changed": "\n".join([*lines[:-2], "=AAAAAAAA", *lines[-1:]]),
        "padding added": "\n".join([lines[0], "".join(lines[1:-2]) + "==", *lines[-2:]]),
        "two blocks": good + good,
        "not JSON inside": _raw_block(lines, b"[1,2"),
        "duplicate keys": _raw_block(lines, payload[:-1] + b',"v":1}'),
        "lone surrogate": _raw_block(lines, payload[:-1] + b',"email":"a\\ud800@b.io"}'),
        "non-ascii line": good.replace(lines[1], lines[1][:-1] + "é"),
    }


def test_malformed_requests_are_400_naming_the_problem(any_server: LocalServer) -> None:
    product, _, issued = setup(any_server)
    for case, text in _mutations(product, issued["license_key"]).items():
        answer = post(any_server, "activations", {"request": text})
        expected = ("invalid_fingerprint" if case == "bad fingerprint component"
                    else "invalid_request")
        assert error(answer) == (400, expected), (case, answer.text)
        message = answer.json()["error"]["message"]
        assert PASSWORD not in message and issued["license_key"] not in message, case
    assert seats_in_use(any_server, issued["id"]) == 0


def _issue(server: LocalServer, product: str, **fields: Any) -> dict[str, Any]:
    issued: dict[str, Any] = server.admin.request(
        "POST", "/licenses", json={"product": product, "password": PASSWORD, **fields})
    return issued


def test_licenses_that_need_the_server_are_not_activated_offline(
        any_server: LocalServer) -> None:
    product, _, _ = setup(any_server, protection="mandatory")
    for fields in ({"subscription": True}, {"seat_mode": "floating", "seats": 2}):
        issued = _issue(any_server, product, **fields)
        text, _ = make_request(product, issued["license_key"])
        # Nothing is said about the license before the password is right.
        assert error(post(any_server, "activations", {"request": text}, password="wrong")) \
            == (403, "wrong_password")
        text, _ = make_request(product, issued["license_key"])
        answer = post(any_server, "activations", {"request": text})
        assert error(answer) == (403, "offline_not_allowed"), fields
        assert "server" in answer.json()["error"]["message"]
        assert seats_in_use(any_server, issued["id"]) == 0


def test_roll_over_never_takes_an_air_gapped_seat(any_server: LocalServer) -> None:
    product, _, _ = setup(any_server)
    issued = _issue(any_server, product, seats=1, rollover=True)
    air_gapped = _activate(any_server, product, issued["license_key"], machine="air")
    online = requests.post(f"{any_server.url}/v1/activations", json={
        "product": product, "license_key": issued["license_key"], "password": PASSWORD,
        "fingerprint": fingerprint("online"), "nonce": nonce(), "idempotency_key": nonce(),
    }, timeout=30)
    assert error(online) == (409, "no_seats_left")
    [row] = any_server.admin.list_activations(issued["id"])
    assert row["id"] == air_gapped.activation_id and row["deactivated_at"] is None
    # Once the air-gapped machine hands in its receipt, the seat is free for anyone.
    post(any_server, "deactivations", {"receipt": _receipt(
        product, air_gapped.activation_id, air_gapped.activation_secret)})
    assert seats_in_use(any_server, issued["id"]) == 0


# --------------------------------------------------------------------------- receipts


def _activate(server: LocalServer, product: str, key: str,
              machine: str = "m1") -> off.ActivationResponseDoc:
    text, _ = make_request(product, key, machine=machine)
    answer = post(server, "activations", {"request": text})
    assert answer.status_code in (200, 201), answer.text
    return off.parse_response(answer.json()["response"])


def _receipt(product: str, activation_id: str, secret: str) -> str:
    return off.build_deactivation_receipt(product=product, activation_id=activation_id,
                                          activation_secret=secret, nonce=nonce(),
                                          now=datetime.now(timezone.utc))


def test_a_signed_receipt_frees_the_seat_once(any_server: LocalServer) -> None:
    product, keys, issued = setup(any_server)
    activated = _activate(any_server, product, issued["license_key"])
    receipt = _receipt(product, activated.activation_id, activated.activation_secret)
    answer = post(any_server, "deactivations", {"receipt": receipt})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["already_deactivated"] is False and body["license_id"] == issued["id"]
    confirmation = check_receipt(body["receipt"], keys, product)
    assert confirmation["result"] == "deactivated" and confirmation["nonce"] == body["nonce"]
    assert seats_in_use(any_server, issued["id"]) == 0
    [row] = any_server.admin.list_activations(issued["id"])
    assert row["deactivated_at"] is not None and row["deactivated_by"] == "end_user"

    again = post(any_server, "deactivations", {"receipt": receipt}).json()
    assert again["already_deactivated"] is True
    assert again["deactivated_at"] == body["deactivated_at"]
    # Another machine can take the seat now.
    assert _activate(any_server, product, issued["license_key"], machine="m2")
    audit = any_server.admin.audit(license=issued["id"])
    assert "activation.offline_deactivate" in {entry["action"] for entry in audit}


def test_forged_receipts_are_refused(any_server: LocalServer) -> None:
    product, _, issued = setup(any_server)
    other_product, _, other_issued = setup(any_server)
    activated = _activate(any_server, product, issued["license_key"])
    act_id = activated.activation_id
    forged = {
        "wrong secret": _receipt(product, act_id, "sas_" + secrets.token_urlsafe(32)),
        "unknown activation": _receipt(product, "act_" + secrets.token_urlsafe(16),
                                       activated.activation_secret),
        "over-long activation id": _receipt(product, act_id + "x" * 40,
                                            activated.activation_secret),
        "another product": _receipt(other_product, act_id, activated.activation_secret),
    }
    # A receipt signed by a random key, claiming this activation.
    stranger = SecretKey.generate()

    token = sign_receipt(stranger, product=product, activation_id=act_id, result="deactivated",
                         nonce=nonce(), server_time=datetime.now(timezone.utc))
    forged["random key"] = off.armor(off.RECEIPT, {
        "type": "deactivation_receipt", "v": 1, "product": product, "activation_id": act_id,
        "receipt": token})
    # A genuine receipt whose product field was edited.
    genuine = off.parse_deactivation_receipt(_receipt(product, act_id,
                                                      activated.activation_secret))
    forged["product field edited"] = off.armor(off.RECEIPT, {
        "type": "deactivation_receipt", "v": 1, "product": other_product,
        "activation_id": act_id, "receipt": genuine.receipt})
    # The activation's own key, but signing something that is not a deactivation.
    key = off.deactivation_key(activated.activation_secret, product=product,
                               activation_id=act_id)
    token = sign_receipt(key, product=product, activation_id=act_id, result="erased",
                         nonce=nonce(), server_time=datetime.now(timezone.utc))
    forged["another result"] = off.armor(off.RECEIPT, {
        "type": "deactivation_receipt", "v": 1, "product": product, "activation_id": act_id,
        "receipt": token})
    # Odd text where an id belongs (JSON escapes let anything through the base64).
    for odd in ("\\ud800", "act_\\u00e9", "act_" + "a" * 40):
        payload = ('{"type":"deactivation_receipt","v":1,"product":"' + product
                   + '","activation_id":"' + odd + '","receipt":"' + genuine.receipt
                   + '"}').encode()
        forged["odd id " + odd] = _raw_block(
            ["-----BEGIN SOFTWARE_DNA DEACTIVATION RECEIPT-----",
             "-----END SOFTWARE_DNA DEACTIVATION RECEIPT-----"], payload)
    for case, text in forged.items():
        expected = "invalid_request" if "ud800" in case else "invalid_receipt"
        assert error(post(any_server, "deactivations", {"receipt": text})) \
            == (400, expected), case
    assert seats_in_use(any_server, issued["id"]) == 1
    assert seats_in_use(any_server, other_issued["id"]) == 0


def test_a_used_request_cannot_come_back_after_deactivation(any_server: LocalServer) -> None:
    product, _, issued = setup(any_server)
    text, _ = make_request(product, issued["license_key"])
    first = off.parse_response(post(any_server, "activations", {"request": text}).json()
                               ["response"])
    post(any_server, "deactivations", {"receipt": _receipt(
        product, first.activation_id, first.activation_secret)})
    assert error(post(any_server, "activations", {"request": text})) \
        == (410, "activation_removed")
    # Staff answering it again (admin route, what `offline respond` uses) is refused the
    # same way: no seat is taken for a response the machine would refuse.
    with pytest.raises(AdminError) as refused:
        any_server.admin.request("POST", "/offline/activations", json={"request": text})
    assert (refused.value.status, refused.value.code) == (410, "activation_removed")
    assert seats_in_use(any_server, issued["id"]) == 0


def test_offline_activation_attempts_are_rate_limited(tmp_path: Path) -> None:
    with ThreadedServer(tmp_path, rate_limit_attempts=3,
                        rate_limit_address_attempts=100) as srv:
        product, _, issued = setup(srv)
        codes = [error(post(srv, "activations", {"request": make_request(
            product, issued["license_key"])[0]}, password="guess")) for _ in range(4)]
        assert codes[:3] == [(403, "wrong_password")] * 3 and codes[3] == (429, "rate_limited")


# --------------------------------------------------------------------------- CLI


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
            *argv: str, stdin: str = "") -> tuple[int, str, str]:

    for name in ("DATABASE_URL", "SOFTWARE_DNA_MASTER_KEY", "SOFTWARE_DNA_MASTER_KEY_FILE",
                 _common.ENV_SERVER_URL, _common.ENV_ADMIN_KEY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    capsys.readouterr()
    try:
        code = cli.main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def test_cli_respond_and_deactivate(any_server: LocalServer, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    product, keys, issued = setup(any_server, seats=2)
    where = ["--data-dir", str(any_server.data_dir), "--database-url", any_server.database_url]
    request_file = tmp_path / "request.txt"
    request_file.write_text(make_request(product, issued["license_key"])[0])
    response_file = tmp_path / "response.txt"

    code, out, err = run_cli(monkeypatch, capsys, "offline", "respond", str(request_file),
                             "-o", str(response_file), *where)
    assert code == 0, err
    assert issued["id"] in out and str(response_file) in out
    assert response_file.stat().st_mode & 0o077 == 0  # it holds the activation secret
    response = off.parse_response(response_file.read_text())
    assert check_token(response.token, keys, product).protection is Protection.OFFLINE

    # Printed to stdout by default (the summary goes to stderr); --json: the route's shape.
    code, out, err = run_cli(monkeypatch, capsys, "offline", "respond", "-", *where,
                             stdin=request_file.read_text())
    assert code == 0 and off.parse_response(out).activation_id == response.activation_id
    assert response.activation_id in err
    code, out, _ = run_cli(monkeypatch, capsys, "offline", "respond", str(request_file),
                           "--json", *where)
    assert code == 0 and json.loads(out)["activation_id"] == response.activation_id

    # Through a running server (the remote backend), another machine.
    remote = ["--server-url", any_server.url, "--admin-key", any_server.admin_key]
    request_file.write_text(make_request(product, issued["license_key"], machine="m2")[0])
    code, out, err = run_cli(monkeypatch, capsys, "offline", "respond", str(request_file),
                             "--json", *remote)
    assert code == 0, err
    remote_activation = json.loads(out)
    assert seats_in_use(any_server, issued["id"]) == 2
    request_file.write_text(make_request(product, issued["license_key"], machine="m3")[0])
    code, _, err = run_cli(monkeypatch, capsys, "offline", "respond", str(request_file),
                           *remote)
    assert code == 1 and "no_seats_left" in err and len(err.strip().splitlines()) == 1

    code, out, _ = run_cli(monkeypatch, capsys, "activations", "list", issued["id"], *where)
    assert code == 0 and out.count("active (air-gapped)") == 2

    receipt_file = tmp_path / "receipt.txt"
    receipt_file.write_text(_receipt(product, response.activation_id,
                                     response.activation_secret))
    code, out, err = run_cli(monkeypatch, capsys, "offline", "deactivate", str(receipt_file),
                             *where)
    assert code == 0 and "seat is free" in out and response.activation_id in out, err
    code, out, _ = run_cli(monkeypatch, capsys, "offline", "deactivate", str(receipt_file),
                           *remote)
    assert code == 0 and "already deactivated" in out
    second = off.parse_response(remote_activation["response"])
    receipt_file.write_text(_receipt(product, second.activation_id, second.activation_secret))
    code, out, _ = run_cli(monkeypatch, capsys, "offline", "deactivate", str(receipt_file),
                           "--json", *remote)
    assert code == 0 and json.loads(out)["already_deactivated"] is False
    assert seats_in_use(any_server, issued["id"]) == 0


def test_cli_refusals_are_one_line(any_server: LocalServer, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    where = ["--data-dir", str(any_server.data_dir), "--database-url", any_server.database_url]
    damaged = tmp_path / "damaged.txt"
    damaged.write_text("-----BEGIN SOFTWARE_DNA ACTIVATION REQUEST-----\nabc\n")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\xff\xfe\x00")
    for argv in (["respond", str(damaged)], ["respond", str(tmp_path / "missing.txt")],
                 ["respond", str(binary)], ["deactivate", str(damaged)]):
        code, out, err = run_cli(monkeypatch, capsys, "offline", *argv, *where)
        assert code == 1 and out == "", (argv, out)
        assert len(err.strip().splitlines()) == 1 and err.startswith("software-dna: error: ")
    code, out, _ = run_cli(monkeypatch, capsys, "offline", "--help")
    assert code == 0 and "respond" in out and "deactivate" in out


def test_cli_sets_the_air_gapped_settings(any_server: LocalServer, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`products create|configure` and `licenses issue|set` expose the opt-in, its
    lifetime and the per-license override; `products show` / `licenses show` say them."""
    where = ["--data-dir", str(any_server.data_dir), "--database-url", any_server.database_url]
    product = "cli-ag-" + secrets.token_hex(4)
    code, out, err = run_cli(monkeypatch, capsys, "products", "create", product, "--json",
                             *where)
    assert code == 0, err
    made = json.loads(out)
    assert (made["air_gapped"], made["air_gapped_token_days"], made["air_gapped_perpetual"]) \
        == (False, 365, False)
    code, out, err = run_cli(monkeypatch, capsys, "products", "configure", product,
                             "--air-gapped", "--air-gapped-token-days", "30", *where)
    assert code == 0 and "air_gapped" in out, err
    code, out, _ = run_cli(monkeypatch, capsys, "products", "show", product, *where)
    assert "on (tokens last 30 days)" in out
    code, _, err = run_cli(monkeypatch, capsys, "products", "configure", product,
                           "--air-gapped-token-days", "0", *where)
    assert code != 0 and "air_gapped_token_days" in err

    code, out, err = run_cli(monkeypatch, capsys, "licenses", "issue", product,
                             "--air-gapped", "off", "--json", *where)
    assert code == 0, err
    issued = json.loads(out)
    assert issued["air_gapped"] is False
    for value, expected in (("on", True), ("product", None)):
        code, out, err = run_cli(monkeypatch, capsys, "licenses", "set", issued["id"],
                                 "--air-gapped", value, "--json", *where)
        assert code == 0 and json.loads(out)["air_gapped"] is expected, err
    code, out, _ = run_cli(monkeypatch, capsys, "licenses", "show", issued["id"], *where)
    assert "the product's setting" in out
