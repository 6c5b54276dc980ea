"""``software-dna server``: set up and run the license server.

    software-dna server init      create the data folder, the master key (kept outside it) and
                                  an admin API key
    software-dna server migrate   upgrade the database schema
    software-dna server run       serve the HTTP API with uvicorn (and an outbox worker thread)
    software-dna server worker    deliver the outbox (webhooks, e-mails), run scheduled jobs

Settings come from the environment (:class:`~software_dna.server.config.Settings`);
``--data-dir`` (alias ``--home``) and ``--database-url`` override
``SOFTWARE_DNA_SERVER_HOME`` and ``DATABASE_URL`` as arguments of ``Settings``,
never through ``os.environ``. A failure is one line on stderr naming the
setting and what to do, and exit code 1; ``migrate`` and ``run`` refuse a
SQLite database that is not there (run ``server init``) and create nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer

from software_dna.server.cli._common import ENV_DEBUG, PROG, CliError, in_range, positive_int
from software_dna.server.config import ConfigError, Settings, environ_without_settings

__all__ = ["app"]

app = typer.Typer(name="server", no_args_is_help=True, rich_markup_mode=None,
                  short_help="set up and run the license server",
                  help="Set up and run the license server.")

Home = Annotated[str | None, typer.Option(
    "--data-dir", "--home", metavar="DIR", show_default=False,
    help="data folder (default: $SOFTWARE_DNA_SERVER_HOME)")]
DatabaseUrl = Annotated[str | None, typer.Option(
    "--database-url", metavar="URL", show_default=False,
    help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite in the folder)")]
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def _settings(home: str | None, database_url: str | None) -> Settings:
    folder = Path(home).expanduser().resolve() if home else None
    return Settings.load(home=folder, database_url=database_url or None)


def _checked(home: str | None, database_url: str | None, *, must_exist: bool = True) -> Settings:
    """The settings, their database URL checked (see :func:`._database.check_database`)."""
    # Lazy: SQLAlchemy only for the server commands, not every CLI start.
    from software_dna.server.cli._database import check_database

    settings = _settings(home, database_url)
    check_database(settings, database_url, must_exist=must_exist)
    return settings


@contextlib.contextmanager
def _printed_warnings() -> Iterator[None]:
    """While the block runs, the server's logged warnings (e.g. a master key found in the
    data folder) are printed on stderr as ``software-dna: warning: ...`` lines."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter(f"{PROG}: warning: %(message)s"))
    logger = logging.getLogger("software_dna.server")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _one_line(run: Callable[[], int], database_url: str | None) -> int:
    """``run()``; a bad setting, schema or database is one line on stderr and exit 1."""
    # Lazy: the database layer only for the server commands, not every CLI start.
    from sqlalchemy.exc import SQLAlchemyError

    from software_dna.server.cli._database import database_error
    from software_dna.server.db import SchemaError

    def error(message: str) -> int:
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 1

    try:
        return run()
    except (ConfigError, SchemaError) as exc:
        return error(str(exc))
    except CliError as exc:
        error(exc.message)
        return exc.code
    except SQLAlchemyError as exc:
        return error(database_error(exc, database_url).message)
    except BrokenPipeError:  # stdout closed early: main() ends quietly
        raise
    except OSError as exc:
        return error(f"{type(exc).__name__}: {exc}")
    except Exception as exc:
        if os.environ.get(ENV_DEBUG):
            raise
        return error(f"unexpected {type(exc).__name__}: {exc} (set {ENV_DEBUG}=1 for the "
                     "traceback)")


@app.command("init", short_help="create the data folder, master key and an admin API key")
def init(
    *, home: Home = None, database_url: DatabaseUrl = None,
    new_admin_key: Annotated[bool, typer.Option(
        "--new-admin-key",
        help="revoke the existing admin API keys and print a new one")] = False,
    owner_email: Annotated[str | None, typer.Option(
        "--owner-email", metavar="EMAIL", show_default=False,
        help="create the first staff account (an owner of the control panel) with this "
             "address when there is none; asked for on a terminal")] = None,
) -> int:
    """Create the data folder, the master key file (mode 0600, outside the data folder by
    default) and the database schema, and print a new admin API key once (only its hash is
    kept). When there is no staff account yet, create the first owner of the control panel
    (--owner-email, or asked on a terminal) and print their password once. Never overwrites
    an existing master key, and never creates one for a database that already holds
    encrypted data."""
    def run() -> int:
        # Lazy: the service layer only for this command, not every CLI start.
        # Lazy: the key's location and the database's only for this command.
        from sqlalchemy import make_url

        from software_dna.server.bootstrap import initialize
        from software_dna.server.crypto import locate_master_key

        settings = _checked(home, database_url, must_exist=False)
        with _printed_warnings():
            created, admin_key = initialize(settings, new_admin_key=new_admin_key)
        where = locate_master_key(settings)
        print(f"Data folder: {settings.home}")
        if where.path is None:
            print("Master key: from SOFTWARE_DNA_MASTER_KEY (not stored on disk by the server)")
        else:
            state = "created" if created else "already there, kept"
            print(f"Master key: {where.path} ({state})")
            if where.path.resolve().is_relative_to(settings.home.resolve()):
                print(f"{PROG}: warning: the master key is inside the data folder, so a backup "
                      "of the folder holds the key to its own secrets; keep it elsewhere "
                      "(SOFTWARE_DNA_MASTER_KEY_FILE).", file=sys.stderr)
        print("Database: schema up to date")
        database = (f"the SQLite file {make_url(settings.database_url).database}"
                    if settings.is_sqlite else "your PostgreSQL database")
        key = "the master key file" if where.path is not None else "SOFTWARE_DNA_MASTER_KEY"
        print(f"Back up separately: the database ({database}) and {key}. Without the key the "
              "database's secrets cannot be read; a backup holding both gives them all away, "
              "so keep the key's copy apart from the database's.")
        if admin_key:
            print("Admin API key (shown once; store it safely):")
            print(admin_key)
        else:
            print("Admin API key: one exists already (use --new-admin-key to replace it)")
        _first_owner(settings, owner_email)
        return 0
    return _one_line(run, database_url)


