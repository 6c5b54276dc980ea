"""The SDK's side of the wire protocol, and online activation (used by :class:`LicenseClient`).

docs/protocol.md describes every route. This module holds what the client's
online calls share -- nonces, reading an error answer (``{"error": {"code",
"message", ...}}``), the stored activation credentials, which server codes
are refusals and which are activation errors -- and the first online call,
activation:

- :func:`check_activation_input`: what the end user typed, checked before
  anything is sent (also for the air-gapped request, offline.py);
- :func:`activate`: ``POST /v1/activations`` with a persisted idempotency key
  (a lost answer is retried without taking a second seat), then
  :func:`save_activation` stores the answer (also used by a trial, _terms.py);
- :func:`raise_activation_error`: an activation refusal as the
  :class:`~software_dna.errors.ActivationError` the end user can act on.

Split from client.py along the seam between the offline check (client.py)
and the calls to the server, like _seats.py, _terms.py and offline.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

from ._version import __version__
from .errors import (
    ActivationError,
    ActivationLocked,
    ActivationMoved,
    ConsentRequired,
    InvalidToken,
    LicenseError,
    LicenseExpired,
    LicenseRevoked,
    LicenseSuspended,
    NetworkError,
    NoSeatsLeft,
    NotActivated,
    ServerError,
    StoreCorrupted,
    UnknownLicenseKey,
    WrongPassword,
)
from .license import License
from .wire.claims import Kind
from .wire.times import format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from ._http import Response
    from .client import LicenseClient

__all__ = [
    "ACTIVATION_ERRORS",
    "REFUSALS",
    "activate",
    "check_activation_input",
    "client_facts",
    "credentials",
    "error_field",
    "error_of",
    "nonce",
    "raise_activation_error",
    "retry_at",
    "save_activation",
]

#: Refusal codes the server signs (with a receipt) → the error raised; stored
#: by the client so that going offline cannot undo them.
REFUSALS: dict[str, type[LicenseError]] = {
    "license_revoked": LicenseRevoked,
    "license_suspended": LicenseSuspended,
    "license_expired": LicenseExpired,
    "activation_removed": NotActivated,
    "activation_moved": ActivationMoved,  # roll-over (_seats.py)
}
#: Activation refusal codes → the error raised.
ACTIVATION_ERRORS: dict[str, type[ActivationError]] = {
    "unknown_license_key": UnknownLicenseKey,
    "wrong_password": WrongPassword,
    "password_reset_required": WrongPassword,
    "no_seats_left": NoSeatsLeft,
    "consent_required": ConsentRequired,
}

_LICENSE_KEY = re.compile(r"[A-Za-z0-9 -]{4,64}")
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


# --------------------------------------------------------------------------- shared


def nonce() -> str:
    """A fresh request nonce (24 random bytes, base64url: 32 characters)."""
    import secrets  # lazy: not needed by an offline check()

    return secrets.token_urlsafe(24)


def error_of(answer: Response) -> tuple[str, str]:
    """``(code, message)`` of an error answer; ``"http_error"`` when it has no JSON error."""
    error = answer.body.get("error")
    if isinstance(error, dict):
        code, message = error.get("code"), error.get("message")
        if isinstance(code, str):
            return code, str(message or code)
    return "http_error", f"The license server answered with HTTP {answer.status}."


def error_field(answer: Response, name: str) -> object:
    """A field of the answer's ``{"error": {...}}`` object, or None."""
    error = answer.body.get("error")
    return error.get(name) if isinstance(error, dict) else None


def retry_at(answer: Response, now: datetime) -> datetime | None:
    """When to retry: the error's ``retry_at`` (RFC 3339, the server's time, e.g. a
    lease's end), else ``Retry-After`` seconds after ``now`` (aware UTC), else None."""
    raw = error_field(answer, "retry_at")
    if isinstance(raw, str):
        with contextlib.suppress(ValueError):
            return parse_rfc3339(raw)
    header = answer.headers.get("retry-after", "")
    if header.isdigit():
        return (now + timedelta(seconds=int(header))).replace(microsecond=0)
    return None


