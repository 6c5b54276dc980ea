"""Vendor routes: scoped admin API keys (create, list, revoke); owners only (``staff``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from software_dna.server.api.deps import ACTOR, Db, IdPath, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas.staff import (
    AdminKeyCreated,
    AdminKeyIn,
    AdminKeyList,
    AdminKeyOut,
)
from software_dna.server.services.admin import issue_admin_key, list_admin_keys, revoke_admin_key

__all__ = ["router"]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require(Permission.STAFF))],
    responses=error_responses(400, 401, 403, 404),
)


@router.post("/api-keys", response_model=AdminKeyCreated, status_code=201)
def create_api_key(body: AdminKeyIn, state: State, session: Db) -> AdminKeyCreated:
    """A new admin API key for a role; the key is in this answer only."""
    row, key = issue_admin_key(session, state.ctx, role=body.role, name=body.name, actor=ACTOR)
    return AdminKeyCreated(api_key=AdminKeyOut.model_validate(row), key=key)


@router.get("/api-keys", response_model=AdminKeyList)
def list_api_keys(session: Db) -> AdminKeyList:
    """The usable admin API keys (names, roles, ids; never the keys)."""
    return AdminKeyList(api_keys=[AdminKeyOut.model_validate(r) for r in list_admin_keys(session)])


@router.delete("/api-keys/{key_id}", response_model=AdminKeyOut)
def revoke_api_key(key_id: IdPath, session: Db) -> AdminKeyOut:
    """Revoke one key (at once; revoking it again changes nothing)."""
    return AdminKeyOut.model_validate(revoke_admin_key(session, key_id, actor=ACTOR))
