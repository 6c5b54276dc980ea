"""The database schema (SQLAlchemy 2 ORM).

Times are stored as naive UTC and come back timezone-aware (UTC) through
:class:`UTCDateTime`; durations are integer seconds.  What is personal data
lives only in :class:`EndUser` (encrypted) and :class:`LicenseSettings`
(encrypted); the audit log holds ids only.

Changing a model means adding an Alembic revision under
``software_dna/server/migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

__all__ = [
    "Activation",
    "AdminApiKey",
    "AuditEntry",
    "Base",
    "EndUser",
    "License",
    "LicenseSettings",
    "Product",
    "RateLimitCounter",
    "RenewalCode",
    "SigningKey",
    "Trial",
    "TrialComponent",
    "UTCDateTime",
]

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored as naive UTC on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """Declarative base with constraint naming conventions (stable migrations)."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {  # noqa: RUF012
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
    }


class Product(Base):
    """A product the vendor sells, with its licensing policy."""

    __tablename__ = "products"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    protection: Mapped[str] = mapped_column(String(16))  # offline/opportunistic/mandatory
    refresh_interval: Mapped[int] = mapped_column(Integer)  # seconds
    offline_grace_period: Mapped[int] = mapped_column(Integer)  # seconds
    fingerprint_tolerance: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]]
    limited_features: Mapped[list[str]]
    password_required: Mapped[bool] = mapped_column(Boolean)
    # Trials (issue 7): trial length in days (None: no trial); live test codes allowed.
    trial_days: Mapped[int | None] = mapped_column(Integer)
    test_code_limit: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    # Seats (issue 8; service/seats.py, service/leases.py): floating lease length
    # (seconds), re-activations allowed per license per period (None: no lock-out),
    # new activations allowed per client address per period (None: no lock-out).
    lease_duration: Mapped[int] = mapped_column(Integer, default=900, server_default=text("900"))
    reactivation_limit: Mapped[int | None] = mapped_column(Integer)
    reactivation_period: Mapped[int] = mapped_column(Integer, default=2592000,
                                                     server_default=text("2592000"))
    address_activation_limit: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


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


class License(Base):
    """A license: the key is only held as a keyed hash plus its last four characters."""

    __tablename__ = "licenses"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_last4: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(16))  # active / suspended / revoked
    seats: Mapped[int] = mapped_column(Integer)
    expires_at: Mapped[datetime | None]
    features: Mapped[list[str]]
    password_hash: Mapped[str | None] = mapped_column(String(200))
    password_erased: Mapped[bool] = mapped_column(Boolean, default=False)
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    # Kinds and terms (issue 7; service/trials.py, service/renewals.py).
    kind: Mapped[str] = mapped_column(String(16), default="full",
                                      server_default="full")  # full/trial/evaluation/test
    duration_days: Mapped[int | None] = mapped_column(Integer)  # expiry N days after 1st use
    first_activated_at: Mapped[datetime | None]
    subscription: Mapped[bool] = mapped_column(Boolean, default=False,
                                               server_default=text("false"))
    cancelled_at: Mapped[datetime | None]  # subscription cancelled (status suspended)
    # Seats (issue 8): what a seat is (machine / user / floating); roll-over of machines.
    seat_mode: Mapped[str] = mapped_column(String(16), default="machine",
                                           server_default="machine")
    rollover: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    product: Mapped[Product] = relationship(lazy="joined")


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


class Activation(Base):
    """One machine using one seat of a license."""

    __tablename__ = "activations"
    __table_args__ = (
        UniqueConstraint("license_id", "idempotency_key", name="uq_activations_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), index=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    fingerprint_id: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[dict[str, Any]]  # component name -> component hash
    idempotency_key: Mapped[str] = mapped_column(String(64))
    end_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("end_users.id", ondelete="SET NULL"), index=True
    )
    erased: Mapped[bool] = mapped_column(Boolean, default=False)
    sdk_version: Mapped[str | None] = mapped_column(String(32))
    client_os: Mapped[str | None] = mapped_column(String(64))
    client_python: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    deactivated_at: Mapped[datetime | None]
    deactivated_by: Mapped[str | None] = mapped_column(String(16))  # end_user/vendor/rollover
    # Random id of one OS account's installation (user seats; issue 8).
    installation_id: Mapped[str | None] = mapped_column(String(64))
    # Activated from an air-gapped request (service/offline.py): its tokens are
    # protection "offline" whatever the product's level (migration 0004).
    offline: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    license: Mapped[License] = relationship(lazy="joined")


class LicenseSettings(Base):
    """The end user's settings document of a license (encrypted JSON)."""

    __tablename__ = "license_settings"

    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id"), primary_key=True)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]


class RateLimitCounter(Base):
    """Attempts counted per key and fixed window (shared by every worker)."""

    __tablename__ = "rate_limit_counters"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)  # unix seconds
    count: Mapped[int] = mapped_column(Integer)


class AuditEntry(Base):
    """One vendor or SDK action; ids only, never personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(16))  # admin / sdk / cli
    action: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str | None] = mapped_column(String(64))
    license_id: Mapped[str | None] = mapped_column(String(40), index=True)
    activation_id: Mapped[str | None] = mapped_column(String(40))
    end_user_id: Mapped[str | None] = mapped_column(String(40))
    kid: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None]


class AdminApiKey(Base):
    """An admin API key, held only as a keyed hash."""

    __tablename__ = "admin_api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class Trial(Base):
    """A machine that used a product's trial (kept when the trial license ends)."""

    __tablename__ = "trials"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    license_id: Mapped[str | None] = mapped_column(
        ForeignKey("licenses.id", ondelete="SET NULL"))
    fingerprint_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class TrialComponent(Base):
    """A fingerprint component hash a trial machine was seen with (a per-product HMAC)."""

    __tablename__ = "trial_components"

    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"),
                                          primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class RenewalCode(Base):
    """A single-use code adding ``days`` to a license (held as a keyed hash)."""

    __tablename__ = "renewal_codes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    license_id: Mapped[str | None] = mapped_column(ForeignKey("licenses.id"))  # bound to one
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    code_last4: Mapped[str] = mapped_column(String(4))
    days: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    redeemed_at: Mapped[datetime | None]
    redeemed_license_id: Mapped[str | None] = mapped_column(ForeignKey("licenses.id"))