def credentials(data: Mapping[str, Any], message: str | None = None) -> tuple[str, str]:
    """The stored ``(activation_id, activation_secret)``.

    Raises:
        NotActivated: there are none (``message``, or the default message).
    """
    activation_id = data.get("activation_id")
    secret = data.get("activation_secret")
    if not isinstance(activation_id, str) or not isinstance(secret, str):
        raise NotActivated(message) if message else NotActivated()
    return activation_id, secret


def client_facts() -> dict[str, str]:
    """The client facts an activation sends: SDK version, OS name, Python version."""
    import platform  # lazy: only when activating

    return {
        "sdk_version": __version__,
        "os": platform.system() or "unknown",
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------- activation


def check_activation_input(
    license_key: object, email: object, registration: object, consent: bool
) -> str:
    """Check what the end user typed before anything is sent; returns the stripped key.

    Raises:
        UnknownLicenseKey: no key, or not the shape of a license key.
        ConsentRequired: personal data without consent.
        ActivationError: an email address or registration details that cannot be right.
    """
    if not isinstance(license_key, str) or not license_key.strip():
        raise UnknownLicenseKey("Enter a license key.")
    key = license_key.strip()
    if not _LICENSE_KEY.fullmatch(key):
        raise UnknownLicenseKey(
            "This is not a valid license key: it has letters, digits and dashes, as on your "
            "purchase confirmation. Check it and type it again."
        )
    if (email is not None or registration is not None) and not consent:
        raise ConsentRequired(
            "Personal data (email, registration details) is sent only with the end "
            "user's consent: pass consent=True once they agreed."
        )
    if email is not None and (
        not isinstance(email, str) or len(email) > 254 or not _EMAIL.fullmatch(email)
    ):
        raise ActivationError("The email address looks wrong: check it and try again.")
    if registration is not None and not (
        isinstance(registration, Mapping) and len(registration) <= 16 and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256
            for k, v in registration.items())
    ):
        raise ActivationError(
            "The registration details must be at most 16 short text fields "
            "(names up to 64 characters, values up to 256)."
        )
    return key


def activate(client: LicenseClient, license_key: str, *, password: str | None,
             email: str | None, registration: Mapping[str, str] | None,
             consent: bool) -> License:
    """See :meth:`LicenseClient.activate` (arguments and errors)."""
    from . import _seats, _terms

    license_key = check_activation_input(license_key, email, registration, consent)
    if client.server_url is None:
        raise NetworkError("No license server is configured: use install_token() "
                           "or the offline activation flow.")
    key_hash = hashlib.sha256(f"{client.product}\0{license_key}".encode()).hexdigest()
    idempotency_key = _pending_idempotency_key(client, key_hash)
    sent_nonce = nonce()
    body: dict[str, Any] = {
        "product": client.product,
        "license_key": license_key,
        "fingerprint": client._fingerprint().to_wire(),
        "consent": bool(consent),
        "nonce": sent_nonce,
        "idempotency_key": idempotency_key,
        "client": client_facts(),
    }
    if password is not None:
        body["password"] = password
    if email is not None:
        body["email"] = email
    if registration is not None:
        body["registration"] = dict(registration)
    replaces = _terms.replaces_body(client)  # trial to paid: released once this succeeds
    if replaces is not None:
        body["replaces"] = replaces
    installation = _seats.installation_id(client)  # tells user seats apart (_seats.py)
    body["installation_id"] = installation
    with client._lock:
        answer = client._make_transport().request(
            "POST", "/v1/activations", json_body=body, retry=True
        )
        if answer.status not in (200, 201):
            raise_activation_error(client, answer, password=password)
        lic = save_activation(client, answer, sent_nonce, installation_id=installation)
        if lic.is_floating:  # activating took a floating lease: keep it renewed
            client._lease.want(lic.lease_expires_at)
        if replaces is not None:  # cache the settings carried over from the trial
            with contextlib.suppress(LicenseError):
                _ = client.settings
        return client._apply_grace(client._now(), lic)


