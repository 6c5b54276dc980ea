"""The ledger of new activations that the re-activation lock-out counts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["ActivationEvent"]


class ActivationEvent(Base):
    """One new activation (a seat taken), the ledger of the re-activation lock-out.

    ``address_hash`` is the keyed hash of the client address (never the
    address).  Rows older than the product's period are pruned.
    """

    __tablename__ = "activation_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    product_id: Mapped[str] = mapped_column(String(64))
    license_id: Mapped[str] = mapped_column(String(40), index=True)
    address_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(index=True)
