"""Attack review: air-gapped protection (fresh eyes).

Each test asserts the promise; a failing one is a finding.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import LicenseClient, LicenseError, NotActivated
from software_dna.client.locations import witness_path
from software_dna.wire import airgap as off
from tests.airgapped import AirGapped
from tests.inprocess import InProcessServer
from tests.test_offline import block_json, send_receipt

PASSWORD = "open sesame"


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


def new_product(server: InProcessServer, **policy: Any) -> tuple[str, list[str]]:
    product = "atk-" + secrets.token_hex(4)
    policy.setdefault("air_gapped", True)
    keys = server.admin.setup_product(product, features=["export"], **policy)
    return product, keys


def post(server: InProcessServer, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    answer = server.session().post(f"{server.url}{path}", json=body, timeout=30)
    return answer.status_code, answer.json()


def test_staff_answered_request_replayed_on_public_route_without_password(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    """The vendor's staff answered a request (no password needed there); anyone holding the
    mailed block then posts it to the public route without the password."""
    product, keys = new_product(server)
    issued = server.admin.issue_license(product, password=PASSWORD)
    request = machine(product, keys).client.create_activation_request(issued["license_key"])
    staff = server.admin.request("POST", "/offline/activations", json={"request": request})
    assert "response" in staff
    status, body = post(server, "/v1/offline/activations", {"request": request})
    assert status == 403 and body["error"]["code"] == "wrong_password", body


def test_v1_block_carrying_the_password_is_not_enough(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    product, keys = new_product(server)
    issued = server.admin.issue_license(product, password=PASSWORD)
    request = machine(product, keys).client.create_activation_request(issued["license_key"])
    doc = block_json(request)
    doc["v"] = 1
    doc["password"] = PASSWORD
    old = off.armor(off.REQUEST, doc)
    status, body = post(server, "/v1/offline/activations", {"request": old})
    assert status in (400, 403), body
    assert server.admin.get_license(issued["id"])["seats_in_use"] == 0


def test_air_gapped_activation_refreshed_online_keeps_exp(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    product, keys = new_product(server, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    _, body = post(server, "/v1/offline/activations", {"request": request})
    lic = app.client.activate_offline(body["response"])
    assert lic.expires_at is not None
    online = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=app.args["store_path"], transport=server.transport())
    again = online.refresh()
    assert again.expires_at is not None
    # and an online activate() from the same machine does not get a token without exp
    fresh = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                          store_path=tmp_path / "fresh", transport=server.transport())
    third = fresh.activate(issued["license_key"])
    assert third.expires_at is not None


def test_evaluation_license_air_gapped_has_an_end(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    product, keys = new_product(server, air_gapped_perpetual=True)
    issued = server.admin.issue_license(product, kind="evaluation", expires_after_days=14)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    status, body = post(server, "/v1/offline/activations", {"request": request})
    assert status == 201, body
    lic = app.client.activate_offline(body["response"])
    assert lic.expires_at is not None and lic.expires_at - lic.issued_at <= timedelta(days=15)


def test_deactivated_token_reinstalled_through_another_store_location(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    product, keys = new_product(server)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    _, body = post(server, "/v1/offline/activations", {"request": request})
    app.client.activate_offline(body["response"])
    app.client.check()
    receipt = app.client.deactivate_offline()
    send_receipt(server, receipt)
    # a second app instance with its store elsewhere (same account, same machine)
    other = LicenseClient(product=product, public_keys=keys, server_url=None,
                          store_path=tmp_path / "elsewhere")
    response_token = block_json(body["response"])["token"]
    with pytest.raises(NotActivated):
        other.install_token(response_token)
    with pytest.raises(LicenseError):
        other.activate_offline(body["response"])


@pytest.mark.parametrize("switch", ["license", "product"])
def test_air_gapped_renewal_after_the_vendor_turned_air_gapped_off(
        server: InProcessServer, machine: Callable[..., AirGapped], switch: str) -> None:
    """The vendor turns air-gapped activation off (the license's override, or the product's
    setting); a new request from a machine activated before must not get a fresh offline
    token (a renewal is an air-gapped answer like any other)."""
    product, keys = new_product(server)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    status, body = post(server, "/v1/offline/activations", {"request": request})
    assert status == 201, body
    app.client.activate_offline(body["response"])
    if switch == "license":
        server.admin.update_license(issued["id"], air_gapped=False)
    else:
        server.admin.update_product(product, air_gapped=False)
    renewal = app.client.create_activation_request(issued["license_key"])
    status, body = post(server, "/v1/offline/activations", {"request": renewal})
    assert (status, body.get("error", {}).get("code")) == (403, "offline_not_allowed"), body


@pytest.mark.parametrize("store", ["kept", "deleted"])
@pytest.mark.parametrize("damage", ["garbage", "truncate", "deleted"])
def test_a_token_given_up_comes_back_only_with_all_local_state_gone_and_only_until_it_ends(
        server: InProcessServer, machine: Callable[..., AirGapped], damage: str,
        store: str) -> None:
    """After deactivate_offline() and the receipt (the vendor frees the seat, which another
    machine may then take), the end user damages or deletes both witness copies and
    installs the response kept from the e-mail again.

    With the store kept, its record of the deactivation refuses the token. With the store
    deleted too, nothing on the machine remembers anything: it is a computer that never
    saw this license (a new OS account is the same), so the token installs -- the
    documented limit (docs/offline.md, "Security notes") -- and it holds only until its
    own end, the product's ``air_gapped_token_days`` after it was issued."""
    product, keys = new_product(server, air_gapped_token_days=30)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    _, body = post(server, "/v1/offline/activations", {"request": request})
    given_up = app.client.activate_offline(body["response"])
    send_receipt(server, app.client.deactivate_offline())
    witness = witness_path(product)
    assert witness.exists()
    for path in (witness, witness.with_name(witness.name + ".prev")):
        if path.exists():
            if damage == "deleted":
                path.unlink()
            elif damage == "garbage":
                path.write_bytes(b"\x00garbage" * 16)
            else:
                path.write_bytes(path.read_bytes()[:20])
    if store == "deleted":
        shutil.rmtree(app.args["store_path"])
    client = app.restart()
    token = block_json(body["response"])["token"]
    if store == "kept":
        with pytest.raises(LicenseError):
            client.install_token(token)
            client.check()
        return
    lic = client.install_token(token)
    assert lic.expires_at is not None
    assert lic.expires_at <= given_up.issued_at + timedelta(days=30, seconds=1)
    app.offset = lic.expires_at - datetime.now(timezone.utc) + timedelta(seconds=1)
    with pytest.raises(LicenseError):
        app.restart().check()


@pytest.mark.parametrize("seat_mode", ["user", "machine"])
def test_an_air_gapped_request_never_turns_an_online_user_seat_offline(
        server: InProcessServer, tmp_path: Path, seat_mode: str) -> None:
    """The same machine and OS account hold a live online (mandatory) activation of a
    two-seat license; an air-gapped request from it must be refused, whatever the seat mode."""
    product, keys = new_product(server, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600)
    issued = server.admin.issue_license(product, seats=2, seat_mode=seat_mode)
    online = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "online", transport=server.transport())
    online.activate(issued["license_key"])
    request = online.create_activation_request(issued["license_key"])
    status, body = post(server, "/v1/offline/activations", {"request": request})
    if status == 201:
        # The same app, same account: install the answer over its online activation.
        lic = online.activate_offline(body["response"])
        again = online.check()
        assert lic.refresh_by is not None and again.refresh_by is not None, (
            f"the mandatory activation is now {again.protection} with refresh_by "
            f"{again.refresh_by}: no refresh, no revocation for {again.expires_at}")
    assert (status, body.get("error", {}).get("code")) == (409, "already_activated_online"), body
