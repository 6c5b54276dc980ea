"""The license check: offline first, online when a refresh is due, and what the server says.

:meth:`Validation.check` verifies the stored token with no network: kid,
signature, product, machine, time and the clock high-water mark. Only when
the token's ``refresh_by`` time has passed (or the store needs the server's
word: a stored refusal, a rollback, a clock that may have run ahead) does it
try the server, with a short deadline; if the server cannot be reached the
license stays valid until the offline grace period ends (``exp``).
:meth:`Validation.validate_online` is the one online validation, through
the ``validate``, ``checkout`` or ``checkin`` route.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from software_dna.errors import (
    ActivationLocked,
    ClockTampered,
    InvalidToken,
    LicenseExpired,
    Message,
    NetworkError,
    NotActivated,
    ServerError,
    ServerUnreachable,
    StoreRolledBack,
    WrongMachine,
    WrongProduct,
)
from software_dna.i18n import N_
from software_dna.license import License, with_days_left
from software_dna.store import StoreBusy
from software_dna.wire.claims import Protection
from software_dna.wire.codes import Code
from software_dna.wire.times import format_rfc3339

from .document import credentials
from .expiry import (
    cancel_status,
    cancel_window_end,
    cancelled_license,
    expired_air_gapped,
    expired_message,
    lease_error,
)
from .lease import LeaseKeeper
from .refusals import VALIDATION_CODES, ErrorAnswer
from .rollback import WITNESS_DAMAGED
from .server import ServerAPI, client_facts, new_nonce
from .state import ClientState
from .verifier import rotated_secret

__all__ = ["CHECK_DEADLINE", "RETRY_AFTER_FAILURE", "Validation", "damaged_until"]

#: Total seconds check() may spend on the server when a refresh is due.
CHECK_DEADLINE = 5.0
#: After a failed refresh, check() does not try the server again for this long.
RETRY_AFTER_FAILURE = timedelta(minutes=2)


def damaged_until(lic: License) -> datetime | None:
    """How long a store its damaged witness cannot vouch for works without the server.

    Args:
        lic: the stored license.

    Returns:
        The token's ``refresh_by`` (the server would be asked then anyway);
        without one (air-gapped and ``offline`` protection tokens) its ``exp``;
        without that the license's own expiry; None when there is none of
        them: such a license keeps working (a documented limit).
    """
    return lic.refresh_by or lic.expires_at or lic.license_expires_at


def _window_ended(lic: License, now: datetime) -> bool:
    end = damaged_until(lic)
    return end is not None and now >= end


class Validation:
    """Checks the stored license, offline and online.

    Args:
        state: the client's local state.
        server: the license server.
        lease: whether a floating lease is wanted (it picks the online route).
    """

    def __init__(self, state: ClientState, server: ServerAPI, lease: LeaseKeeper) -> None:
        self.state = state
        self.server = server
        self.lease = lease
        self._last_failed_refresh: float | None = None
        self._with_days: tuple[License, int, License] | None = None

    def check(self, *, force_online: bool) -> License:
        """See :meth:`LicenseClient.check` (``force_online``: :meth:`LicenseClient.refresh`)."""
        state = self.state
        now = state.now()
        data = state.read()
        status = data.get("status")
        # A store older than its witness (rolled back) needs the server's word.
        suspect = state.suspicion(data)
        # So does one its (damaged) witness cannot vouch for, but that one keeps
        # working meanwhile, until its token's refresh time (damaged_until).
        unvouched = suspect is None and state.guard.unconfirmed(data)
        due = force_online or status is not None or suspect is not None or unvouched
        lic: License | None = None
        if status is None and suspect is None:
            try:
                lic = state.offline_license(now, data)
            except (ClockTampered, WrongMachine) as exc:
                if not self.server.configured:
                    raise
                # The clock may have run ahead earlier (the mark is too high) or be
                # set back now: the server's signed time tells which. A machine that
                # drifted past the token's own tolerance (0 for trials and tokens
                # never refreshed) may still be the same machine by the product's:
                # the server decides, and re-binds it.
                suspect = exc
            else:
                due = due or (
                    lic.protection is not Protection.OFFLINE
                    and lic.refresh_by is not None and now >= lic.refresh_by
                )
            due = due or suspect is not None
        elif not isinstance(data.get("token"), str):
            state.raise_stored_status(data)
            raise NotActivated()
        # Without the server the app would stop: then try it whatever the back-off says.
        must = force_online or suspect is not None or (
            lic is not None and lic.expires_at is not None and now >= lic.expires_at
        ) or (unvouched and lic is not None and _window_ended(lic, now))
        if lic is not None and self.lease.wanted and lease_error(lic, now) is not None:
            due = must = True  # the floating lease ended: take it again
        if due and self.server.configured and (must or self._may_try_server()):
            try:
                deadline = None if force_online else min(CHECK_DEADLINE, self.server.timeout)
                return self.validate_online(data, deadline=deadline)
            except (NetworkError, ServerError, InvalidToken, WrongProduct,
                    ActivationLocked) as exc:
                # An unusable answer (garbage, a forged or foreign token) or "too many
                # requests, later" is a failed refresh like a dead network: the stored
                # license still counts (refresh() raises it).
                self._last_failed_refresh = time.monotonic()
                if suspect is not None:
                    raise suspect from exc
                if force_online:
                    raise
        if suspect is not None:
            raise suspect
        until = None
        if lic is None:
            state.raise_stored_status(data)
            lic = state.offline_license(now, data)
            until = cancel_window_end(data.get("status"), now)
        if unvouched and _window_ended(lic, now):
            raise StoreRolledBack(WITNESS_DAMAGED)
        if until is not None:  # a cancelled subscription in its warning period
            return cancelled_license(self.apply_grace(now, lic), until)
        return self.apply_grace(now, lic)

    def _may_try_server(self) -> bool:
        failed = self._last_failed_refresh
        return failed is None or time.monotonic() - failed >= RETRY_AFTER_FAILURE.total_seconds()

    def refreshed(self) -> None:
        """A fresh token came from the server: check() may try it again at once next time."""
        self._last_failed_refresh = None

    def apply_grace(self, now: datetime, lic: License) -> License:
        """``lic`` as the app sees it at ``now``: grace, days left; or the error that it ended.

        Raises:
            LeaseExpired: a floating license without a live lease.
            LicenseExpired: the license, or its offline grace period, ended.
        """
        lease_ended = lease_error(lic, now)  # a floating license needs its lease
        if lease_ended is not None:
            raise lease_ended
        if lic.license_expires_at is not None and now >= lic.license_expires_at:
            raise LicenseExpired(expired_message(lic, lic.license_expires_at))
        if lic.expires_at is not None and now >= lic.expires_at \
                and lic.protection is Protection.OFFLINE:
            # Only an air-gapped token ends before its license with protection offline.
            raise LicenseExpired(expired_air_gapped(lic.expires_at))
        if lic.expires_at is not None and now >= lic.expires_at:
            raise LicenseExpired(Message(
                N_("The license server must be reached to keep using this license: the "
                   "offline grace period ended on %(time)s. Connect to the internet and try "
                   "again."), time=format_rfc3339(lic.expires_at)))
        if lic.refresh_by is not None and now >= lic.refresh_by:
            lic = lic.with_grace(lic.expires_at)
        days = lic.whole_days_left(now)
        if days is None:
            return lic
        cached = self._with_days
        if cached is not None and cached[0] is lic and cached[1] == days:
            return cached[2]  # the same license on the same day: no new object
        dated = with_days_left(lic, days)
        self._with_days = (lic, days, dated)
        return dated

    def validate_online(self, data: Mapping[str, Any], *, deadline: float | None,
                        route: str | None = None) -> License:
        """Validate with the server now and store the fresh token (or its signed refusal).

        The activation secret rotates at every validation: the answer carries
        the next one (``activation_secret``), signed into the token as
        ``secret_digest``; it is stored with the token in one write. The
        store's lock is held from reading the secret to storing the answer,
        so another instance of the app on this machine never sends a secret
        this one is replacing (the server would take it for a copy).

        Args:
            data: the stored document (the secret is read again under the lock).
            deadline: seconds for the whole call, the wait for the lock included
                (None: the client's timeout).
            route: ``validate``, ``checkout`` or ``checkin`` (default: by the lease).

        Raises:
            NotActivated: no activation stored, or the server does not know it.
            LicenseRevoked, LicenseSuspended, LicenseExpired, ActivationMoved,
            ActivationReleased, WrongMachine, NoSeatsLeft, LeaseExpired: the
                server's refusal.
            ServerUnreachable: no answer in time (or another instance of the
                app held the store's lock until the deadline).
            ServerError, InvalidToken: no usable answer (a token that does not
                vouch for the secret handed out with it included: the old
                secret is kept).
        """
        budget = self.server.timeout if deadline is None else deadline
        started = time.monotonic()
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.state.exclusive(budget))
            except StoreBusy as exc:
                raise ServerUnreachable(
                    N_("Another instance of this application is checking the license with the "
                       "server and did not finish in time. Try again in a moment.")) from exc
            left = budget - (time.monotonic() - started)
            if left <= 0:
                raise ServerUnreachable(N_("The license check with the server ran out of time."))
            return self._validate_locked(self.state.read_fresh(), deadline=left, route=route)

    def _validate_locked(self, data: Mapping[str, Any], *, deadline: float,
                         route: str | None) -> License:
        """:meth:`validate_online` with the store's lock held (``data``: read under it)."""
        state = self.state
        activation_id, secret = credentials(data)
        nonce = new_nonce()
        answer = self.server.request(
            "POST", f"/v1/activations/{activation_id}/{route or self.lease.route()}",
            json_body={**state.verifier.request_fingerprint(data.get("token")), "nonce": nonce,
                       "trusted_keys": state.verifier.trusted_key_ids,
                       **({"client": client_facts(state.app_version)}
                          if state.app_version is not None else {})},
            bearer=secret, retry=True, deadline=deadline,
        )
        if answer.status == 200:
            lic = state.verifier.accept(answer.body.get("token"), nonce)
            rotated = rotated_secret(lic, answer.body.get("activation_secret"))
            state.store_token(answer.body["token"], lic, secret=rotated)
            self.refreshed()
            return self.apply_grace(state.now(), lic)
        error = ErrorAnswer(answer, state.now())
        if error.meaning is not None and error.meaning.signed:
            if not state.verifier.receipt_ok(error.receipt, nonce, activation_id,
                                             result=error.text):
                # Our server signs every refusal; an unsigned one is not its word.
                raise ServerError(Message(
                    N_("The license server's refusal was not signed: %(reason)s"),
                    reason=error.message))
            if error.code is Code.SUBSCRIPTION_CANCELLED:
                return self._cancelled(data, error.message)
            state.store_refusal(error.text, error.message, receipt=error.receipt)
        refusal = error.exception(only=VALIDATION_CODES)
        if refusal is not None:
            raise refusal
        raise ServerError(Message(N_("The license server refused the check: %(reason)s"),
                                  reason=error.message))

    def _cancelled(self, data: Mapping[str, Any], message: str) -> License:
        """The server said the subscription was cancelled: run out the warning period."""
        now = self.state.now()
        lic = self.state.offline_license(now, data)
        status = cancel_status(lic, message, now)
        self.state.store_status(status)
        self._last_failed_refresh = time.monotonic()  # ask again now and then, not every check
        until = cancel_window_end(status, now)  # LicenseSuspended when none is left
        assert until is not None
        return cancelled_license(self.apply_grace(now, lic), until)
