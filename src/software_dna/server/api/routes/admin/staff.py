"""Vendor routes: staff accounts of the control panel (list, add, role, reset, remove).

Owners only (``staff``).  Passwords generated here are in the answer once.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from software_dna.server.api.deps import ACTOR, Db, IdPath, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas.staff import (
    StaffCreated,
    StaffIn,
    StaffList,
    StaffOut,
    StaffPatch,
    StaffResetIn,
    StaffResetOut,
    staff_out,
)
from software_dna.server.services import staff

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require(Permission.STAFF))],
    responses=error_responses(400, 401, 403, 404, 409),
)


@router.get("/staff", response_model=StaffList)
def list_staff(session: Db) -> StaffList:
    """Staff members (not the removed ones), by email address."""
    return StaffList(staff=[staff_out(r) for r in staff.list_staff(session)])


@router.post("/staff", response_model=StaffCreated, status_code=201)
def add_staff(body: StaffIn, session: Db) -> StaffCreated:
    """Add a staff member; without a password one is generated and answered this once."""
    password = body.password if body.password is not None else staff.generate_password()
    row = staff.create_staff(session, email=body.email, password=password, role=body.role,
                             name=body.name, actor=ACTOR,
                             must_change_password=body.password is None)
    return StaffCreated(staff=staff_out(row),
                        password=password if body.password is None else None)


@router.patch("/staff/{staff_id}", response_model=StaffOut)
def change_role(staff_id: IdPath, body: StaffPatch, session: Db) -> StaffOut:
    """Change a staff member's role (effective at their next request)."""
    return staff_out(staff.set_role(session, staff_id, body.role, actor=ACTOR))


@router.post("/staff/{staff_id}/reset", response_model=StaffResetOut)
def reset(staff_id: IdPath, session: Db, body: StaffResetIn | None = None) -> StaffResetOut:
    """A new random password (answered once; to be changed at the next sign-in)."""
    row, password = staff.reset_password(session, staff_id, actor=ACTOR,
                                         clear_totp=body is not None and body.clear_totp)
    return StaffResetOut(staff=staff_out(row), password=password)


@router.delete("/staff/{staff_id}", response_model=StaffOut)
def remove(staff_id: IdPath, session: Db) -> StaffOut:
    """Remove a staff member: disabled, signed out; the audit log keeps naming them."""
    return staff_out(staff.remove_staff(session, staff_id, actor=ACTOR))
