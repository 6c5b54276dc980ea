"""The re-activation lock-out counts new machines, not a machine coming back to its seat,
and ``lockouts show`` / ``reset`` tell the vendor every limit and what was cleared.

The app runs in this process on SQLite and PostgreSQL; the requests are the
SDK's, built by hand so that a test can send what an attacker would (a MAC
list padded with another machine's address, a copied machine id).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.inprocess import InProcessServer
from tests.server.helpers import Api, error_code, fingerprint

#: Activation attempts per license per window (every attempt counts, right or wrong).
GUESSES = 12


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, database_url: str
        ) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("lockouts"), database_url=database_url,
                         rate_limit_attempts=GUESSES, rate_limit_window=3600) as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: InProcessServer) -> Iterator[Api]:
    made = Api.for_server(srv)
    yield made
    made.close()


def _license(srv: InProcessServer, *, seats: int = 1, reactivation_limit: int | None = 0,
             **fields: Any) -> tuple[str, dict[str, Any]]:
    product = "lo-" + secrets.token_hex(4)
    srv.admin.setup_product(product, reactivation_limit=reactivation_limit,
                            reactivation_period=86400)
    lic: dict[str, Any] = srv.admin.request("POST", "/licenses", json={
        "product": product, "seats": seats, **fields})
    return product, lic


def _limits(srv: InProcessServer, license_id: str, **params: str) -> dict[str, dict[str, Any]]:
    shown = srv.admin.lockout(license_id, **params)
    return {limit["kind"]: limit for limit in shown["limits"]}


def _cycle(api: Api, product: str, key: str, **send: Any) -> int:
    """Activate, then deactivate when it worked; returns the activation's status."""
    made = api.activate(product, key, **send)
    if made.status_code in (200, 201):
        body = made.json()
        assert api.deactivate(body["activation_id"], body["activation_secret"]).status_code == 200
    return made.status_code


# --------------------------------------------------------------------------- re-activations


def test_a_developer_reactivating_the_same_machine_in_a_loop_is_not_locked_out(
        srv: InProcessServer, api: Api) -> None:
    # One seat and no re-activation at all: only the first activation may count.
    product, lic = _license(srv, seats=1, reactivation_limit=0)
    for _ in range(8):
        assert _cycle(api, product, lic["license_key"], machine="dev-box") == 201
    # Honest drift (a new network card) is still this machine.
    assert _cycle(api, product, lic["license_key"], fp=fingerprint(
        "dev-box", changed=["mac"])) == 201
    limits = _limits(srv, lic["id"])
    assert limits["reactivations"]["count"] == 1
    assert limits["reactivations"]["locked_until"] is not None  # a *new* machine would be


def test_seats_cannot_be_rotated_between_machines_by_deactivating(
        srv: InProcessServer, api: Api) -> None:
    product, lic = _license(srv, seats=1, reactivation_limit=1)
    key = lic["license_key"]
    assert _cycle(api, product, key, machine="desk") == 201
    assert _cycle(api, product, key, machine="desk") == 201  # coming back: free
    assert _cycle(api, product, key, machine="laptop") == 201  # the one re-activation
    # The desk comes back after the laptop took the seat: a new activation, over the limit.
    locked = api.activate(product, key, machine="desk")
    assert locked.status_code == 429 and error_code(locked) == "activation_locked"
    assert _limits(srv, lic["id"])["reactivations"]["count"] == 2


def test_a_mac_list_padded_with_the_released_machines_address_counts(
        srv: InProcessServer, api: Api) -> None:
    product, lic = _license(srv, seats=1, reactivation_limit=0)
    key = lic["license_key"]
    owner = fingerprint("owner")
    assert _cycle(api, product, key, fp=owner) == 201
    # Another machine of the same model (same OS and CPU) adds the owner's MAC address.
    other = fingerprint("intruder")
    padded = {"algorithm": 2, "components": {
        **other["components"], "os_arch": owner["components"]["os_arch"],
        "cpu": owner["components"]["cpu"],
        "mac": [*other["components"]["mac"], *owner["components"]["mac"]]}}
    locked = api.activate(product, key, fp=padded)
    assert locked.status_code == 429 and error_code(locked) == "activation_locked"


def test_a_copied_machine_id_with_everything_else_different_counts(
        srv: InProcessServer, api: Api) -> None:
    product, lic = _license(srv, seats=1, reactivation_limit=0)
    key = lic["license_key"]
    owner = fingerprint("owner2")
    assert _cycle(api, product, key, fp=owner) == 201
    other = fingerprint("copier")
    copied = {"algorithm": 2, "components": {
        **other["components"], "machine_id": owner["components"]["machine_id"]}}
    locked = api.activate(product, key, fp=copied)
    assert locked.status_code == 429 and error_code(locked) == "activation_locked"


