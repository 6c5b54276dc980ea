"""Lemon Squeezy: ``X-Signature`` verified; webhook events normalised.

The signature is the hex HMAC-SHA256 of the raw body with the webhook's
signing secret; the event name comes in ``X-Event-Name`` and in
``meta.event_name`` (they must agree), the test-mode flag in
``meta.test_mode``. Lemon Squeezy gives no event id, and the signature
carries no time: an event is identified by its name, its object and the
object's ``updated_at``, so a redelivery is recognised as the same event.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime

from software_dna.server.services.stores.events import (
    NormalEvent,
    bad_signature,
    email_of,
    header,
    hmac_hex,
    link_of,
    malformed,
    obj,
    parse_json,
    rfc3339,
    text,
    unknown_event,
)

__all__ = ["EVENTS", "normalise", "verify"]

#: The event names handled (anything else is refused with ``unknown_event``).
EVENTS = (
    "order_created",
    "order_refunded",
    "subscription_created",
    "subscription_updated",
    "subscription_cancelled",
    "subscription_resumed",
    "subscription_expired",
    "subscription_payment_success",
    "subscription_payment_failed",
    "subscription_payment_recovered",
    "subscription_payment_refunded",
)
_KINDS = {
    "order_created": "purchase",
    "order_refunded": "refunded",
    "subscription_created": "purchase",
    "subscription_cancelled": "cancelled",
    "subscription_resumed": "renewed",
    "subscription_expired": "ended",
    "subscription_payment_failed": "payment_failed",
    "subscription_payment_recovered": "payment_recovered",
    "subscription_payment_refunded": "refunded",
}


def verify(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> None:
    """Check ``X-Signature`` (hex HMAC-SHA256 of the body) with ``secret``.

    ``now`` is unused: the scheme signs no time (replays are caught by the
    event's identity instead).

    Raises:
        ServiceError: 400 ``invalid_signature``.
    """
    del now
    value = header(headers, "x-signature")
    if not value or len(value) > 200:
        raise bad_signature("no X-Signature header")
    if not hmac.compare_digest(hmac_hex(secret, body).encode(),
                               value.strip().lower().encode("utf-8", "replace")):
        raise bad_signature("X-Signature does not match")


def normalise(body: bytes, headers: Mapping[str, str]) -> NormalEvent:
    """The verified event as a :class:`NormalEvent`.

    Raises:
        ServiceError: 400 ``unknown_event``, 400 ``invalid_request``.
    """
    doc = parse_json(body)
    meta = obj(doc.get("meta"), "meta")
    event_type = meta.get("event_name")
    if not isinstance(event_type, str) or event_type not in EVENTS:
        raise unknown_event(event_type if isinstance(event_type, str) else "")
    named = header(headers, "x-event-name")
    if named is not None and named != event_type:
        raise malformed("X-Event-Name and meta.event_name differ")
    test_mode = meta.get("test_mode")
    if not isinstance(test_mode, bool):
        raise malformed("meta.test_mode missing")
    data = obj(doc.get("data"), "data")
    data_type = text(data.get("type"), "data.type")
    object_id = text(data.get("id"), "data.id")
    attrs = obj(data.get("attributes"), "data.attributes")
    updated = rfc3339(attrs.get("updated_at"), "updated_at", required=False) \
        or rfc3339(attrs.get("created_at"), "created_at")
    assert updated is not None and object_id is not None
    kind = _KINDS.get(event_type, "ignored")
    period_end: datetime | None = None
    billing_url: str | None = None
    prices: tuple[str, ...] = ()
    order_ref: str | None
    sub_ref: str | None
    if data_type == "orders":
        order_ref = object_id
        sub_ref = None
        first = attrs.get("first_order_item")
        variant = text(first.get("variant_id"), "variant_id", required=False) \
            if isinstance(first, dict) else None
        prices = (variant,) if variant else ()
        if event_type == "order_created" and attrs.get("status") != "paid":
            kind = "ignored"
    elif data_type == "subscriptions":
        sub_ref = object_id
        order_ref = text(attrs.get("order_id"), "order_id")
        variant = text(attrs.get("variant_id"), "variant_id", required=False)
        prices = (variant,) if variant else ()
        period_end = rfc3339(attrs.get("renews_at"), "renews_at", required=False)
        urls = attrs.get("urls")
        billing_url = link_of(urls.get("update_payment_method")) if isinstance(urls, dict) \
            else None
        if event_type in ("subscription_cancelled", "subscription_expired"):
            period_end = rfc3339(attrs.get("ends_at"), "ends_at", required=False) or period_end
        if event_type == "subscription_updated":
            status = attrs.get("status")
            kind = {"active": "renewed", "past_due": "payment_failed"}.get(
                status if isinstance(status, str) else "", "ignored")
    elif data_type == "subscription-invoices":
        sub_ref = text(attrs.get("subscription_id"), "subscription_id")
        order_ref = None
        if event_type == "subscription_payment_success":
            kind = "renewed" if attrs.get("billing_reason") == "renewal" else "ignored"
    else:
        raise malformed("unexpected data.type")
    return NormalEvent(
        event_id=f"{event_type}:{data_type}:{object_id}:{updated.isoformat()}",
        event_type=event_type, kind=kind, order_ref=order_ref, subscription_ref=sub_ref,
        price_refs=prices, email=email_of(attrs.get("user_email")), occurred_at=updated,
        period_end=period_end, test_mode=test_mode, billing_url=billing_url)
