"""The vendor's side of the license portal: a product's release limit and period, and its logo.

Through the admin API of the app in this process (real SQLite), through the
service layer, and through the ``software-dna`` CLI on a fresh data folder
(direct) and on a server's admin API behind a socket (remote).  The logo is
judged by its bytes alone: a PNG named ``.svg`` is a PNG; an SVG, a GIF or a
PNG over 256 KiB is refused whatever it claims to be; what is stored is
served back byte for byte at ``/portal/{product}/logo`` with ``nosniff``.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from software_dna.server.cli import _common
from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, Product, ProductLogo
from software_dna.server.services import update_product
from software_dna.server.services.admin import create_admin_key
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.portal_branding import MAX_LOGO_BYTES, logo_type, set_logo
from software_dna.server.testing import InProcessServer
from software_dna.wire.codes import Code
from tests.cli_runner import ENV_CLEARED, cli_json, cli_ok, run_cli
from tests.server.images import GIF, JPEG, SVG, WEBP, png

from ..threaded import ThreadedServer

DAY = 86400


# --------------------------------------------------------------------------- helpers


def new_product(server: InProcessServer, **fields: Any) -> str:
    pid = "ps-" + secrets.token_hex(4)
    server.admin.create_product(pid, **fields)
    return pid


def key_of(server: InProcessServer, role: Role) -> str:
    """A new admin API key of ``role``."""
    with server.app.state.sdna.sessions() as session:
        return create_admin_key(session, server.app.state.sdna.ctx, role=role,
                                name=f"portal-{role.value}")


def put_logo(http: requests.Session, server: InProcessServer, pid: str, data: bytes, *,
             content_type: str = "image/png", key: str | None = None) -> requests.Response:
    return http.put(f"{server.url}/v1/admin/products/{pid}/logo", data=data, headers={
        "Content-Type": content_type, "Authorization": f"Bearer {key or server.admin_key}"})


def stored_logo(server: InProcessServer, pid: str) -> tuple[str, bytes, str] | None:
    with server.app.state.sdna.sessions() as session:
        row = session.get(ProductLogo, pid)
        return None if row is None else (row.content_type, row.data, row.sha256)


def audit_actions(server: InProcessServer, pid: str) -> list[tuple[str, Any]]:
    with server.app.state.sdna.sessions() as session:
        return [(e.action, e.detail) for e in session.scalars(
            select(AuditEntry).where(AuditEntry.product_id == pid).order_by(AuditEntry.id))]


@pytest.fixture
def http(inprocess_server: InProcessServer) -> Iterator[requests.Session]:
    with inprocess_server.session() as session:
        yield session


# --------------------------------------------------------------------------- release limit


def test_release_limit_and_period_through_the_admin_api(inprocess_server: InProcessServer
                                                        ) -> None:
    admin = inprocess_server.admin
    pid = new_product(inprocess_server)
    made = admin.get_product(pid)
    assert (made["portal_release_limit"], made["portal_release_days"]) == (3, 30)
    pid2 = new_product(inprocess_server, portal_release_limit=None, portal_release_days=7)
    with inprocess_server.app.state.sdna.sessions() as session:
        row = session.get(Product, pid2)
        assert row is not None
        assert (row.portal_release_limit, row.portal_release_period) == (None, 7 * DAY)
    changed = admin.update_product(pid, portal_release_limit=0, portal_release_days=366)
    assert (changed["portal_release_limit"], changed["portal_release_days"]) == (0, 366)
    # Absent: unchanged; null: no limit.
    assert admin.update_product(pid, name="Renamed")["portal_release_limit"] == 0
    unset = admin.update_product(pid, portal_release_limit=None)
    assert (unset["portal_release_limit"], unset["portal_release_days"]) == (None, 366)
    assert admin.update_product(pid, portal_release_limit=1000)["portal_release_limit"] == 1000
    updates = [d for a, d in audit_actions(inprocess_server, pid) if a == "product.update"]
    assert {"changed": ["portal_release_limit", "portal_release_period"]} in updates
    assert {"changed": ["portal_release_limit"]} in updates


@pytest.mark.parametrize("body", [
    {"portal_release_limit": 1001}, {"portal_release_limit": -1},
    {"portal_release_limit": "3"}, {"portal_release_limit": True},
    {"portal_release_limit": 2.5}, {"portal_release_days": 0},
    {"portal_release_days": 367}, {"portal_release_days": None},
    {"portal_release_days": "30"}, {"portal_release_days": 30 * DAY},
])
def test_release_settings_out_of_bounds_are_refused(inprocess_server: InProcessServer,
                                                    http: requests.Session,
                                                    body: dict[str, Any]) -> None:
    pid = new_product(inprocess_server)
    before = inprocess_server.admin.get_product(pid)
    auth = {"Authorization": f"Bearer {inprocess_server.admin_key}"}
    answer = http.patch(f"{inprocess_server.url}/v1/admin/products/{pid}", json=body,
                        headers=auth)
    field = next(iter(body))
    if body == {"portal_release_days": None}:
        # null leaves the period as it is (it has no "off").
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
        assert field in answer.json()["error"]["message"]
    after = inprocess_server.admin.get_product(pid)
    assert (after["portal_release_limit"], after["portal_release_days"],
            after["updated_at"]) == (before["portal_release_limit"],
                                     before["portal_release_days"], before["updated_at"])
    created = http.post(f"{inprocess_server.url}/v1/admin/products", headers=auth,
                        json={"id": "ps-new-" + secrets.token_hex(3), **body})
    # Creating takes no null period either (it has a default, 30 days).
    assert created.status_code == 400, created.text


@pytest.mark.parametrize(("changes", "says"), [
    ({"portal_release_limit": 1001}, "portal_release_limit must be 0 to 1000"),
    ({"portal_release_limit": -1}, "portal_release_limit must be 0 to 1000"),
    ({"portal_release_limit": True}, "portal_release_limit must be 0 to 1000"),
    ({"portal_release_days": 0}, "portal_release_days must be 1 to 366"),
    ({"portal_release_days": 367}, "portal_release_days must be 1 to 366"),
])
def test_the_service_checks_the_bounds_itself(inprocess_server: InProcessServer,
                                              changes: dict[str, Any], says: str) -> None:
    pid = new_product(inprocess_server)
    with inprocess_server.app.state.sdna.sessions() as session:
        with pytest.raises(ServiceError) as refused:
            update_product(session, pid, **changes)
        assert refused.value.code == Code.INVALID_REQUEST and says in refused.value.message
        session.rollback()
        product = session.get(Product, pid)
        assert product is not None
        assert (product.portal_release_limit, product.portal_release_period) == (3, 30 * DAY)


# --------------------------------------------------------------------------- logo


def test_logo_is_stored_served_byte_identical_replaced_and_removed(
        inprocess_server: InProcessServer, http: requests.Session) -> None:
    pid = new_product(inprocess_server)
    logo_url = f"{inprocess_server.url}/portal/{pid}/logo"
    assert http.get(logo_url).status_code == 404
    image = png()
    # The declared type is not believed: the bytes say PNG.
    answer = put_logo(http, inprocess_server, pid, image, content_type="image/webp")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["content_type"] == "image/png" and body["size"] == len(image)
    assert body["sha256"] == hashlib.sha256(image).hexdigest()
    assert body["url"] == f"/portal/{pid}/logo"
    served = http.get(logo_url)
    assert served.status_code == 200 and served.content == image
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    for data, kind in [(JPEG, "image/jpeg"), (WEBP, "image/webp")]:
        answer = put_logo(http, inprocess_server, pid, data, content_type=kind)
        assert answer.status_code == 200 and answer.json()["content_type"] == kind
        served = http.get(logo_url)
        assert served.content == data and served.headers["content-type"] == kind
    # One exactly at the limit is taken.
    at_limit = png(MAX_LOGO_BYTES - len(png(1)) + 1)
    assert len(at_limit) == MAX_LOGO_BYTES
    assert put_logo(http, inprocess_server, pid, at_limit).status_code == 200
    assert http.get(logo_url).content == at_limit
    removed = http.delete(f"{inprocess_server.url}/v1/admin/products/{pid}/logo",
                          headers={"Authorization": f"Bearer {inprocess_server.admin_key}"})
    assert removed.status_code == 200 and removed.json() == {"ok": True}
    assert http.get(logo_url).status_code == 404
    assert stored_logo(inprocess_server, pid) is None
    again = http.delete(f"{inprocess_server.url}/v1/admin/products/{pid}/logo",
                        headers={"Authorization": f"Bearer {inprocess_server.admin_key}"})
    assert again.status_code == 404 and again.json()["error"]["details"] == {"kind": "logo"}
    actions = [a for a, _ in audit_actions(inprocess_server, pid)]
    assert actions.count("product.logo_set") == 4 and actions.count("product.logo_remove") == 1


@pytest.mark.parametrize(("data", "content_type", "status", "code"), [
    (SVG, "image/png", 400, "invalid_request"),           # an SVG claiming to be a PNG
    (SVG, "image/webp", 400, "invalid_request"),
    (GIF, "image/png", 400, "invalid_request"),
    (b"\x89PNG\r\n\x1a\n", "image/png", 400, "invalid_request"),  # the signature alone
    (png(300 * 1024), "image/png", 413, "too_large"),     # a real PNG of 300 KiB
    (png(), "image/svg+xml", 415, "unsupported_media_type"),
    (png(), "text/plain", 415, "unsupported_media_type"),
    (b'{"logo": "x"}', "application/json", 415, "unsupported_media_type"),
    (b"", "image/png", 400, "invalid_request"),
])
def test_refused_logos_change_nothing(inprocess_server: InProcessServer,
                                      http: requests.Session, data: bytes,
                                      content_type: str, status: int, code: str) -> None:
    pid = new_product(inprocess_server)
    first = png()
    assert put_logo(http, inprocess_server, pid, first).status_code == 200
    answer = put_logo(http, inprocess_server, pid, data, content_type=content_type)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert stored_logo(inprocess_server, pid) == (
        "image/png", first, hashlib.sha256(first).hexdigest())
    assert http.get(f"{inprocess_server.url}/portal/{pid}/logo").content == first
    assert [a for a, _ in audit_actions(inprocess_server, pid)].count("product.logo_set") == 1


def test_the_service_reads_the_type_from_the_bytes(inprocess_server: InProcessServer) -> None:
    assert logo_type(png()) == "image/png" and logo_type(JPEG) == "image/jpeg"
    assert logo_type(WEBP) == "image/webp"
    for data in (SVG, GIF, b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"<?xml version='1.0'?>"):
        assert logo_type(data) is None
    pid = new_product(inprocess_server)
    with inprocess_server.app.state.sdna.sessions() as session:
        with pytest.raises(ServiceError) as refused:
            set_logo(session, pid, SVG)
        assert "SVG" in refused.value.message
        with pytest.raises(ServiceError) as refused:
            set_logo(session, "no-such-product", png())
        assert refused.value.code == Code.NOT_FOUND


def test_who_may_change_the_portal_settings_and_the_logo(inprocess_server: InProcessServer,
                                                         http: requests.Session) -> None:
    pid = new_product(inprocess_server)
    url = f"{inprocess_server.url}/v1/admin/products/{pid}"
    for role in (Role.SUPPORT, Role.READ_ONLY):
        key = key_of(inprocess_server, role)
        auth = {"Authorization": f"Bearer {key}"}
        assert put_logo(http, inprocess_server, pid, png(), key=key).status_code == 403
        assert http.delete(f"{url}/logo", headers=auth).status_code == 403
        assert http.patch(url, json={"portal_release_limit": None},
                          headers=auth).status_code == 403
        # Reading the settings is allowed.
        assert http.get(url, headers=auth).json()["portal_release_limit"] == 3
    # Without a key (or with a wrong one) nothing is read: a body over 4 KiB gets 401 unread.
    for headers in ({}, {"Authorization": "Bearer sdna_admin_wrong"}):
        answer = http.put(f"{url}/logo", data=png(8000),
                          headers={"Content-Type": "image/png", **headers})
        assert answer.status_code == 401
    assert stored_logo(inprocess_server, pid) is None
    assert inprocess_server.admin.get_product(pid)["portal_release_limit"] == 3
    developer = key_of(inprocess_server, Role.DEVELOPER)
    assert put_logo(http, inprocess_server, pid, png(), key=developer).status_code == 200
    answer = http.patch(url, json={"portal_release_limit": 1},
                        headers={"Authorization": f"Bearer {developer}"})
    assert answer.status_code == 200 and answer.json()["portal_release_limit"] == 1
    assert http.delete(f"{url}/logo", headers={"Authorization": f"Bearer {developer}"}
                       ).status_code == 200


def test_unknown_product(inprocess_server: InProcessServer, http: requests.Session) -> None:
    answer = put_logo(http, inprocess_server, "no-such-product", png())
    assert answer.status_code == 404 and answer.json()["error"]["details"] == {
        "kind": "product"}
    assert http.get(f"{inprocess_server.url}/portal/no-such-product/logo").status_code == 404


# --------------------------------------------------------------------------- CLI


@pytest.fixture(params=["direct", "remote"])
def where(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str | None]:
    """Run the commands on the database (None), or through a server's admin API (its URL)."""
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    if request.param == "direct":
        monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path))
        cli_ok("server", "init")
        yield None
        return
    with ThreadedServer(tmp_path / "srv") as srv:
        monkeypatch.setenv(_common.ENV_SERVER_URL, srv.url)
        monkeypatch.setenv(_common.ENV_ADMIN_KEY, srv.admin_key)
        yield srv.url


