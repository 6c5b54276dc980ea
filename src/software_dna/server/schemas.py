"""Pydantic models of every request and response body (docs/protocol.md).

Requests forbid unknown fields and use strict types (a number is never a
string, a string never a number); every string has a length and, where it
is an identifier, an alphabet.  Times go out as RFC 3339 UTC
(``2026-11-29T12:00:00Z``) and come in as RFC 3339 with an offset.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from software_dna.server.models import Activation, AuditEntry, License, Product, SigningKey

# --------------------------------------------------------------------------- field types


def _fmt(value: datetime) -> str:
    utc = value.astimezone(timezone.utc)
    # RFC 3339 years have four digits; strftime("%Y") does not pad years before 1000.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%SZ")


def _only_str(value: object) -> object:
    if not isinstance(value, (str, datetime)):
        raise ValueError("an RFC 3339 date-time string with an offset")
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError("time out of range") from exc


#: A time as sent: RFC 3339 ``...Z`` (UTC).
UtcTime = Annotated[datetime, PlainSerializer(_fmt, return_type=str)]
#: A time as received: RFC 3339 with an offset, converted to UTC.
TimeIn = Annotated[
    AwareDatetime,
    BeforeValidator(_only_str),
    AfterValidator(_to_utc),
    PlainSerializer(_fmt, return_type=str),
]

Nonce = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{16,64}$")]
IdempotencyKey = Nonce
ProductId = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
]
ObjectId = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{1,40}$")]
LicenseKey = Annotated[
    str, StringConstraints(strict=True, min_length=4, max_length=64, pattern=r"^[A-Za-z0-9 -]+$")
]
Password = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
#: Bidirectional embeddings, overrides and isolates: they reorder what a reader sees.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _readable_text(value: str) -> str:
    """Text people read (registration details, client facts): no control characters.

    Refused: C0/C1 controls (NUL, escape sequences that drive a vendor's
    terminal), line and paragraph separators, and the bidi overrides that
    make a name display as something else.  Letters of every script, emoji
    and joiners are fine.
    """
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise ValueError("control, separator and bidi-override characters are not allowed")
    return value


def _email_text(value: str) -> str:
    """An email address: no control, format (zero-width, BOM, bidi), private-use or unassigned
    characters; international letters (RFC 6531) and IDN domains are fine."""
    for char in value:
        if unicodedata.category(char)[0] in ("C", "Z"):
            raise ValueError("control, format and separator characters are not allowed")
    return value


Email = Annotated[
    str,
    StringConstraints(
        strict=True,
        strip_whitespace=True,
        max_length=254,
        pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$",
    ),
    AfterValidator(_email_text),
]
RegKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64),
                   AfterValidator(_readable_text)]
RegValue = Annotated[str, StringConstraints(strict=True, max_length=256),
                     AfterValidator(_readable_text)]
#: A short fact about the client (SDK version, OS, Python), shown in the vendor's tools.
ClientText = Annotated[str, StringConstraints(strict=True, max_length=64),
                       AfterValidator(_readable_text)]
ShortClientText = Annotated[str, StringConstraints(strict=True, max_length=32),
                            AfterValidator(_readable_text)]

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def error_location(loc: Iterable[int | str]) -> str:
    """Where a validation error is, for an error message: field names only.

    Parts that are not plain field names (the keys of free-form objects such
    as ``registration``, sent by the client) are shown as ``*``, so a message
    never echoes what was sent.
    """
    parts = []
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(part if _FIELD_NAME.match(part) or part == "[key]" else "*")
    return ".".join(parts)
ComponentName = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[a-z][a-z0-9_]{0,31}$")
]
ComponentValue = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{43}$")]
FingerprintId = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
]
Feature = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
]
Features = Annotated[list[Feature], Field(max_length=64)]
Seconds = Annotated[StrictInt, Field(ge=0, le=10 * 365 * 86400)]
Protection = Literal["offline", "opportunistic", "mandatory"]
Kid = Annotated[str, StringConstraints(strict=True, pattern=r"^k4\.pid\.[A-Za-z0-9_-]{1,60}$")]
#: Trials, terms and renewal (issue 7; schemas_terms.py holds the rest).
TrialDays = Annotated[StrictInt, Field(ge=0, le=365)]
TestCodeLimit = Annotated[StrictInt, Field(ge=0, le=100)]
Days = Annotated[StrictInt, Field(ge=1, le=3650)]


class Strict(BaseModel):
    """Base of request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- errors


