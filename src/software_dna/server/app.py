"""The app factory: the one module that imports the routers and builds the FastAPI app.

``create_app(settings)`` loads the master key, connects to the database,
checks the schema revision and mounts every router; ``app_from_env()`` is
uvicorn's factory (``--factory software_dna.server.app:app_from_env``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from software_dna.server import panel, portal
from software_dna.server.api import metrics
from software_dna.server.api.deps import AppState
from software_dna.server.api.errors import install_handlers
from software_dna.server.api.middleware import BodyLimitMiddleware
from software_dna.server.api.routes.admin import activations as admin_activations
from software_dna.server.api.routes.admin import (
    api_keys,
    audit,
    end_users,
    keys,
    leases,
    licenses,
    lockouts,
    mail,
    products,
    renewal_codes,
    staff,
    test_codes,
    webhooks,
)
from software_dna.server.api.routes.admin import offline as admin_offline
from software_dna.server.api.routes.admin import stores as admin_stores
from software_dna.server.api.routes.admin import trials as admin_trials
from software_dna.server.api.routes.public import (
    activations,
    email_confirmations,
    health,
    offline,
    password_resets,
    renewals,
    trials,
    unsubscribe,
    validations,
)
from software_dna.server.api.routes.public import leases as public_leases
from software_dna.server.api.routes.public import settings as license_settings
from software_dna.server.api.routes.public import stores as public_stores
from software_dna.server.config import Settings
from software_dna.server.db import (
    CheckpointJob,
    check_schema,
    install_checkpoint_job,
    make_engine,
    make_inline_engine,
    make_session_factory,
)
from software_dna.server.mail import mail_warnings
from software_dna.server.metricsdir import worker_exited
from software_dna.server.schemas import ErrorBody
from software_dna.server.services import Context
from software_dna.server.services.usage import UsageCounter
from software_dna.server.services.usage import flush as flush_usage

__all__ = ["ROUTERS", "USAGE_FLUSH_INTERVAL", "app_from_env", "create_app"]

#: Seconds between two flushes of the in-memory usage counts (services.usage).
USAGE_FLUSH_INTERVAL = 10.0

#: Every router, in the order they are mounted (and listed in the OpenAPI document).
ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    activations.router,
    validations.router,
    license_settings.router,
    offline.router,
    trials.router,
    renewals.router,
    public_leases.router,
    password_resets.router,
    email_confirmations.router,
    unsubscribe.router,
    products.router,
    keys.router,
    licenses.router,
    admin_activations.router,
    end_users.router,
    audit.router,
    renewal_codes.router,
    test_codes.router,
    admin_trials.router,
    leases.router,
    lockouts.router,
    admin_offline.router,
    mail.router,
    public_stores.router,
    admin_stores.router,
    webhooks.router,
    api_keys.router,
    staff.router,
)


def create_app(settings: Settings | None = None, *, check: bool = True) -> FastAPI:
    """Build the app for ``settings`` (default: from the environment).

    Loads the master key and connects to the database now.

    Raises:
        ConfigError: no / malformed master key or setting.
        SchemaError: the database is not at this server's schema revision
            (``check=False`` skips the check).
    """
    settings = settings or Settings.from_env()
    ctx = Context.from_settings(settings)
    for warning in mail_warnings(settings):
        logging.getLogger("software_dna.server").warning(warning)
    engine = make_engine(settings)
    if check:
        try:
            check_schema(engine, settings)
        except Exception:
            engine.dispose()
            raise
    # Erasures ask this job to empty the SQLite WAL, off the request path (db.CheckpointJob);
    # what is pending when the server stops runs then.
    job = install_checkpoint_job(CheckpointJob(
        engine, interval=settings.erasure_checkpoint_interval))

    usage = UsageCounter()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        flush = _usage_flusher(usage, app.state.sdna.sessions)
        task = asyncio.create_task(_flush_usage_every(USAGE_FLUSH_INTERVAL, flush))
        pools = asyncio.create_task(metrics.sample_pools_every(app.state.sdna))
        yield
        for running in (task, pools):
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        await run_in_threadpool(flush)  # what was counted since the last flush
        await run_in_threadpool(job.close)
        await app.state.sdna.close()  # the validation hot path's connections
        worker_exited(os.getpid())  # this process's pool gauges stop being summed

    app = FastAPI(
        lifespan=lifespan,
        title="software_dna license server",
        version="1",
        description="Activation, validation and vendor administration. See docs/protocol.md.",
        responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}},
        docs_url=None,
        redoc_url=None,
    )
    app.state.sdna = AppState(settings, engine, make_session_factory(engine), ctx,
                              make_inline_engine(settings))
    # The usage counts of this app, counted by the public routes (services.usage).
    app.state.usage = usage
    app.add_middleware(BodyLimitMiddleware)
    # Outermost (added last): it counts and times every answer, the middleware's own too.
    app.add_middleware(metrics.MetricsMiddleware, access_log=settings.log_format == "json")
    install_handlers(app)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(metrics.router)
    panel.install(app)
    portal.install(app)
    _api_docs(app)
    return app


def _usage_flusher(usage: UsageCounter, sessions: Callable[[], Session]) -> Callable[[], None]:
    """A function that flushes ``usage`` in a session of its own, logging a failure."""

    def flush() -> None:
        session = sessions()
        try:
            flush_usage(session, usage)
        except Exception:  # the counts stay in memory for the next flush
            logging.getLogger("software_dna.server").warning(
                "Could not write the usage counts; retrying later.", exc_info=True)
        finally:
            session.close()

    return flush


async def _flush_usage_every(interval: float, flush: Callable[[], None]) -> None:
    """Run ``flush`` in the thread pool every ``interval`` seconds, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        await run_in_threadpool(flush)


def _api_docs(app: FastAPI) -> None:
    """``/docs`` (Swagger UI) and ``/redoc`` from the server's own copies of their scripts."""
    assets = "/static/docs/"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - Swagger UI",
            swagger_js_url=assets + "swagger-ui-bundle.js",
            swagger_css_url=assets + "swagger-ui.css",
            swagger_favicon_url=assets + "favicon-32x32.png",
            oauth2_redirect_url="/docs/oauth2-redirect")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                              title=f"{app.title} - ReDoc",
                              redoc_js_url=assets + "redoc.standalone.js",
                              redoc_favicon_url=assets + "favicon-32x32.png",
                              with_google_fonts=False)


def app_from_env() -> FastAPI:
    """uvicorn factory (``--factory software_dna.server.app:app_from_env``)."""
    return create_app(Settings.from_env())
