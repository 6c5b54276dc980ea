"""Request and response bodies of trials, test codes, terms and renewal (docs/protocol.md).

Same rules as :mod:`software_dna.server.schemas`: requests refuse unknown
fields and use strict types; times are RFC 3339 (UTC going out, with an
offset coming in).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from software_dna.server.models import RenewalCode, Trial
from software_dna.server.schemas import (
    ClientFacts,
    Days,
    Features,
    FingerprintIn,
    LicenseKey,
    Nonce,
    ObjectId,
    Out,
    Password,
    ProductId,
    Strict,
    TimeIn,
    UtcTime,
)

__all__ = [
    "ExtendIn",
    "RenewalCodeList",
    "RenewalCodeOut",
    "RenewalCodesIn",
    "RenewIn",
    "RenewOut",
    "TestCodeIn",
    "TrialIn",
    "TrialList",
    "TrialOut",
]


# --------------------------------------------------------------------------- end-user side


class TrialIn(Strict):
    """``POST /v1/trials``: start (or get back) this machine's trial."""

    product: ProductId
    fingerprint: FingerprintIn
    nonce: Nonce
    client: ClientFacts = Field(default_factory=ClientFacts)


class RenewIn(Strict):
    """``POST /v1/activations/{id}/renewal``: a renewal code the end user entered."""

    code: LicenseKey
    nonce: Nonce


class RenewOut(Out):
    """A fresh token carrying the new ``license_expires_at``."""

    token: str
    nonce: str
    server_time: UtcTime
    license_expires_at: UtcTime | None


# --------------------------------------------------------------------------- admin


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


class RenewalCodesIn(Strict):
    """``POST /v1/admin/renewal-codes``: codes for a product, or bound to one license."""

    days: Days
    product: ProductId | None = None
    license_id: ObjectId | None = None
    count: Annotated[int, Field(strict=True, ge=1, le=100)] = 1

    @model_validator(mode="after")
    def _target(self) -> RenewalCodesIn:
        if self.product is None and self.license_id is None:
            raise ValueError("give the product or the license_id")
        return self


class RenewalCodeOut(Out):
    """A renewal code; ``code`` is present only in the answer that made it."""

    id: str
    product: str
    license_id: str | None
    code_hint: str
    days: int
    created_at: UtcTime
    redeemed_at: UtcTime | None
    redeemed_license_id: str | None
    code: Annotated[str, StringConstraints(max_length=64)] | None = None

    @classmethod
    def of(cls, row: RenewalCode, code: str | None = None) -> RenewalCodeOut:
        """From the ORM row (and the clear code, when just made)."""
        return cls(id=row.id, product=row.product_id, license_id=row.license_id,
                   code_hint="\u2026-" + row.code_last4, days=row.days,
                   created_at=row.created_at, redeemed_at=row.redeemed_at,
                   redeemed_license_id=row.redeemed_license_id, code=code)


class RenewalCodeList(Out):
    """``GET /v1/admin/renewal-codes`` (and the answer of ``POST``)."""

    renewal_codes: list[RenewalCodeOut]


class TrialOut(Out):
    """A machine that used a product's trial (no component hashes in the answer)."""

    id: str
    product: str
    license_id: str | None
    fingerprint_id: str
    created_at: UtcTime

    @classmethod
    def of(cls, row: Trial) -> TrialOut:
        """From the ORM row."""
        return cls(id=row.id, product=row.product_id, license_id=row.license_id,
                   fingerprint_id=row.fingerprint_id, created_at=row.created_at)


class TrialList(Out):
    """``GET /v1/admin/products/{product}/trials``."""

    trials: list[TrialOut]
