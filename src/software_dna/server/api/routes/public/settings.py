"""A license's settings document, read and written by the app."""

from __future__ import annotations

from fastapi import APIRouter, Request

from software_dna.server import services
from software_dna.server.api.deps import Db, IdPath, State, bearer
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import SettingsIn, SettingsOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 429)


@router.get("/activations/{activation_id}/settings", response_model=SettingsOut,
            responses=_ERRORS)
def get_settings(activation_id: IdPath, request: Request, state: State,
                 session: Db) -> SettingsOut:
    """The end user's settings document (kept per license)."""
    doc = services.get_settings(session, state.ctx, activation_id, bearer(request))
    return SettingsOut(settings=doc.settings, updated_at=doc.updated_at,
                       server_time=doc.server_time)


@router.put("/activations/{activation_id}/settings", response_model=SettingsOut,
            responses=_ERRORS)
def put_settings(activation_id: IdPath, body: SettingsIn, request: Request, state: State,
                 session: Db) -> SettingsOut:
    """Replace the end user's settings document (a JSON object of at most 32 KiB)."""
    doc = services.put_settings(session, state.ctx, activation_id, bearer(request), body.settings)
    return SettingsOut(settings=doc.settings, updated_at=doc.updated_at,
                       server_time=doc.server_time)