def save_activation(client: LicenseClient, answer: Response, sent_nonce: str, *,
                    kind: Kind | None = None, **extra: str) -> License:
    """Verify a successful activation (or trial) answer and make it the stored license.

    The store is replaced by the token, the activation id and secret, the
    activation time and ``extra`` fields; the token's ``iat`` (the server's
    signed time) becomes the clock mark. ``kind``: the license kind the
    request asked for (a trial), checked before anything is stored.

    Raises:
        ServerError: the answer lacks the activation id or secret, or is not
            of ``kind``.
        InvalidToken, WrongProduct, WrongMachine: the token is not for this
            request, product or machine.
        StoreError: it could not be stored.
    """
    activation_id = answer.body.get("activation_id")
    secret = answer.body.get("activation_secret")
    if not isinstance(activation_id, str) or not isinstance(secret, str):
        raise ServerError("The license server's answer is incomplete.")
    lic = client._accept_token(answer.body.get("token"), sent_nonce)
    if lic.activation_id != activation_id:
        raise InvalidToken()
    if kind is not None and lic.kind is not kind:
        raise ServerError(f"The license server's answer is not a {kind.value} of this product.")
    token: str = answer.body["token"]
    client._trust_server_time(lic)

    def save(data: dict[str, Any]) -> None:
        data.clear()
        data.update({
            "token": token,
            "activation_id": activation_id,
            "activation_secret": secret,
            "activated_at": format_rfc3339(client._now()),
            "clock_high_water": format_rfc3339(lic.issued_at),
            **extra,
        })
    client._update(save)
    client._verified = (token, lic)
    return lic


def _pending_idempotency_key(client: LicenseClient, key_hash: str) -> str:
    """The idempotency key of an unfinished activation of this license key, or a new one."""
    try:
        data = client._read()
    except StoreCorrupted:
        data = {}
    pending = data.get("pending_activation")
    if isinstance(pending, dict) and pending.get("key_hash") == key_hash:
        existing = pending.get("idempotency_key")
        if isinstance(existing, str):
            return existing
    new_key = nonce()  # 24 random bytes, like a nonce
    client._update(lambda d: d.__setitem__(
        "pending_activation", {"key_hash": key_hash, "idempotency_key": new_key}
    ))
    return new_key


def raise_activation_error(client: LicenseClient, answer: Response, *,
                           password: str | None = "") -> NoReturn:
    """Raise the error an activation (or trial, or renewal) refusal means.

    ``password`` is what was sent (None: no password, so ``wrong_password``
    means one is needed).

    Raises:
        ActivationError: a subclass for each refusal (ActivationLocked with
            ``retry_after`` for too many attempts).
        LicenseRevoked, LicenseSuspended, LicenseExpired, NotActivated: the license.
        ServerError: anything else.
    """
    from . import _seats

    code, message = error_of(answer)
    if code == "wrong_password" and password is None:
        raise WrongPassword("This license needs an activation password: enter it and "
                            "try again.")
    seat_refusal = _seats.seat_error(client, answer, code, message)
    if seat_refusal is not None:  # no_seats_left, activation_locked, activation_moved
        raise seat_refusal
    if answer.status == 429 or code == "rate_limited":
        when = retry_at(answer, client._now())
        raise ActivationLocked(
            "Too many activation attempts. Try again"
            + (f" after {format_rfc3339(when)}." if when else " later."),
            retry_after=when,
        )
    error = ACTIVATION_ERRORS.get(code) or REFUSALS.get(code)
    if error is not None:
        raise error(message)
    raise ServerError(f"The license server refused the activation: {message}")
