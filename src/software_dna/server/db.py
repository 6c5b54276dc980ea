"""Engine, sessions, migrations and the schema-version check.

SQLite: WAL journal, foreign keys on, ``secure_delete`` on (deleted rows are
overwritten, which erasure relies on; :class:`CheckpointJob` then empties the
WAL off the request path), a busy timeout, and every transaction
starts with ``BEGIN IMMEDIATE`` so that a read-then-write (the seat count)
cannot interleave with another writer.

PostgreSQL (``postgresql+psycopg://``): a connection pool per worker with
pre-ping; seat counting locks the license row (``SELECT ... FOR UPDATE``).

Migrations are Alembic revisions shipped inside the package; they are run
with a :class:`alembic.config.Config` built in code (no ``alembic.ini``).
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from software_dna.server.config import Settings

__all__ = [
    "CHECKPOINT_INTERVAL",
    "CheckpointJob",
    "SchemaError",
    "after_erasure",
    "alembic_config",
    "check_schema",
    "checkpoint_job",
    "current_revision",
    "head_revision",
    "install_checkpoint_job",
    "LEDGER_FILE",
    "ledger_file",
    "make_engine",
    "make_inline_engine",
    "make_session_factory",
    "migrate",
    "session_scope",
    "shown_url",
    "wal_checkpoint",
]


def shown_url(database_url: str) -> str:
    """``database_url`` as it may be shown: every password masked (``***``).

    Both the userinfo password and libpq's ``?password=`` query parameter are
    masked; a string that is not a URL is not shown at all.
    """
    try:
        url = make_url(database_url)
    except ArgumentError:
        return "(not a database URL)"
    if "password" in url.query:
        url = url.update_query_dict({"password": "MASKED"})
    # The query is percent-encoded: the mask is put back as the user part shows it.
    return url.render_as_string(hide_password=True).replace("password=MASKED", "password=***")

MIGRATIONS = Path(__file__).with_name("migrations")
#: The erasure ledger's file in the data folder (``services.ledger``): outside the
#: database, so that restoring an older backup cannot take it back.
LEDGER_FILE = "erasure-ledger.jsonl"
log = logging.getLogger(__name__)


class SchemaError(Exception):
    """The database schema is not the one this server version needs."""


def make_engine(settings: Settings, *, pooled: bool = True) -> Engine:
    """An engine for ``settings.database_url`` with the pragmas / pool described above.

    ``pooled=False`` gives a connection-per-use engine (CLI one-shots, migrations).
    For SQLite the parent folder of the database file is created.
    """
    engine = _make_engine(settings, pooled=pooled)
    _ledger_files[engine] = settings.home / LEDGER_FILE
    return engine


def ledger_file(engine: Engine) -> Path | None:
    """The erasure ledger file of the data folder ``engine`` was made for (by
    :func:`make_engine`); None for an engine made elsewhere."""
    return _ledger_files.get(engine)


def _make_engine(settings: Settings, *, pooled: bool) -> Engine:
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
        _busy_timeouts[engine] = int(settings.db_busy_timeout) * 1000
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

    The validation route itself goes through
    :class:`~software_dna.server.services.hotpath.DirectPg`, which takes this
    engine's URL and dialect and opens up to 4 asynchronous psycopg
    connections with the same settings (autocommit, the same bounds).
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


#: Seconds between two WAL checkpoints after erasures (at most one per interval and process).
CHECKPOINT_INTERVAL = 60.0
#: Milliseconds a checkpoint waits for other connections before it gives up for this round:
#: while it waits, new writers wait too, so the wait is kept short.
CHECKPOINT_BUSY_MS = 1000


class CheckpointJob:
    """SQLite: truncates the WAL after erasures, off the request path, at most once a minute.

    ``secure_delete`` zeroes the bytes of deleted and overwritten rows in the
    pages an erasure writes; those pages first go to the WAL, and until a
    checkpoint copies them into the database file (and the WAL is emptied)
    the file and the WAL may still hold the old bytes.  An erasure commits,
    then calls :meth:`request`; the job runs ``PRAGMA
    wal_checkpoint(TRUNCATE)`` in its own thread:

    - single-flight: one run at a time per job (per engine, so per worker
      process); erasures that arrive while a run is pending or under way are
      covered by the next run, never one each;
    - at most once per ``interval`` seconds (by ``clock``): erasures in a
      burst cost one checkpoint a minute, whoever sends them; a request made
      within the interval is run when the interval is over, never dropped;
    - a checkpoint that stays busy (another connection reading an old
      snapshot for longer than :data:`CHECKPOINT_BUSY_MS`) is retried at the
      next interval.  Several worker processes each have their own job: a
      checkpoint is safe to run concurrently with another.

    No ``VACUUM``: it rewrote the whole file while holding the write lock
    (seconds on a large database).  On any other backend the job does nothing.

    Args:
        engine: the server's engine.
        interval: minimum seconds between two runs (>= 0).
        clock: monotonic seconds; tests pass their own to move time.
        background: False: :meth:`request` only marks the job pending and the
            caller runs it with :meth:`run_due` (tests that drive the clock).
    """

    def __init__(self, engine: Engine, *, interval: float = CHECKPOINT_INTERVAL,
                 clock: Callable[[], float] = time.monotonic,
                 background: bool = True) -> None:
        # Weak: the registry (checkpoint_job) keys jobs by engine and must not keep it alive.
        self._engine = weakref.ref(engine)
        self.interval = interval
        self.clock = clock
        self.background = background
        #: Completed checkpoints (the WAL was emptied).
        self.runs = 0
        #: Attempts that found the database busy (retried at the next interval).
        self.busy = 0
        self._sqlite = engine.dialect.name == "sqlite"
        self._lock = threading.Lock()       # guards the fields below
        self._running = threading.Lock()    # held while a checkpoint runs
        self._wake = threading.Event()
        self._pending = False
        self._last: float | None = None     # clock() at the start of the last attempt
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def engine(self) -> Engine | None:
        """The engine checkpointed (None once it was garbage-collected)."""
        return self._engine()

    @property
    def pending(self) -> bool:
        """True while a requested checkpoint has not run yet."""
        with self._lock:
            return self._pending

    def due_in(self) -> float:
        """Seconds (by ``clock``) until a pending checkpoint may run; 0 when it may run now."""
        with self._lock:
            if self._last is None:
                return 0.0
            return max(0.0, self._last + self.interval - self.clock())

    def request(self) -> None:
        """Ask for a checkpoint (after an erasure committed). Never blocks, never raises."""
        if not self._sqlite:
            return
        with self._lock:
            self._pending = True
            if not self.background or self._closed:
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="sdna-wal-checkpoint",
                                                daemon=True)
                self._thread.start()
            else:
                self._wake.set()

    def run_due(self) -> bool:
        """Run the pending checkpoint now if the interval allows; True if it ran to the end."""
        if self.due_in() > 0:
            return False
        return self._run_pending()

    def flush(self) -> bool:
        """Run a pending checkpoint now, whatever the interval (shutdown, one-shot commands).

        Returns True when nothing is pending afterwards.
        """
        self._run_pending()
        return not self.pending

    def close(self) -> None:
        """Stop the thread and run what is pending (the process is ending)."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=CHECKPOINT_BUSY_MS / 1000 + 5)
        self.flush()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (real seconds) until nothing is pending or running; True if so in time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                idle = not self._pending
            if idle and not self._running.locked():
                return True
            time.sleep(0.01)
        return False

    def _loop(self) -> None:
        while True:
            with self._lock:
                if not self._pending or self._closed:
                    self._thread = None
                    return
            wait = self.due_in()
            if wait > 0:
                self._wake.wait(min(wait, self.interval or wait))
                self._wake.clear()
                continue
            self._run_pending()

    def _run_pending(self) -> bool:
        with self._running:
            with self._lock:
                if not self._pending:
                    return True
                self._pending = False
                self._last = self.clock()
            engine = self._engine()
            try:
                done = True if engine is None else wal_checkpoint(engine)
            except (SQLAlchemyError, sqlite3.Error) as exc:
                # The database went away (a removed temporary folder at exit) or
                # failed: say so and try again at the next interval, never crash.
                log.warning("WAL checkpoint after an erasure failed: %s", exc)
                done = False
            if done:
                self.runs += 1
            else:
                self.busy += 1
                with self._lock:
                    self._pending = True
            return done


