"""Floating (concurrent) licenses from the app's side, against the real server:
check-out, check-in, close and process exit, the heartbeat, lapsed leases, offline use.

The SDK reaches the app in this process with no socket (tests/inprocess.py),
except in ``test_process_exit_returns_the_lease``: there the SDK runs in a child
process, which needs a real socket (``threaded_server``, tests/threaded.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import LeaseExpired, LicenseClient, NoSeatsLeft, SeatMode
from software_dna.server.testing import LocalServer
from tests.inprocess import InProcessServer, unreachable
from tests.test_client_e2e import App, make_app, new_product, other_machine


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


__all__ = ["make_app"]  # the fixture, imported for this module


def floating(server: LocalServer, seats: int = 1, **policy: Any) -> tuple[str, list[str], str,
                                                                          str]:
    product, keys = new_product(server.admin, **policy)
    lic = server.admin.request("POST", "/licenses", json={
        "product": product, "seats": seats, "seat_mode": "floating"})
    return product, keys, lic["license_key"], lic["id"]


def leases(server: LocalServer, license_id: str) -> list[dict[str, Any]]:
    return server.admin.list_leases(license_id)


def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``condition()`` holds (polled every 0.1 s), failing after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_checkout_checkin_and_close(server: InProcessServer, make_app: Callable[..., App]) -> None:
    product, keys, key, license_id = floating(server, lease_duration=60)
    one = make_app(product, keys, "one")
    two = make_app(product, keys, "two", fingerprint=other_machine())
    first = one.client.activate(key)  # activating takes a lease
    assert first.is_floating and first.seat_mode is SeatMode.FLOATING
    assert first.lease_expires_at is not None
    assert timedelta(seconds=55) <= first.lease_expires_at - datetime.now(timezone.utc) \
        <= timedelta(seconds=61)
    with pytest.raises(NoSeatsLeft) as full:
        two.client.activate(key)
    assert full.value.retry_after == first.lease_expires_at  # the earliest lease's end
    assert "frees up at" in str(full.value)

    one.client.checkin()
    assert leases(server, license_id) == []
    with pytest.raises(LeaseExpired, match="No floating seat"):
        one.client.check()
    with pytest.raises(LeaseExpired):
        one.restart().check()  # also in a new process: the stored token holds no lease

    held = two.client.activate(key)
    assert [lease["activation_id"] for lease in leases(server, license_id)] == [
        held.activation_id]
    with pytest.raises(NoSeatsLeft) as taken:
        one.client.checkout()
    assert taken.value.retry_after == held.lease_expires_at
    two.client.close()  # closing the app returns its seat
    assert leases(server, license_id) == []
    again = one.client.checkout()
    assert again.lease_expires_at is not None and one.client.check() == again
    renewed = one.client.checkout()  # a second check-out renews the same lease
    assert renewed.lease_expires_at is not None
    assert renewed.lease_expires_at >= again.lease_expires_at
    assert len(leases(server, license_id)) == 1


def test_checkout_on_a_machine_license_is_a_refresh(server: InProcessServer,
                                                    make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product)["license_key"]
    app = make_app(product, keys)
    activated = app.client.activate(key)
    checked = app.client.checkout()
    assert not checked.is_floating and checked.lease_expires_at is None
    assert checked.token_id != activated.token_id
    app.client.checkin()  # nothing to return: no error
    assert app.client.check().activation_id == activated.activation_id


def test_offline_until_the_lease_ends_and_not_after(server: InProcessServer,
                                                    make_app: Callable[..., App],
                                                    tmp_path: Path) -> None:
    product, keys, key, _ = floating(server, lease_duration=60)
    app = make_app(product, keys, "laptop")
    lic = app.client.activate(key)
    assert lic.lease_expires_at is not None and lic.refresh_by is not None
    assert lic.expires_at == lic.lease_expires_at  # the token never outlives the lease
    # The same computer without a network.
    offline_clock = {"offset": timedelta(0)}
    offline = LicenseClient(product=product, public_keys=keys, transport=unreachable(),
                            store_path=tmp_path / "laptop", timeout=1.0,
                            clock=lambda: datetime.now(timezone.utc) + offline_clock["offset"])
    try:
        assert offline.check().lease_expires_at == lic.lease_expires_at
        offline_clock["offset"] = lic.refresh_by - datetime.now(timezone.utc) + timedelta(
            seconds=5)
        late = offline.check()  # past refresh_by, server unreachable: works until the end
        assert late.offline_grace_ends_at == lic.lease_expires_at
        offline_clock["offset"] = lic.lease_expires_at - datetime.now(timezone.utc) + timedelta(
            seconds=1)
        with pytest.raises(LeaseExpired, match="lease ended at"):
            offline.check()
    finally:
        offline.close()


def test_heartbeat_keeps_the_lease_and_a_lapsed_one_frees_the_seat(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys, key, license_id = floating(server, lease_duration=5)
    one = make_app(product, keys, "one")
    two = make_app(product, keys, "two", fingerprint=other_machine())
    one.client.activate(key)
    one.client.checkin()
    errors: list[Exception] = []
    # The interval is long; the heartbeat still runs before the 5 s lease lapses, also
    # when the check started before the lease was checked out.
    checker = one.client.start_periodic_check(300, on_error=errors.append, jitter=0)
    first = one.client.checkout()
    assert first.lease_expires_at is not None
    try:
        # Until the first lease's end has passed: unrenewed, it would have lapsed.
        lapsed_at = first.lease_expires_at + timedelta(seconds=0.5)
        until(lambda: datetime.now(timezone.utc) > lapsed_at)
        assert checker.running and errors == []
        assert checker.last_license is not None
        renewed = checker.last_license.lease_expires_at
        assert renewed is not None and renewed > first.lease_expires_at
        with pytest.raises(NoSeatsLeft):
            two.client.activate(key)
    finally:
        checker.stop()
    # The app "crashed": no check-in, no heartbeat. The lease lapses on the server.
    lease_end = leases(server, license_id)[0]["expires_at"]
    wait = (datetime.fromisoformat(lease_end.replace("Z", "+00:00"))
            - datetime.now(timezone.utc)).total_seconds()
    until(lambda: leases(server, license_id) == [], timeout=max(0.0, wait) + 10)
    assert leases(server, license_id) == []
    taken = two.client.activate(key)
    assert taken.lease_expires_at is not None
    with pytest.raises(NoSeatsLeft):
        one.client.refresh()  # its heartbeat tries to take the seat again: it is gone


SCRIPT = textwrap.dedent("""
    import os, sys
    from software_dna import LicenseClient
    client = LicenseClient(product=sys.argv[1], public_keys=[sys.argv[2]],
                           server_url=sys.argv[3], store_path=sys.argv[4], timeout=5)
    print(client.activate(sys.argv[5]).activation_id, flush=True)
    if sys.argv[6] == "crash":
        os._exit(0)  # no atexit handlers: as if the process was killed
""")


def test_process_exit_returns_the_lease(threaded_server: LocalServer, tmp_path: Path) -> None:
    server = threaded_server  # the SDK in a child process opens its own connections
    product, keys, key, license_id = floating(server, seats=2, lease_duration=600)

    def run(store: str, how: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, product, keys[0], server.url,
             str(tmp_path / store), key, how],
            capture_output=True, text=True, timeout=60, check=True)
        return done.stdout.strip()

    crashed = run("crashed", "crash")
    assert [lease["activation_id"] for lease in leases(server, license_id)] == [crashed]
    # The same computer (same fingerprint) reuses its activation; a clean exit checks in.
    assert run("clean", "exit") == crashed
    assert leases(server, license_id) == []
