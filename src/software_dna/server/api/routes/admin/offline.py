"""Vendor route: the vendor's staff answer an air-gapped activation request."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from software_dna.server.api.deps import ACTOR, Db, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.api.views import offline_activate_out
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import OfflineActivateOut, OfflineRespondIn
from software_dna.server.services import offline

__all__ = ["router"]

_OFFLINE = [Depends(require(Permission.OFFLINE))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 403, 404, 409, 410, 413, 429),
)


@router.post("/offline/activations", dependencies=_OFFLINE,
             response_model=OfflineActivateOut, status_code=201,
             responses={200: {"model": OfflineActivateOut,
                              "description": "The request was answered before"}})
def respond(body: OfflineRespondIn, response: Response, state: State,
            session: Db) -> OfflineActivateOut:
    """Answer an air-gapped activation request as the vendor (201; 200 when answered before).

    The admin key authorises it: no activation password is asked. Every other
    rule of ``POST /v1/offline/activations`` applies (the product must allow
    air-gapped activation, seats, lock-out, license status).
    """
    result = offline.respond(session, state.ctx, body.request, staff=True, actor=ACTOR)
    if not result.created:
        response.status_code = 200
    return offline_activate_out(result)
