"""Rate-limit counters: attempts per key and second."""

from __future__ import annotations

from sqlalchemy import (
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["RateLimitCounter"]


class RateLimitCounter(Base):
    """Attempts counted per key and fixed window (shared by every worker)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds
    count: Mapped[int] = mapped_column(Integer)
