"""A license's settings document, encrypted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    LargeBinary,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["LicenseSettings"]


class LicenseSettings(Base):
    """The end user's settings document of a license (encrypted JSON)."""

    __tablename__ = "license_settings"

    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
