"""Air-gapped activation: a request block in, a response block out; deactivation receipts."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.api.errors import error_responses
from software_dna.server.api.views import offline_activate_out
from software_dna.server.schemas import (
    OfflineActivateIn,
    OfflineActivateOut,
    OfflineDeactivateIn,
    OfflineDeactivateOut,
)
from software_dna.server.services import offline

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 429)


@router.post("/offline/activations", response_model=OfflineActivateOut, status_code=201,
             responses={**_ERRORS, 200: {"model": OfflineActivateOut,
                                         "description": "The request was answered before"}})
def offline_activate(body: OfflineActivateIn, request: Request, response: Response,
                     state: State, session: Db) -> OfflineActivateOut:
    """Answer an air-gapped activation request (201; 200 when answered before).

    The activation password, when the license has one, comes beside the block
    (typed on this connected machine); a password inside an old block is never used.
    """
    address = client_address(request)
    result = offline.respond(session, state.ctx, body.request, password=body.password,
                             client_address=address)
    if not result.created:
        response.status_code = 200
    return offline_activate_out(result)


@router.post("/offline/deactivations", response_model=OfflineDeactivateOut, responses=_ERRORS)
def offline_deactivate(body: OfflineDeactivateIn, state: State,
                       session: Db) -> OfflineDeactivateOut:
    """Free the seat named by a signed deactivation receipt (idempotent)."""
    result = offline.deactivate_from_receipt(session, state.ctx, body.receipt)
    return OfflineDeactivateOut(
        activation_id=result.activation_id, license_id=result.license_id,
        product=result.product, deactivated_at=result.deactivated_at,
        already_deactivated=result.already_deactivated, receipt=result.receipt,
        nonce=result.nonce, server_time=result.server_time)
