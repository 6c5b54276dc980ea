"""Bodies of the lock-outs: every limit that applies to a license (docs/seats.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import ObjectId, UtcTime

__all__ = ["ClientAddress", "LockoutLimitOut", "LockoutOut", "LockoutResetIn",
           "LockoutResetOut"]


ClientAddress = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=2, max_length=64,
                           pattern=r"^[0-9A-Fa-f.:]+$")
]


class LockoutLimitOut(Out):
    """One limit that applies (``services.lockouts``): ``kind`` (``reactivations``,
    ``activation_attempts``, ``renewal_attempts``, ``reset_mails``, ``address_attempts``,
    ``address_activations``, or a counter's own prefix), what it counts, ``count``
    in the last ``window`` seconds, ``limit`` (null: none set) and ``locked_until``
    (null: the next attempt passes; else exactly the ``retry_at`` the SDK is told)."""

    kind: str
    description: str
    count: int = Field(ge=0)
    limit: int | None
    window: int
    locked_until: UtcTime | None


class LockoutOut(Out):
    """Every limit that applies to a license (and to a client network, when asked).

    ``activations_in_period``, ``allowed`` (null: the product has no
    re-activation limit) and ``period`` describe the re-activation lock-out;
    ``locked_until`` is when the last locked limit lifts (null: none is
    locked); ``network`` the network the address asked about counts as.
    """

    license_id: str
    activations_in_period: int
    allowed: int | None
    period: int
    locked_until: UtcTime | None
    network: str | None = None
    limits: list[LockoutLimitOut]


class LockoutResetIn(Strict):
    """``POST /v1/admin/lockouts/reset``: a license, a client address (IPv4/IPv6), or both."""

    license_id: ObjectId | None = None
    address: ClientAddress | None = None


class LockoutResetOut(Out):
    """What a reset forgot: ``removed`` recorded new activations, ``attempts_forgotten``
    counted attempts, ``forgotten`` both per kind (kinds with nothing are absent), and
    the kinds that were locked until the reset (``unlocked``)."""

    removed: int = Field(ge=0)
    attempts_forgotten: int = Field(ge=0)
    forgotten: dict[str, int]
    unlocked: list[str]
    license_id: str | None
    network: str | None
    server_time: UtcTime
