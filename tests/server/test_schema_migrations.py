"""The ORM models and the Alembic migrations describe the same schema.

Like ``alembic check``: a database migrated to the head revision is compared
with ``Base.metadata`` (tables, columns, types, indexes, constraints); any
difference means a model changed without a migration, or the other way round.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from software_dna.server.config import Settings
from software_dna.server.db import make_engine, migrate
from software_dna.server.models import Base
from tests.fixtures_server import PgDatabases


def _differences(settings: Settings) -> list[Any]:
    migrate(settings)
    engine = make_engine(settings, pooled=False)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def test_sqlite_schema_matches_models(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    assert _differences(settings) == []


def test_postgresql_schema_matches_models(tmp_path: Path, pg_databases: PgDatabases) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "DATABASE_URL": pg_databases.create()})
    assert _differences(settings) == []

