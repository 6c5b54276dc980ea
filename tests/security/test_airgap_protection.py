"""Air-gapped activation cannot lower protection: one named regression per attack.

- an online (``mandatory`` / ``opportunistic``) activation turned ``offline``
  by an air-gapped request from the same machine;
- a token given up by ``deactivate_offline()`` installed again once the
  vendor freed the seat (the store restored from a backup too);
- the activation password read out of a mailed request block;
- an air-gapped token that never ends, so a deactivation protects only as
  long as the machine keeps its witness;
- air-gapped re-activations that escape the lock-out;
- air-gapped activation of a product that never allowed it.

Everything runs against the real server app and database in this process
(tests/inprocess.py); the air-gapped machine has no server URL at all and
carries its blocks by hand, as an end user would.
"""

from __future__ import annotations

import secrets
import shutil
import warnings
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    FingerprintUnavailable,
    InvalidToken,
    LicenseClient,
    LicenseExpired,
    NotActivated,
    Protection,
)
from software_dna.client.locations import witness_path
from software_dna.server.adminclient import AdminError
from software_dna.server.services.common import clock_override
from software_dna.testing import SimulatedMachine
from software_dna.wire import airgap as off
from software_dna.wire.claims import Protection as ClaimProtection
from tests.airgapped import AirGapped
from tests.inprocess import InProcessServer
from tests.server.helpers import check_token, fingerprint, nonce
from tests.test_offline import block_json, other_machine, send_receipt

PASSWORD = "open sesame"


@pytest.fixture(scope="module")
def server(inprocess_any_server: InProcessServer) -> InProcessServer:
    """The app and its database (SQLite, then PostgreSQL) in this process."""
    return inprocess_any_server


def new_product(server: InProcessServer, **policy: Any) -> tuple[str, list[str]]:
    product = "ag-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, features=["export"], **policy)
    return product, keys


def post_request(server: InProcessServer, request: str, *,
                 password: str | None = None) -> tuple[int, dict[str, Any]]:
    """The end user posts the block from a connected machine (the password typed beside it)."""
    body: dict[str, Any] = {"request": request}
    if password is not None:
        body["password"] = password
    answer = server.session().post(f"{server.url}/v1/offline/activations", json=body,
                                   timeout=30)
    payload: dict[str, Any] = answer.json()
    return answer.status_code, payload


def respond(server: InProcessServer, request: str, *, password: str | None = None) -> str:
    status, body = post_request(server, request, password=password)
    assert status in (200, 201), body
    return str(body["response"])


def code(answer: tuple[int, dict[str, Any]]) -> tuple[int, str]:
    status, body = answer
    return status, str(body.get("error", {}).get("code"))


# --------------------------------------------------------------------------- opt-in


def test_air_gapped_activation_of_a_product_that_never_allowed_it_is_refused(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    admin = server.admin
    product, keys = new_product(server)  # a new product: air-gapped activation is off
    assert admin.get_product(product)["air_gapped"] is False
    issued = admin.issue_license(product)
    request = machine(product, keys).client.create_activation_request(issued["license_key"])
    status, body = post_request(server, request)
    assert (status, body["error"]["code"]) == (403, "offline_not_allowed")
    assert "does not allow air-gapped activation" in body["error"]["message"]
    assert admin.get_license(issued["id"])["seats_in_use"] == 0

    # The license's override opens it for this license only ...
    admin.update_license(issued["id"], air_gapped=True)
    assert admin.get_license(issued["id"])["air_gapped"] is True
    respond(server, request)
    # ... and closes it on a product that allows it.
    admin.update_product(product, air_gapped=True)
    closed = admin.issue_license(product, air_gapped=False)
    request = machine(product, keys, "second").client.create_activation_request(
        closed["license_key"])
    status, body = post_request(server, request)
    assert (status, body["error"]["code"]) == (403, "offline_not_allowed")
    assert "license does not allow" in body["error"]["message"]
    # The vendor's staff get the same answer: the setting, not the caller, decides.
    with pytest.raises(AdminError) as refused:
        admin.request("POST", "/offline/activations", json={"request": request})
    assert refused.value.code == "offline_not_allowed"


def test_an_air_gapped_request_never_turns_an_online_activation_offline(
        server: InProcessServer, tmp_path: Path) -> None:
    admin = server.admin
    # The vendor allows air-gapped activation for machines that need it; this one is online.
    product, keys = new_product(server, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600, air_gapped=True)
    issued = admin.issue_license(product, seats=2)
    online = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "online", transport=server.transport())
    lic = online.activate(issued["license_key"])
    assert lic.protection is Protection.MANDATORY and lic.expires_at is not None

    # The same machine (same fingerprint) asks for an air-gapped answer: refused.
    request = online.create_activation_request(issued["license_key"])
    status, body = post_request(server, request)
    assert (status, body["error"]["code"]) == (409, "already_activated_online")
    # The staff's route is refused too: no one can lower the protection of this seat.
    with pytest.raises(AdminError) as refused:
        admin.request("POST", "/offline/activations", json={"request": request})
    assert refused.value.code == "already_activated_online"

    # A hand-made request replaying the online activation's idempotency key as its nonce.
    [row] = admin.list_activations(issued["id"])
    assert row["offline"] is False
    doc = block_json(request)
    forged = off.armor(off.REQUEST, dict(doc, nonce=row.get("idempotency_key") or nonce()))
    assert post_request(server, forged)[0] == 409

    # The online activation keeps its protection at its next refresh.
    [row] = admin.list_activations(issued["id"])
    assert row["offline"] is False
    fresh = online.refresh()
    assert fresh.protection is Protection.MANDATORY
    assert fresh.refresh_by is not None and fresh.expires_at is not None
    assert admin.get_license(issued["id"])["seats_in_use"] == 1
    online.close()


