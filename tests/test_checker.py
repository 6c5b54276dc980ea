"""The periodic check against the real server: failures, recovery, stop()."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna import License, LicenseError, LicenseRevoked, Mode, ServerUnreachable
from software_dna.client.periodic import PeriodicCheck
from software_dna.client.transport import Response, Transport

from .inprocess import InProcessServer
from .test_client_e2e import App, new_product


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


def wait_for(condition: object, timeout: float = 15.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_survives_ten_failures_then_reports_recovery(server: InProcessServer,
                                                     tmp_path: Path) -> None:
    with server.link() as switch:
        product, keys = new_product(server.admin, refresh_interval=60, offline_grace_period=3600)
        # Activated with the usual timeout; the app then checks with a short one, so
        # each of the ten failures below costs half a second.
        first = App(server, product, keys, tmp_path / "app", transport=switch.transport())
        first.client.activate(server.admin.issue_license(product)["license_key"])
        first.client.close()
        app = App(server, product, keys, tmp_path / "app", timeout=0.5,
                  transport=switch.transport())
        errors: list[LicenseError] = []
        changes: list[tuple[License | None, License | None]] = []
        lock = threading.Lock()

        def on_change(old: License | None, new: License | None) -> None:
            with lock:
                changes.append((old, new))

        def on_error(exc: LicenseError) -> None:
            with lock:
                errors.append(exc)

        def boom(old: License | None, new: License | None) -> None:
            raise RuntimeError("the app's callback is broken")

        checker = app.client.start_periodic_check(0.05, on_change=on_change, on_error=on_error,
                                                  max_backoff=0.05)
        assert checker.last_license is not None
        switch.offline()
        app.offset = timedelta(seconds=90)  # refresh due while the server is down
        wait_for(lambda: checker.consecutive_failures >= 10)
        assert checker.running
        with lock:
            assert len(errors) >= 10
            assert all(isinstance(e, ServerUnreachable) for e in errors)
            assert changes and changes[0][1] is not None
            assert changes[0][1].offline_grace_ends_at is not None  # reported: in grace
        switch.online()
        app.offset = timedelta(0)
        wait_for(lambda: checker.consecutive_failures == 0)
        wait_for(lambda: any(new is not None and new.offline_grace_ends_at is None
                             for _, new in changes))  # reported: recovered
        start = time.monotonic()
        checker.stop()
        assert time.monotonic() - start < 1.0
        assert not checker.running

        # A callback that raises does not kill the thread either.
        with app.client.start_periodic_check(0.05, on_change=boom, max_backoff=0.05) as second:
            server.admin.revoke_license(server.admin.list_licenses(product)[0]["id"])
            wait_for(lambda: second.last_license is None)
            assert second.running
        assert not second.running
        with pytest.raises(LicenseRevoked):
            app.client.check()


def test_reports_erasure_as_a_change(server: InProcessServer, tmp_path: Path) -> None:
    product, keys = new_product(server.admin)
    app = App(server, product, keys, tmp_path / "app")
    app.client.activate(server.admin.issue_license(product)["license_key"],
                        email="x@example.com", consent=True)
    seen: list[License | None] = []
    with app.client.start_periodic_check(0.05, on_change=lambda o, n: seen.append(n)):
        user = server.admin.find_end_users("x@example.com")[0]
        server.admin.erase_end_user(user["id"])
        wait_for(lambda: any(n is not None and n.mode is Mode.LIMITED for n in seen))


def test_bad_arguments(server: InProcessServer, tmp_path: Path) -> None:
    product, keys = new_product(server.admin)
    app = App(server, product, keys, tmp_path / "app")
    with pytest.raises(ValueError):
        PeriodicCheck(app.client, 0)
    with pytest.raises(ValueError):
        PeriodicCheck(app.client, 1, jitter=2)


class Broken(Transport):
    """A transport (the app's own) that fails with something that is not a LicenseError."""

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        raise KeyError("a bug in the app's transport")


def test_every_failure_reaches_on_error_as_a_license_error(server: InProcessServer,
                                                           tmp_path: Path) -> None:
    product, keys = new_product(server.admin)
    App(server, product, keys, tmp_path / "app").client.activate(
        server.admin.issue_license(product)["license_key"])
    broken = App(server, product, keys, tmp_path / "app", transport=Broken())
    errors: list[LicenseError] = []
    checker = PeriodicCheck(broken.client, 60, on_error=errors.append)
    checker.tick()  # one check, on this thread: it must not raise
    assert errors and all(isinstance(e, LicenseError) for e in errors)
    assert isinstance(errors[0].__cause__, KeyError)
    assert checker.consecutive_failures == 1
