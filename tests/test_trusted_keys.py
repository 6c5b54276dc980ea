"""The SDK tells the server which signing keys its app trusts; the server signs with one.

Against the real app and database (SQLite and PostgreSQL): an app built with
another product's public key, or trusting only a retired key, is refused with
409 ``untrusted_signing_key`` before any seat, lease or trial is taken, and
both sides name the key to ship; during a rotation each app gets a token
signed by a key it trusts. The list the client sends can only narrow the
server's choice among the keys it holds as usable: it never brings back a
retired key.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests

from software_dna import (
    ActivationError,
    InvalidToken,
    LicenseClient,
    ServerError,
    UntrustedSigningKey,
)
from software_dna.fingerprint import collect
from software_dna.testing import SimulatedMachine
from software_dna.wire.paseto import PublicKey, SecretKey, untrusted_footer

from .inprocess import InProcessServer
from .test_client_e2e import new_product
from .tokens import make_token, now_utc


@pytest.fixture(scope="module")
def server(inprocess_any_server: InProcessServer) -> InProcessServer:
    return inprocess_any_server


def kid_of(token: str) -> str:
    kid: str = json.loads(untrusted_footer(token))["kid"]
    return kid


def pid(paserk: str) -> str:
    return PublicKey.from_paserk(paserk).pid


def client(server: InProcessServer, product: str, keys: list[str], store: Path,
           **kwargs: Any) -> LicenseClient:
    return LicenseClient(product=product, public_keys=keys, server_url=server.url,
                         store_path=store, transport=server.transport(), timeout=5.0, **kwargs)


def stored_token(app: LicenseClient) -> str:
    token = app._state.read().get("token")
    assert isinstance(token, str)
    return token


def live_seats(server: InProcessServer, license_id: str) -> int:
    return sum(1 for a in server.admin.list_activations(license_id)
               if a["deactivated_at"] is None)


def test_wrong_products_public_key_is_refused_before_a_seat_is_taken(
        server: InProcessServer, tmp_path: Path) -> None:
    """An app built with product B's public key activates a key of product A: refused,
    the message names A's current key, and the license's one seat is still free."""
    product, keys = new_product(server.admin)
    _, other_keys = new_product(server.admin)
    issued = server.admin.issue_license(product, seats=1)
    wrong = client(server, product, other_keys, tmp_path / "wrong")
    with pytest.raises(UntrustedSigningKey) as refused:
        wrong.activate(issued["license_key"])
    assert isinstance(refused.value, ActivationError)
    assert pid(keys[0]) in str(refused.value) and "ship" in str(refused.value)
    assert live_seats(server, issued["id"]) == 0
    # The seat is there for the app built right.
    right = client(server, product, keys, tmp_path / "right")
    assert right.activate(issued["license_key"]).license_id == issued["id"]
    assert live_seats(server, issued["id"]) == 1


def test_wrong_products_public_key_burns_no_trial(server: InProcessServer,
                                                  tmp_path: Path) -> None:
    """The same for a trial: refused before this machine's one trial is used."""
    product, keys = new_product(server.admin, trial_days=14)
    _, other_keys = new_product(server.admin)
    with pytest.raises(UntrustedSigningKey):
        client(server, product, other_keys, tmp_path / "store").start_trial()
    trial = client(server, product, keys, tmp_path / "store").start_trial()
    assert trial.days_left is not None and trial.days_left >= 13


def test_app_trusting_only_a_retired_key_gets_a_clear_message(server: InProcessServer,
                                                             tmp_path: Path) -> None:
    """The vendor rotated and retired the key the app was built with: the refresh names
    the new key and says to ship it; the stored license keeps working in its grace;
    a new activation of that build takes no seat."""
    product, old_keys = new_product(server.admin, refresh_interval=60,
                                    offline_grace_period=3600)
    issued = server.admin.issue_license(product, seats=2)
    app = client(server, product, old_keys, tmp_path / "app")
    app.activate(issued["license_key"])
    new = server.admin.rotate_key(product)
    server.admin.retire_key(product, pid(old_keys[0]))
    with pytest.raises(UntrustedSigningKey, match="ship") as refused:
        app.refresh()
    assert new["kid"] in str(refused.value)
    assert isinstance(refused.value, ServerError)  # a failed refresh: the app keeps working
    assert app.check().license_id == issued["id"]
    fresh = client(server, product, old_keys, tmp_path / "fresh")
    with pytest.raises(UntrustedSigningKey):
        fresh.activate(issued["license_key"])
    assert live_seats(server, issued["id"]) == 1


