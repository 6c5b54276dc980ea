"""End users: the only personal data, encrypted (email, registration)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["EndUser"]


class EndUser(Base):
    """The person behind one or more activations; every personal field is encrypted."""

    __tablename__ = "end_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_index: Mapped[str | None] = mapped_column(String(64), index=True)
    registration_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    erased_at: Mapped[datetime | None]
