"""The client side of seats (used by :class:`LicenseClient`): floating leases, password reset.

Floating (concurrent) licenses:

- :func:`checkout` (``POST /v1/activations/{id}/checkout``) takes -- or
  renews -- this machine's lease; the fresh token carries ``lease_expires_at``.
- While the app wants its lease (:class:`LeaseKeeper`), every online
  validation goes through the check-out route, so the periodic check is the
  heartbeat that renews the lease, and takes it again if it lapsed.
  :func:`heartbeat_delay` keeps the periodic check from sleeping past the
  middle of the remaining lease.
- :func:`checkin` (``POST …/checkin``) returns the lease and stores the
  fresh, lease-less token, so the license stops working here at once.
  ``close()`` and process exit (``atexit``, through a weak reference: a
  client that was garbage collected holds nothing) check in best effort.
- :func:`lease_error`: a floating license works -- offline too -- until its
  lease ends and not after (:class:`~software_dna.errors.LeaseExpired`).

Password reset: :func:`request_password_reset` (``POST /v1/password-resets``)
mails a single-use code to the end user's address on file;
:func:`reset_password` (``…/confirm``) sets the new activation password.
Neither needs an activation on this machine.

Server refusals of the seats features become exceptions in :func:`seat_error`.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import threading
import weakref
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _protocol
from .errors import (
    ActivationLocked,
    ActivationMoved,
    LeaseExpired,
    LicenseError,
    LicenseRevoked,
    NetworkError,
    NoSeatsLeft,
    NotActivated,
    PasswordResetFailed,
    ServerError,
    UnknownLicenseKey,
)
from .license import License
from .wire.times import format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from ._http import Response
    from .checker import PeriodicCheck
    from .client import LicenseClient

__all__ = [
    "EXIT_DEADLINE",
    "LeaseKeeper",
    "checkin",
    "checkout",
    "heartbeat_delay",
    "installation_id",
    "lease_error",
    "request_password_reset",
    "reset_password",
    "seat_error",
    "watch",
]

#: Seconds a check-in at close() or at process exit may take.
EXIT_DEADLINE = 3.0
_RESET_ERRORS = ("no_email_on_file", "no_password", "invalid_reset_code", "mail_unavailable",
                 "mail_failed")


# ------------------------------------------------------------ errors


def seat_error(client: LicenseClient, answer: Response, code: str,
               message: str) -> LicenseError | None:
    """The exception for a seats refusal (``no_seats_left``, ``activation_locked``,
    ``activation_moved`` and the password reset codes), or None for another code."""
    if code == "no_seats_left":
        return NoSeatsLeft(message, retry_after=_protocol.retry_at(answer, client._now()))
    if code == "activation_locked":
        return ActivationLocked(message, retry_after=_protocol.retry_at(answer, client._now()))
    if code == "activation_moved":
        return ActivationMoved(message)
    if code in _RESET_ERRORS:
        return PasswordResetFailed(message)
    return None


def lease_error(lic: License, now: datetime) -> LeaseExpired | None:
    """:class:`LeaseExpired` when ``lic`` is floating and holds no live lease at ``now``."""
    if not lic.is_floating:
        return None
    ends = lic.lease_expires_at
    if ends is not None and now < ends:
        return None
    if ends is None:
        return LeaseExpired(
            "No floating seat of this license is checked out on this computer. Connect to "
            "the license server to check one out."
        )
    return LeaseExpired(
        f"This computer's floating seat lease ended at {format_rfc3339(ends)}. Connect to "
        "the license server to check a seat out again."
    )


# ------------------------------------------------------------ leases


class LeaseKeeper:
    """Whether this client wants its floating lease, and the check-in at process exit.

    Args:
        client: the client it belongs to (held by a weak reference).
    """

    def __init__(self, client: LicenseClient) -> None:
        self._client = weakref.ref(client)
        self._lock = threading.Lock()
        self.wanted = False
        #: The end of the lease last taken or renewed by a check-out (aware UTC).
        self.ends: datetime | None = None
        self._registered = False
        self._checkers: weakref.WeakSet[PeriodicCheck] = weakref.WeakSet()

    def watch(self, checker: PeriodicCheck) -> None:
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
        """Process exit: check in within :data:`EXIT_DEADLINE`; never raises."""
        client = self._client()
        if client is None or not self.wanted:
            return
        with contextlib.suppress(BaseException):
            checkin(client, deadline=EXIT_DEADLINE)


def checkout(client: LicenseClient) -> License:
    """Take (or renew) this machine's floating lease; see :meth:`LicenseClient.checkout`."""
    with client._lock:
        lic = client._validate_online(client._read(), deadline=None, route="checkout")
        if lic.is_floating:
            client._lease.want(lic.lease_expires_at)
        return lic


def checkin(client: LicenseClient, *, deadline: float | None = None) -> None:
    """Return this machine's floating lease; see :meth:`LicenseClient.checkin`."""
    with client._lock:
        try:
            client._validate_online(client._read(), deadline=deadline, route="checkin")
        except LeaseExpired:
            pass  # the lease-less token is stored: this is the expected outcome
        except NotActivated:
            client._lease.drop()  # no seat any more: nothing to return
            raise
        client._lease.drop()


