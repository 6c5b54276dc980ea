"""Daily usage counts for the control panel's dashboard (no personal data)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Date, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["UsageCount"]


class UsageCount(Base):
    """How many times ``event`` ended with ``outcome`` for a product on a UTC day.

    Workers count in memory and add their counts here every few seconds
    (services.usage), so the validation hot path writes nothing more.
    ``product_id`` is ``""`` when the request named no known product.
    """

    __tablename__ = "usage_counts"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    product_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event: Mapped[str] = mapped_column(String(32), primary_key=True)  # validation/activation/...
    outcome: Mapped[str] = mapped_column(String(40), primary_key=True)  # ok / a refusal code
    count: Mapped[int] = mapped_column(Integer, default=0)
