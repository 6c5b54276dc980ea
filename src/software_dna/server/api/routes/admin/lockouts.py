"""Vendor routes: the re-activation lock-out (show, reset)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from software_dna.server import services
from software_dna.server.api.deps import Db, IdPath, State, require_admin
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import LockoutOut, LockoutResetIn, LockoutResetOut
from software_dna.server.services import seats

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses=error_responses(400, 401, 404, 409),
)


@router.get("/licenses/{license_id}/lockout", response_model=LockoutOut)
def show_lockout(license_id: IdPath, session: Db) -> LockoutOut:
    """The license's re-activation lock-out: activations in the period, and until when."""
    status = seats.lockout_status(session, services.get_license(session, license_id))
    return LockoutOut(license_id=status.license_id,
                      activations_in_period=status.activations_in_period,
                      allowed=status.allowed, period=status.period,
                      locked_until=status.locked_until)


@router.post("/lockouts/reset", response_model=LockoutResetOut)
def reset_lockout(body: LockoutResetIn, state: State, session: Db) -> LockoutResetOut:
    """Lift the lock-out of a license and/or a client address."""
    removed = seats.reset_lockout(session, state.ctx, license_id=body.license_id,
                                  address=body.address, actor="admin")
    return LockoutResetOut(removed=removed, license_id=body.license_id,
                           server_time=services.utcnow())
