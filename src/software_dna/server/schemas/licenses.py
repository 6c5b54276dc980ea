"""Bodies of licenses: issue, change, password, term, test codes."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AliasChoices,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
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
    UtcTime,
)
from software_dna.wire.times import format_rfc3339, parse_rfc3339

__all__ = [
    "CUSTOMER_REF_MAX",
    "NOTES_MAX",
    "ORDER_REF_MAX",
    "ExpiryIn",
    "ExtendIn",
    "IssuedLicenseOut",
    "LicenseIn",
    "LicenseList",
    "LicenseOut",
    "LicenseLookupIn",
    "LicensePatch",
    "PasswordIn",
    "RekeyIn",
    "RekeyedLicenseOut",
    "TestCodeIn",
    "expiry_from_text",
    "looks_like_full_key",
]

#: Longest customer reference, order reference and notes (not personal data by design).
CUSTOMER_REF_MAX = 100
ORDER_REF_MAX = 100
NOTES_MAX = 2000
_PLAIN_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def expiry_from_text(text: str) -> datetime:
    """An expiry as a vendor types it, as an aware UTC datetime.

    ``YYYY-MM-DD`` (a plain date) means valid through that day: the license
    ends at the next day's 00:00 UTC.  Anything else must be an RFC 3339
    time with an offset (``2027-01-31T23:59:59Z``).

    Raises:
        ValueError: neither form, or a date that does not exist / is out of range.
    """
    text = text.strip()
    if _PLAIN_DATE.match(text):
        try:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(), tzinfo=timezone.utc) + timedelta(days=1)
        except (ValueError, OverflowError):
            raise ValueError(f"not a date YYYY-MM-DD or an RFC 3339 time with an offset: "
                             f"{text!r} (that day does not exist)") from None
    try:
        return parse_rfc3339(text).astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ValueError(f"not a date (YYYY-MM-DD) or an RFC 3339 time with an offset: "
                         f"{text[:40]!r}") from None


def _expiry_in(value: object) -> object:
    if isinstance(value, str):
        return expiry_from_text(value)
    if not isinstance(value, datetime):
        raise ValueError("a date YYYY-MM-DD or an RFC 3339 date-time string with an offset")
    return value


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError("time out of range") from exc


#: An expiry as received: a plain date ``YYYY-MM-DD`` (valid through that day: the end
#: is the next day's 00:00 UTC) or RFC 3339 with an offset; converted to UTC.
ExpiryIn = Annotated[
    AwareDatetime,
    BeforeValidator(_expiry_in),
    AfterValidator(_utc),
    PlainSerializer(format_rfc3339, return_type=str),
    Field(description="A date YYYY-MM-DD (valid through that day: the end is the next day's "
                      "00:00 UTC) or an RFC 3339 time with an offset. A time in the past is "
                      "refused unless allow_past is true."),
]
#: The vendor's references: their own customer / order numbers and notes. Not personal
#: data by design: put no names or addresses here.
_NOT_PERSONAL = "Not personal data by design: no names or addresses."
CustomerRef = Annotated[str, StringConstraints(strict=True, strip_whitespace=True,
                                               max_length=CUSTOMER_REF_MAX),
                        Field(description="Your customer reference (searchable, prefix). "
                                          + _NOT_PERSONAL)]
OrderRef = Annotated[str, StringConstraints(strict=True, strip_whitespace=True,
                                            max_length=ORDER_REF_MAX),
                     Field(description="Your order reference (searchable, prefix). "
                                       + _NOT_PERSONAL)]
Notes = Annotated[str, StringConstraints(strict=True, max_length=NOTES_MAX),
                  Field(description="Your notes. " + _NOT_PERSONAL)]

#: A full key: at least four groups of four (a hint is four characters, with or without "…-").
_FULL_KEY = re.compile(r"^[A-Za-z0-9]{1,12}([ -]?[A-Za-z0-9]{4}){3,4}$")


def looks_like_full_key(text: str) -> bool:
    """True when ``text`` has the shape of a whole license key (16+ key characters)."""
    compact = text.strip()
    return bool(_FULL_KEY.match(compact)) and sum(c.isalnum() for c in compact) >= 16


class LicenseIn(Strict):
    """Issue a license."""

    product: ProductId
    seats: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    #: A date ``YYYY-MM-DD`` (valid through that day, UTC) or an RFC 3339 time.
    expires_at: ExpiryIn | None = None
    #: An expiry in the past is refused unless this is true.
    allow_past: StrictBool = False
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
    #: The vendor's customer reference (not personal data: no names or addresses).
    customer_ref: CustomerRef | None = None
    #: The vendor's order reference (not personal data).
    order_ref: OrderRef | None = None
    #: The vendor's notes (not personal data).
    notes: Notes | None = None


class LicensePatch(Strict):
    """Set seats, expiry (``null``: perpetual) or features; absent fields stay.

    ``air_gapped``: true / false overrides the product's setting; null follows it.
    """

    seats: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    #: A date ``YYYY-MM-DD`` (valid through that day, UTC), an RFC 3339 time, or null.
    expires_at: ExpiryIn | None = None
    features: Features | None = None
    seat_mode: SeatMode | None = None
    rollover: StrictBool | None = None
    air_gapped: StrictBool | None = None
    #: References and notes (not personal data); null or "" clears one.
    customer_ref: CustomerRef | None = None
    order_ref: OrderRef | None = None
    notes: Notes | None = None
    #: An expiry in the past is refused unless this is true.
    allow_past: StrictBool = False


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
    #: The vendor's references and notes (not personal data).
    customer_ref: str | None = None
    order_ref: str | None = None
    notes: str | None = None
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
    #: A date ``YYYY-MM-DD`` (valid through that day, UTC) or an RFC 3339 time.
    until: ExpiryIn | None = None
    #: An end in the past is refused unless this is true.
    allow_past: StrictBool = False

    @model_validator(mode="after")
    def _one(self) -> ExtendIn:
        if (self.days is None) == (self.until is None):
            raise ValueError("give either days or until")
        return self


class LicenseLookupIn(Strict):
    """``POST /v1/admin/licenses/lookup``: a full license key (in the body, out of the logs)."""

    key: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)]


class TestCodeIn(Strict):
    """``POST /v1/admin/products/{product}/test-codes``."""

    days: Annotated[int, Field(strict=True, ge=1, le=7)] = 1
    features: Features | None = None
    password: Password | None = None
