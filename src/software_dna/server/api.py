"""The FastAPI application: app factory, error handling, body limits, dependencies.

Every error is a JSON body ``{"error": {"code", "message"}}``: validation
errors and malformed JSON (400 ``invalid_request``), unknown routes (404
``not_found``), wrong methods (405 ``method_not_allowed``), bodies over the
limit (413 ``too_large``), a body that is not JSON (415
``unsupported_media_type``), and unexpected faults (500 ``internal_error``,
no stack trace, nothing from the request).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from software_dna.server.config import ADMIN_BODY_LIMIT, PUBLIC_BODY_LIMIT, Settings
from software_dna.server.db import (
    check_schema,
    make_engine,
    make_inline_engine,
    make_session_factory,
)
from software_dna.server.service import Context, ServiceError, check_admin_key

__all__ = ["AppState", "app_from_env", "create_app"]

log = logging.getLogger("software_dna.server")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
}


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

    def dispose(self) -> None:
        """Close every pooled database connection."""
        self.engine.dispose()
        if self.inline_engine is not None:
            self.inline_engine.dispose()


def error_response(status: int, code: str, message: str, *, receipt: str | None = None,
                   headers: dict[str, str] | None = None,
                   retry_at: datetime | None = None,
                   details: dict[str, Any] | None = None) -> JSONResponse:
    """The protocol's error body (``retry_at``: an aware time, sent as RFC 3339 UTC)."""
    detail: dict[str, Any] = {"code": code, "message": message}
    if details:
        detail["details"] = details
    if receipt is not None:
        detail["receipt"] = receipt
    if retry_at is not None:
        detail["retry_at"] = retry_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


# --------------------------------------------------------------------------- body limits


#: Scope key under which :class:`BodyLimitMiddleware` leaves the body it parsed
#: (a route may use it instead of parsing the same bytes again: :func:`parsed_body`).
PARSED_BODY = "software_dna.parsed_body"


def _strict_json(body: bytes, scope: Scope) -> bool:
    """False for a body that two JSON parsers could read differently.

    Duplicate keys (which one wins is up to the parser) and ``NaN`` /
    ``Infinity`` (not JSON) are refused; anything else that fails to parse is
    left to the route's own validation, which answers with its usual 400.
    A body that parses is left in ``scope[PARSED_BODY]``.
    """
    try:
        value = json.loads(body, object_pairs_hook=_no_duplicate_keys,
                           parse_constant=_no_constant)
    except _NotStrict:
        return False
    except (ValueError, RecursionError):
        return True
    scope[PARSED_BODY] = (body, value)
    return True


def parsed_body(scope: Scope, body: bytes) -> tuple[bool, Any]:
    """``(True, value)`` when the middleware parsed exactly ``body``, else ``(False, None)``.

    The strict parse gives the same value as ``json.loads`` for every body it
    lets through (it refuses duplicate keys and the non-JSON constants).
    """
    stored = scope.get(PARSED_BODY)
    if stored is not None and stored[0] == body:
        return True, stored[1]
    return False, None


