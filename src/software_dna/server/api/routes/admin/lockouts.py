"""Vendor routes: lock-outs -- every limit that applies to a license (show, reset)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from software_dna.server import services
from software_dna.server.api.deps import Db, IdPath, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import LockoutOut, LockoutResetIn, LockoutResetOut
from software_dna.server.services import lockouts

__all__ = ["router"]

_LOCKOUTS = [Depends(require(Permission.LOCKOUTS))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.get("/licenses/{license_id}/lockout", dependencies=_READ, response_model=LockoutOut)
def show_lockout(
    license_id: IdPath, state: State, session: Db,
    address: Annotated[str | None, Query(min_length=2, max_length=64,
                                         pattern=r"^[0-9A-Fa-f.:]+$")] = None,
) -> LockoutOut:
    """Every limit that applies to the license (and to ``address``'s network): counts,
    limits, windows, and until when each locks."""
    return LockoutOut.model_validate(
        lockouts.lockout_report(session, state.ctx, license_id, address=address))


@router.post("/lockouts/reset", dependencies=_LOCKOUTS, response_model=LockoutResetOut)
def reset_lockout(body: LockoutResetIn, state: State, session: Db) -> LockoutResetOut:
    """Lift every limit of a license and/or a client network; says what was forgotten."""
    report = lockouts.reset_lockouts(session, state.ctx, license_id=body.license_id,
                                     address=body.address, actor="admin")
    return LockoutResetOut(removed=report.activations_forgotten,
                           attempts_forgotten=report.attempts_forgotten,
                           forgotten=report.forgotten, unlocked=report.unlocked,
                           license_id=report.license_id, network=report.network,
                           server_time=services.utcnow())
