"""Bodies of the re-activation lock-out (docs/seats.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import ObjectId, UtcTime

__all__ = ["ClientAddress", "LockoutOut", "LockoutResetIn", "LockoutResetOut"]


ClientAddress = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=2, max_length=64,
                           pattern=r"^[0-9A-Fa-f.:]+$")
]


class LockoutOut(Out):
    """A license's re-activation lock-out (``allowed`` null: the product has none)."""

    license_id: str
    activations_in_period: int
    allowed: int | None
    period: int
    locked_until: UtcTime | None


class LockoutResetIn(Strict):
    """``POST /v1/admin/lockouts/reset``: a license, a client address (IPv4/IPv6), or both."""

    license_id: ObjectId | None = None
    address: ClientAddress | None = None


class LockoutResetOut(Out):
    """How many recorded activations were forgotten."""

    removed: int = Field(ge=0)
    license_id: str | None
    server_time: UtcTime
