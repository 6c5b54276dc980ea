"""The erasure ledger: ids only, one row per erasure or revocation, kept beside the backups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["LedgerEntry"]


class LedgerEntry(Base):
    """One erasure of personal data or one revocation, re-applied after a restore.

    Ids, kinds and times only, never personal data. The same entry is appended
    to the ledger file outside the database (``services.ledger``); a restore
    re-applies every entry the restored database does not hold (by ``id``).
    """

    __tablename__ = "erasure_ledger"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(index=True)
    # The other ids the re-application needs (licenses, activation, who removed).
    detail: Mapped[dict[str, Any] | None]
