"""Alembic environment: used by :func:`software_dna.server.db.migrate`.

The caller passes an open connection in ``config.attributes["connection"]``;
otherwise an engine is made from ``sqlalchemy.url`` (e.g. when a developer
runs ``alembic`` by hand with ``-x`` nothing is needed beyond the URL).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from software_dna.server.config import Settings
from software_dna.server.models import Base

config = context.config
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on a fresh engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from software_dna.server.db import make_engine

    settings = config.attributes.get("settings")
    if settings is None:
        url = config.get_main_option("sqlalchemy.url") or ""
        settings = Settings.from_env({"DATABASE_URL": url, "SOFTWARE_DNA_SERVER_HOME": "."})
    engine = make_engine(settings, pooled=False)
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported")
run_migrations_online()
