"""Migration 0005 with data, on SQLite and PostgreSQL: 0004 rows -> machine bindings.

An 0.1 activation (algorithm-1 set in the plain ``fingerprint`` column, a
fingerprint id built from its machine id hash) and an 0.1 trial (with its
``trial_components``) are written at revision 0004; after 0005 the
activation keeps its seat and validates with its v1 set, migrates when an
SDK sends ``previous`` (not counted as a re-bind), and no table holds a v1
component hash in the clear any more.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import MetaData, inspect, select

from software_dna.server import services as service
from software_dna.server.config import Settings
from software_dna.server.crypto import Vault, create_master_key_file
from software_dna.server.db import head_revision, make_engine, make_session_factory, migrate
from software_dna.server.models import Activation, AuditEntry, MachineBinding
from software_dna.server.services.common import Context
from software_dna.server.services.errors import ServiceError
from software_dna.wire.identity import to_json
from tests.fixtures_server import PgDatabases
from tests.identity_cases import machine
from tests.server.helpers import nonce

NOW = datetime(2026, 11, 30, 12, 0, 0)


def _h(label: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(label.encode()).digest()).rstrip(b"=").decode()


V1 = {"machine_id": _h("v1-mid"), "os_arch": _h("v1-os"), "mac": _h("v1-mac"),
      "hostname": _h("v1-host"), "cpu": _h("v1-cpu")}
V2 = machine("migrated")


def _seed_0004(settings: Settings, vault: Vault) -> None:
    engine = make_engine(settings, pooled=False)
    meta = MetaData()
    meta.reflect(engine)
    t = meta.tables
    try:
        with engine.begin() as conn:
            conn.execute(t["products"].insert().values(
                id="old-app", name="Old", protection="opportunistic", refresh_interval=3600,
                offline_grace_period=86400, fingerprint_tolerance=3, features=["pro"],
                limited_features=[], password_required=False, created_at=NOW, updated_at=NOW))
            for lic_id, kind in (("lic_full", "full"), ("lic_trial", "trial")):
                conn.execute(t["licenses"].insert().values(
                    id=lic_id, product_id="old-app", key_hash=lic_id.ljust(64, "0"),
                    key_last4="ABCD", status="active", seats=1, features=["pro"],
                    password_erased=False, erased=False, kind=kind, created_at=NOW,
                    updated_at=NOW))
            for act_id, lic_id in (("act_old", "lic_full"), ("act_trial", "lic_trial")):
                conn.execute(t["activations"].insert().values(
                    id=act_id, license_id=lic_id,
                    secret_hash=vault.secret_hash(vault.activation_secret(act_id)),
                    fingerprint_id="fp1.machine_id." + V1["machine_id"], fingerprint=V1,
                    idempotency_key=act_id, erased=False, created_at=NOW, last_seen_at=NOW))
            conn.execute(t["trials"].insert().values(
                id="trl_old", product_id="old-app", license_id="lic_trial",
                fingerprint_id="fp1.machine_id." + V1["machine_id"], created_at=NOW))
            for name, value in V1.items():
                conn.execute(t["trial_components"].insert().values(
                    trial_id="trl_old", name=name, value=value))
    finally:
        engine.dispose()


def _scan(settings: Settings, needles: set[bytes]) -> list[str]:
    """Tables whose rows hold any of ``needles``."""
    engine = make_engine(settings, pooled=False)
    meta = MetaData()
    meta.reflect(engine)
    found: list[str] = []
    try:
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(select(table)):
                    blob = repr(tuple(row)).encode() + b"".join(
                        v if isinstance(v, bytes) else b"" for v in row)
                    if any(n in blob for n in needles):
                        found.append(table.name)
    finally:
        engine.dispose()
    return found


def _check(settings: Settings) -> None:
    create_master_key_file(settings.key_file)
    vault = Vault.from_settings(settings)
    migrate(settings, "0004")
    _seed_0004(settings, vault)
    migrate(settings)

    engine = make_engine(settings, pooled=False)
    ctx = Context(settings=settings, vault=vault)
    try:
        columns = {c["name"] for c in inspect(engine).get_columns("activations")}
        assert "fingerprint" not in columns and "binding_id" in columns
        assert "trial_components" not in inspect(engine).get_table_names()
        assert _scan(settings, {h.encode() for h in V1.values()}) == []
        sessions = make_session_factory(engine)
        with sessions() as session:
            product = service.get_product(session, "old-app")
            assert product.fingerprint_tolerance == 1  # clamped
            assert (product.rebind_limit, product.sharing_policy) == (3, "flag")
            old = session.get(Activation, "act_old")
            assert old is not None and old.fingerprint_id.startswith("fp_")
            assert old.secret_generation == 0 and old.shared_at is None
            binding = session.get(MachineBinding, old.binding_id)
            assert binding is not None and binding.algorithm == 1
            service.generate_key(session, ctx, "old-app")
        secret = vault.activation_secret("act_old")
        with sessions() as session:  # an 0.1 SDK still validates
            done = service.validate(session, ctx, "act_old", secret, nonce=nonce(),
                                    fingerprint=service.parse_fingerprint(1, V1))
            assert not done.rebound
            assert done.activation_secret is not None
            secret = done.activation_secret
        with sessions() as session:  # v2 without its v1 set: not provably this machine
            with pytest.raises(ServiceError) as refused:
                service.validate(session, ctx, "act_old", secret, nonce=nonce(),
                                 fingerprint=service.parse_fingerprint(2, to_json(V2)))
            assert refused.value.code.value == "wrong_machine"
        with sessions() as session:  # this SDK migrates it
            done = service.validate(
                session, ctx, "act_old", secret, nonce=nonce(),
                fingerprint=service.parse_fingerprint(2, to_json(V2), previous=V1))
            assert done.rebound
            assert done.activation_secret is not None
            secret = done.activation_secret
            actions = list(session.scalars(select(AuditEntry.action).where(
                AuditEntry.activation_id == "act_old")))
            assert "activation.migrate" in actions and "activation.rebind" not in actions
            rows = list(session.scalars(select(MachineBinding).where(
                MachineBinding.activation_id == "act_old")))
            assert [r.algorithm for r in rows] == [2]  # v1 set (host name hash) dropped
        with sessions() as session:  # and from now on only algorithm 2
            with pytest.raises(ServiceError) as refused:
                service.validate(session, ctx, "act_old", secret, nonce=nonce(),
                                 fingerprint=service.parse_fingerprint(1, V1))
            assert refused.value.code.value == "invalid_fingerprint"
            assert service.validate(session, ctx, "act_old", secret, nonce=nonce(),
                                    fingerprint=service.parse_fingerprint(
                                        2, to_json(V2))).rebound is False
    finally:
        engine.dispose()


def test_0004_to_0005_with_data_on_sqlite(tmp_path: Path) -> None:
    _check(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)}))


@pytest.mark.postgres
def test_0004_to_0005_with_data_on_postgresql(tmp_path: Path,
                                              pg_databases: PgDatabases) -> None:
    _check(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                              "DATABASE_URL": pg_databases.create()}))


def test_0005_without_master_key_on_an_empty_database(tmp_path: Path) -> None:
    """A fresh database migrates without a master key (nothing to seal)."""
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    assert migrate(settings, "0005")[1] == "0005"
    assert migrate(settings)[1] == head_revision(settings)  # and on to the head



