"""The periodic license check: a daemon thread that keeps the license fresh.

:meth:`LicenseClient.start_periodic_check` starts one. Every ``interval``
seconds (± ``jitter``) it validates online; after a failure it backs off
exponentially (up to ``max_backoff``; no more than ``interval`` once no valid
license is left) and never dies: every exception is
caught and handed to ``on_error``. A failure -- the server unreachable or
unusable, the store not writable (read-only folder, disk full), the machine
not identifiable at the moment, anything unexpected -- counts toward the
back-off and keeps the last license: it is never a verdict on the license.
Only a verdict (revoked, expired, suspended, removed, moved, another
machine, a store that cannot be trusted) makes the license ``None``.
``on_change(old, new)`` fires when the
license's mode, features, validity, license expiry (renewed, extended,
made perpetual), kind (trial to paid), grace state or subscription end
change (``None`` stands for "no valid license": expired, revoked, suspended).
While a floating lease is checked out, each check renews it (the heartbeat)
and runs no later than half-way through the remaining lease, whatever the
interval or the back-off say (:meth:`Checkout.heartbeat_delay`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Protocol

from software_dna.errors import (
    ActivationLocked,
    FingerprintUnavailable,
    LicenseError,
    NetworkError,
    ServerError,
    StoreCorrupted,
    StoreError,
    StoreRolledBack,
)
from software_dna.license import License
from software_dna.wire.claims import Kind, Mode

from .boundary import unexpected
from .checkout import Checkout

__all__ = ["PeriodicCheck"]



class Checkable(Protocol):
    """What the periodic check calls: a :class:`~software_dna.LicenseClient`."""

    def check(self) -> License:
        """The license, offline unless a refresh is due."""

    def refresh(self) -> License:
        """The license, validated online now."""


_Summary = tuple[Mode, frozenset[str], "datetime | None", bool, Kind, "datetime | None"] | None


def _summary(lic: License | None) -> _Summary:
    """What ``on_change`` watches: a renewal or extension moves ``license_expires_at``,
    expiry / revocation / suspension make the license ``None``, a cancelled
    subscription sets ``subscription_ends_at``, trial to paid changes ``kind``."""
    if lic is None:
        return None
    return (lic.mode, lic.features, lic.license_expires_at, lic.offline_grace_ends_at is not None,
            lic.kind, lic.subscription_ends_at)


class PeriodicCheck:
    """Handle of a running periodic check (also a context manager).

    Args:
        client: the :class:`~software_dna.LicenseClient` to refresh.
        interval: seconds between checks (> 0).
        on_change: ``on_change(old, new)`` with the previous and the new
            :class:`License` (``None``: not valid), called on the checker thread.
        on_error: ``on_error(exc)`` with every failure: each :class:`LicenseError` met,
            and anything else wrapped in one (the original as ``__cause__``).
        jitter: fraction of ``interval`` added or removed at random (0–1), so
            that many apps do not call the server at the same instant.
        max_backoff: longest wait in seconds after repeated failures
            (default: 32 × interval). While there is no valid license (the offline
            grace ran out during the failures) the wait is one interval at most.
        checkout: the client's floating seats (its lease's heartbeat), or None.
        clock: returns the current time as an aware datetime (default: the system's
            UTC clock; the client passes its own).

    Attributes:
        consecutive_failures: failures since the last success.
        last_license: the last license seen (``None``: not valid or not yet checked).
    """

    def __init__(
        self,
        client: Checkable,
        interval: float,
        *,
        on_change: Callable[[License | None, License | None], None] | None = None,
        on_error: Callable[[LicenseError], None] | None = None,
        jitter: float = 0.1,
        max_backoff: float | None = None,
        checkout: Checkout | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError("interval must be a positive number of seconds")
        if not 0 <= jitter <= 1:
            raise ValueError("jitter must be between 0 and 1")
        import random  # lazy: not on the start-up path of import + check()

        self._client = client
        self._checkout = checkout
        self._clock = clock or _utcnow
        self.interval = float(interval)
        self.jitter = jitter
        self.max_backoff = float(max_backoff) if max_backoff is not None else 32 * self.interval
        self._on_change = on_change
        self._on_error = on_error
        self._stop = threading.Event()
        self._wake = threading.Event()  # stop(), or a floating lease checked out: re-plan
        self._thread = threading.Thread(
            target=self._run, name="software_dna-periodic-check", daemon=True
        )
        self._random = random.Random()  # noqa: S311 - jitter, not security
        self.consecutive_failures = 0
        self.last_license: License | None = None

    def start(self) -> None:
        """Start the thread (done by ``start_periodic_check``); never raises.

        The first offline check gives :attr:`last_license` (``None`` when it
        raises). A failure (:func:`_is_failure`: the store not writable, the
        network stack not loadable, ...) also goes to ``on_error`` and starts
        the back-off; a verdict (not activated, expired, no lease yet) is only
        the starting state, which the app's own ``check()`` has told it.
        """
        try:
            self.last_license = self._client.check()
        except Exception as exc:
            self.last_license = None
            error = _as_license_error(exc)
            if _is_failure(error):
                self.consecutive_failures += 1
                self._report(error)
        if self._checkout is not None:  # a later checkout() re-plans the next heartbeat
            self._checkout.watch(self)
        self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread; returns within ``timeout`` seconds (the thread is a daemon)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread.is_alive()

    def __enter__(self) -> PeriodicCheck:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _delay(self) -> float:
        base = min(self.interval * (2 ** self.consecutive_failures), self.max_backoff)
        if self.last_license is None:
            # Nothing left to protect by waiting longer: with no valid license (the
            # offline grace ran out during an outage) the app is back as soon as the
            # server is, one interval at most; the jitter still spreads the clients.
            base = min(base, self.interval)
        spread = base * self.jitter
        delay = float(max(0.01, base + self._random.uniform(-spread, spread)))
        ends = _works_until(self.last_license)
        if ends is not None:
            # A back-off never sleeps past the end of the license it protects: the
            # last try comes just before, so a server back by then keeps it seamless.
            # (Never more often than a minute or an interval apart, whichever is less.)
            left = (ends - self._clock()).total_seconds()
            delay = min(delay, max(min(self.interval, 60.0), left))
        if self._checkout is None:
            return delay
        # A floating lease is renewed before it lapses, whatever the interval.
        return self._checkout.heartbeat_delay(self.last_license, delay)

    def wake(self) -> None:
        """Plan the next check again now (a floating lease was just checked out)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            if self._wake.wait(self._delay()):
                continue  # stopped, or woken to re-plan: no check now
            self.tick()

    def tick(self) -> None:
        """One check: refresh online, fall back to the offline answer; never raises.

        Every error of the refresh goes to ``on_error``; a failure
        (:func:`_is_failure`) also counts toward the back-off. Either way the
        license is then what the offline check says: it acts only on what the
        SDK stored (a refusal the server signed, an expiry), so an answer an
        attacker on the network forged or garbled changes nothing; when that
        check fails for a reason that is no verdict, the last license is kept.
        """
        new: License | None
        try:
            new = self._client.refresh()
            self.consecutive_failures = 0
        except Exception as exc:
            error = _as_license_error(exc)
            self._report(error)
            self.consecutive_failures = self.consecutive_failures + 1 if _is_failure(error) else 0
            new = self._offline(error)
        old, self.last_license = self.last_license, new
        if _summary(old) != _summary(new) and self._on_change is not None:
            with contextlib.suppress(Exception):  # the app's callback must not kill us
                self._on_change(old, new)

    def _offline(self, reported: LicenseError) -> License | None:
        """The offline check after a failed refresh: its license, None for a verdict,
        the last license when it fails for a reason that is no verdict (an error
        equal to ``reported`` is not reported twice)."""
        try:
            return self._client.check()
        except Exception as exc:
            error = _as_license_error(exc)
            if type(error) is not type(reported) or str(error) != str(reported):
                self._report(error)
            return self.last_license if _is_failure(error) else None

    def _report(self, exc: LicenseError) -> None:
        if self._on_error is not None:
            with contextlib.suppress(Exception):
                self._on_error(exc)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _works_until(lic: License | None) -> datetime | None:
    """When ``lic`` stops working offline unless refreshed (its offline grace's end, else
    its token's end), or ``None`` (no license, or one that never ends offline)."""
    if lic is None:
        return None
    return lic.offline_grace_ends_at or lic.expires_at


def _as_license_error(exc: Exception) -> LicenseError:
    """``exc`` itself when it is a :class:`LicenseError`; else wrapped in one (the
    original as ``__cause__``): the app hears of every failure, in one type."""
    return exc if isinstance(exc, LicenseError) else unexpected(exc)


def _is_failure(error: LicenseError) -> bool:
    """True when ``error`` says nothing about the license: the server, the disk, the
    machine or the SDK failed for now. A store that cannot be trusted (corrupt,
    rolled back) is a verdict; one that cannot be written (read-only, full) is not."""
    if isinstance(error, StoreError):
        return not isinstance(error, (StoreCorrupted, StoreRolledBack))
    return (isinstance(error, (NetworkError, ServerError, FingerprintUnavailable,
                               ActivationLocked))  # locked: wait and retry, no verdict
            or type(error) is LicenseError)