def wal_checkpoint(engine: Engine, *, busy_ms: int = CHECKPOINT_BUSY_MS) -> bool:
    """SQLite: ``PRAGMA wal_checkpoint(TRUNCATE)``; True when the WAL was emptied.

    Waits at most ``busy_ms`` milliseconds for other connections; returns
    False (and logs a warning) when the database stayed busy.  True and no
    effect on other backends.
    """
    if engine.dialect.name != "sqlite":
        return True
    raw = engine.raw_connection()
    dbapi = raw.driver_connection
    assert dbapi is not None
    # Out of the pool, closed for good below: the job may run while the engine is being
    # disposed, and a connection returned to a pool that is then dropped is never closed.
    raw.detach()
    try:
        dbapi.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        try:
            row = dbapi.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        finally:
            dbapi.execute(f"PRAGMA busy_timeout={_busy_timeouts.get(engine, 0)}")
        busy = row is None or int(row[0]) != 0
    except sqlite3.Error as exc:
        log.warning("SQLite WAL checkpoint after an erasure failed (%s); it is tried "
                    "again later", type(exc).__name__)
        return False
    finally:
        raw.close()
    if busy:
        log.warning("SQLite WAL checkpoint after an erasure found the database busy; "
                    "it is tried again later")
    return not busy


_jobs: weakref.WeakKeyDictionary[Engine, CheckpointJob] = weakref.WeakKeyDictionary()
_busy_timeouts: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()
_ledger_files: weakref.WeakKeyDictionary[Engine, Path] = weakref.WeakKeyDictionary()
_jobs_lock = threading.Lock()


def checkpoint_job(engine: Engine) -> CheckpointJob:
    """The :class:`CheckpointJob` of ``engine`` (made with the defaults the first time)."""
    with _jobs_lock:
        job = _jobs.get(engine)
        if job is None:
            job = _jobs[engine] = CheckpointJob(engine)
            _close_at_exit(job)
        return job


def install_checkpoint_job(job: CheckpointJob) -> CheckpointJob:
    """Make ``job`` the one :func:`checkpoint_job` returns for ``job.engine``; returns it."""
    engine = job.engine
    if engine is not None:
        with _jobs_lock:
            _jobs[engine] = job
    _close_at_exit(job)
    return job


def _close_at_exit(job: CheckpointJob) -> None:
    # A one-shot command (the CLI's erasure) ends right after the erasure: the
    # pending checkpoint runs before the process exits.
    ref = weakref.ref(job)

    def close() -> None:
        alive = ref()
        if alive is not None:
            alive.close()

    atexit.register(close)


def after_erasure(engine: Engine) -> None:
    """Ask ``engine``'s :class:`CheckpointJob` for a checkpoint (an erasure just committed)."""
    checkpoint_job(engine).request()


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
