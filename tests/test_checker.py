"""The periodic check against the real server: failures, recovery, stop()."""

from __future__ import annotations

import errno
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    License,
    LicenseError,
    LicenseRevoked,
    Mode,
    ServerUnreachable,
    StoreError,
)
from software_dna.client.periodic import PeriodicCheck
from software_dna.client.transport import Response, Transport

from .inprocess import InProcessServer
from .security.test_store_faults import _refuse_writes
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


# --------------------------------------------------------------------------- failures, not verdicts


def _activated(server: InProcessServer, tmp_path: Path) -> App:
    product, keys = new_product(server.admin, refresh_interval=60, offline_grace_period=3600)
    app = App(server, product, keys, tmp_path / "app")
    app.client.activate(server.admin.issue_license(product)["license_key"])
    return app


def _disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``os.write`` fails as on a full disk (as tests/security/test_store_faults.py)."""
    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)


def _read_only(folder: Path) -> Callable[[pytest.MonkeyPatch], None]:
    """Creating or replacing a file in ``folder`` fails with EROFS (a read-only mount).

    A real read-only folder (chmod) does not stop root, which runs these tests
    in CI: test_a_read_only_folder_for_real covers it where it can.
    """
    def apply(monkeypatch: pytest.MonkeyPatch) -> None:
        _refuse_writes(monkeypatch, folder, errno.EROFS)

    return apply


@pytest.mark.parametrize("fault", ["disk full", "read-only folder"])
def test_a_store_that_cannot_be_written_is_a_failure_never_a_verdict(
        server: InProcessServer, tmp_path: Path, fault: str) -> None:
    """refresh() cannot store its answer: on_error gets the StoreError, it counts as a
    failure (back-off), the last license stays, and on_change never says "not valid"."""
    app = _activated(server, tmp_path)
    errors: list[LicenseError] = []
    changes: list[tuple[License | None, License | None]] = []
    checker = PeriodicCheck(app.client, 60, on_error=errors.append,
                            on_change=lambda old, new: changes.append((old, new)))
    checker.start()
    checker.stop()
    before = checker.last_license
    assert before is not None
    folder = app.client.store_path.parent
    with pytest.MonkeyPatch.context() as monkeypatch:
        (_disk_full if fault == "disk full" else _read_only(folder))(monkeypatch)
        checker.tick()
        checker.tick()
    # A read-only folder fails already at the store's lock file: a StoreError that says
    # so (not "another instance holds the lock"), and a failure, never a verdict.
    assert errors and all(isinstance(e, StoreError) for e in errors), errors
    assert not any("Another instance" in str(e) for e in errors), errors
    assert checker.consecutive_failures == 2
    assert checker.last_license is before
    assert changes == []
    checker.tick()  # the disk is back: the next check succeeds and the failures reset
    assert checker.consecutive_failures == 0
    assert checker.last_license is not None


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="file permissions do not stop root")
def test_a_read_only_folder_for_real(server: InProcessServer, tmp_path: Path) -> None:
    """The same with a folder the account cannot write (chmod 0555)."""
    app = _activated(server, tmp_path)
    errors: list[LicenseError] = []
    changes: list[object] = []
    checker = PeriodicCheck(app.client, 60, on_error=errors.append,
                            on_change=lambda old, new: changes.append(new))
    checker.last_license = app.client.check()
    folder = app.client.store_path.parent
    folder.chmod(0o555)
    try:
        checker.tick()
    finally:
        folder.chmod(0o755)
    assert errors and all(isinstance(e, (StoreError, ServerUnreachable)) for e in errors), errors
    assert checker.consecutive_failures == 1 and changes == []


def test_a_verdict_still_makes_the_license_none(server: InProcessServer, tmp_path: Path) -> None:
    """Control: a revocation is a verdict (on_change(old, None)), not a failure."""
    app = _activated(server, tmp_path)
    changes: list[tuple[License | None, License | None]] = []
    checker = PeriodicCheck(app.client, 60, on_change=lambda old, new: changes.append((old, new)))
    checker.last_license = app.client.check()
    license_id = checker.last_license.license_id
    server.admin.revoke_license(license_id)
    checker.tick()
    assert checker.last_license is None and changes and changes[-1][1] is None
    assert checker.consecutive_failures == 0


def test_start_reports_a_failure_of_the_first_check(server: InProcessServer,
                                                    tmp_path: Path) -> None:
    """start(): the first check failing (here the store unreadable as a folder is a file)
    reaches on_error; it never raises."""
    product, keys = new_product(server.admin)
    (tmp_path / "app").write_text("not a folder")
    app = App(server, product, keys, tmp_path / "app" / "sub")
    errors: list[LicenseError] = []
    checker = PeriodicCheck(app.client, 60, on_error=errors.append)
    checker.start()
    checker.stop()
    assert errors and isinstance(errors[0], StoreError), errors
    assert checker.consecutive_failures == 1 and checker.last_license is None


def test_an_import_failure_in_the_checker_reaches_on_error(
        server: InProcessServer, tmp_path: Path) -> None:
    """The network stack cannot be loaded (a frozen app's folder removed): on_error gets a
    ServerUnreachable, the check falls back offline and the license stays."""
    app = _activated(server, tmp_path)
    fresh = App(server, app.args["product"], app.args["public_keys"], tmp_path / "app")
    errors: list[LicenseError] = []
    checker = PeriodicCheck(fresh.client, 60, on_error=errors.append)
    checker.last_license = before = fresh.client.check()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setitem(sys.modules, "requests", None)
        checker.tick()
    assert errors and isinstance(errors[0], ServerUnreachable), errors
    assert "network components" in str(errors[0])
    assert checker.consecutive_failures == 1
    assert checker.last_license == before


def test_backs_off_no_longer_than_an_interval_once_the_license_has_lapsed(
        server: InProcessServer, tmp_path: Path) -> None:
    """Invariant: an outage longer than the offline grace costs the app the license only
    until the server answers again, plus one interval at most: the exponential back-off
    (which spares the server while the app still has a license) never sleeps past the
    license's end, and stops growing once the app has none left."""
    with server.link() as switch:
        product, keys = new_product(server.admin, refresh_interval=60, offline_grace_period=3600)
        app = App(server, product, keys, tmp_path / "app", timeout=0.5,
                  transport=switch.transport())
        app.client.activate(server.admin.issue_license(product)["license_key"])
        checker = PeriodicCheck(app.client, 10.0, jitter=0.0, clock=app.now)
        switch.offline()
        app.offset = timedelta(seconds=90)  # due, well within the grace
        for _ in range(4):
            checker.tick()
        lic = checker.last_license
        assert lic is not None and lic.offline_grace_ends_at is not None
        assert checker._delay() == 10.0 * 2 ** 4  # a licensed app backs off
        # Near the grace's end, the next try comes before it, not after.
        left = 100.0
        app.offset += (lic.offline_grace_ends_at - app.now()) - timedelta(seconds=left)
        delay = checker._delay()
        assert left - 1 <= delay <= left
        app.offset += timedelta(hours=1)  # the grace ran out during the outage
        checker.tick()
        assert checker.last_license is None
        assert checker.consecutive_failures == 5
        assert checker._delay() == 10.0
        switch.online()
        app.offset = timedelta(0)  # the in-process server's clock is the real one
        checker.tick()
        assert checker.last_license is not None
        assert checker.consecutive_failures == 0
