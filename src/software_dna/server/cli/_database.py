"""The database a command names, checked before anything is opened or created.

:func:`check_database` turns what SQLAlchemy would raise deep inside
``create_engine`` (a URL it cannot parse, a database kind it does not know, a
driver that is not installed) into one :class:`~._common.CliError` naming the
setting the URL came from, and refuses a SQLite file that is not there rather
than letting SQLite create an empty one. :func:`database_error` is the one
line of a database that cannot be used (unreachable, wrong password).
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from software_dna.server.cli._common import PROG, CliError
from software_dna.server.config import Settings

__all__ = ["check_database", "database_error", "url_source"]

#: The variables the database URL is read from, in order (config.Settings).
DATABASE_VARIABLES = ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL")


def url_source(option: str | None) -> str:
    """Where the database URL came from: ``--database-url``, the variable set, or the folder."""
    if option:
        return "--database-url"
    for name in DATABASE_VARIABLES:
        if os.environ.get(name):
            return name
    return "the data folder (--data-dir or SOFTWARE_DNA_SERVER_HOME)"


def check_database(settings: Settings, option: str | None, *, must_exist: bool = True) -> None:
    """Refuse a database URL that cannot be used, naming where it came from.

    Args:
        settings: the command's settings (``settings.database_url``).
        option: the ``--database-url`` given, or None.
        must_exist: refuse a SQLite file (or its folder) that does not exist
            (every command but ``server init``).

    Raises:
        CliError: (exit 1) a malformed URL, an unknown database, a driver
            that is not installed, or a SQLite file that is not there.
    """
    where = url_source(option)
    try:
        url: URL = make_url(settings.database_url)
    except ArgumentError:
        raise CliError(f"{where} is not a database URL: give postgresql://USER@HOST/DB or "
                       "sqlite:///PATH.") from None
    try:
        dialect = url.get_dialect()
    except NoSuchModuleError:
        raise CliError(f"{where} names an unknown database ({url.drivername!r}): use "
                       "postgresql://USER@HOST/DB or sqlite:///PATH.") from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        raise CliError(f"{where} needs the database driver {exc.name or url.drivername!r}, "
                       "which is not installed: software_dna supports PostgreSQL (psycopg, "
                       "postgresql://...) and SQLite (sqlite:///...).") from None
    if must_exist and url.get_backend_name() == "sqlite":
        name = url.database
        if name and name != ":memory:" and not Path(name).expanduser().exists():
            raise CliError(f"No server database at {Path(name).expanduser()}: run `{PROG} "
                           "server init` first, or point to it with --data-dir, "
                           "--database-url or DATABASE_URL.")


def database_error(exc: SQLAlchemyError, option: str | None) -> CliError:
    """The one line (exit 1) of a database that cannot be used, naming the setting."""
    first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
    return CliError(f"Cannot use the database of {url_source(option)}: {type(exc).__name__}: "
                    f"{first} (check the URL, and that the database server is running).")
