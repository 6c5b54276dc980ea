"""Activations: one machine (or OS account) holding a license."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from software_dna.server.domain.tokens import token_mode
from software_dna.server.models.base import Base
from software_dna.server.models.license import License

__all__ = ["Activation"]


class Activation(Base):
    """One machine using one seat of a license."""

    __tablename__ = "activations"
    __table_args__ = (
        UniqueConstraint("license_id", "idempotency_key", name="uq_activations_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    # Opaque server id handed out in tokens ("fp_<random>"); never derived from
    # components and never used to decide "same machine?" (migration 0005).
    fingerprint_id: Mapped[str] = mapped_column(String(128))
    # The current machine binding (machine_bindings.id); no foreign key, the two
    # tables point at each other.
    binding_id: Mapped[str | None] = mapped_column(String(40))
    idempotency_key: Mapped[str] = mapped_column(String(64))
    end_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("end_users.id", ondelete="SET NULL"), index=True
    )
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    sdk_version: Mapped[str | None] = mapped_column(String(32))
    client_os: Mapped[str | None] = mapped_column(String(64))
    client_python: Mapped[str | None] = mapped_column(String(32))
    # The app's own version as the SDK reports it (LicenseClient(app_version=...)).
    app_version: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    deactivated_at: Mapped[datetime | None]
    # end_user / vendor / rollover / sharing / license_holder (freed in the portal)
    deactivated_by: Mapped[str | None] = mapped_column(String(16))
    # Random id of one OS account's installation (user seats).
    installation_id: Mapped[str | None] = mapped_column(String(64))
    # Activated from an air-gapped request: its tokens are
    # protection "offline" whatever the product's level (migration 0004).
    offline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # Secret rotation (services/sharing.py): the generation of the secret handed out
    # last, and the one the client is known to hold when that answer may have been
    # lost (None: none). Generation 0 is the secret of activations made before rotation.
    secret_generation: Mapped[int] = mapped_column(Integer, default=0,
                                                   server_default=text("0"))
    secret_grace: Mapped[int | None] = mapped_column(Integer)
    # Sharing detection: when and why the activation was flagged as used on two
    # computers (``copied_secret`` / ``alternating_machines``); None: not flagged.
    shared_at: Mapped[datetime | None]
    shared_reason: Mapped[str | None] = mapped_column(String(32))

    # A name the app may give this computer with the end user's consent ("Anna's
    # laptop"), shown in the portal; personal data: encrypted, erased with the
    # end user (migration 0010).  Never a raw identifier.
    label_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    license: Mapped[License] = relationship(lazy="joined")

    @property
    def client_facts(self) -> dict[str, str | None]:
        """What the SDK said about the client: ``sdk_version``, ``os``, ``python``."""
        return {"sdk_version": self.sdk_version, "os": self.client_os,
                "python": self.client_python, "app_version": self.app_version}

    @property
    def token_mode(self) -> str:
        """The ``mode`` its tokens carry now: ``full`` or ``limited`` (domain.tokens.token_mode)."""
        return token_mode(license_erased=self.license.erased, activation_erased=self.erased)
