"""Stripe: ``Stripe-Signature`` verified by the official library; events normalised.

Verification is :func:`stripe.WebhookSignature.verify_header` (``t=...,v1=...``,
HMAC-SHA256 over ``"<t>.<raw body>"`` with the endpoint's ``whsec_`` secret,
timestamps older than 300 s refused). Both the classic payload shapes and the
2025 API versions' (``parent.subscription_details``, ``pricing.price_details``,
per-item ``current_period_end``) are read. See docs/commerce.md, "Stores".
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import stripe as stripe_lib

from software_dna.server.services.stores.events import (
    TOLERANCE,
    NormalEvent,
    bad_signature,
    email_of,
    epoch,
    header,
    link_of,
    malformed,
    obj,
    parse_json,
    text,
    unknown_event,
)

__all__ = ["EVENTS", "normalise", "verify"]

#: The event types handled (anything else is refused with ``unknown_event``).
EVENTS = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "charge.refunded",
    "charge.dispute.created",
)


def verify(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> None:
    """Check ``Stripe-Signature`` over the raw body with ``secret``.

    Raises:
        ServiceError: 400 ``invalid_signature`` (missing, wrong, or older than
        300 s; a timestamp more than 300 s ahead of ``now`` too).
    """
    value = header(headers, "stripe-signature")
    if not value:
        raise bad_signature("no Stripe-Signature header")
    try:
        stripe_lib.WebhookSignature.verify_header(body, value, secret, tolerance=TOLERANCE)
    except stripe_lib.SignatureVerificationError:
        raise bad_signature("Stripe-Signature does not match (or is too old)") from None
    except (ValueError, UnicodeDecodeError):
        raise bad_signature("Stripe-Signature is malformed") from None
    stamps = [part[2:] for part in value.split(",") if part.startswith("t=")]
    if stamps and stamps[0].isdigit() and int(stamps[0]) > now.timestamp() + TOLERANCE:
        raise bad_signature("timestamp in the future")


def _prices(lines: Any) -> tuple[str, ...]:
    found: list[str] = []
    data = lines.get("data") if isinstance(lines, dict) else None
    for line in data if isinstance(data, list) else []:
        if not isinstance(line, dict):
            continue
        price = line.get("price")
        ref = price.get("id") if isinstance(price, dict) else price
        pricing = line.get("pricing")
        if ref is None and isinstance(pricing, dict):
            details = pricing.get("price_details")
            ref = details.get("price") if isinstance(details, dict) else None
        if isinstance(ref, str) and ref and len(ref) <= 200:
            found.append(ref)
    return tuple(found)


def _invoice_subscription(invoice: dict[str, Any]) -> str | None:
    sub = invoice.get("subscription")
    parent = invoice.get("parent")
    if sub is None and isinstance(parent, dict):
        details = parent.get("subscription_details")
        sub = details.get("subscription") if isinstance(details, dict) else None
    if isinstance(sub, dict):
        sub = sub.get("id")
    return text(sub, "invoice subscription", required=False)


def _invoice_period_end(invoice: dict[str, Any]) -> datetime | None:
    lines = invoice.get("lines")
    data = lines.get("data") if isinstance(lines, dict) else None
    ends = [line["period"]["end"] for line in data if isinstance(line, dict)
            and isinstance(line.get("period"), dict)
            and isinstance(line["period"].get("end"), int)] if isinstance(data, list) else []
    return epoch(max(ends), "period end") if ends else None


def _subscription_period_end(sub: dict[str, Any]) -> datetime | None:
    end = sub.get("current_period_end")
    if end is None:
        items = sub.get("items")
        data = items.get("data") if isinstance(items, dict) else None
        ends: list[int] = [i["current_period_end"] for i in data if isinstance(i, dict)
                           and isinstance(i.get("current_period_end"), int)] \
            if isinstance(data, list) else []
        end = max(ends) if ends else None
    return epoch(end, "current_period_end") if end is not None else None


def _ref(value: Any) -> Any:
    return value.get("id") if isinstance(value, dict) else value


def normalise(body: bytes) -> NormalEvent:
    """The verified event as a :class:`NormalEvent`.

    Raises:
        ServiceError: 400 ``unknown_event`` (a type not in :data:`EVENTS`),
        400 ``invalid_request`` (a field the event needs is missing).
    """
    doc = parse_json(body)
    event_type = doc.get("type")
    if not isinstance(event_type, str) or event_type not in EVENTS:
        raise unknown_event(event_type if isinstance(event_type, str) else "")
    event_id = text(doc.get("id"), "id")
    assert event_id is not None
    occurred_at = epoch(doc.get("created"), "created")
    livemode = doc.get("livemode")
    if not isinstance(livemode, bool):
        raise malformed("livemode missing")
    data = obj(doc.get("data"), "data")
    item = obj(data.get("object"), "data.object")
    kind = "ignored"
    order_ref: str | None = None
    sub_ref: str | None = None
    prices: tuple[str, ...] = ()
    email: str | None = None
    period_end: datetime | None = None
    billing_url: str | None = None
    if event_type.startswith("checkout.session."):
        mode = item.get("mode")
        sub_ref = text(_ref(item.get("subscription")), "subscription", required=False)
        order_ref = sub_ref or text(_ref(item.get("payment_intent")), "payment_intent",
                                    required=False) or text(item.get("id"), "session id")
        details = item.get("customer_details")
        email = email_of(details.get("email") if isinstance(details, dict) else None) \
            or email_of(item.get("customer_email"))
        metadata = item.get("metadata")
        refs = [metadata.get("price_id")] if isinstance(metadata, dict) else []
        refs.append(item.get("payment_link"))
        prices = tuple(r for r in refs if isinstance(r, str) and 0 < len(r) <= 200)
        prices += _prices(item.get("line_items"))
        paid = item.get("payment_status") in ("paid", "no_payment_required")
        kind = "purchase" if paid and mode in ("payment", "subscription") else "ignored"
    elif event_type.startswith("invoice."):
        sub_ref = _invoice_subscription(item)
        order_ref = sub_ref or text(item.get("id"), "invoice id")
        prices = _prices(item.get("lines"))
        email = email_of(item.get("customer_email"))
        period_end = _invoice_period_end(item)
        billing_url = link_of(item.get("hosted_invoice_url"))
        if event_type == "invoice.paid":
            first = item.get("billing_reason") == "subscription_create"
            kind = "purchase" if first else "renewed"
        else:
            kind = "payment_failed"
    elif event_type.startswith("customer.subscription."):
        sub_ref = text(item.get("id"), "subscription id")
        order_ref = sub_ref
        prices = _prices(item.get("items"))
        period_end = _subscription_period_end(item)
        if event_type == "customer.subscription.deleted":
            kind = "ended"
        elif item.get("cancel_at_period_end") is True or item.get("cancel_at") is not None:
            kind = "cancelled"
    elif event_type == "charge.refunded":
        order_ref = text(_ref(item.get("payment_intent")), "payment_intent")
        kind = "refunded" if item.get("refunded") is True else "ignored"  # partial: kept
    else:  # charge.dispute.created
        order_ref = text(_ref(item.get("payment_intent")), "payment_intent")
        kind = "disputed"
    return NormalEvent(event_id=event_id, event_type=event_type, kind=kind,
                       order_ref=order_ref, subscription_ref=sub_ref, price_refs=prices,
                       email=email, occurred_at=occurred_at, period_end=period_end,
                       test_mode=not livemode, billing_url=billing_url)
