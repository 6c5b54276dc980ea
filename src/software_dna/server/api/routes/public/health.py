"""Liveness: ``GET /v1/health``."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from software_dna.server import services
from software_dna.server.api.deps import Db
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas import HealthOut

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 429)


@router.get("/health", response_model=HealthOut)
def health(session: Db) -> HealthOut:
    """Liveness and database check."""
    session.execute(text("SELECT 1"))
    session.rollback()
    return HealthOut(status="ok", server_time=services.utcnow())
