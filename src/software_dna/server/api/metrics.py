"""Prometheus metrics: what the server counts, and ``GET /metrics`` that shows them.

Counted by :class:`MetricsMiddleware` (a pure ASGI middleware, outermost):

=================================================  ==========================================
metric                                             labels
=================================================  ==========================================
``software_dna_http_requests_total``               ``method``, ``route``, ``status``
``software_dna_http_request_duration_seconds``     ``route`` (histogram)
``software_dna_validations_total``                 ``outcome`` (``ok`` or the refusal code)
``software_dna_activations_total``                 ``outcome`` (``ok`` or the refusal code)
``software_dna_refusals_total``                    ``code`` (every 4xx answer's error code)
``software_dna_db_pool_checked_out``               ``pool`` (``main``, ``inline``), summed
``software_dna_db_pool_size``                      over the live worker processes
``software_dna_db_pool_overflow``
=================================================  ==========================================

Computed when scraped (one query): ``software_dna_database_up`` (1 or 0),
``software_dna_outbox_due_items`` (pending items whose time has come) and
``software_dna_outbox_oldest_due_age_seconds`` (since the oldest of them was
queued; 0 when none is due).

Invariant: every label value is chosen by the server, from a bounded set:
``route`` is the matched route's template (``/v1/activations/{activation_id}/validate``,
never the path a client sent; ``unmatched`` when no route matched),
``method`` one of the HTTP methods the API uses (else ``other``), ``code`` and
``outcome`` a protocol code (else ``other``).  No label carries a key, an id,
an address or any personal data.

``/metrics`` exists only when ``SOFTWARE_DNA_METRICS_TOKEN`` is set (else it
answers 404 exactly like a path that does not exist) and answers only a
request bearing that token (``Authorization: Bearer <token>``, compared in
constant time; anything else: 401).  Several worker processes share their
counts through ``PROMETHEUS_MULTIPROC_DIR`` (:mod:`software_dna.server.metricsdir`).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
from collections.abc import Iterator
from datetime import timezone
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from software_dna.server.api.credentials import bearer_credential
from software_dna.server.api.deps import AppState
from software_dna.server.api.errors import error_response
from software_dna.server.metricsdir import MULTIPROC_ENV, forget_dead_workers
from software_dna.server.models import OutboxItem
from software_dna.server.services import utcnow
from software_dna.wire.codes import Code

__all__ = [
    "ACCESS_LOGGER",
    "METRICS_PATH",
    "MULTIPROCESS",
    "REGISTRY",
    "MetricsMiddleware",
    "render",
    "router",
    "sample_pools",
    "sample_pools_every",
]

#: Where the metrics are served.
METRICS_PATH = "/metrics"
#: The logger of the JSON access lines (``SOFTWARE_DNA_LOG_FORMAT=json``).
ACCESS_LOGGER = "software_dna.server.access"
#: Seconds between two samples of the database pools (per worker process).
POOL_SAMPLE_INTERVAL = 2.0

#: True when this process shares its counts through PROMETHEUS_MULTIPROC_DIR.  Decided
#: at import, as prometheus-client decides how it stores values.
MULTIPROCESS = bool(os.environ.get(MULTIPROC_ENV))

# The ``_created`` series double the output, and multiprocess mode never has them.
disable_created_metrics()  # type: ignore[no-untyped-call]

#: The metrics this process updates (in multiprocess mode the scrape reads the
#: files of every process instead).
REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0)

REQUESTS = Counter("software_dna_http_requests", "HTTP requests answered, by route template "
                   "and status.", ("method", "route", "status"), registry=REGISTRY)
LATENCY = Histogram("software_dna_http_request_duration_seconds", "Time from the request "
                    "to the end of the answer, by route template.", ("route",),
                    buckets=_LATENCY_BUCKETS, registry=REGISTRY)
VALIDATIONS = Counter("software_dna_validations", "License validations, by outcome (ok or the "
                      "refusal code).", ("outcome",), registry=REGISTRY)
ACTIVATIONS = Counter("software_dna_activations", "Activation requests, by outcome (ok or the "
                      "refusal code).", ("outcome",), registry=REGISTRY)
REFUSALS = Counter("software_dna_refusals", "Requests refused (4xx), by error code.",
                   ("code",), registry=REGISTRY)
POOL_CHECKED_OUT = Gauge("software_dna_db_pool_checked_out", "Database connections in use.",
                         ("pool",), multiprocess_mode="livesum", registry=REGISTRY)
POOL_SIZE = Gauge("software_dna_db_pool_size", "Database connections the pools keep.",
                  ("pool",), multiprocess_mode="livesum", registry=REGISTRY)
POOL_OVERFLOW = Gauge("software_dna_db_pool_overflow", "Database connections open beyond the "
                      "pool size (negative: not yet opened).", ("pool",),
                      multiprocess_mode="livesum", registry=REGISTRY)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_CODES = frozenset(code.value for code in Code)
_VALIDATE = "/v1/activations/{activation_id}/validate"
_ACTIVATE = "/v1/activations"
_UNMATCHED = "unmatched"
_OTHER = "other"
#: Entries of a middleware's cache of labelled children.
_CACHE_LIMIT = 4096
#: Error bodies are small; a larger body is not parsed for its code.
_ERROR_BODY_LIMIT = 16 * 1024

_access = logging.getLogger(ACCESS_LOGGER)


def _error_code(body: bytes) -> str:
    """The protocol code of an error body ``{"error": {"code": ...}}``, else ``other``."""
    if len(body) > _ERROR_BODY_LIMIT:
        return _OTHER
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, TypeError, KeyError):
        return _OTHER
    return code if isinstance(code, str) and code in _CODES else _OTHER


class MetricsMiddleware:
    """Counts every HTTP request by route template and status, and times it.

    Pure ASGI: the request and the answer pass through untouched; only an
    error answer's first body chunk is read (for its code).  The labelled
    children are cached per (method, route, status, code), so a request costs
    two clock reads, one dict look-up, one to three counter increments and one
    histogram observation (bench/metrics_cost.py: about 5 µs).

    Args:
        app: the application inside.
        access_log: also log one access line per request on
            :data:`ACCESS_LOGGER` (method, route template, status, duration;
            never the path, the query or the client's address).
    """

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log
        # Keyed by what the labels are made of; the method may be any token a client sent,
        # so the dict is bounded by forgetting it all past a size.
        self._children: dict[tuple[str, str, int, str], tuple[tuple[Any, ...], Any, str]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = perf_counter()
        status = 0
        code = ""

        async def sent(message: Message) -> None:
            nonlocal status, code
            kind = message["type"]
            if kind == "http.response.start":
                status = message["status"]
            elif status >= 400 and not code and kind == "http.response.body":
                code = _error_code(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, sent)
        except BaseException:
            if status == 0:  # the outermost error handler answers 500
                status, code = 500, Code.INTERNAL_ERROR.value
            raise
        finally:
            self._record(scope, status or 500, code, perf_counter() - start)

    def _record(self, scope: Scope, status: int, code: str, elapsed: float) -> None:
        route_obj = scope.get("route")
        route: str = getattr(route_obj, "path", None) or _UNMATCHED
        method: str = scope["method"]
        key = (method, route, status, code)
        children = self._children.get(key)
        if children is None:
            if len(self._children) > _CACHE_LIMIT:
                self._children.clear()
            children = self._children[key] = _children(method, route, status, code)
        counters, latency, label = children
        for counter in counters:
            counter.inc()
        latency.observe(elapsed)
        if self.access_log:
            _access.info("%s %s %d", label, route, status,
                         extra={"http_method": label, "http_route": route,
                                "http_status": status, "duration_ms": round(elapsed * 1000, 3)})


def _children(method: str, route: str, status: int,
              code: str) -> tuple[tuple[Any, ...], Any, str]:
    """The counters one answer moves, its latency histogram and its method's label."""
    label = method if method in _METHODS else _OTHER
    counters = [REQUESTS.labels(label, route, str(status))]
    outcome = "ok"
    if status >= 400:
        outcome = code or _OTHER
        if status < 500:
            counters.append(REFUSALS.labels(outcome))
    if method == "POST" and route == _VALIDATE:
        counters.append(VALIDATIONS.labels(outcome))
    elif method == "POST" and route == _ACTIVATE:
        counters.append(ACTIVATIONS.labels(outcome))
    return tuple(counters), LATENCY.labels(route), label


def _pool_figures(engine: Engine) -> tuple[int, int, int] | None:
    """(checked out, size, overflow) of a queue pool; None for a pool without them."""
    pool: Any = engine.pool
    try:
        return int(pool.checkedout()), int(pool.size()), int(pool.overflow())
    except AttributeError:
        return None


def sample_pools(state: AppState) -> None:
    """Set the pool gauges from this process's engines (cheap: no I/O)."""
    for name, engine in (("main", state.engine), ("inline", state.inline_engine)):
        if engine is None:
            continue
        figures = _pool_figures(engine)
        if figures is None:
            continue
        checked_out, size, overflow = figures
        POOL_CHECKED_OUT.labels(name).set(checked_out)
        POOL_SIZE.labels(name).set(size)
        POOL_OVERFLOW.labels(name).set(overflow)


async def sample_pools_every(state: AppState, interval: float = POOL_SAMPLE_INTERVAL) -> None:
    """Sample the pools every ``interval`` seconds until cancelled (a lifespan task)."""
    while True:
        sample_pools(state)
        await asyncio.sleep(interval)


class _ScrapeTime(Collector):
    """The figures read from the database when scraped: it is up, the outbox backlog."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("software_dna_database_up",
                               "1 when the scrape could read the database, else 0.")
        try:
            due, oldest_age = self._backlog()
        except Exception:  # the database is away: say so, keep the other figures
            logging.getLogger("software_dna.server").warning(
                "metrics: could not read the outbox backlog", exc_info=False)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("software_dna_outbox_due_items",
                                "Outbox items (webhooks, e-mails) due for delivery.", value=due)
        yield GaugeMetricFamily("software_dna_outbox_oldest_due_age_seconds",
                                "Seconds since the oldest due outbox item was queued "
                                "(0: none due).", value=oldest_age)

    def _backlog(self) -> tuple[int, float]:
        now = utcnow()
        session = self.state.sessions()
        try:
            count, oldest = session.execute(
                select(func.count(OutboxItem.id), func.min(OutboxItem.created_at))
                .where(OutboxItem.status == "pending", OutboxItem.next_attempt_at <= now)
            ).one()
        finally:
            session.rollback()  # SQLite: release the read lock at once
            session.close()
        if oldest is None:
            return int(count), 0.0
        if oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=timezone.utc)
        return int(count), max(0.0, (now - oldest).total_seconds())


def render(state: AppState) -> bytes:
    """The exposition text: every process's counts, then the scrape-time figures.

    Blocking (reads the multiprocess files and the database): call it in the
    thread pool.
    """
    sample_pools(state)
    if MULTIPROCESS:
        forget_dead_workers()  # a worker killed by a signal never said it left
        counted = CollectorRegistry()
        MultiProcessCollector(counted)  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    now = CollectorRegistry()
    now.register(_ScrapeTime(state))
    return generate_latest(counted) + generate_latest(now)


router = APIRouter()


@router.get(METRICS_PATH, include_in_schema=False)
async def metrics(request: Request) -> Response:
    """The metrics, for the bearer of ``SOFTWARE_DNA_METRICS_TOKEN`` only."""
    state: AppState = request.app.state.sdna
    token = state.settings.metrics_token
    if token is None:  # answered as any unknown path is
        raise HTTPException(status_code=404)
    given = bearer_credential(request.headers.get("authorization", ""))
    expected = token.get_secret_value().encode()
    if given is None or not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
        return error_response(Code.UNAUTHORIZED, "Missing or wrong metrics token.",
                              headers={"WWW-Authenticate": "Bearer"})
    body = await run_in_threadpool(render, state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
