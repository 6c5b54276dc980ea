"""Floating leases: one live lease per activation of a floating license."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["Lease"]


class Lease(Base):
    """A floating (concurrent) seat held by one activation until ``expires_at``.

    A lease is live while ``expires_at`` is in the future; the SDK's
    heartbeat moves ``expires_at`` forward, a check-in deletes the row, and
    a lapsed row simply stops counting (a crashed app frees its seat).
    """

    __tablename__ = "leases"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), index=True)
    activation_id: Mapped[str] = mapped_column(ForeignKey("activations.id"), unique=True)
    created_at: Mapped[datetime]
    renewed_at: Mapped[datetime]
    expires_at: Mapped[datetime]
