"""Vendor routes: end users (find, export, erase)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, IdPath, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import Email, EndUserExport, EndUserList, EndUserSummary, OkOut
from software_dna.server.services.endusers import export_end_user_viewed

__all__ = ["router"]

_ERASE = [Depends(require(Permission.ERASE))]
_PERSONAL_DATA = [Depends(require(Permission.PERSONAL_DATA))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.get("/end-users", dependencies=_PERSONAL_DATA, response_model=EndUserList)
def find_end_users(email: Annotated[Email, Query()], state: State, session: Db) -> EndUserList:
    """End users with this email (case-insensitive)."""
    rows = services.find_end_users(session, state.ctx, email)
    return EndUserList(end_users=[
        EndUserSummary(id=u.id, created_at=u.created_at, consent_at=u.consent_at,
                       erased_at=u.erased_at) for u in rows
    ])


@router.get("/end-users/{end_user_id}", dependencies=_PERSONAL_DATA, response_model=EndUserExport)
def export_end_user(end_user_id: IdPath, state: State, session: Db) -> EndUserExport:
    """Everything held about one end user (GDPR access); the view is audited (who saw it)."""
    return EndUserExport.model_validate(
        export_end_user_viewed(session, state.ctx, end_user_id, actor=ACTOR))


@router.post("/end-users/{end_user_id}/erase", dependencies=_ERASE, response_model=OkOut)
def erase_end_user(end_user_id: IdPath, state: State, session: Db) -> OkOut:
    """Erase the end user's personal data; their licenses go on in limited mode."""
    services.erase_end_user(session, state.ctx, end_user_id, actor=ACTOR)
    return OkOut()
