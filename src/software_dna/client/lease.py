"""This machine's floating lease: whether the app wants it, and its return at process exit.

While the app wants its lease, every online validation goes through the
check-out route (see :mod:`software_dna.client.checkout`), so the periodic
check is the heartbeat that renews the lease. At process exit (``atexit``)
the lease is checked in, best effort, through a weak reference: a client
that was garbage collected holds nothing.
"""

from __future__ import annotations

import atexit
import contextlib
import threading
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

__all__ = ["EXIT_DEADLINE", "LeaseKeeper", "Wakeable"]

#: Seconds a check-in at close() or at process exit may take.
EXIT_DEADLINE = 3.0


class Wakeable(Protocol):
    """Something that re-plans its next run when woken (the periodic check)."""

    def wake(self) -> None:
        """Plan the next run again now."""


class LeaseKeeper:
    """Whether this client wants its floating lease, and the check-in at process exit.

    Args:
        checkin: returns the lease within a deadline in seconds (a bound
            method, held weakly: its object may be garbage collected).
    """

    def __init__(self, checkin: Callable[[float], None] | None = None) -> None:
        self._checkin: weakref.WeakMethod[Callable[[float], None]] | None = (
            weakref.WeakMethod(checkin) if checkin is not None else None
        )
        self._lock = threading.Lock()
        self.wanted = False
        #: The end of the lease last taken or renewed by a check-out (aware UTC).
        self.ends: datetime | None = None
        self._registered = False
        self._checkers: weakref.WeakSet[Wakeable] = weakref.WeakSet()

    def set_checkin(self, checkin: Callable[[float], None]) -> None:
        """Set the check-in (a bound method, held weakly) called at process exit."""
        self._checkin = weakref.WeakMethod(checkin)

    def watch(self, checker: Wakeable) -> None:
        """``checker`` runs for this client: wake it when a lease is checked out."""
        self._checkers.add(checker)

    def want(self, ends: datetime | None) -> None:
        """The app holds a lease (until ``ends``): renew it, and return it at exit."""
        with self._lock:
            self.wanted = True
            self.ends = ends
            if not self._registered:
                atexit.register(self.at_exit)
                self._registered = True
            checkers = list(self._checkers)
        for checker in checkers:  # plan the heartbeat for this lease
            checker.wake()

    def drop(self) -> None:
        """The lease was returned (or the seat is gone): stop renewing it."""
        with self._lock:
            self.wanted = False
            if self._registered:
                atexit.unregister(self.at_exit)
                self._registered = False

    def route(self) -> str:
        """The validation route: ``checkout`` while the lease is wanted, else ``validate``."""
        return "checkout" if self.wanted else "validate"

    def at_exit(self) -> None:
        """Process exit (or close()): check in within :data:`EXIT_DEADLINE`; never raises."""
        checkin = self._checkin() if self._checkin is not None else None
        if checkin is None or not self.wanted:
            return
        with contextlib.suppress(BaseException):
            checkin(EXIT_DEADLINE)