class ErrorDetail(Out):
    """The ``error`` object of every error answer."""

    code: str
    message: str
    receipt: str | None = None
    retry_at: UtcTime | None = None
    details: dict[str, Any] | None = None


class ErrorBody(Out):
    """Every error answer: ``{"error": {"code", "message"[, "receipt"]}}``."""

    error: ErrorDetail


# --------------------------------------------------------------------------- end-user side


class FingerprintIn(Strict):
    """A machine fingerprint: id plus keyed component hashes (never raw identifiers)."""

    id: FingerprintId
    algorithm: Annotated[StrictInt, Field(ge=1, le=1000)] = 1
    components: Annotated[dict[ComponentName, ComponentValue], Field(min_length=1, max_length=16)]


class ClientFacts(Strict):
    """What the SDK says about itself (never personal data)."""

    sdk_version: ShortClientText | None = None
    os: ClientText | None = None
    python: ShortClientText | None = None


class ReplacesIn(Strict):
    """The machine's trial (evaluation, test) activation a new activation replaces."""

    activation_id: ObjectId
    activation_secret: Annotated[str, StringConstraints(strict=True, min_length=1,
                                                        max_length=128)]


class ActivateIn(Strict):
    """``POST /v1/activations``."""

    product: ProductId
    license_key: LicenseKey
    fingerprint: FingerprintIn
    password: Password | None = None
    email: Email | None = None
    registration: Annotated[dict[RegKey, RegValue], Field(max_length=16)] | None = None
    consent: StrictBool = False
    nonce: Nonce
    idempotency_key: IdempotencyKey
    client: ClientFacts = Field(default_factory=ClientFacts)
    installation_id: Nonce | None = None  # random per OS account (user seats)
    replaces: ReplacesIn | None = None


class ActivateOut(Out):
    """Answer of an activation (201, or 200 for a replay)."""

    activation_id: str
    activation_secret: str
    token: str
    nonce: str
    server_time: UtcTime


class ValidateIn(Strict):
    """``POST /v1/activations/{id}/validate``."""

    fingerprint: FingerprintIn
    nonce: Nonce


class ValidateOut(Out):
    """A fresh token; ``rebound`` when the fingerprint drifted within the tolerance."""

    token: str
    nonce: str
    server_time: UtcTime
    rebound: bool


class NonceIn(Strict):
    """A body with only a nonce (deactivate, erasure)."""

    nonce: Nonce


class ReceiptOut(Out):
    """A signed receipt."""

    receipt: str | None
    nonce: str
    server_time: UtcTime


class ErasureOut(Out):
    """Answer of an erasure request: a fresh limited token and a receipt."""

    token: str
    receipt: str | None
    nonce: str
    server_time: UtcTime


class SettingsIn(Strict):
    """``PUT /v1/activations/{id}/settings``: a JSON object of at most 32 KiB."""

    settings: dict[str, Any]


class SettingsOut(Out):
    """The settings document of the license."""

    settings: dict[str, Any]
    updated_at: UtcTime | None
    server_time: UtcTime


class HealthOut(Out):
    """``GET /v1/health``."""

    status: Literal["ok"]
    server_time: UtcTime


# --------------------------------------------------------------------------- air-gapped
# (service/offline.py; the block formats: software_dna/offline.py, docs/offline.md)

ArmoredText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=48 * 1024)]


class OfflineActivateIn(Strict):
    """``POST /v1/offline/activations``: an armored activation request."""

    request: ArmoredText


class OfflineActivateOut(Out):
    """The armored activation response, and what it activated."""

    response: str
    activation_id: str
    license_id: str
    product: str
    fingerprint_id: str
    server_time: UtcTime


class OfflineDeactivateIn(Strict):
    """``POST /v1/offline/deactivations``: an armored deactivation receipt."""

    receipt: ArmoredText


class OfflineDeactivateOut(Out):
    """The seat is free; ``receipt`` is the server's own signed receipt."""

    activation_id: str
    license_id: str
    product: str
    deactivated_at: UtcTime
    already_deactivated: bool
    receipt: str | None
    nonce: str
    server_time: UtcTime


# --------------------------------------------------------------------------- admin: products

#: Seat policy (service/seats.py): floating lease length, lock-out window and limits.
LeaseSeconds = Annotated[StrictInt, Field(ge=5, le=86400)]
LockoutPeriod = Annotated[StrictInt, Field(ge=3600, le=366 * 86400)]
LockoutLimit = Annotated[StrictInt, Field(ge=0, le=100_000)]
SeatMode = Literal["machine", "user", "floating"]