class _NotStrict(Exception):
    """A JSON construct that strict parsing refuses."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotStrict
    return result


def _no_constant(name: str) -> Any:
    raise _NotStrict


class BodyLimitMiddleware:
    """Reads request bodies up front: over the limit -> 413, non-JSON -> 415.

    The limit is 64 KiB on public routes and 1 MiB on ``/v1/admin``; both
    the ``Content-Length`` header and the bytes actually streamed are checked.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = ADMIN_BODY_LIMIT if path.startswith("/v1/admin") else PUBLIC_BODY_LIMIT
        length: str | None = None
        ctype = ""
        for key, value in scope.get("headers", []):
            name = key.lower()
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"content-type":
                ctype = value.decode("latin-1")

        def too_large() -> ASGIApp:
            return error_response(413, "too_large",
                                  f"The request body is over {limit // 1024} KiB.")

        if length is not None:
            if not length.isdigit():
                await error_response(400, "invalid_request", "Bad Content-Length.")(
                    scope, receive, send)
                return
            if int(length) > limit:
                await too_large()(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            if ctype.split(";")[0].strip().lower() != "application/json":
                await error_response(415, "unsupported_media_type",
                                     "Send the body as application/json.")(scope, receive, send)
                return
            if not _strict_json(body, scope):
                await error_response(
                    400, "invalid_request",
                    "The body is not valid JSON (duplicate keys, NaN and Infinity are refused).",
                )(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


# --------------------------------------------------------------------------- handlers


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is malformed."
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The body is not valid JSON."
    from software_dna.server.schemas import error_location

    where = error_location(first.get("loc", ())) or "body"
    # The message names the field and the rule, never the value sent.
    return f"Invalid {where}: {first.get('msg', 'invalid value')}."[:300]


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return error_response(exc.status, exc.code, exc.message, receipt=exc.receipt,
                              headers=headers, retry_at=exc.retry_at, details=exc.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(400, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = {
            404: "No such route.",
            405: "Method not allowed on this route.",
        }.get(exc.status_code, str(exc.detail)[:200] if exc.detail else code)
        if exc.status_code >= 500:
            code, message = "internal_error", "The server failed; try again later."
        return error_response(exc.status_code, code, message,
                              headers=dict(exc.headers) if exc.headers else None)

    from software_dna.server.faults import install_database_fault_handlers

    install_database_fault_handlers(app)  # 503, not 500, while the database is away

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while handling a request", type(exc).__name__)
        return error_response(500, "internal_error", "The server failed; try again later.")


# --------------------------------------------------------------------------- dependencies


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


def bearer(request: Request) -> str | None:
    """The ``Authorization: Bearer`` credential, or None."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def require_admin(
    request: Request,
    state: Annotated[AppState, Depends(get_state)],
    session: Annotated[Session, Depends(get_session)],
) -> None:
    """Refuse (401 ``unauthorized``) unless the request carries an admin API key."""
    if not check_admin_key(session, state.ctx, bearer(request)):
        session.rollback()
        raise ServiceError(401, "unauthorized", "Missing or wrong admin API key.")
    session.rollback()  # end the read transaction (SQLite: release the lock)


# --------------------------------------------------------------------------- factory


def create_app(settings: Settings | None = None, *, check: bool = True) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment).

    Loads the master key and connects to the database now.

    Raises:
        ConfigError: no / malformed master key or setting.
        SchemaError: the database is not at this server's schema revision
            (``check=False`` skips the check).
    """
    from software_dna.server.routes_admin import router as admin_router
    from software_dna.server.routes_public import router as public_router
    from software_dna.server.routes_seats import admin_router as seats_admin_router
    from software_dna.server.routes_seats import public_router as seats_public_router
    from software_dna.server.routes_terms import admin_router as terms_admin_router
    from software_dna.server.routes_terms import public_router as terms_public_router

    settings = settings or Settings.from_env()
    ctx = Context.from_settings(settings)
    engine = make_engine(settings)
    if check:
        try:
            check_schema(engine, settings)
        except Exception:
            engine.dispose()
            raise
    app = FastAPI(
        title="software_dna license server",
        version="1",
        description="Activation, validation and vendor administration. See docs/protocol.md.",
        responses={400: {"model": _error_model()}, 401: {"model": _error_model()}},
    )
    app.state.sdna = AppState(settings, engine, make_session_factory(engine), ctx,
                              make_inline_engine(settings))
    app.add_middleware(BodyLimitMiddleware)
    _install_handlers(app)
    app.include_router(public_router)
    app.include_router(admin_router)
    app.include_router(terms_public_router)
    app.include_router(terms_admin_router)
    app.include_router(seats_public_router)
    app.include_router(seats_admin_router)
    return app


def _error_model() -> type[Any]:
    from software_dna.server.schemas import ErrorBody

    return ErrorBody


def app_from_env() -> FastAPI:
    """uvicorn factory (``--factory software_dna.server.api:app_from_env``)."""
    return create_app(Settings.from_env())

