"""Liveness and readiness, on SQLite and PostgreSQL.

Invariants:
- ``GET /v1/health`` answers 200 ``{"status": "ok", "server_time"}`` whatever the
  database's state: it never asks it.
- ``GET /v1/ready`` answers 200 only when the database answers and its schema is
  at this server's revision; otherwise 503 ``unavailable`` with ``details.check``
  naming what is wrong (``database`` / ``schema``), and never the database's
  address or credentials.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url

from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.crypto import create_master_key_file
from software_dna.server.db import alembic_config, head_revision, make_engine, migrate
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases

from .helpers import asgi_request


def _settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                              "SOFTWARE_DNA_MASTER_KEY_FILE": str(tmp_path / "master.key"),
                              "DATABASE_URL": database_url})


def _get(app: Any, path: str) -> tuple[int, Any]:
    return asgi_request(app, "GET", path)


def _assert_unready(app: Any, check: str, database_url: str) -> dict[str, Any]:
    status, body = _get(app, "/v1/ready")
    assert status == 503, body
    assert body["error"]["code"] == "unavailable"
    assert body["error"]["details"]["check"] == check
    url = make_url(database_url)
    shown = str(body)
    # Neither the address nor the credentials of the database.
    for secret in filter(None, (url.host, url.password, url.username, str(url.database))):
        assert secret not in shown, (secret, shown)
    # Liveness does not depend on the database.
    status, live = _get(app, "/v1/health")
    assert status == 200 and live["status"] == "ok"
    return dict(body["error"])


def test_ready_when_migrated(tmp_path: Path, fresh_database_url: str) -> None:
    settings = _settings(tmp_path, fresh_database_url)
    initialize(settings)
    app = create_app(settings)
    try:
        status, body = _get(app, "/v1/ready")
        assert status == 200, body
        assert body["status"] == "ready"
        assert body["schema_revision"] == head_revision(settings)
        status, live = _get(app, "/v1/health")
        assert status == 200 and set(live) == {"status", "server_time"}
    finally:
        app.state.sdna.dispose()


def test_not_ready_when_the_schema_is_behind_or_ahead(tmp_path: Path,
                                                      fresh_database_url: str) -> None:
    settings = _settings(tmp_path, fresh_database_url)
    create_master_key_file(settings.key_file)
    script = ScriptDirectory.from_config(alembic_config(settings))
    head = head_revision(settings)
    previous = script.get_revision(head).down_revision
    assert isinstance(previous, str)
    migrate(settings, previous)
    app = create_app(settings, check=False)  # a server started before its migration ran
    try:
        error = _assert_unready(app, "schema", fresh_database_url)
        assert error["details"]["database_revision"] == previous
        assert error["details"]["server_revision"] == head
        assert "software-dna server migrate" in error["message"]

        migrate(settings)
        assert _get(app, "/v1/ready")[0] == 200  # ready once migrated, without a restart

        engine = make_engine(settings, pooled=False)
        with engine.begin() as conn:  # a newer server migrated the database
            conn.execute(text("UPDATE alembic_version SET version_num = 'f00dfeed'"))
        engine.dispose()
        error = _assert_unready(app, "schema", fresh_database_url)
        assert "newer" in error["message"]
    finally:
        app.state.sdna.dispose()


def test_not_ready_when_the_sqlite_file_is_gone(tmp_path: Path) -> None:
    database = tmp_path / "server.db"
    url = f"sqlite:///{database}"
    settings = _settings(tmp_path, url)
    initialize(settings)
    app = create_app(settings)
    try:
        assert _get(app, "/v1/ready")[0] == 200
        app.state.sdna.dispose()  # the pool's connections, so that the file is opened again
        database.unlink()
        shutil.rmtree(tmp_path / "server.db-wal", ignore_errors=True)
        database.mkdir()  # a folder where the file was: SQLite cannot open it
        _assert_unready(app, "database", url)
        database.rmdir()
        # An empty file in its place: reachable, but no schema at all.
        error = _assert_unready(app, "schema", url)
        assert error["details"]["database_revision"] is None
    finally:
        app.state.sdna.dispose()


@pytest.mark.postgres
def test_not_ready_when_the_postgresql_database_goes_away(tmp_path: Path,
                                                          pg_databases: PgDatabases) -> None:
    url = pg_databases.create()
    settings = _settings(tmp_path, url)
    initialize(settings)
    app = create_app(settings)
    try:
        assert _get(app, "/v1/ready")[0] == 200
        name = make_url(url).database
        assert name
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        for _ in range(2):  # a pooled connection that died, then a new one refused
            _assert_unready(app, "database", url)
    finally:
        app.state.sdna.dispose()