class ProductIn(Strict):
    """Create a product."""

    id: ProductId
    name: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)] | None = None
    protection: Protection = "opportunistic"
    refresh_interval: Seconds = 24 * 3600
    offline_grace_period: Seconds = 7 * 24 * 3600
    fingerprint_tolerance: Annotated[StrictInt, Field(ge=0, le=16)] = 1
    features: Features = Field(default_factory=list)
    limited_features: Features = Field(default_factory=list)
    password_required: StrictBool = False
    trial_days: TrialDays | None = None
    test_code_limit: TestCodeLimit = 5
    lease_duration: LeaseSeconds = 900
    reactivation_limit: LockoutLimit | None = None
    reactivation_period: LockoutPeriod = 30 * 86400
    address_activation_limit: LockoutLimit | None = None


class ProductPatch(Strict):
    """Change a product (absent fields stay as they are)."""

    name: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200)] | None = None
    protection: Protection | None = None
    refresh_interval: Seconds | None = None
    offline_grace_period: Seconds | None = None
    fingerprint_tolerance: Annotated[StrictInt, Field(ge=0, le=16)] | None = None
    features: Features | None = None
    limited_features: Features | None = None
    password_required: StrictBool | None = None
    trial_days: TrialDays | None = None  # 0 or null: no trial (absent: unchanged)
    test_code_limit: TestCodeLimit | None = None
    lease_duration: LeaseSeconds | None = None
    reactivation_limit: LockoutLimit | None = None  # null: no lock-out (absent: unchanged)
    reactivation_period: LockoutPeriod | None = None
    address_activation_limit: LockoutLimit | None = None  # null: off (absent: unchanged)


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
    created_at: UtcTime
    updated_at: UtcTime

    @classmethod
    def of(cls, p: Product) -> ProductOut:
        """From the ORM row."""
        return cls(
            id=p.id, name=p.name, protection=p.protection, refresh_interval=p.refresh_interval,
            offline_grace_period=p.offline_grace_period,
            token_lifetime=p.refresh_interval + p.offline_grace_period,
            fingerprint_tolerance=p.fingerprint_tolerance, features=list(p.features),
            limited_features=list(p.limited_features), password_required=p.password_required,
            trial_days=p.trial_days, test_code_limit=p.test_code_limit,
            lease_duration=p.lease_duration, reactivation_limit=p.reactivation_limit,
            reactivation_period=p.reactivation_period,
            address_activation_limit=p.address_activation_limit,
            created_at=p.created_at, updated_at=p.updated_at,
        )


class ProductList(Out):
    """``GET /v1/admin/products``."""

    products: list[ProductOut]


# --------------------------------------------------------------------------- admin: keys


class KeyOut(Out):
    """A signing key (public half only)."""

    kid: str
    product: str
    public_key: str
    status: str
    created_at: UtcTime
    retired_at: UtcTime | None

    @classmethod
    def of(cls, k: SigningKey) -> KeyOut:
        """From the ORM row."""
        return cls(kid=k.kid, product=k.product_id, public_key=k.public_key, status=k.status,
                   created_at=k.created_at, retired_at=k.retired_at)


class KeyList(Out):
    """``GET /v1/admin/products/{product}/keys``."""

    keys: list[KeyOut]


class RotateIn(Strict):
    """Rotate: to a fresh key (no ``kid``), or to a trusted key already published."""

    kid: Kid | None = None


class PublicKeysOut(Out):
    """The ``k4.public`` strings to paste into the app (active first)."""

    product: str
    public_keys: list[str]


# --------------------------------------------------------------------------- admin: licenses


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
    kind: Literal["full", "evaluation"] = "full"
    expires_after_days: Days | None = None
    subscription: StrictBool = False
    seat_mode: SeatMode = "machine"
    rollover: StrictBool = False


class LicensePatch(Strict):
    """Set seats, expiry (``null``: perpetual) or features; absent fields stay."""

    seats: Annotated[StrictInt, Field(ge=1, le=100_000)] | None = None
    expires_at: TimeIn | None = None
    features: Features | None = None
    seat_mode: SeatMode | None = None
    rollover: StrictBool | None = None


class PasswordIn(Strict):
    """Set (string) or remove (``null``) the activation password."""

    password: Password | None