def test_a_return_that_would_roll_another_machine_over_counts(
        srv: InProcessServer, api: Api) -> None:
    product, lic = _license(srv, seats=1, reactivation_limit=1, rollover=True)
    key = lic["license_key"]
    assert _cycle(api, product, key, machine="one") == 201
    assert api.activate(product, key, machine="two").status_code == 201  # holds the seat
    # "one" released its seat before "two" came: taking it back rolls "two" over.
    locked = api.activate(product, key, machine="one")
    assert locked.status_code == 429 and error_code(locked) == "activation_locked"


def test_user_seats_return_only_with_the_same_installation(srv: InProcessServer,
                                                           api: Api) -> None:
    product, lic = _license(srv, seats=2, reactivation_limit=0, seat_mode="user")
    key = lic["license_key"]
    mine, other_account = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    assert _cycle(api, product, key, machine="shared-pc", installation_id=mine) == 201
    assert _cycle(api, product, key, machine="shared-pc", installation_id=mine) == 201
    assert _limits(srv, lic["id"])["reactivations"]["count"] == 1
    # Another OS account on that computer is another seat: a new activation.
    assert api.activate(product, key, machine="shared-pc",
                        installation_id=other_account).status_code == 201
    assert _limits(srv, lic["id"])["reactivations"]["count"] == 2


# --------------------------------------------------------------------------- show and reset


def test_lockouts_show_and_reset_report_password_guessing(srv: InProcessServer,
                                                          api: Api) -> None:
    product, lic = _license(srv, seats=1, reactivation_limit=None, password="right")
    key = lic["license_key"]
    for n in range(GUESSES):
        assert error_code(api.activate(product, key, password=f"guess {n}")) == "wrong_password"
    refused = api.activate(product, key, password="right")
    assert refused.status_code == 429 and error_code(refused) == "rate_limited"
    retry_at = refused.json()["error"]["retry_at"]
    shown = srv.admin.lockout(lic["id"], address="127.0.0.1")
    limits = {limit["kind"]: limit for limit in shown["limits"]}
    guessing = limits["activation_attempts"]
    assert (guessing["count"], guessing["limit"], guessing["window"]) == (GUESSES, GUESSES, 3600)
    assert guessing["locked_until"] == retry_at == shown["locked_until"]
    assert limits["reactivations"]["limit"] is None  # this product has no lock-out
    assert limits["reactivations"]["locked_until"] is None
    assert {"renewal_attempts", "reset_mails", "address_attempts",
            "address_activations"} <= set(limits)
    assert shown["network"] == "127.0.0.1"
    cleared = srv.admin.reset_lockout(license_id=lic["id"])
    assert cleared["unlocked"] == ["activation_attempts"]
    assert cleared["forgotten"] == {"activation_attempts": GUESSES}
    assert (cleared["removed"], cleared["attempts_forgotten"]) == (0, GUESSES)
    after = srv.admin.lockout(lic["id"])
    assert after["locked_until"] is None
    assert all(limit["locked_until"] is None for limit in after["limits"])
    assert api.activate(product, key, password="right").status_code == 201


def test_lockouts_reset_reports_recorded_activations_and_the_network(
        srv: InProcessServer, api: Api) -> None:
    product, lic = _license(srv, seats=1, reactivation_limit=0)
    key = lic["license_key"]
    assert _cycle(api, product, key, machine="first") == 201
    locked = api.activate(product, key, machine="second")
    assert error_code(locked) == "activation_locked"
    limits = _limits(srv, lic["id"])
    assert limits["reactivations"]["locked_until"] == locked.json()["error"]["retry_at"]
    cleared = srv.admin.reset_lockout(license_id=lic["id"], address="::ffff:127.0.0.1")
    assert cleared["unlocked"] == ["reactivations"]
    assert cleared["network"] == "127.0.0.1"
    assert cleared["forgotten"]["reactivations"] == 1
    assert cleared["removed"] >= 1 and cleared["attempts_forgotten"] >= 2
    assert api.activate(product, key, machine="second").status_code == 201


def test_lockout_show_refuses_a_malformed_address(srv: InProcessServer) -> None:
    _, lic = _license(srv)
    session = srv.session()
    try:
        for bad in ("not an address", "1" * 65, "<script>"):
            answer = session.get(f"{srv.url}/v1/admin/licenses/{lic['id']}/lockout",
                                 params={"address": bad},
                                 headers={"Authorization": f"Bearer {srv.admin_key}"})
            assert answer.status_code == 400, (bad, answer.text)
            assert "error" in answer.json()
        for bad in ("notanip", "ab", "1.2.3", "::g"):  # a typo must not "unlock" nothing
            answer = session.post(f"{srv.url}/v1/admin/lockouts/reset",
                                  json={"address": bad},
                                  headers={"Authorization": f"Bearer {srv.admin_key}"})
            assert answer.status_code == 400, (bad, answer.text)
            assert answer.json()["error"]["code"] == "invalid_request"
    finally:
        session.close()
