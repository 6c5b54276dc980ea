"""Trials: the app starts this machine's trial (docs/trials.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from software_dna.server import services
from software_dna.server.api.deps import Db, State, client_address, fingerprint_data
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import ActivateOut, TrialIn
from software_dna.server.services import usage

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429)


@router.post("/trials", response_model=ActivateOut, status_code=201, responses={
    **_ERRORS, 200: {"model": ActivateOut, "description": "This machine's running trial"}})
def start_trial(body: TrialIn, request: Request, response: Response, state: State,
                session: Db) -> ActivateOut:
    """Start this machine's trial (201), or get back the one that runs (200)."""
    req = services.TrialRequest(
        product=body.product,
        fingerprint=fingerprint_data(body.fingerprint),
        nonce=body.nonce, client=body.client.model_dump(),
        trusted_keys=frozenset(body.trusted_keys) if body.trusted_keys is not None else None,
    )
    counter = usage.counter_of(request.app.state)
    result = services.start_trial(session, state.ctx, req, client_address=client_address(request))
    if result.created:
        counter.record(usage.TRIAL_STARTED, usage.OK, result.product_id)
    if not result.created:
        response.status_code = 200
    return ActivateOut(activation_id=result.activation_id,
                       activation_secret=result.activation_secret, token=result.token,
                       nonce=result.nonce, server_time=result.server_time)
