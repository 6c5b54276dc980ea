"""Licenses: the key, seats, term, status and features a vendor issued."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from software_dna.server.models.base import Base
from software_dna.server.models.product import Product

__all__ = ["License"]


class License(Base):
    """A license: the key is only held as a keyed hash plus its last four characters."""

    __tablename__ = "licenses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_last4: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))  # active / suspended / revoked
    seats: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    features: Mapped[list[str]]
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_erased: Mapped[bool] = mapped_column(Boolean, default=False)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    # Kinds and terms.
    kind: Mapped[str] = mapped_column(String(16), default="full",
                                      server_default="full")  # full/trial/evaluation/test
    duration_days: Mapped[int | None] = mapped_column(Integer)  # expiry N days after 1st use
    first_activated_at: Mapped[datetime | None]
    subscription: Mapped[bool] = mapped_column(Boolean, default=False,
                                               server_default=text("false"))
    cancelled_at: Mapped[datetime | None]  # subscription cancelled (status suspended)
    # Seats: what a seat is (machine / user / floating); roll-over of machines.
    seat_mode: Mapped[str] = mapped_column(String(16), default="machine",
                                           server_default="machine")
    rollover: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Air-gapped activation for this license: None follows the product's setting.
    air_gapped: Mapped[bool | None] = mapped_column(Boolean)
    # Commerce (migration 0008): a store reported a failed payment at this time;
    # the license is suspended payment_grace_days later unless it is paid.
    payment_failed_at: Mapped[datetime | None]
    # The buyer a store sale named (an end user: encrypted email, erasable);
    # key delivery and reminders go there.
    buyer_id: Mapped[str | None] = mapped_column(String(40), index=True)  # end_users.id
    # The vendor's own references (migration 0009): not personal data by design,
    # searchable in the panel, the admin API and the CLI.
    customer_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    order_ref: Mapped[str | None] = mapped_column(String(100), index=True)
    notes: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    product: Mapped[Product] = relationship(lazy="joined")

    @property
    def key_hint(self) -> str:
        """What the vendor sees of the key: its last four characters (trials have no key)."""
        return "\u2026-" + self.key_last4 if self.key_last4 else "(trial: no key)"

    @property
    def password_set(self) -> bool:
        """True when an activation password is set."""
        return self.password_hash is not None

    @property
    def password_reset_required(self) -> bool:
        """True when activating needs a new password from the vendor (erased or required)."""
        return self.password_hash is None and (self.password_erased
                                               or self.product.password_required)
