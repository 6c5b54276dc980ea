"""The client side of air-gapped activation (the block format is :mod:`software_dna.wire.airgap`).

Called by LicenseClient's methods of the same names (the client holds the lock).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _protocol
from .errors import (
    ActivationError,
    ClockTampered,
    InvalidToken,
    LicenseExpired,
    NotActivated,
    WrongProduct,
)
from .license import License
from .wire.airgap import (
    MAX_PENDING_REQUESTS,
    REQUEST_LIFETIME,
    ArmorError,
    build_deactivation_receipt,
    build_request,
    parse_response,
)
from .wire.times import CLOCK_SKEW, format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from .client import LicenseClient


def _pending(data: Mapping[str, Any], now: datetime) -> list[dict[str, str]]:
    """The machine's unanswered requests that are still fresh, oldest first."""
    kept: list[dict[str, str]] = []
    entries = data.get("offline_requests")
    for entry in entries if isinstance(entries, list) else []:
        try:
            created = parse_rfc3339(entry.get("created_at"))
        except (AttributeError, ValueError):
            continue
        if isinstance(entry.get("nonce"), str) and now - created <= REQUEST_LIFETIME:
            kept.append({"nonce": entry["nonce"], "created_at": entry["created_at"]})
    return kept


def create_activation_request(client: LicenseClient, license_key: str, *,
                              password: str | None, email: str | None,
                              registration: Mapping[str, str] | None, consent: bool) -> str:
    """See :meth:`LicenseClient.create_activation_request`."""
    now = client._now()
    nonce = _protocol.nonce()
    try:
        text = build_request(
            product=client.product, license_key=license_key.strip(),
            fingerprint=client._fingerprint().to_wire(), nonce=nonce, created_at=now,
            consent=consent, password=password, email=email, registration=registration,
            client=_protocol.client_facts(),
        )
    except ValueError:
        raise ActivationError("The activation request would be too large: shorten the "
                              "registration details.") from None

    def remember(data: dict[str, Any]) -> None:
        pending = _pending(data, now)
        pending.append({"nonce": nonce, "created_at": format_rfc3339(now)})
        data["offline_requests"] = pending[-MAX_PENDING_REQUESTS:]
    client._update(remember)
    return text


def activate_offline(client: LicenseClient, response_text: str) -> License:
    """See :meth:`LicenseClient.activate_offline`."""
    try:
        doc = parse_response(response_text)
    except ArmorError as exc:
        raise InvalidToken(str(exc)) from None
    if doc.product != client.product:
        raise WrongProduct(f"This activation response is for the product {doc.product!r}, "
                           f"not {client.product!r}.")
    lic = client._verify(doc.token)  # kid, signature, product
    if lic.activation_id != doc.activation_id or not secrets.compare_digest(lic.nonce, doc.nonce):
        raise InvalidToken("This activation response is not valid (its parts do not match).")
    client._check_machine(lic)
    now = client._now()
    data = client._read()
    entries = data.get("offline_requests")
    entry = next((e for e in (entries if isinstance(entries, list) else [])
                  if isinstance(e, dict) and e.get("nonce") == lic.nonce), None)
    if entry is None:
        raise InvalidToken(
            "This activation response answers a request this computer did not make, or one "
            "already used or more than 30 days old. Create a new activation request on this "
            "computer and get a response for it.")
    try:
        created: datetime | None = parse_rfc3339(entry.get("created_at"))
    except ValueError:
        created = None
    if created is None or now - created > REQUEST_LIFETIME \
            or now - lic.issued_at > REQUEST_LIFETIME:
        raise InvalidToken(
            "This activation response is too old: its request was made more than 30 days "
            "ago. Create a new activation request and get a response for it.")
    if now + CLOCK_SKEW < lic.not_before:
        raise ClockTampered(
            "This computer's clock is behind the time the activation response was made "
            f"({format_rfc3339(lic.not_before)}). Set the clock to the correct time and "
            "try again.")
    for end in (lic.license_expires_at, lic.expires_at):
        if end is not None and now >= end:
            raise LicenseExpired(f"This license expired on {format_rfc3339(end)}.")
    # As for any token installed out of band: the clock not set back, nothing older
    # than what this machine has seen, no refusal seen online undone.
    client._check_not_rolled_back(now, lic)
    high = data.get("clock_high_water")
    try:
        high_water = max(now, parse_rfc3339(high)) if isinstance(high, str) else now
    except ValueError:
        high_water = now

    def save(stored: dict[str, Any]) -> None:
        pending = [e for e in _pending(stored, now) if e["nonce"] != lic.nonce]
        settings = stored.get("settings")
        stored.clear()
        stored.update({
            "token": doc.token, "activation_id": doc.activation_id,
            "activation_secret": doc.activation_secret, "activated_at": format_rfc3339(now),
            "activated_offline": True, "clock_high_water": format_rfc3339(high_water),
        })
        if pending:
            stored["offline_requests"] = pending
        if isinstance(settings, dict):
            stored["settings"] = settings
    client._update(save)
    return lic


def deactivate_offline(client: LicenseClient) -> str:
    """See :meth:`LicenseClient.deactivate_offline`."""
    data = client._read()
    earlier = data.get("offline_deactivation")
    activation_id, secret = data.get("activation_id"), data.get("activation_secret")
    if not isinstance(activation_id, str) or not isinstance(secret, str):
        if isinstance(earlier, dict) and isinstance(earlier.get("receipt"), str):
            return str(earlier["receipt"])  # asked again: the same receipt
        raise NotActivated("This computer has no activation to deactivate.")
    now = client._now()
    text = build_deactivation_receipt(product=client.product, activation_id=activation_id,
                                      activation_secret=secret, nonce=_protocol.nonce(), now=now)

    def forget(stored: dict[str, Any]) -> None:
        stored.clear()
        stored["offline_deactivation"] = {"activation_id": activation_id, "receipt": text,
                                          "created_at": format_rfc3339(now)}
    client._update(forget)
    return text
