"""The client side of trials, renewal and subscriptions (used by :class:`LicenseClient`).

- :func:`start_trial`: ``POST /v1/trials``; the answer is stored like an activation.
- :func:`renew`: ``POST /v1/activations/{id}/renewal`` with a renewal code; the
  fresh token (new ``license_expires_at``) replaces the stored one.
- :func:`replaces_body`: the ``replaces`` field of an activation made on a
  machine whose stored license is a trial, evaluation or test code: the
  server releases that activation once the new one succeeded and carries its
  settings over. Nothing stored changes before the new activation succeeded.
- A cancelled subscription (refusal ``subscription_cancelled``): the app keeps
  working until its current token ends -- the warning period of protection
  ``mandatory`` -- with :attr:`License.subscription_ends_at` set, then stops
  with :class:`~software_dna.errors.LicenseSuspended`. :func:`cancel_status`
  builds the stored status, :func:`cancelled_license` applies it.

See docs/trials.md and docs/licenses.md.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _protocol
from .errors import (
    LicenseError,
    LicenseRevoked,
    LicenseSuspended,
    NetworkError,
    NotActivated,
    RenewalRefused,
    ServerError,
    StoreCorrupted,
    TrialUnavailable,
)
from .license import License
from .wire.claims import Kind
from .wire.times import format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from .client import LicenseClient

__all__ = [
    "CANCELLED",
    "cancel_status",
    "cancel_window_end",
    "cancelled_license",
    "expired_message",
    "renew",
    "replaces_body",
    "start_trial",
]

#: The server's refusal code for a cancelled subscription.
CANCELLED = "subscription_cancelled"
_RENEWAL_ERRORS = ("unknown_renewal_code", "renewal_code_used", "renewal_not_applicable")
_TRIAL_ERRORS = ("trial_used", "trial_not_available")


def expired_message(lic: License, ended: datetime) -> str:
    """What the end user reads when the license ended at ``ended`` (by its kind)."""
    when = format_rfc3339(ended)
    if lic.kind is Kind.TRIAL:
        return f"The trial ended on {when}. Buy a license to keep using the product."
    if lic.kind is Kind.EVALUATION:
        return (f"The evaluation period ended on {when}. Buy a license to keep using "
                "the product.")
    if lic.kind is Kind.TEST:
        return f"This test code expired on {when}. Ask the vendor for a new one."
    return f"The license expired on {when}. Renew it to keep using the product."


# ------------------------------------------------------------ cancelled subscriptions


def cancel_status(stored: License | None, message: str, now: datetime) -> dict[str, Any]:
    """The status to store for a cancelled subscription.

    ``until`` is the end of the stored token (``exp``): the warning period the
    app still has. Without a usable token the app stops at once.
    """
    until = stored.expires_at if stored is not None else None
    status: dict[str, Any] = {"code": CANCELLED, "message": message,
                              "seen_at": format_rfc3339(now)}
    if until is not None and until > now:
        status["until"] = format_rfc3339(until)
    return status


def cancel_window_end(status: object, now: datetime) -> datetime | None:
    """When a stored cancelled-subscription status still lets the app run: its end.

    Returns None for any other status.

    Raises:
        LicenseSuspended: a cancelled subscription whose warning period ended.
    """
    if not isinstance(status, dict) or status.get("code") != CANCELLED:
        return None
    try:
        until = parse_rfc3339(status.get("until"))
    except ValueError:
        until = None
    if until is None or now >= until:
        raise LicenseSuspended(str(status.get("message") or "The subscription was cancelled."))
    return until


def cancelled_license(lic: License, until: datetime) -> License:
    """``lic`` during the warning period of a cancelled subscription."""
    return lic._replace(subscription_ends_at=until, offline_grace_ends_at=None)


# ------------------------------------------------------------ trial to paid


def replaces_body(client: LicenseClient) -> dict[str, str] | None:
    """The stored trial / evaluation / test activation a new activation replaces, or None.

    Settings changed offline and not sent yet are sent first (best effort), so
    that the server can carry them over to the new license.
    """
    try:
        data = client._read()
    except (StoreCorrupted, LicenseError):
        return None
    lic = client._stored_license(data)
    activation_id, secret = data.get("activation_id"), data.get("activation_secret")
    if lic is None or lic.kind is Kind.FULL or not isinstance(activation_id, str) \
            or not isinstance(secret, str) or lic.activation_id != activation_id:
        return None
    if data.get("settings_dirty"):
        with contextlib.suppress(LicenseError):
            client._push_settings(data.get("settings") or {})
    return {"activation_id": activation_id, "activation_secret": secret}


# ------------------------------------------------------------ trial


def start_trial(client: LicenseClient) -> License:
    """See :meth:`LicenseClient.start_trial`."""
    if client.server_url is None:
        raise NetworkError("No license server is configured: a trial is started online.")
    with client._lock:
        try:
            data = client._read()
        except StoreCorrupted:
            data = {}
        if isinstance(data.get("token"), str):
            try:
                current: License | None = client._check(force_online=False)
            except LicenseError:
                current = None  # ended, refused, unreadable: ask the server
            if current is not None and current.kind is Kind.TRIAL:
                return current
            if current is not None:
                raise TrialUnavailable("This computer already has a license for this product.")
        nonce = _protocol.nonce()
        answer = client._make_transport().request("POST", "/v1/trials", json_body={
            "product": client.product, "fingerprint": client._fingerprint().to_wire(),
            "nonce": nonce, "client": _protocol.client_facts(),
        }, retry=True)
        if answer.status not in (200, 201):
            code, message = _protocol.error_of(answer)
            if code in _TRIAL_ERRORS:
                raise TrialUnavailable(message)
            _protocol.raise_activation_error(client, answer)
        lic = _protocol.save_activation(client, answer, nonce, kind=Kind.TRIAL)
        return client._apply_grace(client._now(), lic)


# ------------------------------------------------------------ renewal


def renew(client: LicenseClient, code: str) -> License:
    """See :meth:`LicenseClient.renew`."""
    if not isinstance(code, str) or not code.strip():
        raise RenewalRefused("Enter a renewal code.")
    if client.server_url is None:
        raise NetworkError("No license server is configured: a renewal code is entered online.")
    with client._lock:
        data = client._read()
        activation_id, secret = _protocol.credentials(
            data, "Activate this product before entering a renewal code.")
        nonce = _protocol.nonce()
        answer = client._make_transport().request(
            "POST", f"/v1/activations/{activation_id}/renewal",
            json_body={"code": code.strip(), "nonce": nonce}, bearer=secret, retry=True,
        )
        if answer.status == 200:
            lic = client._accept_token(answer.body.get("token"), nonce)
            client._store_token(answer.body["token"], lic)
            client._last_failed_refresh = None
            return client._apply_grace(client._now(), lic)
        error_code, message = _protocol.error_of(answer)
        if error_code in _RENEWAL_ERRORS:
            raise RenewalRefused(message)
        error = answer.body.get("error")
        receipt = error.get("receipt") if isinstance(error, dict) else None
        refusal: type[LicenseError] | None = {
            "license_revoked": LicenseRevoked, "license_suspended": LicenseSuspended,
            CANCELLED: LicenseSuspended, "activation_removed": NotActivated,
        }.get(error_code)
        if refusal is not None and client._receipt_ok(receipt, nonce, activation_id):
            if error_code != CANCELLED:
                client._store_refusal(error_code, message, receipt=receipt)
            raise refusal(message)
        if error_code == "unauthorized":
            raise NotActivated("The license server does not recognise this activation. "
                               "Activate again with your license key.")
        if answer.status == 429:
            _protocol.raise_activation_error(client, answer)
        raise ServerError(f"The license server refused the renewal: {message}")