class LicenseOut(Out):
    """A license; the key itself is never shown again (only ``key_hint``)."""

    id: str
    product: str
    key_hint: str
    status: str
    seats: int
    seats_in_use: int
    expires_at: UtcTime | None
    features: list[str]
    password_set: bool
    password_reset_required: bool
    erased: bool
    kind: str
    expires_after_days: int | None
    first_activated_at: UtcTime | None
    subscription: bool
    cancelled_at: UtcTime | None
    seat_mode: str
    rollover: bool
    created_at: UtcTime
    updated_at: UtcTime

    @classmethod
    def of(cls, lic: License, seats_in_use: int) -> LicenseOut:
        """From the ORM row."""
        return cls(
            id=lic.id, product=lic.product_id,
            key_hint="\u2026-" + lic.key_last4 if lic.key_last4 else "(trial: no key)",
            status=lic.status, seats=lic.seats, seats_in_use=seats_in_use,
            expires_at=lic.expires_at, features=list(lic.features),
            password_set=lic.password_hash is not None,
            password_reset_required=lic.password_hash is None
            and (lic.password_erased or lic.product.password_required),
            erased=lic.erased, kind=lic.kind, expires_after_days=lic.duration_days,
            first_activated_at=lic.first_activated_at, subscription=lic.subscription,
            cancelled_at=lic.cancelled_at, seat_mode=lic.seat_mode, rollover=lic.rollover,
            created_at=lic.created_at, updated_at=lic.updated_at,
        )


class IssuedLicenseOut(LicenseOut):
    """Answer of issuing: the only time the full ``license_key`` is shown."""

    license_key: str


class LicenseList(Out):
    """``GET /v1/admin/licenses``."""

    licenses: list[LicenseOut]


# --------------------------------------------------------------------------- admin: activations


class ActivationOut(Out):
    """An activation as the vendor sees it (no secret, no personal data)."""

    id: str
    license_id: str
    product: str
    fingerprint_id: str
    end_user_id: str | None
    erased: bool
    client: ClientFacts
    created_at: UtcTime
    last_seen_at: UtcTime
    deactivated_at: UtcTime | None
    deactivated_by: str | None
    offline: bool = False  # activated from an air-gapped request (docs/offline.md)

    @classmethod
    def of(cls, a: Activation) -> ActivationOut:
        """From the ORM row."""
        return cls(
            id=a.id, license_id=a.license_id, product=a.license.product_id,
            fingerprint_id=a.fingerprint_id, end_user_id=a.end_user_id, erased=a.erased,
            client=ClientFacts(sdk_version=a.sdk_version, os=a.client_os, python=a.client_python),
            created_at=a.created_at, last_seen_at=a.last_seen_at,
            deactivated_at=a.deactivated_at, deactivated_by=a.deactivated_by,
            offline=a.offline,
        )


class ActivationList(Out):
    """``GET /v1/admin/licenses/{id}/activations``."""

    activations: list[ActivationOut]


# --------------------------------------------------------------------------- admin: end users


class EndUserSummary(Out):
    """An end user found by email (no personal data in the answer)."""

    id: str
    created_at: UtcTime
    consent_at: UtcTime | None
    erased_at: UtcTime | None


class EndUserList(Out):
    """``GET /v1/admin/end-users?email=``."""

    end_users: list[EndUserSummary]


class EndUserActivation(Out):
    """One activation in an export."""

    id: str
    license_id: str
    product: str
    fingerprint_id: str
    created_at: UtcTime
    last_seen_at: UtcTime
    deactivated_at: UtcTime | None
    client: ClientFacts


class EndUserExport(Out):
    """Everything held about one end user (GDPR access)."""

    id: str
    email: str | None
    registration: dict[str, str] | None
    consent_at: UtcTime | None
    created_at: UtcTime
    erased_at: UtcTime | None
    activations: list[EndUserActivation]
    settings: dict[str, dict[str, Any]]


# --------------------------------------------------------------------------- admin: audit


class AuditOut(Out):
    """One audit entry (ids only)."""

    id: int
    at: UtcTime
    actor: str
    action: str
    product_id: str | None
    license_id: str | None
    activation_id: str | None
    end_user_id: str | None
    kid: str | None
    detail: dict[str, Any] | None

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        """From the ORM row."""
        return cls(id=e.id, at=e.at, actor=e.actor, action=e.action, product_id=e.product_id,
                   license_id=e.license_id, activation_id=e.activation_id,
                   end_user_id=e.end_user_id, kid=e.kid, detail=e.detail)


class AuditList(Out):
    """``GET /v1/admin/audit``."""

    entries: list[AuditOut]


class OkOut(Out):
    """A plain acknowledgement."""

    ok: bool = True
