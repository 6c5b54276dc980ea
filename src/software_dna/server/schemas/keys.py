"""Bodies of signing keys (public halves only)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import Kid, UtcTime

__all__ = ["KeyList", "KeyOut", "PublicKeysOut", "RotateIn"]


class KeyOut(Out):
    """A signing key (public half only)."""

    kid: str
    product: Annotated[str, Field(validation_alias=AliasChoices("product_id", "product"))]
    public_key: str
    status: str
    created_at: UtcTime
    retired_at: UtcTime | None



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
