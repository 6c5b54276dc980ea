"""Pytest fixtures that run the reference license server over real HTTP.

- ``server``: a :class:`LocalServer` on SQLite, one per test module.
- ``pg_server``: one on a fresh PostgreSQL database, one per test module.
- ``database_url``: parametrized over ``sqlite`` and ``postgresql`` (module
  scope); each value is a fresh, empty database.
- ``fresh_database_url``: the same, function scope (a new database per test).
- ``any_server``: a module-scoped :class:`LocalServer` on ``database_url``.
- ``pg_databases``: makes fresh PostgreSQL databases (dropped at the end of the
  session).

PostgreSQL: ``SOFTWARE_DNA_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``) names a database used only to
create and drop per-session databases ``sdna_test_<pid>_<random>_<n>``.  When
it cannot be reached the PostgreSQL tests are skipped with a clear reason --
unless the environment variable ``CI`` is ``true``: then they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from software_dna.server.testing import LocalServer

PG_ADMIN_URL = os.environ.get("SOFTWARE_DNA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


class PgDatabases:
    """Creates fresh PostgreSQL databases and drops them all at :meth:`drop_all`."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self._conn = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
        self._prefix = f"sdna_test_{os.getpid()}_{secrets.token_hex(3)}"
        self._names: list[str] = []

    def create(self) -> str:
        """A new empty database; returns its SQLAlchemy URL (``postgresql+psycopg://``)."""

        name = f"{self._prefix}_{len(self._names)}"
        self._conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self._names.append(name)
        base, _, _ = self.admin_url.rpartition("/")
        return base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name

    def drop_all(self) -> None:
        """Terminate connections to, and drop, every database made here."""

        for name in self._names:
            self._conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            self._conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        self._names.clear()
        self._conn.close()


def _pg_unreachable(reason: str) -> None:
    message = f"PostgreSQL not reachable at {PG_ADMIN_URL} ({reason}); skipped"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message.replace("; skipped", ": required when CI=true"), pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases]:
    """A factory of fresh PostgreSQL databases (skip / fail when unreachable)."""
    try:
        databases = PgDatabases(PG_ADMIN_URL)
    except Exception as exc:  # psycopg.OperationalError, ImportError, ...
        _pg_unreachable(f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}")
        raise  # unreachable: skip/fail raised
    try:
        yield databases
    finally:
        databases.drop_all()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A license server on SQLite (one per test module)."""
    with LocalServer(tmp_path_factory.mktemp("server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def pg_server(
    tmp_path_factory: pytest.TempPathFactory, pg_databases: PgDatabases
) -> Iterator[LocalServer]:
    """A license server on a fresh PostgreSQL database (one per test module)."""
    with LocalServer(tmp_path_factory.mktemp("pg-server"),
                     database_url=pg_databases.create()) as srv:
        yield srv


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh empty database: SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("sqlite") / "server.db"
        return f"sqlite:///{path}"
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    return databases.create()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Like ``database_url``, but a new empty database for every test."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.db'}"
    databases: PgDatabases = request.getfixturevalue("pg_databases")
    return databases.create()


@pytest.fixture(scope="module")
def any_server(tmp_path_factory: pytest.TempPathFactory,
               database_url: str) -> Iterator[LocalServer]:
    """A license server on ``database_url`` (so a module runs on both backends)."""
    with LocalServer(tmp_path_factory.mktemp("any-server"), database_url=database_url) as srv:
        yield srv
