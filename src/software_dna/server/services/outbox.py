"""The durable outbox: everything that leaves the server, written with the change that causes it.

A service that causes a webhook call or an e-mail calls :func:`enqueue` on the
same session as its change, before it commits: the message exists exactly
when the change does.  A worker (:mod:`software_dna.server.worker`) then

1. :func:`claim`\\ s due items (one conditional ``UPDATE``; on PostgreSQL the
   candidate rows are locked ``FOR UPDATE SKIP LOCKED``, on SQLite every
   transaction is ``BEGIN IMMEDIATE`` and so serialised), committing the claim
   and a lease (``locked_until``) before delivering;
2. delivers each item outside any transaction (HTTP call, SMTP);
3. records the outcome with :func:`finish` (delivered, or retried after the
   back-off in :data:`BACKOFF`, or failed for good).

Delivery is at-least-once.  The only repeat possible is a worker that dies
between the receiver's acceptance and step 3: its lease expires and another
worker delivers the item again with the same ``id`` (the webhook id, the
Message-ID), so the receiver can drop it (docs/commerce.md, "The outbox").

Payloads are JSON.  A payload with personal data (an address, a license key
in a mail) is encrypted with the master key and dropped once delivered or
when its end user is erased (:func:`forget_end_user`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from software_dna.server.models import DeliveryAttempt, OutboxItem
from software_dna.server.services.common import Context, audit, new_id, precise_now, utcnow
from software_dna.server.services.errors import conflict, not_found

__all__ = [
    "BACKOFF",
    "EMAIL",
    "Handler",
    "WEBHOOK",
    "Outcome",
    "cancel_pending",
    "claim",
    "enqueue",
    "finish",
    "forget_end_user",
    "payload_of",
    "recipient_of",
    "release",
    "renew",
    "resend",
]

WEBHOOK = "webhook"
EMAIL = "email"

#: Seconds to wait before each retry after a failed attempt (the Standard Webhooks
#: schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h): 8 attempts over about 27.6 hours.
BACKOFF: tuple[int, ...] = (5, 300, 1800, 7200, 18000, 36000, 36000)

_ERROR_LENGTH = 200


@dataclass(frozen=True)
class Outcome:
    """What one delivery attempt gave.

    Attributes:
        delivered: the receiver accepted the message (HTTP 2xx, SMTP 250).
        status_code: the HTTP status or SMTP reply code, when there was one.
        error: a short reason without personal data (exception type, reply text).
        permanent: do not retry (the endpoint was removed, the address refused).
    """

    delivered: bool
    status_code: int | None = None
    error: str | None = None
    permanent: bool = False


#: A channel's deliverer: ``handler(ctx, item, payload) -> Outcome`` (never raises for a
#: delivery failure; the worker counts an exception as a failed attempt).
Handler = Callable[[Context, OutboxItem, dict[str, Any]], Outcome]


def _aad(item_id: str) -> str:
    return f"outbox:{item_id}"


def enqueue(
    session: Session,
    ctx: Context | None,
    *,
    channel: str,
    topic: str,
    payload: Mapping[str, Any],
    product_id: str | None = None,
    license_id: str | None = None,
    end_user_id: str | None = None,
    endpoint_id: str | None = None,
    personal: bool = False,
    recipient: str | None = None,
    dedup_key: str | None = None,
    deliver_at: datetime | None = None,
) -> OutboxItem | None:
    """Add one message to the outbox, in the caller's transaction (no commit).

    Args:
        session: the session holding the change that causes the message.
        ctx: the context (its vault encrypts personal payloads and recipients);
            may be None only for a payload without personal data.
        channel: :data:`WEBHOOK` or :data:`EMAIL`.
        topic: the event type (``license.issued``) or mail template name.
        payload: JSON-serialisable message for the channel's deliverer.
        product_id, license_id, end_user_id: what the message is about (ids;
            ``end_user_id`` lets erasure find it).
        endpoint_id: the webhook endpoint (webhooks).
        personal: the payload holds personal data: it is encrypted and dropped
            once delivered.
        recipient: the e-mail address (kept encrypted as the sent log, erased
            with the end user).
        dedup_key: unique key (at most 200 characters); when an item with the
            same key exists, nothing is added and None is returned.
        deliver_at: not before this aware time (default: now).

    Returns:
        The new item (its ``id`` is the webhook id / Message-ID), or None for a duplicate.

    Raises:
        ValueError: personal data or a recipient without a context.
    """
    if (personal or recipient is not None) and ctx is None:
        raise ValueError("personal data in the outbox needs the vault")
    now = utcnow()
    item_id = new_id("msg")
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    item = OutboxItem(
        id=item_id, channel=channel, topic=topic, endpoint_id=endpoint_id,
        product_id=product_id, license_id=license_id, end_user_id=end_user_id,
        payload=ctx.vault.encrypt_field(raw, aad=_aad(item_id)) if personal and ctx else raw,
        personal=personal,
        recipient_ciphertext=(ctx.vault.encrypt_field(recipient.encode(), aad=_aad(item_id))
                              if recipient is not None and ctx is not None else None),
        dedup_key=dedup_key, status="pending", attempts=0,
        # Precise: items queued in one second are claimed in the order they were made.
        next_attempt_at=deliver_at or now, created_at=precise_now(),
    )
    if dedup_key is None:
        session.add(item)
        return item
    if session.scalar(select(OutboxItem.id).where(OutboxItem.dedup_key == dedup_key)):
        return None
    try:
        with session.begin_nested():  # a racing writer's duplicate fails here, not at commit
            session.add(item)
    except IntegrityError:
        return None
    return item


def payload_of(ctx: Context, item: OutboxItem) -> dict[str, Any]:
    """The item's payload (decrypted when personal).

    Raises:
        LookupError: the payload was dropped (delivered personal item, or erased).
    """
    if item.payload is None:
        raise LookupError("this message's payload was dropped (delivered or erased)")
    raw = (ctx.vault.decrypt_field(item.payload, aad=_aad(item.id)) if item.personal
           else item.payload)
    data = json.loads(raw)
    assert isinstance(data, dict)
    return data


def recipient_of(ctx: Context, item: OutboxItem) -> str | None:
    """The e-mail address the item goes (went) to; None for webhooks or after erasure."""
    if item.recipient_ciphertext is None:
        return None
    return ctx.vault.decrypt_field(item.recipient_ciphertext, aad=_aad(item.id)).decode()


def claim(session: Session, *, worker: str, limit: int, lease: int,
          channels: Sequence[str] | None = None) -> list[OutboxItem]:
    """Claim up to ``limit`` due items for ``worker`` and commit the claim.

    An item is due when it is pending, its ``next_attempt_at`` has come and no
    live lease holds it.  Each claimed item's ``attempts`` goes up by one and
    its lease lasts ``lease`` seconds: longer than one delivery may take.

    Args:
        worker: a unique id of this claim (a new one per call is fine).
        limit: at most this many items.
        lease: seconds before another worker may take the item over.
        channels: only these channels (default: all).

    Returns:
        The claimed items, oldest due first.
    """
    now = utcnow()
    due = (select(OutboxItem.id)
           .where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= now,
                  or_(OutboxItem.locked_until.is_(None), OutboxItem.locked_until <= now))
           .order_by(OutboxItem.next_attempt_at, OutboxItem.created_at, OutboxItem.id)
           .limit(limit)
           .with_for_update(skip_locked=True))
    if channels is not None:
        due = due.where(OutboxItem.channel.in_(list(channels)))
    session.execute(
        update(OutboxItem).where(OutboxItem.id.in_(due.scalar_subquery()))
        .values(claim=worker, locked_until=now + timedelta(seconds=lease),
                attempts=OutboxItem.attempts + 1)
        .execution_options(synchronize_session=False))
    session.commit()
    return list(session.scalars(
        select(OutboxItem).where(OutboxItem.claim == worker, OutboxItem.status == "pending")
        .order_by(OutboxItem.next_attempt_at, OutboxItem.created_at, OutboxItem.id)
        .execution_options(populate_existing=True)))


def finish(session: Session, item_id: str, worker: str, outcome: Outcome, *,
           duration_ms: int) -> OutboxItem | None:
    """Record one attempt's outcome and commit.

    Delivered: the item is done (a personal payload is dropped).  Failed: it
    is retried after the next :data:`BACKOFF` step, or marked ``failed`` when
    the schedule is spent or the failure is permanent.  When another worker
    took the item over meanwhile (this worker's lease ran out), only the
    attempt is logged; a delivered outcome still marks it delivered.

    Returns:
        The item, or None when it no longer exists.
    """
    now = utcnow()
    item = session.get(OutboxItem, item_id, with_for_update=True, populate_existing=True)
    if item is None:
        return None
    error = outcome.error[:_ERROR_LENGTH] if outcome.error else None
    session.add(DeliveryAttempt(item_id=item.id, at=now,
                                outcome="delivered" if outcome.delivered else "failed",
                                status_code=outcome.status_code, error=error,
                                duration_ms=max(0, int(duration_ms))))
    item.last_status = outcome.status_code
    item.last_error = error
    ours = item.claim == worker
    if outcome.delivered and item.status == "pending":
        item.status = "delivered"
        item.delivered_at = now
        item.claim = None
        item.locked_until = None
        if item.personal:
            item.payload = None
    elif not outcome.delivered and ours and item.status == "pending":
        item.claim = None
        item.locked_until = None
        if outcome.permanent or item.attempts > len(BACKOFF):
            item.status = "failed"
        else:
            item.next_attempt_at = now + timedelta(seconds=BACKOFF[item.attempts - 1])
    session.commit()
    return item


def renew(session: Session, item_id: str, worker: str, *, lease: int) -> bool:
    """Extend ``worker``'s lease on a claimed item to ``lease`` seconds from now; commits.

    Called before each delivery of a batch, so a lease only has to outlast one
    delivery, however long the batch takes.  Returns False when the item is no
    longer this worker's (its lease ran out and another worker took it over,
    or it was cancelled): then it must not be delivered.
    """
    now = utcnow()
    result = session.execute(
        update(OutboxItem).where(OutboxItem.id == item_id, OutboxItem.claim == worker,
                                 OutboxItem.status == "pending")
        .values(locked_until=now + timedelta(seconds=lease))
        .execution_options(synchronize_session=False))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0) == 1


def release(session: Session, worker: str, item_ids: Sequence[str]) -> int:
    """Give back claimed items not attempted (a worker stopping); commits.

    Their attempt is not counted and they are due again at once.  Returns how many.
    """
    if not item_ids:
        return 0
    result = session.execute(
        update(OutboxItem).where(OutboxItem.id.in_(list(item_ids)), OutboxItem.claim == worker,
                                 OutboxItem.status == "pending")
        .values(claim=None, locked_until=None, attempts=OutboxItem.attempts - 1)
        .execution_options(synchronize_session=False))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def resend(session: Session, item_id: str, *, actor: str = "admin") -> OutboxItem:
    """Queue a delivered or failed item again, with the same id (a manual re-send); commits.

    Raises:
        ServiceError: 404 ``not_found``; 409 ``conflict`` (still pending, or its
        payload was dropped: a delivered mail with personal data, or erased).
    """
    item = session.get(OutboxItem, item_id, with_for_update=True)
    if item is None:
        raise not_found("outbox item")
    if item.status == "pending":
        raise conflict("This message is still queued.")
    if item.payload is None:
        raise conflict("This message's content was dropped after delivery or erasure; "
                       "it cannot be sent again.")
    now = utcnow()
    item.status = "pending"
    item.attempts = 0
    item.next_attempt_at = now
    item.claim = None
    item.locked_until = None
    audit(session, actor, "outbox.resend", at=now, product_id=item.product_id,
          license_id=item.license_id, detail={"item": item.id, "channel": item.channel})
    session.commit()
    return item


def cancel_pending(session: Session, *, license_id: str, topic: str) -> None:
    """Cancel the license's queued items of ``topic`` and drop their payloads. No commit.

    A new license key makes a queued key mail wrong: it must never go out.
    """
    session.execute(
        update(OutboxItem).where(OutboxItem.license_id == license_id,
                                 OutboxItem.topic == topic, OutboxItem.status == "pending")
        .values(status="cancelled", payload=None, claim=None, locked_until=None)
        .execution_options(synchronize_session=False))


def forget_end_user(session: Session, end_user_id: str) -> None:
    """Erasure: drop an end user's addresses and personal payloads from the outbox. No commit.

    Sent-log entries keep their ids, topic and times but lose the address;
    queued personal messages are cancelled.
    """
    session.execute(
        update(OutboxItem).where(OutboxItem.end_user_id == end_user_id,
                                 OutboxItem.status == "pending", OutboxItem.personal)
        .values(status="cancelled", payload=None, recipient_ciphertext=None, claim=None,
                locked_until=None)
        .execution_options(synchronize_session=False))
    session.execute(
        update(OutboxItem).where(OutboxItem.end_user_id == end_user_id,
                                 OutboxItem.recipient_ciphertext.is_not(None))
        .values(recipient_ciphertext=None)
        .execution_options(synchronize_session=False))
    session.execute(
        update(OutboxItem).where(OutboxItem.end_user_id == end_user_id, OutboxItem.personal,
                                 OutboxItem.payload.is_not(None))
        .values(payload=None)
        .execution_options(synchronize_session=False))
