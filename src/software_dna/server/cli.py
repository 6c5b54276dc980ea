"""The ``software-dna`` command (vendor tooling).

    software-dna server init      create the data folder, the master key and an admin API key
    software-dna server migrate   upgrade the database schema
    software-dna server run       serve the HTTP API with uvicorn

Settings come from the environment (see :mod:`software_dna.server.config`);
``--home`` and ``--database-url`` override ``SOFTWARE_DNA_SERVER_HOME`` and
``DATABASE_URL``.  Exit status: 0 success, 1 refused / failed, 2 usage.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from software_dna.server.cli_vendor import add_vendor_commands

if TYPE_CHECKING:
    from software_dna.server.config import Settings

__all__ = ["build_parser", "main"]


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", metavar="DIR",
                        help="data folder (default: $SOFTWARE_DNA_SERVER_HOME)")
    parser.add_argument("--database-url", metavar="URL",
                        help="SQLAlchemy URL (default: $DATABASE_URL, else SQLite in the folder)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (other command groups add their sub-parsers to it)."""
    parser = argparse.ArgumentParser(
        prog="software-dna",
        description="software_dna vendor tooling: the license server and its administration.",
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", required=True)
    server = groups.add_parser("server", help="set up and run the license server",
                               description="Set up and run the license server.")
    commands = server.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)

    init = commands.add_parser(
        "init", help="create the data folder, master key and an admin API key",
        description="Create the data folder, the master key file (mode 0600) and the "
        "database schema, and print a new admin API key once (only its hash is kept). "
        "Never overwrites an existing master key.",
    )
    _common(init)
    init.add_argument("--new-admin-key", action="store_true",
                      help="revoke the existing admin API keys and print a new one")
    init.set_defaults(func=_cmd_init)

    migrate = commands.add_parser(
        "migrate", help="upgrade the database schema to this version",
        description="Apply the pending database migrations (safe to run again).",
    )
    _common(migrate)
    migrate.set_defaults(func=_cmd_migrate)

    run = commands.add_parser(
        "run", help="serve the HTTP API (uvicorn)",
        description="Serve the license server's HTTP API. Refuses to start on a database "
        "whose schema is behind (run `software-dna server migrate`).",
    )
    _common(run)
    run.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    run.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    run.add_argument("--workers", type=int, default=1,
                     help="worker processes (several need PostgreSQL or a shared SQLite file)")
    run.add_argument("--log-level", default="info",
                     choices=["critical", "error", "warning", "info", "debug"],
                     help="log level (default info)")
    run.add_argument("--forwarded-allow-ips", metavar="IPS", default=None,
                     help="proxies trusted for X-Forwarded-For (comma-separated)")
    run.set_defaults(func=_cmd_run)
    add_vendor_commands(groups)
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    from software_dna.server.config import Settings

    home = Path(args.home).expanduser().resolve() if args.home else None
    return Settings.load(home=home, database_url=args.database_url or None)


def _cmd_init(args: argparse.Namespace) -> int:
    from software_dna.server.bootstrap import initialize

    settings = _settings(args)
    created, admin_key = initialize(settings, new_admin_key=args.new_admin_key)
    print(f"Data folder: {settings.home}")
    if settings.master_key is not None:
        print("Master key: from SOFTWARE_DNA_MASTER_KEY")
    else:
        state = "created" if created else "kept (already there)"
        print(f"Master key: {settings.key_file} ({state}) -- back it up: without it the "
              "database's secrets cannot be read")
    print("Database: schema up to date")
    if admin_key:
        print("Admin API key (shown once; store it safely):")
        print(admin_key)
    else:
        print("Admin API key: one exists already (use --new-admin-key to replace it)")
    return 0


def _cmd_migrate(args: argparse.Namespace) -> int:
    from software_dna.server.db import migrate

    settings = _settings(args)
    before, after = migrate(settings)
    if before == after:
        print(f"Database schema already at revision {after}.")
    else:
        print(f"Database schema upgraded: {before or 'empty'} -> {after}.")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from software_dna.server import _serve
    from software_dna.server.db import check_schema, make_engine
    from software_dna.server.logconfig import log_config

    settings = _settings(args)
    engine = make_engine(settings, pooled=False)
    try:
        check_schema(engine, settings)
    finally:
        engine.dispose()
    from software_dna.server.crypto import load_master_key

    load_master_key(settings)  # fail here, not in every worker
    if args.home or args.database_url:
        _run_with(settings, args)
    _serve.run(
        "software_dna.server.api:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=max(1, args.workers),
        log_config=log_config(args.log_level),
        log_level=args.log_level,
        access_log=True,
        proxy_headers=args.forwarded_allow_ips is not None,
        forwarded_allow_ips=args.forwarded_allow_ips,
        server_header=False,
        # asyncio's own event loop, not uvloop: under 64 keep-alive connections uvloop
        # served some of them seconds late (p99 0.8-1.2 s against 0.16-0.3 s; the same
        # on a 404 route) for no more validations per second (docs/performance.md).
        loop="asyncio",
    )
    return 0


def _run_with(settings: Settings, args: argparse.Namespace) -> None:
    """Serve in this process image with ``settings`` as its environment (never returns).

    The workers read their settings from the environment; the overrides go to
    the new image only, never into this process's ``os.environ``.
    """
    from software_dna.server.config import environ_without_settings

    env = {**environ_without_settings(), **settings.to_env()}
    argv = [sys.executable, "-m", "software_dna.server.cli", "server", "run", "--host", args.host,
            "--port", str(args.port), "--workers", str(args.workers), "--log-level",
            args.log_level]
    if args.forwarded_allow_ips is not None:
        argv += ["--forwarded-allow-ips", args.forwarded_allow_ips]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, argv, env)  # noqa: S606 - our own interpreter and module


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    from software_dna.server.config import ConfigError
    from software_dna.server.db import SchemaError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except (ConfigError, SchemaError) as exc:
        print(f"software-dna: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