def heartbeat_delay(client: LicenseClient, last: License | None, delay: float) -> float:
    """``delay`` (seconds), shortened so the periodic check renews a wanted lease in time.

    Args:
        client: the client whose lease it is.
        last: the license the periodic check saw last (None: not valid).
        delay: the seconds the check would wait otherwise.

    While the client wants its floating lease the next check runs no later
    than half-way through the lease's remaining time (the latest end known:
    the last check-out's or the last check's; at least 1 s from now),
    whatever the interval or the back-off says. A lease already gone (the
    seat was taken meanwhile) is tried again at the normal pace.
    """
    if not client._lease.wanted:
        return delay
    known = [end for end in (client._lease.ends,
                             last.lease_expires_at if last is not None else None)
             if end is not None]
    if not known:
        return delay
    left = (max(known) - client._now()).total_seconds()
    if left <= 0:  # the lease is gone (the seat was taken meanwhile): the normal pace
        return delay
    return max(1.0, min(delay, left / 2))


def watch(client: LicenseClient, checker: PeriodicCheck) -> None:
    """Register a periodic check of ``client`` (it is woken when a lease is checked out)."""
    client._lease.watch(checker)


def installation_id(client: LicenseClient) -> str:
    """This OS account's installation id for the product (kept in the store).

    It tells user seats on one computer apart and carries nothing about the
    user or the machine: a keyed hash (under the machine-bound secret, which
    never leaves the machine) of the OS account and of the store's path,
    which differs between accounts.  Being derived, not drawn at random, it
    survives a damaged or deleted store, so activating again after
    ``StoreCorrupted`` finds this account's seat instead of taking another.
    """
    data = client._read()
    existing = data.get("installation_id")
    if isinstance(existing, str) and 16 <= len(existing) <= 64:
        return existing
    new_id = _derived_installation_id(client)
    client._update(lambda d: d.__setitem__("installation_id", new_id))
    return new_id


def _derived_installation_id(client: LicenseClient) -> str:
    import base64
    import hashlib
    import hmac
    import os

    from . import fingerprint as _fp

    account = str(os.getuid()) if hasattr(os, "getuid") else ""
    with contextlib.suppress(Exception):  # no user name (containers): the uid and path do
        import getpass

        account += "\0" + getpass.getuser()
    try:
        where = str(client.store_path.resolve())
    except OSError:
        where = str(client.store_path.absolute())
    message = f"software_dna installation id v1\0{account}\0{where}".encode(
        "utf-8", "surrogatepass")
    try:
        key = _fp.machine_secret(client.product)
    except LicenseError:  # no machine secret at all: a random id, as before
        import secrets

        return secrets.token_urlsafe(24)
    digest = hmac.new(key, message, hashlib.sha256).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode()


# ------------------------------------------------------------ password reset


def _reset_call(client: LicenseClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    if client.server_url is None:
        raise NetworkError("No license server is configured for this app.")
    answer = client._make_transport().request("POST", path, json_body=body, retry=False)
    if answer.status in (200, 202):
        return dict(answer.body)
    code, message = _protocol.error_of(answer)
    if code == "unknown_license_key":
        raise UnknownLicenseKey(message)
    if answer.status == 429 or code == "rate_limited":
        raise ActivationLocked("Too many attempts. Try again later.",
                               retry_after=_protocol.retry_at(answer, client._now()))
    if code == "license_revoked":
        raise LicenseRevoked(message)
    error = seat_error(client, answer, code, message)
    if error is not None:
        raise error
    raise ServerError(f"The license server refused the password reset: {message}")


def request_password_reset(client: LicenseClient, license_key: str) -> datetime:
    """Ask for a reset code by email; see :meth:`LicenseClient.request_password_reset`."""
    if not isinstance(license_key, str) or not license_key.strip():
        raise UnknownLicenseKey("Enter a license key.")
    body = _key_body(client, license_key)
    answer = _reset_call(client, "/v1/password-resets", body)
    try:
        return parse_rfc3339(answer.get("expires_at"))
    except ValueError:
        raise ServerError("The license server's answer is incomplete.") from None


def reset_password(client: LicenseClient, license_key: str, code: str,
                   new_password: str) -> None:
    """Set a new activation password; see :meth:`LicenseClient.reset_password`."""
    if not isinstance(license_key, str) or not license_key.strip():
        raise UnknownLicenseKey("Enter a license key.")
    typed = re.sub(r"[^A-Za-z0-9]", "", code) if isinstance(code, str) else ""
    if not typed:
        raise PasswordResetFailed("Enter the reset code from the email.")
    if not isinstance(new_password, str) or not 1 <= len(new_password) <= 256:
        raise PasswordResetFailed("Choose a new password of 1 to 256 characters.")
    body = _key_body(client, license_key)
    body.update({"code": typed[:32], "new_password": new_password})
    _reset_call(client, "/v1/password-resets/confirm", body)


def _key_body(client: LicenseClient, license_key: str) -> dict[str, Any]:
    """The ``product`` / ``license_key`` part of a password reset request."""
    return {"product": client.product, "license_key": license_key.strip()}
