"""The audit log: ids, counts and statuses only, never personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Integer,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["AuditEntry"]


class AuditEntry(Base):
    """One vendor or SDK action; ids only, never personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(16))  # admin / panel / sdk / cli / store ...
    # Who, within the actor: the staff member (``stf_...``) or admin API key (``adk_...``).
    actor_id: Mapped[str | None] = mapped_column(String(40), index=True)
    action: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    license_id: Mapped[str | None] = mapped_column(String(40), index=True)
    activation_id: Mapped[str | None] = mapped_column(String(40))
    end_user_id: Mapped[str | None] = mapped_column(String(40))
    kid: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]
