"""What the ``software-dna server`` commands share: the Typer group, the options
naming the data folder and the database, and the one-line error handling.

Settings come from the environment (:class:`~software_dna.server.config.Settings`);
``--data-dir`` (alias ``--home``) and ``--database-url`` override
``SOFTWARE_DNA_SERVER_HOME`` and ``DATABASE_URL`` as arguments of ``Settings``,
never through ``os.environ``. A failure is one line on stderr naming the
setting and what to do, and exit code 1.
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

from software_dna.server.cli._common import ENV_DEBUG, PROG, CliError
from software_dna.server.config import ConfigError, Settings

__all__ = ["LOG_LEVELS", "DatabaseUrl", "Home", "app", "checked", "one_line", "parse_log_level",
           "printed_warnings", "settings_of"]

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


def settings_of(home: str | None, database_url: str | None) -> Settings:
    folder = Path(home).expanduser().resolve() if home else None
    return Settings.load(home=folder, database_url=database_url or None)


def checked(home: str | None, database_url: str | None, *, must_exist: bool = True) -> Settings:
    """The settings, their database URL checked (see :func:`._database.check_database`)."""
    # Lazy: SQLAlchemy only for the server commands, not every CLI start.
    from software_dna.server.cli._database import check_database

    settings = settings_of(home, database_url)
    check_database(settings, database_url, must_exist=must_exist)
    return settings


@contextlib.contextmanager
def printed_warnings() -> Iterator[None]:
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


def one_line(run: Callable[[], int], database_url: str | None) -> int:
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


def parse_log_level(text: str) -> str:
    if text not in LOG_LEVELS:
        raise typer.BadParameter(f"invalid choice: {text!r} (choose from {', '.join(LOG_LEVELS)})")
    return text

