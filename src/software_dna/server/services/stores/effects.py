"""What a verified store event does to licenses: provider-neutral, applied once.

:func:`apply` runs inside the caller's one database transaction (the existing
license services' commits only release savepoints there, see
:func:`software_dna.server.services.stores.receive_webhook`), so the event's
record, the license change and the e-mail it causes commit together or not at
all. Every change is audited with actor ``store``.

- ``purchase``: the mapping's license is issued once per order; the buyer's
  e-mail (only that) is kept encrypted as an end user (legal basis: the
  contract of sale, not consent: no ``consent_at`` is recorded) and the key is
  mailed (the key exists only now).
- ``renewed`` / ``payment_recovered``: the end moves to the new period end
  plus a day (never earlier), a payment failure is cleared, and a suspension
  for non-payment is lifted (never the vendor's own suspension).
- ``payment_failed``: ``payment_failed_at`` is set and the buyer mailed;
  :func:`suspend_overdue` suspends after the product's ``payment_grace_days``.
- ``refunded`` / ``disputed``: the connector's ``refund_action``.
- ``cancelled`` (at the period end): nothing stops early; the license already
  ends with the paid period. ``ended``: the product's subscription rules
  (``cancel_subscription``: the app works until its token ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from software_dna.server.domain.terms import later_by
from software_dna.server.models import (
    AuditEntry,
    License,
    Product,
    StoreConnector,
    StoreMapping,
    StoreOrder,
)
from software_dna.server.services import emails
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.endusers import is_email_address
from software_dna.server.services.license_terms import cancel_subscription, is_perpetual
from software_dna.server.services.licenses import (
    issue_license,
    resume_license,
    revoke_license,
)
from software_dna.server.services.lookups import get_license
from software_dna.server.services.stores.events import NormalEvent

__all__ = ["ACTOR", "SLACK", "Applied", "apply", "find_order",
           "suspend_overdue", "suspended_for_payment"]

#: The audit log's actor for every change a store event makes.
ACTOR = "store"
#: Added to a paid period's end: a renewal that arrives a little late never stops the app.
SLACK = timedelta(days=1)
#: A subscription's term when neither the provider nor the mapping gives one.
DEFAULT_PERIOD = timedelta(days=31)
#: Why the store suspended a license (kept in the audit entry's detail).
PAYMENT = "payment"
REFUND = "refund"


@dataclass(frozen=True)
class Applied:
    """What an event did: ``outcome`` and the license it concerned (None: none).

    Outcomes: ``issued``, ``applied`` (a change, or a confirmed no-op on a
    known order), ``stale`` (older than the last event applied to the order),
    ``ignored`` (nothing to do: no order, or a kind that changes nothing),
    ``not_mapped`` (a sale of a price no mapping names).
    """

    outcome: str
    license_id: str | None = None


def find_order(session: Session, connector_id: str, event: NormalEvent) -> StoreOrder | None:
    """The order an event belongs to (by order or subscription reference), locked."""
    refs = [r for r in (event.order_ref, event.subscription_ref) if r is not None]
    if not refs:
        return None
    conditions: list[ColumnElement[bool]] = [StoreOrder.order_ref.in_(refs)]
    if event.subscription_ref is not None:
        conditions.append(StoreOrder.subscription_ref == event.subscription_ref)
    return session.scalars(
        select(StoreOrder).where(StoreOrder.connector_id == connector_id, or_(*conditions))
        .order_by(StoreOrder.id).limit(1).with_for_update()).first()


def _mapping(session: Session, connector: StoreConnector,
             event: NormalEvent) -> StoreMapping | None:
    if not event.price_refs:
        return None
    rows = {m.price_ref: m for m in session.scalars(select(StoreMapping).where(
        StoreMapping.connector_id == connector.id,
        StoreMapping.price_ref.in_(event.price_refs)))}
    return next((rows[ref] for ref in event.price_refs if ref in rows), None)


def _term_end(event: NormalEvent, mapping: StoreMapping, now: datetime) -> datetime | None:
    if event.period_end is not None:
        return event.period_end + SLACK
    if mapping.duration_days is not None:
        return later_by(now, mapping.duration_days) + SLACK
    return now + DEFAULT_PERIOD + SLACK


def _issue(session: Session, ctx: Context, connector: StoreConnector,
           event: NormalEvent, now: datetime) -> Applied:
    mapping = _mapping(session, connector, event)
    if mapping is None:
        return Applied("not_mapped")
    product = session.get(Product, mapping.product_id)
    assert product is not None
    expires_at = _term_end(event, mapping, now) if mapping.subscription else None
    # A store's address that is no address issues the license unmailed rather than
    # refusing the sale (the provider would retry it for days).
    email = event.email if event.email and is_email_address(event.email) else None
    lic, _key = issue_license(
        session, ctx, product_id=mapping.product_id, seats=mapping.seats,
        expires_at=expires_at, features=mapping.features, actor=ACTOR, kind=mapping.kind,
        duration_days=None if mapping.subscription else mapping.duration_days,
        subscription=mapping.subscription, seat_mode=mapping.seat_mode, buyer_email=email)
    session.add(StoreOrder(connector_id=connector.id, order_ref=event.order_ref,
                           subscription_ref=event.subscription_ref, license_id=lic.id,
                           last_event_at=event.occurred_at, created_at=now))
    session.flush()  # the unique order: a concurrent sale of the same order fails here
    audit(session, ACTOR, "store.issue", at=now, product_id=product.id, license_id=lic.id,
          end_user_id=lic.buyer_id,
          detail={"connector_id": connector.id, "mailed": email is not None})
    return Applied("issued", lic.id)


def _last_status_entry(session: Session, lic: License) -> AuditEntry | None:
    return session.scalars(
        select(AuditEntry).where(
            AuditEntry.license_id == lic.id,
            AuditEntry.action.in_(("license.suspend", "license.resume", "license.cancel",
                                   "license.revoke")))
        .order_by(AuditEntry.id.desc()).limit(1)).first()


def suspended_for_payment(session: Session, lic: License) -> bool:
    """True when the license's suspension is the store's, for non-payment."""
    if lic.status != "suspended" or lic.cancelled_at is not None:
        return False
    entry = _last_status_entry(session, lic)
    return (entry is not None and entry.action == "license.suspend"
            and entry.actor == ACTOR and (entry.detail or {}).get("reason") == PAYMENT)


def _suspend(session: Session, lic: License, reason: str, now: datetime) -> None:
    """Suspend with the reason recorded (a recovery lifts only a payment suspension)."""
    if lic.status != "active":
        return
    lic.status = "suspended"
    lic.updated_at = now
    audit(session, ACTOR, "license.suspend", at=now, product_id=lic.product_id,
          license_id=lic.id, detail={"reason": reason})


def _renew(session: Session, lic: License, event: NormalEvent, now: datetime) -> None:
    if lic.status == "revoked":
        return
    if event.period_end is not None and lic.subscription and not is_perpetual(lic):
        end = event.period_end + SLACK
        if lic.expires_at is None or end > lic.expires_at:
            lic.expires_at = end
            lic.updated_at = now
            audit(session, ACTOR, "license.extend", at=now, product_id=lic.product_id,
                  license_id=lic.id, detail={"until": True})
    lic.payment_failed_at = None
    if suspended_for_payment(session, lic):
        resume_license(session, lic.id, actor=ACTOR)


def _payment_failed(session: Session, ctx: Context, lic: License, event: NormalEvent,
                    now: datetime) -> None:
    if lic.status == "revoked":
        return
    if lic.payment_failed_at is None:
        lic.payment_failed_at = event.occurred_at
        lic.updated_at = now
        audit(session, ACTOR, "license.payment_failed", at=now, product_id=lic.product_id,
              license_id=lic.id)
        emails.queue_payment_failed(session, ctx, lic, billing_url=event.billing_url)


def _refund(session: Session, connector: StoreConnector, lic: License, now: datetime) -> None:
    if connector.refund_action == "revoke":
        revoke_license(session, lic.id, actor=ACTOR)
    elif connector.refund_action == "suspend" and lic.status == "active":
        _suspend(session, lic, REFUND, now)


def apply(session: Session, ctx: Context, connector: StoreConnector,
          event: NormalEvent) -> Applied:
    """Apply one verified, not yet seen event (no commit: the caller's transaction).

    Raises:
        sqlalchemy.exc.IntegrityError: a concurrent transaction recorded the
            same order first (the caller retries: the order then exists).
    """
    now = utcnow()
    order = find_order(session, connector.id, event)
    if order is None:
        if event.kind in ("purchase", "renewed") and event.order_ref is not None:
            return _issue(session, ctx, connector, event, now)
        return Applied("ignored")
    lic = get_license(session, order.license_id, lock=True)
    if order.last_event_at is not None and event.occurred_at < order.last_event_at:
        return Applied("stale", lic.id)
    order.last_event_at = event.occurred_at
    if event.subscription_ref is not None and order.subscription_ref is None:
        order.subscription_ref = event.subscription_ref
    kind = event.kind
    if kind == "ignored":
        return Applied("ignored", lic.id)
    if kind in ("purchase", "renewed", "payment_recovered"):
        _renew(session, lic, event, now)
    elif kind == "payment_failed":
        _payment_failed(session, ctx, lic, event, now)
    elif kind in ("refunded", "disputed"):
        _refund(session, connector, lic, now)
    elif kind == "ended":
        if lic.subscription and lic.status != "revoked":
            cancel_subscription(session, lic.id, actor=ACTOR)
    elif kind == "cancelled":
        audit(session, ACTOR, "store.cancel_at_period_end", at=now,
              product_id=lic.product_id, license_id=lic.id)
    return Applied("applied", lic.id)


def suspend_overdue(session: Session, ctx: Context, now: datetime) -> int:
    """Suspend licenses whose payment failed more than the product's grace days ago; commits.

    The scheduled job of the worker. A license whose payment is overdue and
    still active is suspended (audit ``license.suspend``, actor ``store``,
    reason ``payment``); a renewal or a recovery lifts it.

    Args:
        now: the time to judge by (aware UTC).

    Returns:
        How many licenses were suspended.
    """
    del ctx  # the same signature as every scheduled job
    rows = session.execute(
        select(License, Product.payment_grace_days)
        .join(Product, Product.id == License.product_id)
        .where(License.payment_failed_at.is_not(None), License.status == "active")
        .with_for_update(of=License, skip_locked=True)).all()
    count = 0
    for lic, grace in rows:
        assert lic.payment_failed_at is not None
        if lic.payment_failed_at + timedelta(days=grace) < now:
            _suspend(session, lic, PAYMENT, now)
            count += 1
    session.commit()
    return count