def test_cli_release_settings(where: str | None) -> None:
    made = cli_json("products", "create", "cli-portal", "--portal-release-limit", "none",
                    "--portal-release-days", "7")
    assert (made["portal_release_limit"], made["portal_release_days"]) == (None, 7)
    assert "no limit" in cli_ok("products", "show", "cli-portal")
    changed = cli_json("products", "configure", "cli-portal", "--portal-release-limit", "0")
    assert (changed["portal_release_limit"], changed["portal_release_days"]) == (0, 7)
    assert "only the vendor frees computers" in cli_ok("products", "show", "cli-portal")
    changed = cli_json("products", "configure", "cli-portal", "--portal-release-limit", "2",
                       "--portal-release-days", "366")
    assert (changed["portal_release_limit"], changed["portal_release_days"]) == (2, 366)
    assert "2 per 366 days per license" in cli_ok("products", "show", "cli-portal")
    out = cli_ok("products", "configure", "cli-portal", "--portal-release-days", "30")
    assert "tokens issued from now on" not in out  # the portal's settings are not in tokens
    for option, value, code in [("--portal-release-days", "0", 2),
                                ("--portal-release-days", "367", 2),
                                ("--portal-release-days", "a week", 2),
                                ("--portal-release-limit", "many", 2),
                                ("--portal-release-limit", "1001", 1)]:
        status, _, err = run_cli("products", "configure", "cli-portal", option, value)
        assert status == code, (option, value, err)
    shown = cli_json("products", "show", "cli-portal")
    assert (shown["portal_release_limit"], shown["portal_release_days"]) == (2, 30)


