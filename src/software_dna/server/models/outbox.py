"""The outbox: everything that leaves the server (webhooks, e-mails), and scheduled work.

An :class:`OutboxItem` is written in the same transaction as the change that
causes it and delivered later by a worker (docs/commerce.md, "The outbox").
Its ``id`` is the webhook id / the e-mail's Message-ID: a repeat delivery
(only possible when a worker dies after the receiver accepted and before the
commit) carries the same id, so the receiver can drop it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["DeliveryAttempt", "OutboxItem", "ScheduledJob"]


class OutboxItem(Base):
    """One message to deliver: a webhook call to one endpoint, or one e-mail to one address.

    ``payload`` is the message, encrypted with the master key (it may hold a
    license key or an address); it is dropped once delivered when it holds
    personal data, and at erasure.  ``recipient_ciphertext`` (e-mail) is the
    address the mail went to: the sent log, erased with the end user.
    ``dedup_key`` makes an item unique (a reminder for one license and day, a
    store order's key delivery): a second writer's insert is refused, so no
    message is queued twice however many workers or requests race.

    A worker claims an item by setting ``claim`` and ``locked_until``; a
    worker that dies leaves the lock to expire and another retries the item.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))  # webhook / email
    topic: Mapped[str] = mapped_column(String(64))  # event type or mail template name
    endpoint_id: Mapped[str | None] = mapped_column(String(40), index=True)
    product_id: Mapped[str | None] = mapped_column(String(64))
    license_id: Mapped[str | None] = mapped_column(String(40), index=True)
    end_user_id: Mapped[str | None] = mapped_column(String(40), index=True)
    payload: Mapped[bytes | None] = mapped_column(LargeBinary)
    personal: Mapped[bool] = mapped_column(default=False)  # payload holds personal data
    recipient_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    dedup_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(16))  # pending/delivered/failed/cancelled
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    locked_until: Mapped[datetime | None]
    claim: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status / SMTP reply code
    last_error: Mapped[str | None] = mapped_column(String(200))


class DeliveryAttempt(Base):
    """One delivery attempt of an outbox item: the delivery log (no personal data)."""

    __tablename__ = "outbox_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    item_id: Mapped[str] = mapped_column(ForeignKey("outbox.id", ondelete="CASCADE"),
                                         index=True)
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(16))  # delivered / failed
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(200))
    duration_ms: Mapped[int] = mapped_column(Integer)


class ScheduledJob(Base):
    """A periodic job (reminders, lease culling, compaction): run once per due time.

    A worker runs a job only after moving ``next_run_at`` forward in a
    conditional update, so however many workers poll, one runs each due time.
    """

    __tablename__ = "scheduled_jobs"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    next_run_at: Mapped[datetime]
    last_run_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(200))
