"""Floating leases: check-out and check-in (docs/seats.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session

from software_dna.server import services
from software_dna.server.api.deps import AppState, Db, IdPath, State, bearer, fingerprint_data
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import CheckoutOut, ValidateIn
from software_dna.server.services import leases

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429, 503)


def _lease_answer(session: Session, state: AppState, activation_id: str, body: ValidateIn,
                  request: Request, *, action: str) -> CheckoutOut:
    result = services.validate(session, state.ctx, activation_id, bearer(request),
                              fingerprint=fingerprint_data(body.fingerprint), nonce=body.nonce,
                              lease=action,
                              trusted=frozenset(body.trusted_keys)
                              if body.trusted_keys is not None else None)
    ends = leases.current_end(session, activation_id, result.server_time)
    session.rollback()
    return CheckoutOut(token=result.token, nonce=result.nonce, server_time=result.server_time,
                       rebound=result.rebound, lease_expires_at=ends,
                       activation_secret=result.activation_secret)


@router.post("/activations/{activation_id}/checkout", response_model=CheckoutOut,
                    responses=_ERRORS)
def checkout(activation_id: IdPath, body: ValidateIn, request: Request, state: State,
             session: Db) -> CheckoutOut:
    """Take (or renew) this machine's floating lease; a fresh token carries its end.

    On a license that is not floating this is a plain validation.
    """
    return _lease_answer(session, state, activation_id, body, request, action="take")


@router.post("/activations/{activation_id}/checkin", response_model=CheckoutOut,
                    responses=_ERRORS)
def checkin(activation_id: IdPath, body: ValidateIn, request: Request, state: State,
            session: Db) -> CheckoutOut:
    """Return this machine's floating lease; the fresh token holds no lease."""
    return _lease_answer(session, state, activation_id, body, request, action="release")
