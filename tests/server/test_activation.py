"""Activation, validation, deactivation and settings over HTTP, on SQLite and PostgreSQL.

The app runs in-process (tests/inprocess.py): every request goes through the real
app and database, without a socket.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from software_dna.server.adminclient import AdminError
from software_dna.server.testing import LocalServer
from software_dna.wire.claims import Mode
from software_dna.wire.identity import to_json
from tests.server.helpers import Api, check_receipt, check_token, error_code, fingerprint

from ..inprocess import InProcessServer


@dataclass
class Product:
    id: str
    keys: list[str]


@pytest.fixture(scope="module")
def any_server(inprocess_any_server: InProcessServer) -> InProcessServer:
    """Only the HTTP API is tested here: the app in-process on ``database_url``."""
    return inprocess_any_server


@pytest.fixture
def api(any_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(any_server)
    yield client
    client.close()


@pytest.fixture
def product(any_server: LocalServer) -> Product:
    pid = "p-" + secrets.token_hex(4)
    keys = any_server.admin.setup_product(
        pid, features=["pro", "export"], limited_features=["view"], fingerprint_tolerance=1,
    )
    return Product(pid, keys)


def test_activate_without_password(any_server: LocalServer, api: Api, product: Product) -> None:
    issued = any_server.admin.issue_license(product.id, seats=2)
    answer = api.activate(product.id, issued["license_key"], nonce="N" * 20)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert set(body) == {"activation_id", "activation_secret", "token", "nonce", "server_time"}
    assert body["nonce"] == "N" * 20
    lic = check_token(body["token"], product.keys, product.id)
    assert lic.activation_id == body["activation_id"]
    assert lic.license_id == issued["id"]
    assert lic.mode is Mode.FULL
    assert lic.features == frozenset({"pro", "export"})
    assert lic.nonce == "N" * 20
    assert lic.email is None and lic.registration is None
    assert lic.refresh_by is not None and lic.expires_at is not None
    assert lic.expires_at - lic.refresh_by == timedelta(days=7)
    # The key is matched whatever the case and spacing.
    again = api.activate(product.id, " " + issued["license_key"].lower() + " ", machine="m2")
    assert again.status_code == 201, again.text
    assert any_server.admin.get_license(issued["id"])["seats_in_use"] == 2
    shown = any_server.admin.get_license(issued["id"])
    assert shown["key_hint"].endswith(issued["license_key"][-4:])
    assert "license_key" not in shown


def test_activate_with_password_email_registration(
    any_server: LocalServer, api: Api, product: Product
) -> None:
    issued = any_server.admin.issue_license(product.id, password="s3cret pass")
    key = issued["license_key"]
    assert error_code(api.activate(product.id, key)) == "wrong_password"
    wrong = api.activate(product.id, key, password="nope")
    assert wrong.status_code == 403 and error_code(wrong) == "wrong_password"
    no_consent = api.activate(product.id, key, password="s3cret pass", email="a@example.com")
    assert no_consent.status_code == 400 and error_code(no_consent) == "consent_required"
    answer = api.activate(product.id, key, password="s3cret pass", email="Ann@Example.com",
                          registration={"name": "Ann Lee", "company": "Lee Ltd"}, consent=True)
    assert answer.status_code == 201, answer.text
    lic = check_token(answer.json()["token"], product.keys, product.id)
    assert lic.email == "Ann@Example.com"
    assert dict(lic.registration or {}) == {"name": "Ann Lee", "company": "Lee Ltd"}
    found = any_server.admin.find_end_users("ann@example.com")
    assert len(found) == 1
    exported = any_server.admin.export_end_user(found[0]["id"])
    assert exported["email"] == "Ann@Example.com"
    assert exported["registration"] == {"name": "Ann Lee", "company": "Lee Ltd"}
    assert exported["activations"][0]["id"] == answer.json()["activation_id"]
    assert exported["consent_at"] is not None


def test_unknown_key_and_wrong_product(any_server: LocalServer, api: Api,
                                       product: Product) -> None:
    answer = api.activate(product.id, "AAAA-BBBB-CCCC-DDDD")
    assert answer.status_code == 404 and error_code(answer) == "unknown_license_key"
    other = any_server.admin.setup_product("q-" + secrets.token_hex(4))
    assert other
    key = any_server.admin.issue_license(product.id)["license_key"]
    answer = api.activate("no-such-product", key)
    assert answer.status_code == 404 and error_code(answer) == "unknown_license_key"


def test_no_seats_left_and_deactivate_frees_seat(any_server: LocalServer, api: Api,
                                                 product: Product) -> None:
    key = any_server.admin.issue_license(product.id, seats=1)["license_key"]
    first = api.activate(product.id, key, machine="a")
    assert first.status_code == 201
    full = api.activate(product.id, key, machine="b")
    assert full.status_code == 409 and error_code(full) == "no_seats_left"
    a = first.json()
    done = api.deactivate(a["activation_id"], a["activation_secret"])
    assert done.status_code == 200, done.text
    receipt = check_receipt(done.json()["receipt"], product.keys, product.id)
    assert receipt["result"] == "deactivated"
    assert receipt["activation_id"] == a["activation_id"]
    assert api.activate(product.id, key, machine="b").status_code == 201
    # The deactivated activation is gone for good.
    gone = api.validate(a["activation_id"], a["activation_secret"], machine="a")
    assert gone.status_code == 410 and error_code(gone) == "activation_removed"
    assert check_receipt(gone.json()["error"]["receipt"], product.keys,
                         product.id)["result"] == "activation_removed"


def test_concurrent_activations_never_exceed_seats(any_server: LocalServer,
                                                   product: Product) -> None:
    key = any_server.admin.issue_license(product.id, seats=3)["license_key"]
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        client = Api.for_server(any_server)
        try:
            status = client.activate(product.id, key, machine=f"c{i}").status_code
        finally:
            client.close()
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] * 3 + [409] * 5


def test_idempotent_retry(any_server: LocalServer, api: Api, product: Product) -> None:
    issued = any_server.admin.issue_license(product.id, seats=1)
    key = issued["license_key"]
    first = api.activate(product.id, key, idempotency_key="idem-key-0123456789")
    retry = api.activate(product.id, key, idempotency_key="idem-key-0123456789")
    assert first.status_code == 201 and retry.status_code == 200, retry.text
    a, b = first.json(), retry.json()
    assert a["activation_id"] == b["activation_id"]
    # A new secret generation: whoever holds the first answer's now holds an outdated one.
    assert a["activation_secret"] != b["activation_secret"]
    assert a["token"] != b["token"]
    assert api.validate(a["activation_id"], b["activation_secret"]).status_code == 200
    assert any_server.admin.get_license(issued["id"])["seats_in_use"] == 1
    # Same key from another machine: refused, not a second seat.
    other = api.activate(product.id, key, machine="zz", idempotency_key="idem-key-0123456789")
    assert other.status_code == 409 and error_code(other) == "conflict"
    # Same machine, new idempotency key (a reinstall): the same activation again.
    reinstall = api.activate(product.id, key)
    assert reinstall.status_code == 200
    assert reinstall.json()["activation_id"] == a["activation_id"]


def test_revoke_and_suspend_seen_at_next_validation(any_server: LocalServer, api: Api,
                                                    product: Product) -> None:
    issued = any_server.admin.issue_license(product.id)
    a = api.activate(product.id, issued["license_key"]).json()
    ok = api.validate(a["activation_id"], a["activation_secret"], nonce_value="V" * 16)
    assert ok.status_code == 200
    assert ok.json()["rebound"] is False and ok.json()["nonce"] == "V" * 16
    assert check_token(ok.json()["token"], product.keys, product.id).nonce == "V" * 16

    any_server.admin.suspend_license(issued["id"])
    refused = api.validate(a["activation_id"], a["activation_secret"], nonce_value="S" * 16)
    assert refused.status_code == 403 and error_code(refused) == "license_suspended"
    receipt = check_receipt(refused.json()["error"]["receipt"], product.keys, product.id)
    assert receipt["result"] == "license_suspended" and receipt["nonce"] == "S" * 16
    assert error_code(api.activate(product.id, issued["license_key"],
                                   machine="x")) == "license_suspended"

    any_server.admin.resume_license(issued["id"])
    assert api.validate(a["activation_id"], a["activation_secret"]).status_code == 200

    any_server.admin.revoke_license(issued["id"])
    refused = api.validate(a["activation_id"], a["activation_secret"])
    assert refused.status_code == 403 and error_code(refused) == "license_revoked"
    assert check_receipt(refused.json()["error"]["receipt"], product.keys,
                         product.id)["result"] == "license_revoked"
    with pytest.raises(AdminError) as info:
        any_server.admin.resume_license(issued["id"])
    assert info.value.status == 409


def test_expiry(any_server: LocalServer, api: Api, product: Product) -> None:
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    issued = any_server.admin.issue_license(product.id, expires_at=soon)
    a = api.activate(product.id, issued["license_key"]).json()
    lic = check_token(a["token"], product.keys, product.id)
    assert lic.license_expires_at == soon.replace(microsecond=0)
    assert lic.expires_at is not None and lic.expires_at <= soon
    any_server.admin.update_license(issued["id"],
                                    expires_at=datetime.now(timezone.utc) - timedelta(seconds=5),
                                    allow_past=True)
    refused = api.validate(a["activation_id"], a["activation_secret"])
    assert refused.status_code == 403 and error_code(refused) == "license_expired"
    assert check_receipt(refused.json()["error"]["receipt"], product.keys, product.id)
    any_server.admin.update_license(issued["id"], expires_at=None)
    assert api.validate(a["activation_id"], a["activation_secret"]).status_code == 200


def test_fingerprint_drift_rebinds_within_tolerance(any_server: LocalServer, api: Api,
                                                    product: Product) -> None:
    a = api.activate(product.id, any_server.admin.issue_license(product.id)["license_key"],
                     machine="d").json()
    drifted = fingerprint("d", changed=["cpu"])
    answer = api.validate(a["activation_id"], a["activation_secret"], fp=drifted)
    assert answer.status_code == 200 and answer.json()["rebound"] is True
    lic = check_token(answer.json()["token"], product.keys, product.id)
    assert to_json(lic.fingerprint) == drifted["components"]
    # Bound to the new components now: the same fingerprint is not a drift any more.
    secret = answer.json()["activation_secret"]  # rotated, as the SDK stores it
    again = api.validate(a["activation_id"], secret, fp=drifted)
    assert again.json()["rebound"] is False
    far = fingerprint("d", changed=["machine_id", "mac"])
    refused = api.validate(a["activation_id"], again.json()["activation_secret"], fp=far)
    assert refused.status_code == 403 and error_code(refused) == "wrong_machine"


def test_vendor_removes_activation(any_server: LocalServer, api: Api, product: Product) -> None:
    issued = any_server.admin.issue_license(product.id, seats=1)
    a = api.activate(product.id, issued["license_key"]).json()
    listed = any_server.admin.list_activations(issued["id"])
    assert [x["id"] for x in listed] == [a["activation_id"]]
    assert listed[0]["client"] == {"sdk_version": "0.1.0", "os": "Linux", "python": "3.11.7",
                                   "app_version": None}
    any_server.admin.remove_activation(a["activation_id"])
    assert any_server.admin.get_license(issued["id"])["seats_in_use"] == 0
    gone = api.validate(a["activation_id"], a["activation_secret"])
    assert gone.status_code == 410 and error_code(gone) == "activation_removed"


def test_settings_follow_the_license(any_server: LocalServer, api: Api,
                                     product: Product) -> None:
    key = any_server.admin.issue_license(product.id, seats=2)["license_key"]
    a = api.activate(product.id, key, machine="s1").json()
    b = api.activate(product.id, key, machine="s2").json()
    empty = api.get_settings(a["activation_id"], a["activation_secret"])
    assert empty.status_code == 200
    assert empty.json()["settings"] == {} and empty.json()["updated_at"] is None
    doc = {"theme": "dark", "recent": ["a.txt", "b.txt"], "zoom": 1.25, "nested": {"x": None}}
    put = api.put_settings(a["activation_id"], a["activation_secret"], doc)
    assert put.status_code == 200, put.text
    assert put.json()["settings"] == doc and put.json()["updated_at"]
    other = api.get_settings(b["activation_id"], b["activation_secret"])
    assert other.json()["settings"] == doc
    too_big = api.put_settings(a["activation_id"], a["activation_secret"], {"x": "y" * 40000})
    assert too_big.status_code == 413 and error_code(too_big) == "too_large"
    not_object = api.put_settings(a["activation_id"], a["activation_secret"], ["list"])
    assert not_object.status_code == 400 and error_code(not_object) == "invalid_request"
    foreign = api.get_settings(a["activation_id"], b["activation_secret"])
    assert foreign.status_code == 401


def test_product_password_required_and_limited_policy(any_server: LocalServer, api: Api) -> None:
    pid = "pw-" + secrets.token_hex(4)
    keys = any_server.admin.setup_product(pid, password_required=True, protection="offline")
    with pytest.raises(AdminError) as info:
        any_server.admin.issue_license(pid)
    assert info.value.code == "invalid_request"
    issued = any_server.admin.issue_license(pid, password="pw")
    answer = api.activate(pid, issued["license_key"], password="pw")
    lic = check_token(answer.json()["token"], keys, pid)
    assert lic.refresh_by is None and lic.expires_at is None  # offline, perpetual


def test_no_signing_key(any_server: LocalServer, api: Api) -> None:
    pid = "nokey-" + secrets.token_hex(4)
    any_server.admin.create_product(pid)
    key = any_server.admin.issue_license(pid)["license_key"]
    answer = api.activate(pid, key)
    assert answer.status_code == 503 and error_code(answer) == "no_signing_key"
    any_server.admin.generate_key(pid)
    assert api.activate(pid, key).status_code == 201
