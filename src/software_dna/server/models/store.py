"""Payment-provider connectors (Stripe, Paddle Billing, Lemon Squeezy): what a sale gives."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["StoreConnector", "StoreEvent", "StoreMapping", "StoreOrder"]


class StoreConnector(Base):
    """One provider account in one mode: its webhook signing secret, encrypted.

    ``mode`` is ``live`` or ``test``: a provider's test-mode events are handled
    only by a ``test`` connector (whose mappings name test products), never
    mixed with live data.  ``refund_action`` says what a refund or dispute does
    (``revoke``, ``suspend`` or ``none``).
    """

    __tablename__ = "store_connectors"
    __table_args__ = (UniqueConstraint("provider", "mode"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    provider: Mapped[str] = mapped_column(String(16))  # stripe / paddle / lemonsqueezy
    mode: Mapped[str] = mapped_column(String(8))  # live / test
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    refund_action: Mapped[str] = mapped_column(String(16), default="revoke")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StoreMapping(Base):
    """Which price (Stripe, Paddle) or variant (Lemon Squeezy) gives which license."""

    __tablename__ = "store_mappings"
    __table_args__ = (UniqueConstraint("connector_id", "price_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(ForeignKey("store_connectors.id"), index=True)
    price_ref: Mapped[str] = mapped_column(String(200))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    seats: Mapped[int] = mapped_column(Integer, default=1)
    features: Mapped[list[str] | None]
    kind: Mapped[str] = mapped_column(String(16), default="full")
    subscription: Mapped[bool] = mapped_column(default=False)
    seat_mode: Mapped[str] = mapped_column(String(16), default="machine")
    duration_days: Mapped[int | None] = mapped_column(Integer)  # one-off: term after 1st use
    created_at: Mapped[datetime]


class StoreOrder(Base):
    """One sale and the license it issued (idempotency: one license per order)."""

    __tablename__ = "store_orders"
    __table_args__ = (UniqueConstraint("connector_id", "order_ref"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(ForeignKey("store_connectors.id"))
    order_ref: Mapped[str] = mapped_column(String(200))
    subscription_ref: Mapped[str | None] = mapped_column(String(200), index=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), index=True)
    # The provider's time of the latest event applied: an older event changes nothing.
    last_event_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class StoreEvent(Base):
    """A provider event already handled (replays change nothing); ids and outcome only."""

    __tablename__ = "store_events"
    __table_args__ = (UniqueConstraint("connector_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    connector_id: Mapped[str] = mapped_column(ForeignKey("store_connectors.id"))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(100))
    occurred_at: Mapped[datetime | None]
    received_at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(32))
    license_id: Mapped[str | None] = mapped_column(String(40))
