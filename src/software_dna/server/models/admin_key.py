"""Admin API keys (stored as hashes)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["AdminApiKey"]


class AdminApiKey(Base):
    """An admin API key, held only as a keyed hash."""

    __tablename__ = "admin_api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the key may do (domain.roles.Role); keys made before roles existed are owners.
    role: Mapped[str] = mapped_column(String(16), default="owner", server_default="owner")
    name: Mapped[str] = mapped_column(String(100), default="", server_default="")
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
