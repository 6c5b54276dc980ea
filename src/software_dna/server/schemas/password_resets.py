"""Bodies of password reset by email (docs/seats.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import LicenseKey, Password, ProductId, UtcTime

__all__ = [
    "PasswordResetConfirmIn",
    "PasswordResetDoneOut",
    "PasswordResetIn",
    "PasswordResetOut",
    "ResetCode",
]


ResetCode = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=32, pattern=r"^[A-Za-z0-9 -]+$")
]


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
