"""Routes of seats: floating leases, password reset by email, the lock-out (docs/protocol.md).

``public_router`` (called by the SDK): ``POST /v1/activations/{id}/checkout``
and ``/checkin`` (a floating lease), ``POST /v1/password-resets`` and
``/v1/password-resets/confirm``.  ``admin_router`` (admin API key): a
license's live leases and lock-out, and resetting a lock-out.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session

from software_dna.server import service
from software_dna.server.api import (
    AppState,
    Db,
    IdPath,
    State,
    bearer,
    require_admin,
)
from software_dna.server.routes_public import _fingerprint
from software_dna.server.schemas import ErrorBody, ValidateIn
from software_dna.server.schemas_seats import (
    CheckoutOut,
    LeaseList,
    LeaseOut,
    LockoutOut,
    LockoutResetIn,
    LockoutResetOut,
    PasswordResetConfirmIn,
    PasswordResetDoneOut,
    PasswordResetIn,
    PasswordResetOut,
)
from software_dna.server.service import leases, password_reset, seats

__all__ = ["admin_router", "public_router"]

public_router = APIRouter(prefix="/v1", tags=["end user"])
admin_router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={code: {"model": ErrorBody} for code in (400, 401, 404, 409)},
)

_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 410, 429, 503)
}


def _address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


def _lease_answer(session: Session, state: AppState, activation_id: str, body: ValidateIn,
                  request: Request, *, action: str) -> CheckoutOut:
    result = service.validate(session, state.ctx, activation_id, bearer(request),
                              fingerprint=_fingerprint(body.fingerprint), nonce=body.nonce,
                              lease=action)
    ends = leases.current_end(session, activation_id, result.server_time)
    session.rollback()
    return CheckoutOut(token=result.token, nonce=result.nonce, server_time=result.server_time,
                       rebound=result.rebound, lease_expires_at=ends)


@public_router.post("/activations/{activation_id}/checkout", response_model=CheckoutOut,
                    responses=_ERRORS)
def checkout(activation_id: IdPath, body: ValidateIn, request: Request, state: State,
             session: Db) -> CheckoutOut:
    """Take (or renew) this machine's floating lease; a fresh token carries its end.

    On a license that is not floating this is a plain validation.
    """
    return _lease_answer(session, state, activation_id, body, request, action="take")


@public_router.post("/activations/{activation_id}/checkin", response_model=CheckoutOut,
                    responses=_ERRORS)
def checkin(activation_id: IdPath, body: ValidateIn, request: Request, state: State,
            session: Db) -> CheckoutOut:
    """Return this machine's floating lease; the fresh token holds no lease."""
    return _lease_answer(session, state, activation_id, body, request, action="release")


@public_router.post("/password-resets", response_model=PasswordResetOut, status_code=202,
                    responses=_ERRORS)
def request_password_reset(body: PasswordResetIn, request: Request, state: State,
                           session: Db) -> PasswordResetOut:
    """Mail a single-use reset code to the email address(es) on file for the license."""
    result = password_reset.request_reset(session, state.ctx, product_id=body.product,
                                          license_key=body.license_key,
                                          client_address=_address(request))
    return PasswordResetOut(sent=result.sent, expires_at=result.expires_at,
                            server_time=result.server_time)


@public_router.post("/password-resets/confirm", response_model=PasswordResetDoneOut,
                    responses=_ERRORS)
def confirm_password_reset(body: PasswordResetConfirmIn, request: Request, state: State,
                           session: Db) -> PasswordResetDoneOut:
    """Set a new activation password with a mailed reset code."""
    now = password_reset.confirm_reset(session, state.ctx, product_id=body.product,
                                       license_key=body.license_key, code=body.code,
                                       new_password=body.new_password,
                                       client_address=_address(request))
    return PasswordResetDoneOut(server_time=now)


# --------------------------------------------------------------------------- admin


@admin_router.get("/licenses/{license_id}/leases", response_model=LeaseList)
def list_leases(license_id: IdPath, session: Db) -> LeaseList:
    """The live floating leases of a license, earliest end first."""
    lic = service.get_license(session, license_id)
    rows = leases.list_leases(session, lic.id, service.utcnow())
    return LeaseList(license_id=lic.id, seats=lic.seats, leases=[
        LeaseOut(activation_id=r.activation_id, fingerprint_id=r.fingerprint_id,
                 created_at=r.created_at, renewed_at=r.renewed_at, expires_at=r.expires_at)
        for r in rows
    ])


@admin_router.get("/licenses/{license_id}/lockout", response_model=LockoutOut)
def show_lockout(license_id: IdPath, session: Db) -> LockoutOut:
    """The license's re-activation lock-out: activations in the period, and until when."""
    status = seats.lockout_status(session, service.get_license(session, license_id))
    return LockoutOut(license_id=status.license_id,
                      activations_in_period=status.activations_in_period,
                      allowed=status.allowed, period=status.period,
                      locked_until=status.locked_until)


@admin_router.post("/lockouts/reset", response_model=LockoutResetOut)
def reset_lockout(body: LockoutResetIn, state: State, session: Db) -> LockoutResetOut:
    """Lift the lock-out of a license and/or a client address."""
    removed = seats.reset_lockout(session, state.ctx, license_id=body.license_id,
                                  address=body.address, actor="admin")
    return LockoutResetOut(removed=removed, license_id=body.license_id,
                           server_time=service.utcnow())