def _first_owner(settings: Settings, owner_email: str | None) -> None:
    """Create the control panel's first owner when there is no staff account yet."""
    # Lazy: the service layer only for this command, not every CLI start.
    from software_dna.server.bootstrap import create_first_owner, has_staff
    from software_dna.server.services.errors import ServiceError

    if has_staff(settings):
        if owner_email:
            print("Staff: accounts exist already; --owner-email not used (add staff with "
                  f"`{PROG} staff add EMAIL --role owner`)")
        return
    address = owner_email
    if not address and sys.stdin.isatty():
        with contextlib.suppress(EOFError):
            address = input("Email address of the first owner of the control panel "
                            "(empty: later): ").strip()
    if not address:
        print(f"Staff: none yet; add the first owner with `{PROG} staff add EMAIL --role "
              f"owner` (or `{PROG} server init --owner-email EMAIL`)")
        return
    try:
        password = create_first_owner(settings, address)
    except ServiceError as exc:
        raise CliError(f"--owner-email: {exc.message}") from None
    if password is not None:
        print(f"Control panel owner: {address.strip().lower()} (sign in at /panel; choose "
              "your own password at the first sign-in)")
        print("Owner password (shown once):")
        print(password)


@app.command("migrate", short_help="upgrade the database schema to this version")
def migrate_(*, home: Home = None, database_url: DatabaseUrl = None) -> int:
    """Apply the pending database migrations (safe to run again)."""
    def run() -> int:
        # Lazy: Alembic only for this command, not every CLI start.
        from software_dna.server.db import migrate

        before, after = migrate(_checked(home, database_url))
        if before == after:
            print(f"Database schema already at revision {after}.")
        else:
            print(f"Database schema upgraded: {before or 'empty'} -> {after}.")
        return 0
    return _one_line(run, database_url)


def _log_level(text: str) -> str:
    if text not in LOG_LEVELS:
        raise typer.BadParameter(f"invalid choice: {text!r} (choose from {', '.join(LOG_LEVELS)})")
    return text


#: Bind addresses that mean every interface (the panel's address is then shown as localhost).
_ANY_ADDRESS = ("0.0.0.0", "::")  # noqa: S104 - compared with, never bound


@app.command("run", short_help="serve the HTTP API (uvicorn)")
def run_(
    *, home: Home = None, database_url: DatabaseUrl = None,
    host: Annotated[str, typer.Option("--host", help="address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="1-65535", parser=in_range(1, 65535),
                                      help="port")] = 8000,
    workers: Annotated[int, typer.Option(
        "--workers", metavar="N", parser=positive_int,
        help="worker processes (several need PostgreSQL or a shared SQLite file)")] = 1,
    log_level: Annotated[str, typer.Option(
        "--log-level", metavar="[critical|error|warning|info|debug]", parser=_log_level,
        help="log level")] = "info",
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        "--forwarded-allow-ips", metavar="IPS", show_default=False,
        help="proxies trusted for X-Forwarded-For (comma-separated)")] = None,
    worker: Annotated[bool, typer.Option(
        "--worker/--no-worker",
        help="also deliver the outbox and run scheduled jobs in a thread of this process "
             "(safe next to other workers)")] = True,
) -> int:
    """Serve the license server's HTTP API. Refuses to start on a database whose schema is
    behind (run `software-dna server migrate`). By default one outbox worker thread runs
    in this process too (webhooks, e-mails, scheduled jobs); `--no-worker` leaves that to
    `software-dna server worker`. Several processes each running a worker are safe: each
    item and each job's due time is claimed by one of them."""
    def run() -> int:
        # Lazy: the database layer only for this command, not every CLI start.
        from software_dna.server.crypto import load_master_key
        from software_dna.server.db import check_schema, make_engine

        settings = _checked(home, database_url)
        engine = make_engine(settings, pooled=False)
        try:
            check_schema(engine, settings)
        finally:
            engine.dispose()
        with _printed_warnings():
            load_master_key(settings)  # fail here, not in every worker
        options = ["--host", host, "--port", str(port), "--workers", str(workers),
                   "--log-level", log_level]
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
            _serve_app(host, port, workers, log_level, forwarded_allow_ips)
        finally:
            if background is not None:
                background()
        return 0
    return _one_line(run, database_url)


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
               forwarded_allow_ips: str | None) -> None:
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
        "--log-level", metavar="[critical|error|warning|info|debug]", parser=_log_level,
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
        settings = _checked(home, database_url)
        engine = make_engine(settings)
        try:
            check_schema(engine, settings)
            with _printed_warnings():
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
    return _one_line(run, database_url)


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
