"""Trials: one per machine and product, remembered by component."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["Trial", "TrialComponent"]


class Trial(Base):
    """A machine that used a product's trial (kept when the trial license ends)."""

    __tablename__ = "trials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    license_id: Mapped[str | None] = mapped_column(
        ForeignKey("licenses.id", ondelete="SET NULL"))
    fingerprint_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class TrialComponent(Base):
    """A fingerprint component hash a trial machine was seen with (a per-product HMAC)."""

    __tablename__ = "trial_components"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"),
                                          primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
