"""The staff member's own account: who they are, their password, their second factor (TOTP)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State
from software_dna.server.domain.roles import ROLE_PERMISSIONS, Permission, Role
from software_dna.server.models import StaffMember
from software_dna.server.panel.web import (
    PanelRoute,
    Posted,
    Staff,
    field_errors,
    poster,
    render,
    see_other,
    viewer,
)
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.staff import (
    begin_totp,
    confirm_totp,
    disable_totp,
    pending_totp,
)
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)


def _account(request: Request, state: State, staff: Staff, member: StaffMember, *,
             status: int = 200, errors: dict[str, str] | None = None) -> Response:
    pending = pending_totp(state.ctx, member)
    permissions = sorted(p.value.replace("_", " ") for p in ROLE_PERMISSIONS[Role(member.role)])
    return render(request, "account.html", staff, status=status, member=member,
                  permissions=permissions, pending=pending, errors=errors or {})


@router.get("/account")
def account(request: Request, state: State, session: Db,
            staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """Name, address, role and what it allows; the password link; two-step sign-in."""
    return _account(request, state, staff, session.merge(staff.member))


@router.post("/account/totp/begin")
def totp_begin(request: Request, state: State, session: Db,
               posted: Annotated[Posted, Depends(poster(Permission.READ))]) -> Response:
    """Make a new TOTP secret (shown on the account page until confirmed)."""
    member = session.merge(posted.staff.member)
    try:
        begin_totp(session, state.ctx, member)
    except ServiceError as exc:
        return _account(request, state, posted.staff, member, status=exc.code.status,
                        errors=field_errors(exc, "totp"))
    return see_other(request, "/panel/account#totp")


@router.post("/account/totp/confirm")
def totp_confirm(request: Request, state: State, session: Db,
                 posted: Annotated[Posted, Depends(poster(Permission.READ))]) -> Response:
    """Turn two-step sign-in on with a code from the app."""
    member = session.merge(posted.staff.member)
    try:
        confirm_totp(session, state.ctx, member, posted.get("code")[:20])
    except ServiceError as exc:
        status = 429 if exc.code is Code.RATE_LIMITED else 400
        return _account(request, state, posted.staff, member, status=status,
                        errors=field_errors(exc, "code"))
    return see_other(request, "/panel/account", "Two-step sign-in is on.")


@router.post("/account/totp/disable")
def totp_disable(request: Request, state: State, session: Db,
                 posted: Annotated[Posted, Depends(poster(Permission.READ))]) -> Response:
    """Turn two-step sign-in off (the password confirms it)."""
    member = session.merge(posted.staff.member)
    try:
        disable_totp(session, state.ctx, member, posted.values.get("password", ""))
    except ServiceError as exc:
        return _account(request, state, posted.staff, member, status=400,
                        errors=field_errors(exc))
    return see_other(request, "/panel/account", "Two-step sign-in is off.")
