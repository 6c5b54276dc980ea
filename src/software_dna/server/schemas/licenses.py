"""Bodies of licenses: issue, change, password, term, test codes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import (
    Days,
    Email,
    Features,
    IssuableKind,
    Password,
    ProductId,
    SeatMode,
    TimeIn,
    UtcTime,
)

__all__ = [
    "ExtendIn",
    "IssuedLicenseOut",
    "LicenseIn",
    "LicenseList",
    "LicenseOut",
    "LicensePatch",
    "PasswordIn",
    "RekeyIn",
    "RekeyedLicenseOut",
    "TestCodeIn",
]


class LicenseIn(Strict):
    """Issue a license."""

    product: ProductId
    seats: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    expires_at: TimeIn | None = None
    features: Features | None = None
    password: Password | None = None
    key_prefix: Annotated[
        str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9]{1,12}$")
    ] | None = None
    kind: IssuableKind = "full"
    expires_after_days: Days | None = None
    subscription: StrictBool = False
    seat_mode: SeatMode = "machine"
    rollover: StrictBool = False
    #: Air-gapped activation for this license: true / false, or null for the product's.
    air_gapped: StrictBool | None = None
    #: The buyer's address: recorded (encrypted) and the key is mailed there.
    email: Email | None = None


class LicensePatch(Strict):
    """Set seats, expiry (``null``: perpetual) or features; absent fields stay.

    ``air_gapped``: true / false overrides the product's setting; null follows it.
    """

    seats: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    expires_at: TimeIn | None = None
    features: Features | None = None
    seat_mode: SeatMode | None = None
    rollover: StrictBool | None = None
    air_gapped: StrictBool | None = None


class PasswordIn(Strict):
    """Set (string) or remove (``null``) the activation password."""

    password: Password | None


class LicenseOut(Out):
    """A license; the key itself is never shown again (only ``key_hint``)."""

    # seats_in_use has a default only for model_validate(row); every answer has it.
    model_config = ConfigDict(extra="forbid", from_attributes=True,
                              json_schema_serialization_defaults_required=True)

    id: str
    product: Annotated[str, Field(validation_alias=AliasChoices("product_id", "product"))]
    key_hint: str
    status: str
    seats: int
    seats_in_use: Annotated[int, Field(validate_default=True)] = 0
    expires_at: UtcTime | None
    features: list[str]
    password_set: bool
    password_reset_required: bool
    erased: bool
    kind: str
    expires_after_days: Annotated[int | None, Field(
        validation_alias=AliasChoices("duration_days", "expires_after_days"))]
    first_activated_at: UtcTime | None
    subscription: bool
    cancelled_at: UtcTime | None
    seat_mode: str
    rollover: bool
    #: The license's own air-gapped setting (null: the product's).
    air_gapped: bool | None = None
    #: The buyer's end user id (the address stays encrypted; see end-users export).
    buyer_id: str | None = None
    #: When a store reported the failed payment that started the grace period.
    payment_failed_at: UtcTime | None = None
    created_at: UtcTime
    updated_at: UtcTime

    @field_validator("seats_in_use", mode="before")
    @classmethod
    def _seats_from_context(cls, value: Any, info: ValidationInfo) -> Any:
        """``model_validate(row, context={"seats_in_use": n})``: the count is no column."""
        if info.context and "seats_in_use" in info.context:
            return info.context["seats_in_use"]
        return value



class IssuedLicenseOut(LicenseOut):
    """Answer of issuing: the only time the full ``license_key`` is shown."""

    license_key: str


class RekeyIn(Strict):
    """``POST /v1/admin/licenses/{id}/rekey``: optionally the buyer's address."""

    #: Recorded as the license's buyer (encrypted) and the new key is mailed there;
    #: absent: mailed to the buyer on file, if any.
    email: Email | None = None


class RekeyedLicenseOut(IssuedLicenseOut):
    """Answer of a rekey: the new ``license_key``, shown this once."""

    #: True when the new key was queued for mailing to the buyer.
    key_mailed: bool


class LicenseList(Out):
    """``GET /v1/admin/licenses``."""

    licenses: list[LicenseOut]


class ExtendIn(Strict):
    """``POST /v1/admin/licenses/{id}/extend``: ``days`` to add, or a later end ``until``."""

    days: Days | None = None
    until: TimeIn | None = None

    @model_validator(mode="after")
    def _one(self) -> ExtendIn:
        if (self.days is None) == (self.until is None):
            raise ValueError("give either days or until")
        return self


class TestCodeIn(Strict):
    """``POST /v1/admin/products/{product}/test-codes``."""

    days: Annotated[int, Field(strict=True, ge=1, le=7)] = 1
    features: Features | None = None
    password: Password | None = None
