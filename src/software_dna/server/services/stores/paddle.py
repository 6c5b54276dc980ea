"""Paddle Billing: ``Paddle-Signature: ts=...;h1=...`` verified; notifications normalised.

The signature is hex HMAC-SHA256 over ``"<ts>:<raw body>"`` with the
notification destination's secret key; during a secret rotation Paddle sends
several ``h1`` values and any one may match. Timestamps more than 300 s from
the server's clock are refused. Paddle's payloads carry no test-mode flag: the
sandbox has its own destination and secret, so the connector whose secret
verifies says which mode an event belongs to.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from software_dna.server.services.stores.events import (
    TOLERANCE,
    NormalEvent,
    bad_signature,
    email_of,
    header,
    hmac_hex,
    link_of,
    obj,
    parse_json,
    rfc3339,
    text,
    unknown_event,
)

__all__ = ["EVENTS", "normalise", "verify"]

#: The notification types handled (anything else is refused with ``unknown_event``).
EVENTS = (
    "transaction.completed",
    "transaction.payment_failed",
    "subscription.past_due",
    "subscription.updated",
    "subscription.canceled",
    "adjustment.created",
    "adjustment.updated",
)
#: Transaction origins that are a new sale (the others are renewals and changes).
_NEW_SALE = ("web", "api")


def verify(body: bytes, headers: Mapping[str, str], secret: str, now: datetime) -> None:
    """Check ``Paddle-Signature`` over ``ts:body`` with ``secret``.

    Raises:
        ServiceError: 400 ``invalid_signature`` (missing, malformed, no
        matching ``h1``, or ``ts`` more than 300 s from ``now``).
    """
    value = header(headers, "paddle-signature")
    if not value or len(value) > 2000:
        raise bad_signature("no Paddle-Signature header")
    stamp: str | None = None
    macs: list[str] = []
    for part in value.split(";"):
        name, _, field = part.strip().partition("=")
        if name == "ts":
            stamp = field
        elif name == "h1":
            macs.append(field)
    if stamp is None or not stamp.isdigit() or len(stamp) > 12 or not macs:
        raise bad_signature("Paddle-Signature is malformed")
    expected = hmac_hex(secret, stamp.encode("ascii") + b":" + body)
    if not any(hmac.compare_digest(expected.encode(), m.encode("utf-8", "replace"))
               for m in macs):
        raise bad_signature("Paddle-Signature does not match")
    if abs(now.timestamp() - int(stamp)) > TOLERANCE:
        raise bad_signature("timestamp outside the tolerance")


def _prices(items: Any) -> tuple[str, ...]:
    found: list[str] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        price = item.get("price")
        ref = price.get("id") if isinstance(price, dict) else item.get("price_id")
        if isinstance(ref, str) and 0 < len(ref) <= 200:
            found.append(ref)
    return tuple(found)


def _email(data: dict[str, Any]) -> str | None:
    customer = data.get("customer")
    found = email_of(customer.get("email")) if isinstance(customer, dict) else None
    custom = data.get("custom_data")
    if found is None and isinstance(custom, dict):
        found = email_of(custom.get("email"))
    return found


def _period_end(data: dict[str, Any], key: str) -> datetime | None:
    period = data.get(key)
    if isinstance(period, dict):
        return rfc3339(period.get("ends_at"), f"{key}.ends_at", required=False)
    return None


def normalise(body: bytes) -> NormalEvent:
    """The verified notification as a :class:`NormalEvent`.

    Raises:
        ServiceError: 400 ``unknown_event``, 400 ``invalid_request``.
    """
    doc = parse_json(body)
    event_type = doc.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENTS:
        raise unknown_event(event_type if isinstance(event_type, str) else "")
    event_id = text(doc.get("event_id"), "event_id")
    assert event_id is not None
    occurred_at = rfc3339(doc.get("occurred_at"), "occurred_at")
    assert occurred_at is not None
    data = obj(doc.get("data"), "data")
    kind = "ignored"
    sub_ref = text(data.get("subscription_id"), "subscription_id", required=False)
    prices: tuple[str, ...] = ()
    period_end: datetime | None = None
    billing_url: str | None = None
    if event_type.startswith("transaction."):
        txn = text(data.get("id"), "transaction id")
        order_ref = sub_ref or txn
        prices = _prices(data.get("items"))
        period_end = _period_end(data, "billing_period")
        if event_type == "transaction.completed":
            kind = "purchase" if data.get("origin") in _NEW_SALE else "renewed"
        else:
            kind = "payment_failed"
    elif event_type.startswith("subscription."):
        sub_ref = text(data.get("id"), "subscription id")
        order_ref = sub_ref
        prices = _prices(data.get("items"))
        period_end = _period_end(data, "current_billing_period")
        urls = data.get("management_urls")
        billing_url = link_of(urls.get("update_payment_method")) if isinstance(urls, dict) \
            else None
        status = data.get("status")
        scheduled = data.get("scheduled_change")
        if event_type == "subscription.canceled":
            kind = "ended"
        elif event_type == "subscription.past_due":
            kind = "payment_failed"
        elif isinstance(scheduled, dict) and scheduled.get("action") == "cancel":
            kind = "cancelled"
        elif status == "active":
            kind = "payment_recovered"
    else:  # adjustment.created / adjustment.updated
        order_ref = sub_ref or text(data.get("transaction_id"), "transaction_id")
        if data.get("status") == "approved":
            action = data.get("action")
            kind = {"refund": "refunded", "chargeback": "disputed"}.get(
                action if isinstance(action, str) else "", "ignored")
    return NormalEvent(event_id=event_id, event_type=event_type, kind=kind,
                       order_ref=order_ref, subscription_ref=sub_ref, price_refs=prices,
                       email=_email(data), occurred_at=occurred_at, period_end=period_end,
                       test_mode=None, billing_url=billing_url)
