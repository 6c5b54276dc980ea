"""``software-dna server run`` and ``server worker``: serve the HTTP API, deliver the outbox.

``run`` refuses a database whose schema is behind (run ``server migrate``) or a
SQLite file that is not there (run ``server init``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from software_dna.server.cli._common import PROG, CliError, in_range, positive_int
from software_dna.server.cli.server._base import (
    DatabaseUrl,
    Home,
    app,
    checked,
    one_line,
    parse_log_level,
    printed_warnings,
)
from software_dna.server.config import Settings, environ_without_settings

__all__ = ["run_", "worker_"]

_ANY_ADDRESS = ("0.0.0.0", "::")  # noqa: S104 - compared with, never bound


@app.command("run", short_help="serve the HTTP API (uvicorn; several workers share the load)")
def run_(
    *, home: Home = None, database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option("--host", help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="1-65535", parser=in_range(1, 65535),
                                      help="port")] = 8000,
    workers: Annotated[int, typer.Option(
        "--workers", metavar="N", parser=positive_int,
        help="worker processes (several need PostgreSQL or a shared SQLite file)")] = 1,
    log_level: Annotated[str, typer.Option(
        "--log-level", metavar="[critical|error|warning|info|debug]", parser=parse_log_level,
        help="log level")] = "info",
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        "--forwarded-allow-ips", metavar="IPS", show_default=False,
        help="proxies trusted for X-Forwarded-For (comma-separated)")] = None,
    graceful_timeout: Annotated[int, typer.Option(
        "--graceful-timeout", metavar="SECONDS", parser=in_range(1, 3600),
        help="on SIGTERM, how long requests in flight may take to finish")] = 25,
    worker: Annotated[bool, typer.Option(
        "--worker/--no-worker",
        help="also deliver the outbox and run scheduled jobs in a thread of this process "
             "(safe next to other workers)")] = True,
) -> int:
    """Serve the license server's HTTP API. Refuses to start on a database whose schema is
    behind (run `software-dna server migrate`). By default one outbox worker thread runs
    in this process too (webhooks, e-mails, scheduled jobs); `--no-worker` leaves that to
    `software-dna server worker`. Several processes each running a worker are safe: each
    item and each job's due time is claimed by one of them. With `--workers N` one process
    accepts the connections and hands them to the N workers in turn. SIGTERM (or Ctrl-C):
    new connections are refused at once, the requests in flight finish (at most
    `--graceful-timeout` seconds), then the server exits."""
    def run() -> int:
        # Lazy: the database layer only for this command, not every CLI start.
        from software_dna.server.crypto import load_master_key
        from software_dna.server.db import check_schema, make_engine
        from software_dna.server.metricsdir import metrics_directory

        settings = checked(home, database_url)
        engine = make_engine(settings, pooled=False)
        try:
            check_schema(engine, settings)
        finally:
            engine.dispose()
        with printed_warnings():
            load_master_key(settings)  # fail here, not in every worker
        options = ["--host", host, "--port", str(port), "--workers", str(workers),
                   "--log-level", log_level, "--graceful-timeout", str(graceful_timeout)]
        if forwarded_allow_ips is not None:
            options += ["--forwarded-allow-ips", forwarded_allow_ips]
        if not worker:
            options.append("--no-worker")
        if home or database_url:
            _exec_with(settings, options)
        background = _background_worker(settings, log_level) if worker else None
        local = "localhost" if host in _ANY_ADDRESS else host
        shown = settings.public_url or f"http://{local}:{port}"
        print(f"Control panel: {shown.rstrip('/')}/panel/ (staff sign in; `{PROG} staff add` "
              "adds one)", file=sys.stderr, flush=True)
        try:
            # Several workers share their metrics through a fresh folder, made before they start.
            with metrics_directory(workers):
                _serve_app(host, port, workers, log_level, forwarded_allow_ips,
                           graceful_timeout=graceful_timeout)
        finally:
            if background is not None:
                background()
        return 0
    return one_line(run, database_url)


def _background_worker(settings: Settings, log_level: str) -> Callable[[], None]:
    """Start an outbox worker thread; returns the function that stops it (after its item)."""
    # Lazy: the service layer only for this command, not every CLI start.
    from software_dna.server.db import make_engine, make_session_factory
    from software_dna.server.services.common import Context
    from software_dna.server.worker import DEFAULT_LEASE, Worker

    _worker_logging(log_level)
    engine = make_engine(settings)
    worker = Worker(Context.from_settings(settings), make_session_factory(engine))
    thread = worker.start()

    def stop() -> None:
        worker.stop()
        thread.join(timeout=DEFAULT_LEASE)
        engine.dispose()
    return stop


def _worker_logging(log_level: str) -> None:
    """One line per delivery on stderr (ids, topics, codes: never personal data)."""
    logger = logging.getLogger("software_dna.server.worker")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s worker: %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(log_level.upper())


def _serve_app(host: str, port: int, workers: int, log_level: str,
               forwarded_allow_ips: str | None, *, graceful_timeout: int) -> None:
    # Lazy: uvicorn only for this command, not every CLI start.
    from software_dna.server import _serve
    from software_dna.server.logconfig import log_config

    _serve.run(
        "software_dna.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config(log_level),
        log_level=log_level,
        access_log=True,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
        server_header=False,
        timeout_graceful_shutdown=graceful_timeout,
        # asyncio's own event loop, not uvloop: under 64 keep-alive connections uvloop
        # served some of them seconds late (p99 0.8-1.2 s against 0.16-0.3 s; the same
        # on a 404 route) for no more validations per second (docs/performance.md).
        loop="asyncio",
    )


@app.command("worker", short_help="deliver the outbox (webhooks, e-mails), run scheduled jobs")
def worker_(
    *, home: Home = None, database_url: DatabaseUrl = None,
    once: Annotated[bool, typer.Option(
        "--once", help="one pass (due jobs, one batch of due items), then exit")] = False,
    batch: Annotated[int, typer.Option("--batch", metavar="N", parser=positive_int,
                                       help="items claimed per pass")] = 20,
    poll: Annotated[float, typer.Option(
        "--poll", metavar="SECONDS", help="wait between passes when nothing is due")] = 1.0,
    lease: Annotated[int, typer.Option(
        "--lease", metavar="SECONDS", parser=positive_int,
        help="an item's claim, renewed before its delivery: after a crash another worker "
             "retries it this much later (more than one delivery takes)")] = 120,
    log_level: Annotated[str, typer.Option(
        "--log-level", metavar="[critical|error|warning|info|debug]", parser=parse_log_level,
        help="log level")] = "info",
) -> int:
    """Deliver what the outbox holds (outbound webhooks, e-mails) and run the scheduled jobs
    (lease culling, expiry events, reminders...), until SIGTERM or Ctrl-C: the item being
    delivered is finished and recorded first. One line per delivery on stderr (ids, event
    type, status code: no personal data). Any number of workers may run on one database."""
    def run() -> int:
        # Lazy: the database and service layers only for this command, not every CLI start.
        import signal
        import threading

        from software_dna.server.db import check_schema, make_engine, make_session_factory
        from software_dna.server.mail import mail_warnings
        from software_dna.server.services.common import Context
        from software_dna.server.worker import Worker

        if not poll >= 0:
            raise CliError("--poll must be a number of seconds >= 0", 2)
        settings = checked(home, database_url)
        engine = make_engine(settings)
        try:
            check_schema(engine, settings)
            with printed_warnings():
                ctx = Context.from_settings(settings)
                # The same mail warnings as `server run` (the worker is who sends mail).
                for warning in mail_warnings(settings):
                    logging.getLogger("software_dna.server").warning(warning)
            _worker_logging(log_level)
            worker = Worker(ctx, make_session_factory(engine), batch=batch, poll=poll,
                            lease=lease)
            if once:
                count = worker.run_once()
                print(f"{count} item(s) attempted.")
                return 0
            stop = threading.Event()

            def on_signal(_signum: int, _frame: object) -> None:
                stop.set()
            signal.signal(signal.SIGTERM, on_signal)
            signal.signal(signal.SIGINT, on_signal)
            logging.getLogger("software_dna.server.worker").info("worker started")
            worker.run(stop)
            logging.getLogger("software_dna.server.worker").info("worker stopped")
            return 0
        finally:
            engine.dispose()
    return one_line(run, database_url)


def _exec_with(settings: Settings, options: list[str]) -> None:
    """Serve in a new process image whose environment holds ``settings`` (never returns).

    The workers read their settings from the environment; the overrides go to
    the new image only, never into this process's ``os.environ``.
    """
    env = {**environ_without_settings(), **settings.to_env()}
    argv = [sys.executable, "-m", "software_dna.server.cli", "server", "run", *options]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter and module
