"""Bodies of the staff accounts and admin API keys routes (``/v1/admin/staff``, ``/api-keys``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StringConstraints

from software_dna.server.models import StaffMember
from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import UtcTime

__all__ = [
    "AdminKeyCreated",
    "AdminKeyIn",
    "AdminKeyList",
    "AdminKeyOut",
    "RoleName",
    "StaffCreated",
    "StaffIn",
    "StaffList",
    "StaffOut",
    "StaffPatch",
    "StaffResetIn",
    "StaffResetOut",
    "staff_out",
]

#: A role's name (domain.roles.Role).
RoleName = Literal["owner", "admin", "support", "developer", "read_only"]
_Name = Annotated[str, StringConstraints(strict=True, max_length=100)]


class StaffOut(Out):
    """A staff member (never their password or second factor's secret)."""

    id: str
    email: str
    name: str
    role: str
    #: True when a TOTP second factor is enrolled and confirmed.
    totp: bool
    created_at: UtcTime
    last_sign_in_at: UtcTime | None
    disabled_at: UtcTime | None


def staff_out(row: StaffMember) -> StaffOut:
    """The answer about a staff member (whether a second factor is on, not its secret)."""
    return StaffOut(id=row.id, email=row.email, name=row.name, role=row.role,
                    totp=row.totp_confirmed_at is not None, created_at=row.created_at,
                    last_sign_in_at=row.last_sign_in_at, disabled_at=row.disabled_at)


class StaffList(Out):
    """``GET /v1/admin/staff``: staff members by email address."""

    staff: list[StaffOut]


class StaffIn(Strict):
    """``POST /v1/admin/staff``: a new staff member; without ``password`` one is generated."""

    email: Annotated[str, StringConstraints(strict=True, min_length=3, max_length=254)]
    role: RoleName
    name: _Name = ""
    #: At least 12 characters; absent: a random one, in the answer this once.
    password: Annotated[str, StringConstraints(strict=True, max_length=1000)] | None = None


class StaffCreated(Out):
    """The new staff member and, when it was generated, their password (shown this once)."""

    staff: StaffOut
    password: str | None = None


class StaffPatch(Strict):
    """``PATCH /v1/admin/staff/{id}``: a new role (the last owner keeps theirs: 409)."""

    role: RoleName


class StaffResetIn(Strict):
    """``POST /v1/admin/staff/{id}/reset``: a new random password; optionally drop the TOTP."""

    clear_totp: StrictBool = False


class StaffResetOut(Out):
    """The new password (shown this once; it must be changed at the next sign-in)."""

    staff: StaffOut
    password: str


class AdminKeyOut(Out):
    """An admin API key (never the key itself)."""

    id: str
    name: str
    role: str
    created_at: UtcTime
    revoked_at: UtcTime | None


class AdminKeyList(Out):
    """``GET /v1/admin/api-keys``: the usable keys, oldest first."""

    api_keys: list[AdminKeyOut]


class AdminKeyIn(Strict):
    """``POST /v1/admin/api-keys``: a key for ``role`` named ``name`` (who or what uses it)."""

    role: RoleName
    name: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=100)] = \
        Field(description="who or what uses the key")


class AdminKeyCreated(Out):
    """The new key: ``key`` is shown this once (only its keyed hash is kept)."""

    api_key: AdminKeyOut
    key: str
