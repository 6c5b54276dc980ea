"""Signing keys: a product's Ed25519 keys, sealed under the master key."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    LargeBinary,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["SigningKey"]


class SigningKey(Base):
    """An Ed25519 signing key of a product; the secret half is encrypted."""

    __tablename__ = "signing_keys"
    __table_args__ = (
        # At most one active key per product.
        Index(
            "uq_signing_keys_one_active",
            "product_id",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)  # k4.pid.…
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    public_key: Mapped[str] = mapped_column(String(64))  # k4.public.…
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16))  # active / trusted / retired
    created_at: Mapped[datetime]
    retired_at: Mapped[datetime | None]
