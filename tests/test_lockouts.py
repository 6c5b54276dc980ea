"""Lock-outs from the app's side: the time the SDK is told is the one the vendor sees,
it never moves back between two refusals, and a reset the vendor makes lets the app in.

The app and its database run in this process (tests/inprocess.py); the
server's clock is injected (``clock_override``) and so is the app's, so the
refusals below happen at chosen fractions of a second with no waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import ActivationLocked, LicenseClient, Mode, WrongPassword
from software_dna.server.services.common import clock_override
from software_dna.testing.plugin import Machines
from software_dna.wire.times import parse_rfc3339
from tests.inprocess import InProcessServer
from tests.test_client_e2e import App, make_app, new_product

__all__ = ["make_app"]  # the fixture, imported for this module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """Three activation attempts per license per 10 minutes."""
    with InProcessServer(tmp_path_factory.mktemp("lockouts"), rate_limit_attempts=3,
                         rate_limit_window=600) as srv:
        yield srv


def _issue(server: InProcessServer, product: str, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = server.admin.request("POST", "/licenses",
                                                  json={"product": product, **fields})
    return answer


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def test_retry_time_never_moves_back_between_two_refusals(server: InProcessServer,
                                                          tmp_path: Path) -> None:
    # The flake of the password-guessing family: the server rounded "seconds until the
    # lock lifts" up, the SDK added them to its own, later clock and rounded down, so a
    # slow answer named a second later than the next one did.
    product, keys = new_product(server.admin)
    key = _issue(server, product, password="right")["license_key"]
    base = float(int(time.time()))
    server_time, app_time = [base], [base]
    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "store", transport=server.transport(),
                           clock=lambda: _at(app_time[0]))
    retries: list[datetime | None] = []
    try:
        with clock_override(lambda: _at(server_time[0])):
            for offset in (0.2, 0.5, 0.7):  # three attempts let through, all in one second
                server_time[0] = app_time[0] = base + offset
                with pytest.raises(WrongPassword):
                    client.activate(key, password="wrong")
            # Two refusals in a row, each answer reaching the app 0.1 s after the server
            # decided: ceil(600.05) = 601 s, then ceil(599.95) = 600 s.
            for offset in (0.95, 1.05):
                server_time[0], app_time[0] = base + offset, base + offset + 0.1
                with pytest.raises(ActivationLocked) as locked:
                    client.activate(key, password="right")
                retries.append(locked.value.retry_after)
    finally:
        client.close()
    lifts = _at(base + 1 + 600)  # the second after the window left the bucket
    assert retries == [lifts, lifts]


def test_the_vendor_sees_the_time_the_app_is_told_and_resets_it(
        server: InProcessServer, make_app: Callable[..., App], machines: Machines) -> None:
    # Password guessing: the license's attempts, then the right password is refused too.
    product, keys = new_product(server.admin, reactivation_limit=0, reactivation_period=3600)
    lic = _issue(server, product, seats=1, password="right")
    key = lic["license_key"]
    desk, laptop = (make_app(product, keys, name, machine=machines(name))
                    for name in ("desk", "laptop"))
    for n in range(3):
        with pytest.raises(WrongPassword):
            desk.client.activate(key, password=f"guess {n}")
    with pytest.raises(ActivationLocked) as guessing:
        desk.client.activate(key, password="right")
    shown = server.admin.lockout(lic["id"])
    locked = [limit for limit in shown["limits"] if limit["locked_until"] is not None]
    assert [limit["kind"] for limit in locked] == ["activation_attempts"]
    assert parse_rfc3339(locked[0]["locked_until"]) == guessing.value.retry_after
    assert parse_rfc3339(shown["locked_until"]) == guessing.value.retry_after
    cleared = server.admin.reset_lockout(license_id=lic["id"])
    assert (cleared["unlocked"], cleared["forgotten"]) == (
        ["activation_attempts"], {"activation_attempts": 3})
    assert server.admin.lockout(lic["id"])["locked_until"] is None

    # The re-activation lock-out: the desk takes the seat (counted), gives it up and takes
    # it back (not counted); the laptop is a new machine, past seats + 0 re-activations.
    desk.client.activate(key, password="right")
    desk.client.deactivate()
    desk.client.activate(key, password="right")
    desk.client.deactivate()
    assert server.admin.lockout(lic["id"])["activations_in_period"] == 1
    with pytest.raises(ActivationLocked, match="locked") as reactivation:
        laptop.client.activate(key, password="right")
    shown = server.admin.lockout(lic["id"])
    by_kind = {limit["kind"]: limit for limit in shown["limits"]
               if limit["locked_until"] is not None}
    # Three attempts since the reset: the next would be refused for that too, sooner.
    assert set(by_kind) == {"reactivations", "activation_attempts"}
    assert (by_kind["reactivations"]["count"], by_kind["reactivations"]["limit"]) == (1, 1)
    assert parse_rfc3339(by_kind["reactivations"]["locked_until"]) == (
        reactivation.value.retry_after) == parse_rfc3339(shown["locked_until"])
    cleared = server.admin.reset_lockout(license_id=lic["id"])
    assert cleared["unlocked"] == ["activation_attempts", "reactivations"]
    assert cleared["removed"] == 1 and cleared["attempts_forgotten"] == 3
    assert server.admin.lockout(lic["id"])["locked_until"] is None
    assert laptop.client.activate(key, password="right").mode is Mode.FULL
