"""Floating (concurrent) licenses: checking a seat out and in, and the lease heartbeat.

- :meth:`Checkout.checkout` (``POST /v1/activations/{id}/checkout``) takes -- or
  renews -- this machine's lease; the fresh token carries ``lease_expires_at``.
- While the app wants its lease (:class:`~software_dna.client.lease.LeaseKeeper`),
  every online validation goes through the check-out route, so the periodic
  check is the heartbeat that renews the lease, and takes it again if it lapsed.
  :meth:`Checkout.heartbeat_delay` keeps the periodic check from sleeping past
  the middle of the remaining lease.
- :meth:`Checkout.checkin` (``POST …/checkin``) returns the lease and stores the
  fresh, lease-less token, so the license stops working here at once.
  ``close()`` and process exit check in best effort.

See docs/seats.md.
"""

from __future__ import annotations

import threading

from software_dna.errors import LeaseExpired, NotActivated
from software_dna.license import License

from .lease import LeaseKeeper, Wakeable
from .state import ClientState
from .validation import Validation

__all__ = ["Checkout"]


class Checkout:
    """Checks this machine's floating seat out and in.

    Args:
        state: the client's local state.
        validation: the online validation (its routes carry the lease).
        lease: whether the app wants its lease (this object sets it).
        lock: the client's lock, held for a whole call.
    """

    def __init__(self, state: ClientState, validation: Validation, lease: LeaseKeeper,
                 lock: threading.RLock) -> None:
        self.state = state
        self.validation = validation
        self.lease = lease
        self._lock = lock
        lease.set_checkin(self.checkin_within)

    def checkout(self) -> License:
        """Take (or renew) this machine's floating lease; see :meth:`LicenseClient.checkout`."""
        with self._lock:
            lic = self.validation.validate_online(self.state.read(), deadline=None,
                                                  route="checkout")
            if lic.is_floating:
                self.lease.want(lic.lease_expires_at)
            return lic

    def checkin(self, *, deadline: float | None = None) -> None:
        """Return this machine's floating lease; see :meth:`LicenseClient.checkin`.

        Args:
            deadline: seconds the call may take (None: the client's timeout).
        """
        with self._lock:
            try:
                self.validation.validate_online(self.state.read(), deadline=deadline,
                                                route="checkin")
            except LeaseExpired:
                pass  # the lease-less token is stored: this is the expected outcome
            except NotActivated:
                self.lease.drop()  # no seat any more: nothing to return
                raise
            self.lease.drop()

    def checkin_within(self, deadline: float) -> None:
        """:meth:`checkin` within ``deadline`` seconds (at close() and at process exit)."""
        self.checkin(deadline=deadline)

    def heartbeat_delay(self, last: License | None, delay: float) -> float:
        """``delay`` (seconds), shortened so the periodic check renews a wanted lease in time.

        Args:
            last: the license the periodic check saw last (None: not valid).
            delay: the seconds the check would wait otherwise.

        While the client wants its floating lease the next check runs no later
        than half-way through the lease's remaining time (the latest end known:
        the last check-out's or the last check's; at least 1 s from now),
        whatever the interval or the back-off says. A lease already gone (the
        seat was taken meanwhile) is tried again at the normal pace.
        """
        if not self.lease.wanted:
            return delay
        known = [end for end in (self.lease.ends,
                                 last.lease_expires_at if last is not None else None)
                 if end is not None]
        if not known:
            return delay
        left = (max(known) - self.state.now()).total_seconds()
        if left <= 0:  # the lease is gone (the seat was taken meanwhile): the normal pace
            return delay
        return max(1.0, min(delay, left / 2))

    def watch(self, checker: Wakeable) -> None:
        """Register a periodic check (it is woken when a lease is checked out)."""
        self.lease.watch(checker)
