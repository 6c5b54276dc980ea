"""Liveness ``GET /v1/health`` and readiness ``GET /v1/ready``.

Liveness says the process answers: no database, no I/O (a load balancer or a
service manager restarts a process that stops answering it).  Readiness says
this process can serve: the database answers and its schema is at this
server's revision; otherwise 503 ``unavailable`` with ``details.check``
naming what is wrong (``database`` or ``schema``), never a URL or a host.
"""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError

from software_dna.server import services
from software_dna.server.api.deps import AppState
from software_dna.server.api.errors import error_response, error_responses
from software_dna.server.api.faults import RETRY_AFTER
from software_dna.server.config import Settings
from software_dna.server.db import SchemaError, check_schema, current_revision, head_revision
from software_dna.server.schemas import HealthOut, ReadyOut
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])

log = logging.getLogger("software_dna.server")

_head: str | None = None
_head_lock = threading.Lock()


def _head_revision(settings: Settings) -> str:
    """This server's schema revision (read from the packaged migrations once)."""
    global _head  # noqa: PLW0603 - one value per process, like the migrations it reads
    with _head_lock:
        if _head is None:
            _head = head_revision(settings)
        return _head


@router.get("/health", response_model=HealthOut)
async def health() -> HealthOut:
    """Liveness: the process answers (the database is not asked: see ``/v1/ready``)."""
    return HealthOut(status="ok", server_time=services.utcnow())


@router.get("/ready", response_model=ReadyOut, responses=error_responses(503))
def ready(request: Request) -> ReadyOut | JSONResponse:
    """Readiness: the database answers and its schema is at this server's revision.

    Answers 503 ``unavailable`` otherwise, with ``details.check`` ``database``
    (it does not answer) or ``schema`` (behind or ahead: the message says which
    and what to run).
    """
    state: AppState = request.app.state.sdna
    retry = {"Retry-After": str(RETRY_AFTER)}
    try:
        current = current_revision(state.engine)
    except SQLAlchemyError as exc:
        # The exception's text may name the host or the URL: only its type is logged.
        log.warning("readiness: the database does not answer (%s)", type(exc).__name__)
        return error_response(Code.UNAVAILABLE, "The database does not answer.",
                              details={"check": "database"}, headers=retry)
    head = _head_revision(state.settings)
    if current != head:
        message = "The database schema is not this server's."
        try:
            check_schema(state.engine, state.settings)
        except SchemaError as exc:
            message = str(exc)
        except SQLAlchemyError:
            pass
        return error_response(Code.UNAVAILABLE, message,
                              details={"check": "schema", "database_revision": current,
                                       "server_revision": head}, headers=retry)
    return ReadyOut(status="ready", server_time=services.utcnow(), schema_revision=head)
