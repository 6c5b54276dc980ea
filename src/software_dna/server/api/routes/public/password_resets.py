"""Password reset by email: ask for a code, confirm it with a new password."""

from __future__ import annotations

from fastapi import APIRouter, Request

from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import (
    PasswordResetConfirmIn,
    PasswordResetDoneOut,
    PasswordResetIn,
    PasswordResetOut,
)
from software_dna.server.services import password_reset

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429, 503)


@router.post("/password-resets", response_model=PasswordResetOut, status_code=202,
                    responses=_ERRORS)
def request_password_reset(body: PasswordResetIn, request: Request, state: State,
                           session: Db) -> PasswordResetOut:
    """Mail a single-use reset code to the email address(es) on file for the license."""
    result = password_reset.request_reset(session, state.ctx, product_id=body.product,
                                          license_key=body.license_key,
                                          client_address=client_address(request))
    return PasswordResetOut(sent=result.sent, expires_at=result.expires_at,
                            server_time=result.server_time)


@router.post("/password-resets/confirm", response_model=PasswordResetDoneOut,
                    responses=_ERRORS)
def confirm_password_reset(body: PasswordResetConfirmIn, request: Request, state: State,
                           session: Db) -> PasswordResetDoneOut:
    """Set a new activation password with a mailed reset code."""
    now = password_reset.confirm_reset(session, state.ctx, product_id=body.product,
                                       license_key=body.license_key, code=body.code,
                                       new_password=body.new_password,
                                       client_address=client_address(request))
    return PasswordResetDoneOut(server_time=now)
