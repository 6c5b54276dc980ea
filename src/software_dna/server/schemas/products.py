"""Bodies of products and their policies (durations in seconds)."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from software_dna.server.models import ProductLogo
from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import (
    Features,
    LeaseSeconds,
    LockoutLimit,
    LockoutPeriod,
    ProductId,
    Protection,
    Seconds,
    TestCodeLimit,
    TrialDays,
    UtcTime,
)

__all__ = ["Branding", "LogoOut", "ProductIn", "ProductList", "ProductOut", "ProductPatch",
           "logo_out"]

#: Lifetime of an air-gapped token, in days.
AirGappedDays = Annotated[StrictInt, Field(ge=1, le=3650)]
#: Days a failed payment is tolerated before the license is suspended.
GraceDays = Annotated[StrictInt, Field(ge=0, le=365)]
#: Days before a license's end that reminders are mailed (distinct; checked by the service).
ReminderDays = Annotated[list[Annotated[StrictInt, Field(ge=1, le=365)]], Field(max_length=10)]
#: Computers a license holder may free in the license portal per period (null: no limit).
PortalReleaseLimit = Annotated[StrictInt, Field(ge=0, le=1000)]
#: The window of that limit, in days.
PortalReleaseDays = Annotated[StrictInt, Field(ge=1, le=366)]
_Short = Annotated[str, StringConstraints(strict=True, max_length=500)]


class Branding(Strict):
    """The vendor's look in mails; each value is checked by the service (https URLs, an
    address, ``#rrggbb``). Null or "" leaves a value out."""

    vendor_name: Annotated[str, StringConstraints(strict=True, max_length=200)] | None = None
    support_email: Annotated[str, StringConstraints(strict=True, max_length=254)] | None = None
    logo_url: _Short | None = None
    colour: Annotated[str, StringConstraints(strict=True, max_length=7)] | None = None
    privacy_url: _Short | None = None


class ProductIn(Strict):
    """Create a product."""

    id: ProductId
    name: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)] | None = None
    protection: Protection = "opportunistic"
    refresh_interval: Seconds = 24 * 3600
    offline_grace_period: Seconds = 7 * 24 * 3600
    fingerprint_tolerance: Annotated[StrictInt, Field(ge=0, le=1)] = 1
    features: Features = Field(default_factory=list)
    limited_features: Features = Field(default_factory=list)
    password_required: StrictBool = False
    trial_days: TrialDays | None = None
    test_code_limit: TestCodeLimit = 5
    lease_duration: LeaseSeconds = 900
    reactivation_limit: LockoutLimit | None = None
    reactivation_period: LockoutPeriod = 30 * 86400
    address_activation_limit: LockoutLimit | None = None
    rebind_limit: Annotated[StrictInt, Field(ge=0, le=1000)] | None = 3  # null: unbounded
    rebind_period: Annotated[StrictInt, Field(ge=3600, le=366 * 86400)] = 30 * 86400
    sharing_policy: Literal["flag", "suspend"] = "flag"
    #: Air-gapped activation: an explicit opt-in (off), the air-gapped token's
    #: lifetime in days, and whether air-gapped tokens may never end.
    air_gapped: StrictBool = False
    air_gapped_token_days: AirGappedDays = 365
    air_gapped_perpetual: StrictBool = False
    #: Mails: grace after a failed payment, reminder days, branding.
    payment_grace_days: GraceDays = 14
    reminder_days: ReminderDays = Field(default_factory=lambda: [7, 3, 1])
    branding: Branding = Field(default_factory=Branding)
    #: The license portal: computers a license holder may free per license per
    #: ``portal_release_days`` (0: only the vendor frees them; null: no limit).
    portal_release_limit: PortalReleaseLimit | None = 3
    portal_release_days: PortalReleaseDays = 30


class ProductPatch(Strict):
    """Change a product (absent fields stay as they are)."""

    name: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)] | None = None
    protection: Protection | None = None
    refresh_interval: Seconds | None = None
    offline_grace_period: Seconds | None = None
    fingerprint_tolerance: Annotated[StrictInt, Field(ge=0, le=1)] | None = None
    features: Features | None = None
    limited_features: Features | None = None
    password_required: StrictBool | None = None
    trial_days: TrialDays | None = None  # 0 or null: no trial (absent: unchanged)
    test_code_limit: TestCodeLimit | None = None
    lease_duration: LeaseSeconds | None = None
    reactivation_limit: LockoutLimit | None = None  # null: no lock-out (absent: unchanged)
    reactivation_period: LockoutPeriod | None = None
    address_activation_limit: LockoutLimit | None = None  # null: off (absent: unchanged)
    rebind_limit: Annotated[StrictInt, Field(ge=0, le=1000)] | None = None  # null: unbounded
    rebind_period: Annotated[StrictInt, Field(ge=3600, le=366 * 86400)] | None = None
    sharing_policy: Literal["flag", "suspend"] | None = None
    air_gapped: StrictBool | None = None
    air_gapped_token_days: AirGappedDays | None = None
    air_gapped_perpetual: StrictBool | None = None
    payment_grace_days: GraceDays | None = None
    reminder_days: ReminderDays | None = None  # []: no reminders
    branding: Branding | None = None  # replaces the whole branding
    portal_release_limit: PortalReleaseLimit | None = None  # null: no limit (absent: unchanged)
    portal_release_days: PortalReleaseDays | None = None


class ProductOut(Out):
    """A product and its policy (durations in seconds)."""

    id: str
    name: str
    protection: str
    refresh_interval: int
    offline_grace_period: int
    token_lifetime: int
    fingerprint_tolerance: int
    features: list[str]
    limited_features: list[str]
    password_required: bool
    trial_days: int | None
    test_code_limit: int
    lease_duration: int
    reactivation_limit: int | None
    reactivation_period: int
    address_activation_limit: int | None
    rebind_limit: int | None = 3
    rebind_period: int = 30 * 86400
    sharing_policy: str = "flag"
    air_gapped: bool = False
    air_gapped_token_days: int = 365
    air_gapped_perpetual: bool = False
    payment_grace_days: int = 14
    reminder_days: list[int] = Field(default_factory=lambda: [7, 3, 1])
    branding: dict[str, str] = Field(default_factory=dict)
    portal_release_limit: int | None = 3
    portal_release_days: int = 30
    created_at: UtcTime
    updated_at: UtcTime



class ProductList(Out):
    """``GET /v1/admin/products``."""

    products: list[ProductOut]


class LogoOut(Out):
    """A product's logo in the license portal (``PUT /v1/admin/products/{id}/logo``)."""

    product: str
    content_type: str
    size: int
    sha256: str
    #: Where the portal serves it (on this server).
    url: str
    updated_at: UtcTime


def logo_out(row: ProductLogo) -> LogoOut:
    """The answer about a stored logo (its bytes are served at ``url``, not sent here)."""
    return LogoOut(product=row.product_id, content_type=row.content_type, size=len(row.data),
                   sha256=row.sha256, url=f"/portal/{quote(row.product_id, safe='')}/logo",
                   updated_at=row.updated_at)
