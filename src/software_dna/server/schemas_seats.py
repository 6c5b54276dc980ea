"""Bodies of the seats routes (routes_seats.py): leases, lock-out, password reset.

Same rules as :mod:`software_dna.server.schemas`: requests refuse unknown
fields and use strict types; times go out as RFC 3339 UTC.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from software_dna.server.schemas import (
    LicenseKey,
    ObjectId,
    Out,
    Password,
    ProductId,
    Strict,
    UtcTime,
)

__all__ = [
    "CheckoutOut",
    "LeaseList",
    "LeaseOut",
    "LockoutOut",
    "LockoutResetIn",
    "LockoutResetOut",
    "PasswordResetConfirmIn",
    "PasswordResetDoneOut",
    "PasswordResetIn",
    "PasswordResetOut",
]

ResetCode = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9 -]+$")
]
ClientAddress = Annotated[
    str, StringConstraints(strict=True, strip_whitespace=True, min_length=2, max_length=64,
                           pattern=r"^[0-9A-Fa-f.:]+$")
]


class CheckoutOut(Out):
    """A fresh token after a check-out / check-in; ``lease_expires_at`` null: no lease held."""

    token: str
    nonce: str
    server_time: UtcTime
    rebound: bool
    lease_expires_at: UtcTime | None


class PasswordResetIn(Strict):
    """``POST /v1/password-resets``: mail a reset code for this license."""

    product: ProductId
    license_key: LicenseKey


class PasswordResetOut(Out):
    """The code went out to ``sent`` address(es) on file; it works until ``expires_at``."""

    sent: int
    expires_at: UtcTime
    server_time: UtcTime


class PasswordResetConfirmIn(Strict):
    """``POST /v1/password-resets/confirm``: the mailed code and the new password."""

    product: ProductId
    license_key: LicenseKey
    code: ResetCode
    new_password: Password


class PasswordResetDoneOut(Out):
    """The new activation password is set."""

    ok: bool = True
    server_time: UtcTime


class LeaseOut(Out):
    """A live floating lease (which machine, since when, until when)."""

    activation_id: str
    fingerprint_id: str
    created_at: UtcTime
    renewed_at: UtcTime
    expires_at: UtcTime


class LeaseList(Out):
    """``GET /v1/admin/licenses/{id}/leases``: live leases, earliest end first."""

    license_id: str
    seats: int
    leases: list[LeaseOut]


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
