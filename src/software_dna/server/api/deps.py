"""What the routes share: the app's state, a session per request, admin auth, path types.

Routers import this module; it never imports a router.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from pydantic import BaseModel
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from software_dna.server.api.credentials import bearer_credential
from software_dna.server.config import Settings
from software_dna.server.domain.roles import Permission, allows
from software_dna.server.schemas import FingerprintIn, PreviousIn
from software_dna.server.services import Context, ServiceError, hotpath, parse_fingerprint
from software_dna.server.services.admin import admin_key_row
from software_dna.server.services.common import acting_as
from software_dna.server.services.messages import FingerprintData
from software_dna.wire.codes import Code

__all__ = [
    "ACTOR",
    "AppState",
    "Db",
    "IdPath",
    "KidPath",
    "ProductPath",
    "State",
    "bearer",
    "client_address",
    "fingerprint_data",
    "get_session",
    "get_state",
    "given",
    "key_may",
    "require",
]


class AppState:
    """What the routes share: settings, engine, session factory, service context."""

    def __init__(self, settings: Settings, engine: Engine, sessions: sessionmaker[Session],
                 ctx: Context, inline_engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.ctx = ctx
        #: PostgreSQL: the validation hot path's engine, used on the event loop
        #: (db.make_inline_engine); None on SQLite.
        self.inline_engine = inline_engine
        #: The hot path's own connections to ``inline_engine``'s database (psycopg,
        #: asynchronous, prepared statements), opened as validations need them; None on
        #: SQLite.
        self.direct = hotpath.DirectPg(inline_engine) if inline_engine is not None else None

    def dispose(self) -> None:
        """Close every pooled database connection (the hot path's idle ones too)."""
        if self.direct is not None:
            self.direct.discard()
        self.engine.dispose()
        if self.inline_engine is not None:
            self.inline_engine.dispose()

    async def close(self) -> None:
        """Close the hot path's connections (on the event loop that used them)."""
        if self.direct is not None:
            await self.direct.close()


# Both dependencies are ``async``: FastAPI runs a plain ``def`` dependency (and each
# step of a plain generator) in its thread pool, and those thread hand-offs cost
# more than the work.  Neither blocks: making a session does no I/O, and closing
# it after the route committed only returns the connection to the pool; the
# rollback after a failure is one short round trip.  The routes themselves stay
# plain ``def`` and run in the thread pool.
async def get_state(request: Request) -> AppState:
    """The app's shared state."""
    state: AppState = request.app.state.sdna
    return state


async def get_session(state: Annotated[AppState, Depends(get_state)]) -> AsyncIterator[Session]:
    """A session per request, rolled back if the request fails."""
    session = state.sessions()
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


#: Route parameter types shared by every router module.
State = Annotated[AppState, Depends(get_state)]
Db = Annotated[Session, Depends(get_session)]
IdPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,40}$")]
ProductPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
KidPath = Annotated[str, Path(pattern=r"^k4\.pid\.[A-Za-z0-9_-]{1,60}$")]
#: The audit log's actor for changes made through the admin API.
ACTOR = "admin"


def bearer(request: Request) -> str | None:
    """The ``Authorization: Bearer`` credential, or None."""
    return bearer_credential(request.headers.get("authorization", ""))


def _key_role(session: Session, ctx: Context, key: str | None) -> tuple[str, str] | None:
    """``(key id, role)`` of a usable admin API key, or None; ends the read transaction."""
    try:
        row = admin_key_row(session, ctx, key)
        return (row.id, row.role) if row is not None else None
    finally:
        session.rollback()  # SQLite: release the lock at once


def require(*permissions: Permission) -> Callable[..., AsyncIterator[None]]:
    """A dependency: the request's admin API key must have a role that allows ``permissions``.

    401 ``unauthorized`` without a usable key, 403 ``forbidden`` when its role
    (domain.roles) does not allow every one of them.  The key's id is recorded in the audit
    entries the request makes (services.common.acting_as).
    """
    async def dependency(request: Request, state: State, session: Db) -> AsyncIterator[None]:
        # async so that acting_as's context reaches the route's thread (FastAPI copies
        # the context into the thread pool); the look-up itself runs in the thread pool, as
        # a database wait (SQLite's lock) must never hold the event loop.
        found = await run_in_threadpool(_key_role, session, state.ctx, bearer(request))
        key_id, role = found if found is not None else (None, None)
        if role is None:
            raise ServiceError(Code.UNAUTHORIZED, "Missing or wrong admin API key.")
        refused = [p.value for p in permissions if not allows(role, p)]
        if refused:
            raise ServiceError(Code.FORBIDDEN, f"This admin API key's role ({role}) may not "
                               f"do this ({', '.join(refused)}).")
        request.state.admin_role = role  # read by key_may()
        with acting_as(key_id):
            yield

    # Read by tests/server/test_scoped_keys.py, which checks every admin route has one.
    dependency.permissions = permissions  # type: ignore[attr-defined]
    return dependency


def key_may(request: Request, permission: Permission) -> bool:
    """True when the request's admin API key (checked by :func:`require`) has a role that
    allows ``permission``: for what a route allows only with some of its fields."""
    return allows(getattr(request.state, "admin_role", None) or "", permission)


def given(body: BaseModel) -> dict[str, Any]:
    """The fields a PATCH body set (a field sent as ``null`` is set; an absent one is not).

    The values are the validated ones (times stay ``datetime``), unlike
    ``model_dump``, which serializes them.
    """
    return {name: getattr(body, name) for name in body.model_fields_set}


def client_address(request: Request) -> str | None:
    """The client's IP address (the rate limits' key), or None when unknown."""
    return request.client.host if request.client is not None else None


def fingerprint_data(fp: FingerprintIn, previous: PreviousIn | None = None) -> FingerprintData:
    """The service layer's fingerprint from the request body's (see
    :func:`software_dna.server.services.parse_fingerprint`).

    Raises:
        ServiceError: 400 ``invalid_fingerprint``.
    """
    return parse_fingerprint(fp.algorithm, fp.components,
                             None if previous is None else previous.components)