def test_app_trusting_old_and_new_during_rotation_is_signed_with_a_key_it_trusts(
        server: InProcessServer, tmp_path: Path) -> None:
    """Rotation: builds trusting the old key, the new one, or both, each get tokens they
    verify; the active key is preferred when trusted."""
    product, old_keys = new_product(server.admin)
    old = pid(old_keys[0])
    published = server.admin.generate_key(product)  # trusted, not yet active
    new_paserk = published["public_key"]
    only_old = client(server, product, old_keys, tmp_path / "old")
    only_new = client(server, product, [new_paserk], tmp_path / "new")
    both = client(server, product, [*old_keys, new_paserk], tmp_path / "both")
    for app in (only_old, only_new, both):  # one license each: three activations here
        app.activate(server.admin.issue_license(product)["license_key"])
    assert kid_of(stored_token(only_old)) == old
    assert kid_of(stored_token(only_new)) == published["kid"]  # a trusted key signs for it
    assert kid_of(stored_token(both)) == old  # the active one first
    server.admin.rotate_key(product, published["kid"])
    for app in (only_old, only_new, both):
        app.refresh()
    assert kid_of(stored_token(only_old)) == old  # still trusted by the server
    assert kid_of(stored_token(only_new)) == published["kid"]
    assert kid_of(stored_token(both)) == published["kid"]


def _post(server: InProcessServer, path: str, body: dict[str, Any]) -> requests.Response:
    session = server.mount(requests.Session())
    return session.post(server.url + path, json=body, timeout=10)


def _activation_body(product: str, license_key: str, trusted: object) -> dict[str, Any]:
    return {"product": product, "license_key": license_key,
            "fingerprint": collect(product).to_wire(), "consent": False,
            "nonce": secrets.token_urlsafe(24), "idempotency_key": secrets.token_urlsafe(24),
            "trusted_keys": trusted}


def test_trusted_keys_never_bring_back_a_retired_key(server: InProcessServer) -> None:
    """A client naming only a retired key's id is refused (409), never signed by it."""
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product)
    retired = pid(keys[0])
    server.admin.rotate_key(product)
    server.admin.retire_key(product, retired)
    answer = _post(server, "/v1/activations",
                   _activation_body(product, issued["license_key"], [retired]))
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"]["code"] == "untrusted_signing_key"
    assert live_seats(server, issued["id"]) == 0


@pytest.mark.parametrize("trusted", [
    [], ["k4.pid." + "A" * 44] * 17, ["k4.public." + "A" * 43], ["not a kid"], "k4.pid.x", [5],
], ids=["empty", "17-keys", "public-not-pid", "garbage", "not-a-list", "number"])
def test_malformed_trusted_keys_are_a_400(server: InProcessServer, trusted: object) -> None:
    product, _ = new_product(server.admin)
    issued = server.admin.issue_license(product)
    answer = _post(server, "/v1/activations",
                   _activation_body(product, issued["license_key"], trusted))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert live_seats(server, issued["id"]) == 0


def test_a_request_without_trusted_keys_is_signed_with_the_active_key(
        server: InProcessServer) -> None:
    """Older SDKs send no list: the active key signs, as before."""
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product)
    body = _activation_body(product, issued["license_key"], None)
    del body["trusted_keys"]
    answer = _post(server, "/v1/activations", body)
    assert answer.status_code == 201, answer.text
    assert kid_of(answer.json()["token"]) == pid(keys[0])


def test_a_token_signed_by_an_untrusted_key_names_its_kid(tmp_path: Path) -> None:
    """install_token() of a token signed by a key the app does not trust: the message
    names that kid and says to ship the new key; a bad signature stays opaque."""
    trusted, stranger = SecretKey.generate(), SecretKey.generate()
    app = LicenseClient(product="acme-editor", public_keys=[trusted.public_key.to_paserk()],
                        store_path=tmp_path)
    token = make_token(stranger, "acme-editor", collect("acme-editor"), issued_at=now_utc())
    with pytest.raises(InvalidToken) as named:
        app.install_token(token)
    assert stranger.public_key.pid in str(named.value) and "new public key" in str(named.value)
    genuine = make_token(trusted, "acme-editor", collect("acme-editor"), issued_at=now_utc())
    head, _, footer = genuine.rpartition(".")
    payload = head.removeprefix("v4.public.")
    forged = "v4.public." + payload[:-4] + ("AAAA" if payload[-4:] != "AAAA" else "BBBB")
    with pytest.raises(InvalidToken) as opaque:
        app.install_token(forged + "." + footer)
    assert str(opaque.value) == "The license token is invalid."


def test_checkout_by_an_app_trusting_only_a_retired_key_takes_no_lease(
        server: InProcessServer, tmp_path: Path) -> None:
    """A floating license's one seat: the build trusting only the retired key is refused
    at check-out before a lease is taken, so another computer with the new build gets it."""
    product, old_keys = new_product(server.admin, lease_duration=600)
    issued = server.admin.issue_license(product, seats=1, seat_mode="floating")
    laptop = client(server, product, old_keys, tmp_path / "laptop",
                    machine=SimulatedMachine(tmp_path / "laptop-home"))
    laptop.activate(issued["license_key"])
    laptop.checkin()  # the seat is free again
    new = server.admin.rotate_key(product)
    server.admin.retire_key(product, pid(old_keys[0]))
    with pytest.raises(UntrustedSigningKey):
        laptop.checkout()
    desktop = client(server, product, [new["public_key"]], tmp_path / "desktop",
                     machine=SimulatedMachine(tmp_path / "desktop-home"))
    assert desktop.activate(issued["license_key"]).lease_expires_at is not None