def test_cli_logo(where: str | None, tmp_path: Path) -> None:
    cli_ok("products", "create", "cli-logo")
    image = png()
    renamed = tmp_path / "logo.svg"  # a PNG whatever its name says
    renamed.write_bytes(image)
    stored = cli_json("products", "logo", "cli-logo", str(renamed))
    assert stored["content_type"] == "image/png" and stored["size"] == len(image)
    assert stored["sha256"] == hashlib.sha256(image).hexdigest()
    if where is not None:
        served = requests.get(f"{where}/portal/cli-logo/logo", timeout=10)
        assert served.content == image and served.headers["x-content-type-options"] == "nosniff"
    for name, data, says in [("evil.svg", SVG, "PNG, JPEG or WebP"),
                             ("anim.png", GIF, "PNG, JPEG or WebP"),
                             ("huge.png", png(300 * 1024), "256 KiB")]:
        path = tmp_path / name
        path.write_bytes(data)
        status, _, err = run_cli("products", "logo", "cli-logo", str(path))
        assert status == 1 and says in err, err
    assert "image/png" in cli_ok("products", "logo", "cli-logo", str(renamed))
    status, _, err = run_cli("products", "logo", "cli-logo")
    assert status == 2 and "FILE or --remove" in err
    status, _, err = run_cli("products", "logo", "cli-logo", str(renamed), "--remove")
    assert status == 2
    status, _, err = run_cli("products", "logo", "cli-logo", str(tmp_path / "missing.png"))
    assert status == 2
    assert cli_json("products", "logo", "cli-logo", "--remove") == {"ok": True}
    if where is not None:
        assert requests.get(f"{where}/portal/cli-logo/logo", timeout=10).status_code == 404
    status, _, err = run_cli("products", "logo", "cli-logo", "--remove")
    assert status == 1 and "logo" in err
