"""Products: what a vendor sells, with its protection and seat policy."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["Product"]


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
    # Trials: trial length in days (None: no trial); live test codes allowed.
    trial_days: Mapped[int | None] = mapped_column(Integer)
    test_code_limit: Mapped[int] = mapped_column(Integer, default=5, server_default=text("5"))
    # Seats: floating lease length (seconds), re-activations allowed per license
    # per period (None: no lock-out),
    # new activations allowed per client address per period (None: no lock-out).
    lease_duration: Mapped[int] = mapped_column(Integer, default=900, server_default=text("900"))
    reactivation_limit: Mapped[int | None] = mapped_column(Integer)
    reactivation_period: Mapped[int] = mapped_column(Integer, default=2592000,
                                                     server_default=text("2592000"))
    address_activation_limit: Mapped[int | None] = mapped_column(Integer)
    # Identity (migration 0005): what a shared activation gets ("flag" or
    # "suspend"); re-binds allowed per period (None: unbounded).
    sharing_policy: Mapped[str] = mapped_column(String(16), default="flag",
                                                server_default=text("'flag'"))
    # No ORM-side default: None (unbounded) set at creation must reach the row
    # as NULL (the migration's column default, 3, covers rows made without it).
    rebind_limit: Mapped[int | None] = mapped_column(Integer)
    rebind_period: Mapped[int] = mapped_column(Integer, default=2592000,
                                               server_default=text("2592000"))
    # Air-gapped activation (migration 0006): an explicit opt-in (licenses may
    # override it); an air-gapped token lives air_gapped_token_days, or for ever
    # only when air_gapped_perpetual is set.
    air_gapped: Mapped[bool] = mapped_column(Boolean, default=False,
                                             server_default=text("false"))
    air_gapped_token_days: Mapped[int] = mapped_column(Integer, default=365,
                                                       server_default=text("365"))
    air_gapped_perpetual: Mapped[bool] = mapped_column(Boolean, default=False,
                                                       server_default=text("false"))
    # Commerce (migration 0008): days a failed payment is tolerated before the
    # license is suspended; days before the end that reminders go out; the
    # vendor's branding in mails (vendor_name, support_email, logo_url, colour,
    # privacy_url).
    payment_grace_days: Mapped[int] = mapped_column(Integer, default=14,
                                                    server_default=text("14"))
    reminder_days: Mapped[list[int]] = mapped_column(
        JSON, default=lambda: [7, 3, 1], server_default="[7, 3, 1]")
    branding: Mapped[dict[str, Any]] = mapped_column(default=dict,
                                                     server_default="{}")
    # The end user's portal (migration 0010): machines its license holders may free
    # per license per period (None: no limit; 0: only the vendor frees them).
    portal_release_limit: Mapped[int | None] = mapped_column(Integer, default=3)
    portal_release_period: Mapped[int] = mapped_column(Integer, default=2592000,
                                                       server_default=text("2592000"))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    @property
    def token_lifetime(self) -> int:
        """Seconds a token lives without a refresh: refresh interval plus offline grace."""
        return self.refresh_interval + self.offline_grace_period

    @property
    def portal_release_days(self) -> int:
        """The window of ``portal_release_limit`` in whole days (the period is set in days)."""
        return max(1, self.portal_release_period // 86400)
