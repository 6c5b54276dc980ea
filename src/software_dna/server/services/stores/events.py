"""A provider's event in the one shape the effects understand, and the parsing helpers.

Each provider module (``stripe``, ``paddle``, ``lemonsqueezy``) verifies a
delivery's signature and turns the verified body into a :class:`NormalEvent`;
:mod:`.effects` applies it. Nothing here touches the database.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code
from software_dna.wire.times import parse_rfc3339

__all__ = [
    "KINDS",
    "TOLERANCE",
    "NormalEvent",
    "bad_signature",
    "email_of",
    "epoch",
    "header",
    "hmac_hex",
    "link_of",
    "malformed",
    "obj",
    "parse_json",
    "rfc3339",
    "text",
    "unknown_event",
]

#: Seconds a signed delivery's timestamp may lie behind (or ahead of) the server's clock.
TOLERANCE = 300

#: What an event can mean for a license (``ignored``: a known event with nothing to do).
KINDS = ("purchase", "renewed", "payment_failed", "payment_recovered", "refunded",
         "disputed", "cancelled", "ended", "ignored")

#: Longest reference (order, subscription, price, event id) accepted: the columns' size.
MAX_REF = 200


@dataclass(frozen=True)
class NormalEvent:
    """One provider event, provider-neutral.

    Attributes:
        event_id: the provider's event id (unique per connector).
        event_type: the provider's event name (e.g. ``invoice.paid``).
        kind: one of :data:`KINDS`.
        order_ref: the sale the event belongs to (a subscription's id for
            subscriptions, so that every event of it finds the one license).
        subscription_ref: the provider's subscription id, if any.
        price_refs: price (Stripe, Paddle) or variant (Lemon Squeezy) ids sold.
        email: the buyer's address, if the event carries it (only this is kept).
        occurred_at: the provider's time of the event (aware UTC).
        period_end: the end of the paid period, if known (aware UTC).
        test_mode: the provider's test-mode flag; None when the payload has
            none (Paddle: the sandbox is told apart by its own secret).
        billing_url: where the buyer updates the payment (a failed payment's
            notice links it), if the event carries one.
    """

    event_id: str
    event_type: str
    kind: str
    order_ref: str | None
    subscription_ref: str | None
    price_refs: tuple[str, ...]
    email: str | None
    occurred_at: datetime
    period_end: datetime | None
    test_mode: bool | None
    billing_url: str | None = None


def link_of(value: object) -> str | None:
    """A URL the provider gave for the buyer (a string of at most 2000 characters), else
    None; the mail checks it further (https, printable)."""
    return value if isinstance(value, str) and 0 < len(value) <= 2000 else None


def bad_signature(reason: str) -> ServiceError:
    """400 ``invalid_signature`` (no detail of which secret or what was expected)."""
    return ServiceError(Code.INVALID_SIGNATURE, f"The webhook signature is not valid: {reason}.")


def unknown_event(name: str) -> ServiceError:
    """400 ``unknown_event``: an event type this server does not handle."""
    shown = name[:100] if name.isprintable() else "?"
    return ServiceError(Code.UNKNOWN_EVENT, f"Event type {shown!r} is not handled here; "
                        "select only the documented events.")


def malformed(what: str) -> ServiceError:
    """400 ``invalid_request`` for a signed body that lacks what the event needs."""
    return ServiceError(Code.INVALID_REQUEST, f"Malformed webhook body: {what}.")


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header by name (``headers`` keys lower-case)."""
    return headers.get(name.lower())


def hmac_hex(secret: str, message: bytes) -> str:
    """Hex HMAC-SHA256 of ``message`` under ``secret`` (UTF-8)."""
    return hmac.new(secret.encode("utf-8"), message, "sha256").hexdigest()


def parse_json(body: bytes) -> dict[str, Any]:
    """The verified body as a JSON object; raises ``malformed`` otherwise."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise malformed("not JSON") from None
    if not isinstance(value, dict):
        raise malformed("not a JSON object")
    return value


def text(value: Any, what: str, *, required: bool = True) -> str | None:
    """A non-empty string (numbers become text, as Lemon Squeezy sends ids) or None."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_REF and value.isprintable():
        return str(value)
    if value is None and not required:
        return None
    raise malformed(f"{what} missing or not a short string")


def epoch(value: Any, what: str) -> datetime:
    """A Unix time in seconds as an aware UTC datetime."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**33:
        raise malformed(f"{what} is not a Unix time")
    return datetime.fromtimestamp(value, timezone.utc)


def rfc3339(value: Any, what: str, *, required: bool = True) -> datetime | None:
    """An RFC 3339 time (fractions allowed) as an aware UTC datetime, or None."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise malformed(f"{what} is not a time")
    try:
        return parse_rfc3339(value)
    except ValueError:
        pass
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise malformed(f"{what} is not a time") from None
    if parsed.tzinfo is None:
        raise malformed(f"{what} has no time zone")
    return parsed.astimezone(timezone.utc)


def obj(value: Any, what: str) -> dict[str, Any]:
    """A JSON object, or ``malformed``."""
    if not isinstance(value, dict):
        raise malformed(f"{what} is not an object")
    return value


def email_of(value: Any) -> str | None:
    """A plausible email address (kept as given, trimmed), or None."""
    if not isinstance(value, str):
        return None
    found = value.strip()
    if not 3 <= len(found) <= 254 or "@" not in found or not found.isprintable():
        return None
    return found
