"""Trials: one per machine and product; the machine is known by its trial
activation's bindings (:mod:`.binding`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["Trial"]


class Trial(Base):
    """A machine that used a product's trial (kept when the trial license ends)."""

    __tablename__ = "trials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    license_id: Mapped[str | None] = mapped_column(
        ForeignKey("licenses.id", ondelete="SET NULL"))
    fingerprint_id: Mapped[str] = mapped_column(String(128))  # the opaque fp_ id
    created_at: Mapped[datetime]
