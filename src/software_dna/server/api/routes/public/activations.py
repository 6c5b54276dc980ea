"""Activations, the end user's side: activate, deactivate, ask for erasure."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from software_dna.server import services
from software_dna.server.api.deps import Db, IdPath, State, bearer, client_address, fingerprint_data
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import ActivateIn, ActivateOut, ErasureOut, NonceIn, ReceiptOut
from software_dna.server.services import usage

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 429)


@router.post("/activations", response_model=ActivateOut, status_code=201, responses={
    **_ERRORS, 200: {"model": ActivateOut, "description": "The same activation again (a "
                     "replay of its idempotency key, or this machine's seat)"}})
def activate(body: ActivateIn, request: Request, response: Response, state: State,
             session: Db) -> ActivateOut:
    """Activate a license on this machine (201; 200 for an idempotent replay)."""
    req = services.ActivationRequest(
        product=body.product,
        license_key=body.license_key,
        fingerprint=fingerprint_data(body.fingerprint),
        nonce=body.nonce,
        idempotency_key=body.idempotency_key,
        password=body.password,
        email=body.email,
        registration=body.registration,
        label=body.label,
        consent=body.consent,
        client=body.client.model_dump(),
        installation_id=body.installation_id,
        replaces=(body.replaces.activation_id, body.replaces.activation_secret)
        if body.replaces is not None else None,
        trusted_keys=frozenset(body.trusted_keys) if body.trusted_keys is not None else None,
    )
    address = client_address(request)
    counter = usage.counter_of(request.app.state)
    try:
        result = services.activate(session, state.ctx, req, client_address=address)
    except services.ServiceError as exc:
        # Under no product: the product named is the client's word (no row per made-up name).
        counter.record(usage.ACTIVATION, exc.code.value)
        raise
    if result.created:
        counter.record(usage.ACTIVATION, usage.OK, result.product_id)
        if result.trial_converted:
            counter.record(usage.TRIAL_CONVERTED, usage.OK, result.product_id)
    if not result.created:
        response.status_code = 200
    return ActivateOut(activation_id=result.activation_id,
                       activation_secret=result.activation_secret, token=result.token,
                       nonce=result.nonce, server_time=result.server_time)


@router.post("/activations/{activation_id}/deactivate", response_model=ReceiptOut,
             responses=_ERRORS)
def deactivate(activation_id: IdPath, body: NonceIn, request: Request, state: State,
               session: Db) -> ReceiptOut:
    """Free this activation's seat."""
    result = services.deactivate(session, state.ctx, activation_id, bearer(request), body.nonce)
    return ReceiptOut(receipt=result.receipt, nonce=result.nonce, server_time=result.server_time)


@router.post("/activations/{activation_id}/erasure", response_model=ErasureOut,
             responses=_ERRORS)
def erasure(activation_id: IdPath, body: NonceIn, request: Request, state: State,
            session: Db) -> ErasureOut:
    """The end user's erasure request: personal data erased, a fresh limited token.

    Rate limited per client network and per activation (429 ``rate_limited``).
    """
    result = services.request_erasure(session, state.ctx, activation_id, bearer(request),
                                     body.nonce, client_address=client_address(request))
    return ErasureOut(token=result.token, receipt=result.receipt, nonce=result.nonce,
                      server_time=result.server_time)