# --------------------------------------------------------------------------- deactivation


def test_a_token_given_up_by_deactivate_offline_is_never_installed_again(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    admin = server.admin
    product, keys = new_product(server, air_gapped=True)
    issued = admin.issue_license(product, seats=1)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    response = respond(server, request)
    lic = app.client.activate_offline(response)
    old_token = off.parse_response(response).token
    backup = app.client.store_path.read_bytes()  # the end user's backup of the store

    receipt = app.client.deactivate_offline()
    # A response to the same request, answered again before the vendor gets the receipt:
    # a later token of the same activation, still given up.
    again = respond(server, request)
    assert send_receipt(server, receipt)["activation_id"] == lic.activation_id
    assert admin.get_license(issued["id"])["seats_in_use"] == 0  # the seat is free

    for token in (old_token, off.parse_response(again).token):
        with pytest.raises(NotActivated, match="deactivated on this computer"):
            app.restart().install_token(token)
    with pytest.raises((NotActivated, InvalidToken)):
        app.restart().activate_offline(response)
    with pytest.raises(NotActivated):
        app.restart().check()

    # The store file restored from the backup: its token was given up.
    app.client.store_path.write_bytes(backup)
    with pytest.raises(NotActivated, match="deactivated on this computer"):
        app.restart().check()
    with pytest.raises(NotActivated):
        app.restart().install_token(old_token)

    # The seat goes to another machine (its own account folders, its own witness).
    monkeypatch.setenv("SOFTWARE_DNA_STATE_HOME", str(tmp_path / "other-state"))
    other = machine(product, keys, "other", fingerprint=other_machine())
    other.client.activate_offline(respond(
        server, other.client.create_activation_request(issued["license_key"])))
    assert admin.get_license(issued["id"])["seats_in_use"] == 1


def test_a_new_activation_after_deactivate_offline_works_on_the_same_machine(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    product, keys = new_product(server, air_gapped=True)
    issued = server.admin.issue_license(product, seats=1)
    app = machine(product, keys)
    first = app.client.activate_offline(respond(
        server, app.client.create_activation_request(issued["license_key"])))
    send_receipt(server, app.client.deactivate_offline())
    app.offset = timedelta(minutes=5)  # the new response is issued after the deactivation
    with clock_override(app.now):
        second = app.restart().activate_offline(respond(
            server, app.client.create_activation_request(issued["license_key"])))
    assert second.activation_id != first.activation_id
    assert app.restart().check().activation_id == second.activation_id


# --------------------------------------------------------------------------- no secret


def test_the_request_block_carries_no_password(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    admin = server.admin
    product, keys = new_product(server, air_gapped=True)
    issued = admin.issue_license(product, seats=3, password=PASSWORD)
    app = machine(product, keys)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        request = app.client.create_activation_request(issued["license_key"],
                                                       password=PASSWORD)
    assert [w.category for w in caught] == [DeprecationWarning]
    doc = block_json(request)
    assert "password" not in doc and PASSWORD not in request and PASSWORD not in str(doc)

    # The public route: the password is typed beside the block, on the connected machine.
    assert code(post_request(server, request)) == (403, "wrong_password")
    assert code(post_request(server, request, password="guess")) == (403, "wrong_password")
    app.client.activate_offline(respond(server, request, password=PASSWORD))

    # An old (version 1) block that carries the right password proves nothing.
    old = off.armor(off.REQUEST, dict(block_json(machine(
        product, keys, "old", fingerprint=other_machine()).client.create_activation_request(
            issued["license_key"])), v=1, password=PASSWORD))
    assert code(post_request(server, old)) == (403, "wrong_password")
    assert post_request(server, old, password=PASSWORD)[0] == 201
    # A version 2 block cannot carry one at all.
    assert code(post_request(server, off.armor(off.REQUEST, dict(doc, password=PASSWORD)))) \
        == (400, "invalid_request")

    # The vendor's staff answer without the password (admin route, CLI backend).
    staff = machine(product, keys, "staff", fingerprint=other_machine())
    answer = admin.offline_respond(staff.client.create_activation_request(
        issued["license_key"]))
    assert staff.client.activate_offline(answer["response"]).license_id == issued["id"]


# --------------------------------------------------------------------------- lifetime


def test_an_air_gapped_token_ends_and_a_new_response_renews_it(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    product, keys = new_product(server, air_gapped=True, air_gapped_token_days=30)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    with clock_override(app.now):  # the server's clock moves with the machine's
        _ends_and_renews(server, app, issued)


def _ends_and_renews(server: InProcessServer, app: AirGapped, issued: dict[str, Any]) -> None:
    lic = app.client.activate_offline(respond(
        server, app.client.create_activation_request(issued["license_key"])))
    assert lic.protection is Protection.OFFLINE and lic.refresh_by is None
    assert lic.expires_at is not None
    assert abs(lic.expires_at - lic.issued_at - timedelta(days=30)) < timedelta(seconds=1)

    app.offset = timedelta(days=29)
    assert app.restart().check().activation_id == lic.activation_id
    app.offset = timedelta(days=31)  # no server anywhere: the token alone says it ended
    with pytest.raises(LicenseExpired, match=r"Create a new activation request"):
        app.restart().check()

    # A new request renews it: the same seat (the same machine), a fresh 30 days.
    renewed = app.client.activate_offline(respond(
        server, app.client.create_activation_request(issued["license_key"])))
    assert renewed.activation_id == lic.activation_id
    assert app.restart().check().expires_at == renewed.expires_at
    assert server.admin.get_license(issued["id"])["seats_in_use"] == 1


def test_perpetual_air_gapped_tokens_only_when_the_vendor_says_so(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    product, keys = new_product(server, air_gapped=True)
    assert server.admin.get_product(product)["air_gapped_perpetual"] is False
    server.admin.update_product(product, air_gapped_perpetual=True)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    lic = app.client.activate_offline(respond(
        server, app.client.create_activation_request(issued["license_key"])))
    assert lic.expires_at is None
    # Capped by the license's own end either way.
    ends = datetime.now(timezone.utc) + timedelta(days=10)
    dated = server.admin.issue_license(product, expires_at=ends.strftime("%Y-%m-%dT%H:%M:%SZ"))
    other = machine(product, keys, "dated", fingerprint=other_machine())
    lic = other.client.activate_offline(respond(
        server, other.client.create_activation_request(dated["license_key"])))
    assert lic.expires_at is not None and lic.expires_at <= ends


def test_a_machine_that_rolls_back_every_file_keeps_an_old_token_only_until_it_ends(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    """The documented limit of the witness (every file and the clock rolled back) is
    bounded by the token's lifetime: the given-up token stops on its own."""
    product, keys = new_product(server, air_gapped=True, air_gapped_token_days=30)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    lic = app.client.activate_offline(respond(
        server, app.client.create_activation_request(issued["license_key"])))
    anchor = witness_path(product).parent  # the witness, the keyring: every file
    saved = tmp_path / "everything"
    shutil.copytree(anchor, saved / "anchor")
    store = app.client.store_path.read_bytes()
    send_receipt(server, app.client.deactivate_offline())
    # Every file put back as it was: the witness cannot tell.
    shutil.rmtree(anchor)
    shutil.copytree(saved / "anchor", anchor)
    app.client.store_path.write_bytes(store)
    assert app.restart().check().activation_id == lic.activation_id
    app.offset = timedelta(days=31)
    with pytest.raises(LicenseExpired, match=r"Create a new activation request"):
        app.restart().check()


# --------------------------------------------------------------------------- lock-out


def test_repeated_air_gapped_activations_hit_the_lock_out(server: InProcessServer) -> None:
    """Activate, deactivate with a receipt, activate again ...: each air-gapped activation
    is a new activation in the lock-out ledger, as online."""
    admin = server.admin
    product, _ = new_product(server, air_gapped=True, reactivation_limit=1,
                             reactivation_period=86400)
    issued = admin.issue_license(product, seats=1)  # 1 seat + 1 re-activation per day
    codes: list[tuple[int, str]] = []
    for round_ in range(3):
        request = off.build_request(product=product, license_key=issued["license_key"],
                                    fingerprint=fingerprint(f"cycle-{round_ % 2}"),
                                    nonce=nonce(), created_at=datetime.now(timezone.utc))
        status, body = post_request(server, request)
        codes.append((status, str(body.get("error", {}).get("code", "ok"))))
        if status == 201:
            answer = off.parse_response(body["response"])
            assert check_token(answer.token, admin.public_keys(product), product).protection \
                is ClaimProtection.OFFLINE
            send_receipt(server, off.build_deactivation_receipt(
                product=product, activation_id=answer.activation_id,
                activation_secret=answer.activation_secret, nonce=nonce(),
                now=datetime.now(timezone.utc)))
    assert codes == [(201, "ok"), (201, "ok"), (429, "activation_locked")]
    # The vendor's staff are held by the same ledger.
    request = off.build_request(product=product, license_key=issued["license_key"],
                                fingerprint=fingerprint("cycle-9"), nonce=nonce(),
                                created_at=datetime.now(timezone.utc))
    with pytest.raises(AdminError) as locked:
        admin.offline_respond(request)
    assert locked.value.code == "activation_locked"


# --------------------------------------------------------------------------- trusted keys


def test_an_air_gapped_request_of_an_app_with_another_products_key_takes_no_seat(
        server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    """The request names the keys the app trusts: an app built with another product's
    public key is refused (409 ``untrusted_signing_key``) before its seat is taken,
    whoever answers the block; the app built right then gets the seat."""
    product, keys = new_product(server, air_gapped=True)
    _, other_keys = new_product(server, air_gapped=True)
    issued = server.admin.issue_license(product, seats=1)
    wrong = machine(product, other_keys, "wrong")
    request = wrong.client.create_activation_request(issued["license_key"])
    assert off.parse_request(request).trusted_keys is not None
    assert code(post_request(server, request)) == (409, "untrusted_signing_key")
    with pytest.raises(AdminError) as refused:
        server.admin.request("POST", "/offline/activations", json={"request": request})
    assert (refused.value.status, refused.value.code) == (409, "untrusted_signing_key")
    assert [a for a in server.admin.list_activations(issued["id"])
            if a["deactivated_at"] is None] == []
    right = machine(product, keys, "right")
    lic = right.client.activate_offline(respond(
        server, right.client.create_activation_request(issued["license_key"])))
    assert lic.license_id == issued["id"]


# --------------------------------------------------------------------------- unreadable parts


@pytest.mark.parametrize("unreadable", [{"macs": []}, {"machine_id": None}],
                         ids=["no network card", "no machine id"])
def test_a_machine_with_an_unreadable_part_is_refused_exact_tokens_before_anything_is_taken(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path,
        unreadable: dict[str, Any]) -> None:
    """Air-gapped and trial tokens bind the machine exactly, and a part a machine cannot
    read never matches, not even itself. Allowing for it would let a client that claims a
    part unreadable spend the allowance on a second machine (a padded MAC list), so the
    server refuses such a set up front -- 400 ``invalid_fingerprint`` naming the part --
    and no seat or trial is taken (before, the seat was taken and the token refused)."""
    product, keys = new_product(server, air_gapped=True, trial_days=7)
    issued = server.admin.issue_license(product, seats=1)
    pc = SimulatedMachine(tmp_path / "pc", **unreadable)
    app = machine(product, keys, "app", machine=pc)
    status, body = post_request(
        server, app.client.create_activation_request(issued["license_key"]))
    assert (status, body["error"]["code"]) == (400, "invalid_fingerprint"), body
    assert "activate online" in body["error"]["message"]
    assert server.admin.get_license(issued["id"])["seats_in_use"] == 0
    trier = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                          store_path=tmp_path / "trial", transport=server.transport(),
                          machine=SimulatedMachine(tmp_path / "trier", **unreadable))
    with pytest.raises(FingerprintUnavailable):
        trier.start_trial()
    assert server.admin.list_trials(product) == []
    # The online way works: tolerance 1 allows one unreadable part.
    online = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "online", transport=server.transport(),
                           machine=pc)
    assert online.activate(issued["license_key"]).license_id == issued["id"]
