"""Migration 0007 with data, on SQLite and PostgreSQL: addresses stored before it stay
unconfirmed (nobody proved they asked for them), so no reset code goes there."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from software_dna.server.config import Settings
from software_dna.server.db import make_engine, migrate
from tests.fixtures_server import PgDatabases


def _check(settings: Settings) -> None:
    migrate(settings, "0005")
    engine = make_engine(settings, pooled=False)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO end_users (id, email_ciphertext, email_index, consent_at, "
                "created_at) VALUES ('eu_old', :ct, :ix, :at, :at)"
            ).bindparams(sa.bindparam("at", type_=sa.DateTime())),
                {"ct": b"\x01" + b"\x00" * 40, "ix": "a" * 64, "at": datetime(2026, 1, 1)})
        assert migrate(settings, "0007")[1] == "0007"
        with engine.connect() as conn:
            rows = conn.execute(sa.text(
                "SELECT id, email_index, email_confirmed_at FROM end_users")).all()
            assert [tuple(r) for r in rows] == [("eu_old", "a" * 64, None)]
            links = conn.execute(sa.text("SELECT count(*) FROM email_confirmations")).scalar()
            assert links == 0
    finally:
        engine.dispose()


def test_migration_leaves_existing_emails_unconfirmed_on_sqlite(tmp_path: Path) -> None:
    _check(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)}))


def test_migration_leaves_existing_emails_unconfirmed_on_postgresql(
        tmp_path: Path, pg_databases: PgDatabases) -> None:
    _check(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                              "DATABASE_URL": pg_databases.create()}))
