"""Bodies of renewal codes: issued by the vendor, redeemed by the end user."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AliasChoices,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import Days, LicenseKey, Nonce, ObjectId, ProductId, UtcTime

__all__ = ["RenewIn", "RenewOut", "RenewalCodeList", "RenewalCodeOut", "RenewalCodesIn"]


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
    product: Annotated[str, Field(validation_alias=AliasChoices("product_id", "product"))]
    license_id: str | None
    code_hint: str
    days: int
    created_at: UtcTime
    redeemed_at: UtcTime | None
    redeemed_license_id: str | None
    code: Annotated[str | None, StringConstraints(max_length=64),
                    Field(validate_default=True)] = None

    @field_validator("code", mode="before")
    @classmethod
    def _code_from_context(cls, value: Any, info: ValidationInfo) -> Any:
        """``model_validate(row, context={"code": code})``: the clear code is no column."""
        if info.context and "code" in info.context:
            return info.context["code"]
        return value



class RenewalCodeList(Out):
    """``GET /v1/admin/renewal-codes`` (and the answer of ``POST``)."""

    renewal_codes: list[RenewalCodeOut]
