"""The admin API's object management (products, licenses, passwords, audit) on SQLite.

Through the HTTP API of the app in-process (tests/inprocess.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from software_dna.server.adminclient import AdminError
from software_dna.server.testing import LocalServer
from tests.server.helpers import Api, check_token, error_code

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """Only the HTTP API is tested here: the app in-process (no subprocess, no socket)."""
    with InProcessServer(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture
def api(server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(server)
    yield client
    client.close()


def test_products(server: LocalServer) -> None:
    admin = server.admin
    pid = "adm-" + secrets.token_hex(3)
    made = admin.create_product(pid, name="Acme Editor", refresh_interval=3600,
                                offline_grace_period=600, features=["b", "a", "a"])
    assert made["features"] == ["a", "b"] and made["token_lifetime"] == 4200
    assert made["protection"] == "opportunistic" and made["password_required"] is False
    with pytest.raises(AdminError) as info:
        admin.create_product(pid)
    assert info.value.status == 409 and info.value.code == "conflict"
    assert pid in [p["id"] for p in admin.list_products()]
    changed = admin.update_product(pid, protection="mandatory", fingerprint_tolerance=0)
    assert changed["protection"] == "mandatory" and changed["fingerprint_tolerance"] == 0
    assert changed["name"] == "Acme Editor" and changed["refresh_interval"] == 3600
    assert admin.get_product(pid) == changed
    with pytest.raises(AdminError) as info:
        admin.update_product(pid, refresh_interval=5)
    assert info.value.code == "invalid_request"


def test_licenses(server: LocalServer, api: Api) -> None:
    admin = server.admin
    pid = "lic-" + secrets.token_hex(3)
    keys = admin.setup_product(pid, features=["base"])
    issued = admin.issue_license(pid, seats=1, key_prefix="acme")
    assert issued["license_key"].startswith("ACME-")
    groups = issued["license_key"].split("-")[1:]
    assert len(groups) == 4 and all(len(g) == 4 for g in groups)
    assert not set("".join(groups)) & set("01IO")
    assert issued["features"] == ["base"] and issued["status"] == "active"
    other = admin.issue_license(pid, features=["x"])
    listed = admin.list_licenses(pid)
    assert [x["id"] for x in listed] == [other["id"], issued["id"]]
    admin.suspend_license(other["id"])
    assert [x["id"] for x in admin.list_licenses(pid, status="suspended")] == [other["id"]]

    updated = admin.update_license(issued["id"], seats=2, features=["base", "pro"])
    assert updated["seats"] == 2 and updated["features"] == ["base", "pro"]
    answer = api.activate(pid, issued["license_key"])
    assert check_token(answer.json()["token"], keys, pid).features == {"base", "pro"}

    admin.set_password(issued["id"], "pw-1")
    assert admin.get_license(issued["id"])["password_set"] is True
    assert error_code(api.activate(pid, issued["license_key"], machine="b")) == "wrong_password"
    assert api.activate(pid, issued["license_key"], machine="b",
                        password="pw-1").status_code == 201
    admin.set_password(issued["id"], None)
    assert admin.get_license(issued["id"])["password_set"] is False

    with pytest.raises(AdminError) as info:
        admin.issue_license("no-such-product")
    assert info.value.status == 404


def test_audit_log(server: LocalServer, api: Api) -> None:
    admin = server.admin
    pid = "aud-" + secrets.token_hex(3)
    admin.setup_product(pid)
    issued = admin.issue_license(pid)
    email = f"audit.{secrets.token_hex(3)}@example.com"
    a = api.activate(pid, issued["license_key"], email=email, consent=True).json()
    admin.revoke_license(issued["id"])
    entries = admin.audit(product=pid)
    actions = [e["action"] for e in entries]
    assert actions[:3] == ["license.revoke", "activation.create", "license.issue"]
    assert entries[1]["activation_id"] == a["activation_id"]
    assert entries[1]["actor"] == "sdk" and entries[0]["actor"] == "admin"
    assert email not in str(admin.audit(limit=1000))
    page = admin.audit(product=pid, limit=1, before_id=entries[0]["id"])
    assert page == entries[1:2]
