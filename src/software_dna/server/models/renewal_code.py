"""Renewal codes: single-use codes that add days to a license."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["RenewalCode"]


class RenewalCode(Base):
    """A single-use code adding ``days`` to a license (held as a keyed hash)."""

    __tablename__ = "renewal_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    license_id: Mapped[str | None] = mapped_column(ForeignKey("licenses.id"))  # bound to one
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_last4: Mapped[str] = mapped_column(String(4))
    days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None]
    redeemed_license_id: Mapped[str | None] = mapped_column(ForeignKey("licenses.id"))

    @property
    def code_hint(self) -> str:
        """What the vendor sees of the code: its last four characters."""
        return "\u2026-" + self.code_last4
