"""Database faults answered as 503 ``unavailable``, not 500.

A PostgreSQL server restarting, a connection killed by an administrator
(``pg_terminate_backend``), a failover, a full connection pool, or a SQLite
file locked for longer than the busy timeout are not bugs in the license
server: they pass. The request is answered ``503`` with the protocol's JSON
error ``{"error": {"code": "unavailable", ...}}`` and ``Retry-After``, so the
SDK retries and, failing that, falls back to the stored license. The broken
connection is discarded by SQLAlchemy (and ``pool_pre_ping`` tests every
pooled connection before use), so the server recovers by itself, without a
restart, as soon as the database is back.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from software_dna.wire.codes import Code

__all__ = ["RETRY_AFTER", "install_database_fault_handlers"]

log = logging.getLogger("software_dna.server")

#: Seconds a client is asked to wait before retrying (``Retry-After``).
RETRY_AFTER = 2

#: The database faults that are transient (connection lost, locked, pool exhausted).
TRANSIENT = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,
)


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable (%s); answered 503", type(exc).__name__)
    return JSONResponse(
        {"error": {"code": Code.UNAVAILABLE.value,
                   "message": "The license server's database is unavailable; try again shortly."}},
        status_code=Code.UNAVAILABLE.status, headers={"Retry-After": str(RETRY_AFTER)},
    )


def install_database_fault_handlers(app: FastAPI) -> None:
    """Answer the :data:`TRANSIENT` database errors with 503 on ``app`` (a FastAPI app)."""
    for kind in TRANSIENT:
        app.add_exception_handler(kind, _unavailable)
