"""Engine, sessions, migrations and the schema-version check.

SQLite: WAL journal, foreign keys on, ``secure_delete`` on (deleted rows are
overwritten, which erasure relies on), a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` so that a read-then-write (the seat count)
cannot interleave with another writer.

PostgreSQL (``postgresql+psycopg://``): a connection pool per worker with
pre-ping; seat counting locks the license row (``SELECT ... FOR UPDATE``).

Migrations are Alembic revisions shipped inside the package; they are run
with a :class:`alembic.config.Config` built in code (no ``alembic.ini``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from software_dna.server.config import Settings

__all__ = [
    "SchemaError",
    "alembic_config",
    "check_schema",
    "current_revision",
    "head_revision",
    "make_engine",
    "make_inline_engine",
    "make_session_factory",
    "migrate",
    "session_scope",
    "sqlite_compact",
]

MIGRATIONS = Path(__file__).with_name("migrations")
log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The database schema is not the one this server version needs."""


def make_engine(settings: Settings, *, pooled: bool = True) -> Engine:
    """An engine for ``settings.database_url`` with the pragmas / pool described above.

    ``pooled=False`` gives a connection-per-use engine (CLI one-shots, migrations).
    For SQLite the parent folder of the database file is created.
    """
    url = make_url(settings.database_url)
    # hide_parameters: SQL errors and logs never show bound values (hashes, ciphertexts).
    kwargs: dict[str, Any] = {"future": True, "hide_parameters": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {
            "timeout": float(settings.db_busy_timeout),
            "check_same_thread": False,
        }
        if not pooled:
            kwargs["poolclass"] = NullPool
        engine = create_engine(url, **kwargs)
        _sqlite_events(engine, settings)
        return engine
    if pooled:
        kwargs.update(
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_pre_ping=True,
            pool_recycle=1800,
        )
    else:
        kwargs["poolclass"] = NullPool
    return create_engine(url, **kwargs)


#: Seconds the event loop may wait on PostgreSQL for the validation hot path (connecting,
#: or one statement, lock waits included) before the request is answered 503.
INLINE_TIMEOUT = 2


def make_inline_engine(settings: Settings) -> Engine | None:
    """PostgreSQL: a one-connection engine for the validation hot path; None on SQLite.

    The hot path (``services.hotpath``) runs on the worker's event loop, not in
    the thread pool: a thread hand-off cost more CPU than the validation
    itself.  Only the event loop thread uses this engine, one request at a
    time, so its single connection never waits for the pool; connecting and
    every statement are bounded by :data:`INLINE_TIMEOUT` seconds (then 503
    ``unavailable``), so a stalled database cannot freeze the worker's loop
    for long.  SQLite can wait for the write lock up to the busy timeout: it
    stays in the thread pool.

    Autocommit: the hot path reads without locking and then writes one
    statement, so a transaction around the two added nothing but the
    ``BEGIN`` and ``COMMIT`` round trips.
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return None
    return create_engine(
        url, future=True, hide_parameters=True, isolation_level="AUTOCOMMIT",
        pool_size=1, max_overflow=0,
        pool_timeout=INLINE_TIMEOUT, pool_pre_ping=True, pool_recycle=1800,
        connect_args={"connect_timeout": INLINE_TIMEOUT,
                      "options": f"-c statement_timeout={INLINE_TIMEOUT * 1000}"},
    )


def _sqlite_events(engine: Engine, settings: Settings) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take over transaction control from the sqlite3 module so that our
        # own BEGIN IMMEDIATE (below) is the only BEGIN.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA secure_delete=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute(f"PRAGMA busy_timeout={int(settings.db_busy_timeout) * 1000}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(engine, expire_on_commit=False, future=True)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def sqlite_compact(engine: Engine) -> bool:
    """SQLite only: ``VACUUM`` and truncate the WAL so that deleted data leaves the files.

    Used after an erasure (``secure_delete`` already zeroes freed pages; this
    also rewrites the file and empties the WAL).  Waits for other writers up
    to the busy timeout.  Returns False (and logs a warning) when the
    database stayed busy; a no-op returning True on other backends.
    """
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        assert dbapi is not None
        dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dbapi.execute("VACUUM")
        dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.OperationalError as exc:
        log.warning("SQLite compaction after an erasure failed (%s); it runs again "
                    "after the next erasure", type(exc).__name__)
        return False
    finally:
        raw.close()
    return True


# --------------------------------------------------------------------------- migrations


def alembic_config(settings: Settings) -> Config:
    """An Alembic config pointing at the packaged migrations (no ini file)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    cfg.attributes["settings"] = settings
    return cfg


def head_revision(settings: Settings) -> str:
    """The newest migration revision shipped with this server."""
    head = ScriptDirectory.from_config(alembic_config(settings)).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision (None: never migrated)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(settings: Settings, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the database to ``revision``; returns (before, after) revisions."""
    engine = make_engine(settings, pooled=False)
    try:
        before = current_revision(engine)
        cfg = alembic_config(settings)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
        after = current_revision(engine)
    finally:
        engine.dispose()
    return before, after or ""


def check_schema(engine: Engine, settings: Settings) -> None:
    """Raise :class:`SchemaError` unless the database is at this server's head revision."""
    current = current_revision(engine)
    head = head_revision(settings)
    if current == head:
        return
    script = ScriptDirectory.from_config(alembic_config(settings))
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"The database schema (revision {current}) is newer than this server "
            f"(revision {head}). Upgrade software_dna before starting the server."
        )
    raise SchemaError(
        f"The database schema is behind (revision {current or 'none'}, this server "
        f"needs {head}). Run `software-dna server migrate` first."
    )
