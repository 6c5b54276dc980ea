"""Outbound webhook events: what happened, queued in the outbox with the change.

Every change a service makes writes an audit entry (:func:`services.common.audit`);
this module listens to those entries (:func:`services.common.on_audit`) and
maps the actions that are events (:data:`ACTIONS`) to their event type.  For
each enabled endpoint subscribed to that type (and to the product, or to
every product) one outbox item is added on the same session, so the event
exists exactly when the change is committed.  Heartbeats, validations,
refusals and replays write other actions and are not events.

Payloads follow the Standard Webhooks shape (docs/commerce.md, "Outbound
webhooks")::

    {"type": "license.revoked", "timestamp": "2026-12-03T07:30:00Z",
     "version": 1, "data": {"license_id": "lic_...", "product_id": "acme", ...}}

``data`` holds ids, statuses and times only.  Personal data (a buyer's email)
reaches only endpoints marked ``personal_data``, and only when the caller
passes it explicitly (:func:`emit` ``personal=``, or :func:`personal_data`
around a service call); those items are encrypted (outbox ``personal=True``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from software_dna.server.models import AuditEntry, License, OutboxItem, WebhookEndpoint
from software_dna.server.services import outbox
from software_dna.server.services.common import Context, on_audit, utcnow

__all__ = [
    "ACTIONS",
    "EVENT_TYPES",
    "EXPIRING_DAYS",
    "PING",
    "VERSION",
    "days_left",
    "emit",
    "expiry_events",
    "payload",
    "personal_data",
]

#: The payload format's version (``"version"`` in every payload).
VERSION = 1

#: Every event type an endpoint can subscribe to.
EVENT_TYPES: tuple[str, ...] = (
    "license.issued", "license.changed", "license.expiring", "license.expired",
    "license.revoked", "activation.created", "activation.removed", "activation.moved",
    "activation.flagged", "trial.started", "trial.converted", "end_user.erased",
)

#: The test event (``software-dna webhooks test``): sent to one endpoint whatever it subscribes.
PING = "webhook.ping"

#: How many days before a license's expiry ``license.expiring`` is sent.
EXPIRING_DAYS = 7


@dataclass(frozen=True)
class _Rule:
    event: str
    change: str | None = None  # data["change"] of license.changed / data["reason"] of removals


#: Audit action -> event.  An action not listed is not an event (validations, heartbeats,
#: refusals, replays, lease check-outs, re-binds to a known machine, settings).
ACTIONS: Mapping[str, _Rule] = {
    "license.issue": _Rule("license.issued"),
    "license.update": _Rule("license.changed", "updated"),
    "license.suspend": _Rule("license.changed", "suspended"),
    "license.resume": _Rule("license.changed", "resumed"),
    "license.extend": _Rule("license.changed", "extended"),
    "license.rekey": _Rule("license.changed", "rekeyed"),
    "license.perpetual": _Rule("license.changed", "perpetual"),
    "license.cancel": _Rule("license.changed", "cancelled"),
    "license.renew": _Rule("license.changed", "renewed"),
    "license.restore": _Rule("license.changed", "restored"),
    "license.revoke": _Rule("license.revoked"),
    "activation.create": _Rule("activation.created"),
    "activation.remove": _Rule("activation.removed", "vendor"),
    "activation.deactivate": _Rule("activation.removed", "end_user"),
    "activation.release": _Rule("activation.removed", "license_holder"),
    "activation.offline_deactivate": _Rule("activation.removed", "end_user"),
    "activation.rollover": _Rule("activation.removed", "rollover"),
    "activation.replaced": _Rule("activation.removed", "replaced"),
    "activation.rebind": _Rule("activation.moved"),
    "activation.shared": _Rule("activation.flagged"),
    "trial.start": _Rule("trial.started"),
    "end_user.erase": _Rule("end_user.erased"),
}

_PERSONAL_KEY = "software_dna.events.personal"


def _rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def payload(event: str, at: datetime, data: Mapping[str, Any]) -> dict[str, Any]:
    """The Standard Webhooks payload of one event.

    Args:
        event: the event type (one of :data:`EVENT_TYPES`, or :data:`PING`).
        at: when it happened (aware UTC).
        data: ids, statuses and times (JSON values).
    """
    return {"type": event, "timestamp": _rfc3339(at), "version": VERSION, "data": dict(data)}


def _endpoints(session: Session, event: str, product_ids: set[str]) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
    if product_ids:
        query = query.where(or_(WebhookEndpoint.product_id.is_(None),
                                WebhookEndpoint.product_id.in_(sorted(product_ids))))
    else:
        query = query.where(WebhookEndpoint.product_id.is_(None))
    with session.no_autoflush:
        rows = session.scalars(query.order_by(WebhookEndpoint.created_at)).all()
    return [row for row in rows if event in (row.events or [])]


def emit(
    session: Session,
    ctx: Context | None,
    event: str,
    *,
    at: datetime | None = None,
    product_id: str | None = None,
    license_id: str | None = None,
    end_user_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    personal: Mapping[str, Any] | None = None,
    products: set[str] | None = None,
    dedup: str | None = None,
) -> list[OutboxItem]:
    """Queue ``event`` for every enabled endpoint subscribed to it. No commit.

    Args:
        session: the session holding the change (the items commit with it).
        ctx: the context; needed only when ``personal`` is given (encryption).
        event: one of :data:`EVENT_TYPES`.
        at: when it happened (default: now).
        product_id: the product (endpoints of another product are skipped).
        license_id, end_user_id: what the event is about (erasure finds the items
            by ``end_user_id``).
        data: the payload's ``data`` (ids, statuses, times; never personal data).
        personal: personal fields (``{"email": ...}``) added to ``data`` for the
            endpoints marked ``personal_data`` only; those items are encrypted.
        products: several products (an erasure across products) instead of ``product_id``.
        dedup: an idempotency key: the event is queued once per endpoint for it.

    Returns:
        The items added (one per endpoint; none when nobody listens).

    Raises:
        ValueError: ``event`` is unknown, or ``personal`` without a context.
    """
    if event not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event!r}")
    if personal and ctx is None:
        raise ValueError("personal data in an event needs the vault")
    when = at or utcnow()
    wanted = set(products or ()) | ({product_id} if product_id else set())
    items = []
    for endpoint in _endpoints(session, event, wanted):
        body = dict(data or {})
        with_personal = bool(personal) and endpoint.personal_data
        if with_personal and personal:
            body.update(personal)
        item = outbox.enqueue(
            session, ctx, channel=outbox.WEBHOOK, topic=event,
            payload=payload(event, when, body), product_id=product_id,
            license_id=license_id, end_user_id=end_user_id, endpoint_id=endpoint.id,
            personal=with_personal,
            dedup_key=f"evt:{dedup}:{endpoint.id}" if dedup is not None else None)
        if item is not None:
            items.append(item)
    return items


@contextmanager
def personal_data(session: Session, ctx: Context, license_id: str,
                  fields: Mapping[str, Any]) -> Iterator[None]:
    """Let the events about ``license_id`` raised inside the block carry ``fields``.

    Only endpoints marked ``personal_data`` receive them (encrypted in the
    outbox).  For a store sale::

        with events.personal_data(session, ctx, license_id, {"email": buyer}):
            ...  # the change whose audit entry raises license.issued

    A license issued in the block has no id yet: pass ``"*"`` to cover every
    license of the block.
    """
    stash: dict[str, tuple[Context, dict[str, Any]]] = session.info.setdefault(_PERSONAL_KEY, {})
    stash[license_id] = (ctx, dict(fields))
    try:
        yield
    finally:
        stash.pop(license_id, None)


def _license(session: Session, license_id: str) -> License | None:
    with session.no_autoflush:
        lic = session.get(License, license_id)
    if lic is not None:
        return lic
    return next((obj for obj in session.new
                 if isinstance(obj, License) and obj.id == license_id), None)


def _license_data(lic: License | None) -> dict[str, Any]:
    if lic is None:
        return {}
    return {"status": lic.status, "kind": lic.kind, "seats": lic.seats,
            "expires_at": _rfc3339(lic.expires_at) if lic.expires_at else None,
            "duration_days": lic.duration_days, "subscription": bool(lic.subscription)}


def _on_audit(session: Session, entry: AuditEntry) -> None:
    rule = ACTIONS.get(entry.action)
    if rule is None:
        return
    event = rule.event
    detail = entry.detail or {}
    if entry.action == "activation.replaced" and detail.get("kind") == "trial":
        # A trial bought: the trial's activation gives way to the paid one.
        _fan_out(session, entry, "trial.converted",
                 {"activation_id": entry.activation_id,
                  "by_activation_id": detail.get("by_activation")})
    data: dict[str, Any] = {}
    if entry.activation_id:
        data["activation_id"] = entry.activation_id
    if event.startswith("license."):
        data.update(_license_data(_license(session, entry.license_id or "")))
    if rule.change is not None:
        data["change" if event == "license.changed" else "reason"] = rule.change
    if event == "activation.flagged":
        data["reason"] = detail.get("reason")
        data["deactivated"] = bool(detail.get("deactivated"))
    if event == "end_user.erased":
        licenses = sorted(str(x) for x in detail.get("licenses") or [])
        data["licenses"] = licenses
        products = set()
        with session.no_autoflush:
            if licenses:
                products = set(session.scalars(
                    select(License.product_id).where(License.id.in_(licenses))))
        _fan_out(session, entry, event, data, products=products)
        return
    _fan_out(session, entry, event, data)


def _fan_out(session: Session, entry: AuditEntry, event: str, data: dict[str, Any], *,
             products: set[str] | None = None) -> None:
    base = {"product_id": entry.product_id, "license_id": entry.license_id}
    if entry.end_user_id:
        base["end_user_id"] = entry.end_user_id
    stash: dict[str, tuple[Context, dict[str, Any]]] = session.info.get(_PERSONAL_KEY, {})
    found = stash.get(entry.license_id or "") or stash.get("*")
    ctx, personal = found if found else (None, None)
    emit(session, ctx, event, at=entry.at, product_id=entry.product_id,
         license_id=entry.license_id, end_user_id=entry.end_user_id,
         data={**{k: v for k, v in base.items() if v is not None}, **data},
         personal=personal, products=products)


def days_left(expires_at: datetime, now: datetime) -> int:
    """Days from ``now`` to ``expires_at``, a started day counted whole (rounded up; 0 once
    ended): ``license.expiring``'s ``days_left`` and the reminders' ``days_left`` alike.

    Rounded up because both go out on the day they name: the 7-day notice is sent
    when the end is at most 7 days away and says 7 (not 6) then.
    """
    seconds = (expires_at - now).total_seconds()
    return max(0, math.ceil(seconds / 86400))


def expiry_events(session: Session, _ctx: Context, now: datetime) -> int:
    """Scheduled: queue ``license.expiring`` and ``license.expired``; commits.

    ``license.expiring`` goes out once per license and expiry date when the
    expiry is at most :data:`EXPIRING_DAYS` days away; ``license.expired`` once
    when it has passed (looked for over the last :data:`EXPIRING_DAYS` days,
    so a worker stopped for a while catches up).  Revoked licenses are skipped.

    Returns:
        The number of items queued.
    """
    window = timedelta(days=EXPIRING_DAYS)
    rows = session.scalars(
        select(License).where(License.expires_at.is_not(None),
                              License.expires_at > now - window,
                              License.expires_at <= now + window,
                              License.status != "revoked")
        .order_by(License.expires_at)).all()
    queued = 0
    for lic in rows:
        assert lic.expires_at is not None
        expires = lic.expires_at
        event = "license.expired" if expires <= now else "license.expiring"
        data = {"product_id": lic.product_id, "license_id": lic.id, **_license_data(lic)}
        if event == "license.expiring":
            data["days_left"] = days_left(expires, now)
        queued += len(emit(session, None, event, at=now, product_id=lic.product_id,
                           license_id=lic.id, data=data,
                           dedup=f"{event}:{lic.id}:{int(expires.timestamp())}"))
    session.commit()
    return queued


on_audit(_on_audit)
