"""Tables of the seats features (issue 8): floating leases, the lock-out ledger, reset codes.

Kept apart from :mod:`software_dna.server.models` (same declarative
``Base``, same metadata); the columns they add to products, licenses and
activations live there.  Schema: Alembic revision ``0003``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models import Base

__all__ = ["ActivationEvent", "Lease", "PasswordResetCode"]


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


class PasswordResetCode(Base):
    """A single-use, short-lived password reset code, held only as a keyed hash."""

    __tablename__ = "password_reset_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
