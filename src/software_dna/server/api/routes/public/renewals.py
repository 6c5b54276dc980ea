"""Renewal codes redeemed by the end user (docs/licenses.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from software_dna.server import services
from software_dna.server.api.deps import Db, IdPath, State, bearer, client_address
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import RenewIn, RenewOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429)


@router.post("/activations/{activation_id}/renewal", response_model=RenewOut,
                    responses=_ERRORS)
def renew(activation_id: IdPath, body: RenewIn, request: Request, state: State,
          session: Db) -> RenewOut:
    """Redeem a renewal code: days are added to this activation's license."""
    result = services.redeem_renewal_code(session, state.ctx, activation_id, bearer(request),
                                         code=body.code, nonce=body.nonce,
                                         client_address=client_address(request))
    return RenewOut(token=result.token, nonce=result.nonce, server_time=result.server_time,
                    license_expires_at=result.license_expires_at)
