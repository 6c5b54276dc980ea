"""Migration 0006 with data, on SQLite and PostgreSQL: air-gapped activation becomes an opt-in.

Products written at revision 0005 keep air-gapped activation when their
protection is not ``mandatory`` (their air-gapped machines keep working) and
lose it when it is (the vendor wanted every machine to reach the server);
licenses follow their product (no override); air-gapped tokens get the
default lifetime of 365 days, never perpetual unless the vendor says so.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select

from software_dna.server.config import Settings
from software_dna.server.db import head_revision, make_engine, migrate
from tests.fixtures_server import PgDatabases

NOW = datetime(2026, 12, 1, 12, 0, 0)
PROTECTIONS = {"app-offline": "offline", "app-opportunistic": "opportunistic",
               "app-mandatory": "mandatory"}


def _seed_0005(settings: Settings) -> None:
    engine = make_engine(settings, pooled=False)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    try:
        with engine.begin() as conn:
            for product, protection in PROTECTIONS.items():
                conn.execute(t["products"].insert().values(
                    id=product, name=product, protection=protection, refresh_interval=3600,
                    offline_grace_period=86400, fingerprint_tolerance=1, features=[],
                    limited_features=[], password_required=False, created_at=NOW,
                    updated_at=NOW))
                conn.execute(t["licenses"].insert().values(
                    id="lic_" + protection, product_id=product,
                    key_hash=protection.ljust(64, "0"), key_last4="ABCD", status="active",
                    seats=1, features=[], password_erased=False, erased=False, kind="full",
                    created_at=NOW, updated_at=NOW))
    finally:
        engine.dispose()


def _check(settings: Settings) -> None:
    assert migrate(settings, "0005")[1] == "0005"
    _seed_0005(settings)
    assert migrate(settings)[1] == head_revision(settings)
    engine = make_engine(settings, pooled=False)
    meta = MetaData()
    meta.reflect(engine)
    products, licenses = meta.tables["products"], meta.tables["licenses"]
    try:
        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(select(products))}
            overrides = {r.id: r.air_gapped for r in conn.execute(select(licenses))}
    finally:
        engine.dispose()
    assert {p: bool(rows[p].air_gapped) for p in PROTECTIONS} == {
        "app-offline": True, "app-opportunistic": True, "app-mandatory": False}
    assert {rows[p].air_gapped_token_days for p in PROTECTIONS} == {365}
    assert not any(rows[p].air_gapped_perpetual for p in PROTECTIONS)
    assert set(overrides.values()) == {None}  # every license follows its product


def test_0005_to_0006_turns_air_gapped_on_for_products_not_mandatory_on_sqlite(
        tmp_path: Path) -> None:
    _check(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)}))


@pytest.mark.postgres
def test_0005_to_0006_turns_air_gapped_on_for_products_not_mandatory_on_postgresql(
        tmp_path: Path, pg_databases: PgDatabases) -> None:
    _check(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                              "DATABASE_URL": pg_databases.create()}))


def test_new_products_do_not_allow_air_gapped_activation(tmp_path: Path) -> None:
    """The column default on a fresh database: a product made without the setting is off."""
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    migrate(settings)
    engine = make_engine(settings, pooled=False)
    meta = MetaData()
    meta.reflect(engine)
    products = meta.tables["products"]
    try:
        with engine.begin() as conn:
            conn.execute(products.insert().values(
                id="fresh", name="fresh", protection="opportunistic", refresh_interval=3600,
                offline_grace_period=86400, fingerprint_tolerance=1, features=[],
                limited_features=[], password_required=False, created_at=NOW, updated_at=NOW))
            row = conn.execute(select(products).where(products.c.id == "fresh")).one()
    finally:
        engine.dispose()
    assert not row.air_gapped and not row.air_gapped_perpetual
    assert row.air_gapped_token_days == 365
