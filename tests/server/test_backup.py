"""`software-dna server backup` / `server restore`, end to end through the CLI on SQLite and
PostgreSQL (pg_dump / pg_restore 15 against the test server 15).

Invariants checked here:
- a restore never brings back what was erased or revoked after the backup was taken:
  every entry of the erasure ledger (data folder file, or the replaced database's table)
  that the backup does not hold is done again, and audited as ``ledger.reapply`` (ids only);
- the ledger and the audit of the re-application hold ids only, never personal data;
- nothing the backup had pending in the outbox is sent again after a restore;
- the backup never holds the master key, and a restore refuses a backup taken with
  another key;
- a restore accepts only what ``server backup`` wrote with the configured master key: a
  backup without its MAC, with its manifest or its database altered afterwards, or signed
  with another key, is refused before anything changes;
- a file that is not a backup, a damaged one, a newer schema, a missing file or a database
  that is not empty (without --yes) is one line on stderr, exit 1, and nothing changed.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import secrets
import sqlite3
import stat
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, select

from software_dna.server import licensekeys
from software_dna.server import services as service
from software_dna.server.config import Settings
from software_dna.server.crypto import Vault, locate_master_key
from software_dna.server.db import LEDGER_FILE, make_engine, make_session_factory, shown_url
from software_dna.server.models import (
    Activation,
    AdminApiKey,
    AuditEntry,
    EndUser,
    LedgerEntry,
    License,
    MailOptOut,
    OutboxItem,
    PortalSession,
    StaffMember,
    StaffSession,
)
from software_dna.server.services import emails, ledger, portal_account
from software_dna.server.services import staff as staff_service
from software_dna.server.services.backup import SKIPPED, read_manifest
from software_dna.server.services.portal import Holder
from tests.cli_runner import cli_json as as_json
from tests.cli_runner import cli_ok as ok
from tests.cli_runner import init_server_home, run_cli

EMAIL = "backup.person@example.com"
NAME = "Bea Backupname"


@pytest.fixture
def home(tmp_path: Path, fresh_database_url: str, own_key_folder: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A server set up by ``server init`` on a fresh database; the environment points at it."""
    yield init_server_home(tmp_path / "home", fresh_database_url, monkeypatch)



def fails(*argv: str) -> str:
    """Run a command that must fail: one line on stderr, exit 1; returns that line."""
    code, out, err = run_cli(*argv)
    assert code == 1, (argv, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("software-dna: error: "), err
    return lines[0]



def sessions() -> Any:
    settings = Settings.from_env()
    return settings, make_session_factory(make_engine(settings, pooled=False))


def activate_with_personal_data(product: str, key: str, machine: str) -> str:
    """An activation giving an address and a name (through the service layer, as the
    public API does); returns the end user's id."""
    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    components: dict[str, Any] = {n: secrets.token_urlsafe(32)[:43]
                                  for n in ("machine_id", "os_arch", "cpu")}
    components["mac"] = [secrets.token_urlsafe(32)[:43]]
    with factory() as session:
        done = service.activate(session, ctx, service.ActivationRequest(
            product=product, license_key=key,
            fingerprint=service.parse_fingerprint(2, components),
            nonce=secrets.token_urlsafe(18), idempotency_key=secrets.token_urlsafe(18),
            email=EMAIL, registration={"name": NAME}, consent=True))
        user = session.get(Activation, done.activation_id)
        assert user is not None and user.end_user_id is not None
        return str(user.end_user_id)


def issue(product: str) -> tuple[str, str]:
    data = as_json("licenses", "issue", product)
    return data["id"], data["license_key"]


def setup_server() -> dict[str, str]:
    """A product with a webhook endpoint (so changes queue outbox items), a license used by
    a person who gave their address, a license to revoke and one whose activation is
    removed; returns their ids."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    ok("webhooks", "add", "https://hooks.example.com/in", "--events", "all")
    used, used_key = issue("app")
    person = activate_with_personal_data("app", used_key, "m1")
    revoked, _ = issue("app")
    seat, seat_key = issue("app")
    activate_with_personal_data("app", seat_key, "m2")
    rows = as_json("activations", "list", seat)
    rows = rows["activations"] if isinstance(rows, dict) else rows
    return {"used": used, "person": person, "revoked": revoked, "seat": seat,
            "activation": rows[0]["id"]}


def admin_keys_usable() -> list[str]:
    _, factory = sessions()
    with factory() as session:
        return list(session.scalars(select(AdminApiKey.id).where(
            AdminApiKey.revoked_at.is_(None))))


def audit_entries(action: str) -> list[AuditEntry]:
    _, factory = sessions()
    with factory() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                    .order_by(AuditEntry.id)))


def outbox() -> list[OutboxItem]:
    _, factory = sessions()
    with factory() as session:
        return list(session.scalars(select(OutboxItem).order_by(OutboxItem.created_at)))


# --------------------------------------------------------------------------- the promise


def test_restore_reapplies_erasures_and_revocations_and_skips_the_outbox(
        home: Path, tmp_path: Path) -> None:
    ids = setup_server()
    pending_before = {item.id for item in outbox() if item.status == "pending"}
    assert pending_before  # license.issued events, queued and not delivered
    keys_before = admin_keys_usable()
    assert len(keys_before) == 1

    file = tmp_path / "one.backup"
    out = ok("server", "backup", "--output", str(file))
    assert "not in the backup" in out and str(file) in out
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    manifest = read_manifest(file)
    assert manifest.revision == "0011" and manifest.ledger_entries == 0
    # Never the master key: neither its bytes nor its text form.
    settings = Settings.from_env()
    where = locate_master_key(settings)
    assert where.path is not None
    raw_key = where.path.read_bytes().strip()
    assert raw_key not in file.read_bytes()

    # After the backup: the person is erased, a license revoked, an activation removed,
    # the admin key replaced.
    ok("end-users", "erase", ids["person"], "--yes")
    ok("licenses", "revoke", ids["revoked"])
    ok("activations", "remove", ids["activation"])
    ok("server", "init", "--new-admin-key")
    assert as_json("end-users", "export", ids["person"])["email"] is None

    # The ledger file in the data folder: ids only.
    ledger_text = (home / LEDGER_FILE).read_text()
    assert stat.S_IMODE((home / LEDGER_FILE).stat().st_mode) == 0o600
    kinds = [json.loads(line)["kind"] for line in ledger_text.splitlines()]
    assert kinds == ["erasure", "license.revoke", "activation.remove", "admin_key.revoke"]
    for secret in (EMAIL, NAME, "backup.person"):
        assert secret not in ledger_text

    # A database that is not empty is not replaced without --yes; nothing changed.
    assert "--yes" in fails("server", "restore", str(file))
    assert as_json("end-users", "export", ids["person"])["email"] is None

    out = ok("server", "restore", str(file), "--yes")
    assert "Re-applied 4 " in out and "4 of them changing" in out

    # The erased person's data is gone again, the revocations hold again.
    exported = as_json("end-users", "export", ids["person"])
    assert exported["email"] is None and exported["registration"] is None
    assert as_json("licenses", "show", ids["used"])["erased"] is True
    assert as_json("licenses", "show", ids["revoked"])["status"] == "revoked"
    rows = as_json("activations", "list", ids["seat"])
    rows = rows["activations"] if isinstance(rows, dict) else rows
    assert [(r["id"], r["deactivated_by"]) for r in rows if r["deactivated_at"]] == [
        (ids["activation"], "vendor")]
    assert set(admin_keys_usable()).isdisjoint(keys_before)

    # The re-application is audited with ids only.
    reapplied = audit_entries("ledger.reapply")
    assert [e.detail["kind"] for e in reapplied if e.detail] == kinds
    assert all(e.actor == "restore" and e.detail and e.detail["applied"] for e in reapplied)
    assert reapplied[0].end_user_id == ids["person"]
    assert reapplied[1].license_id == ids["revoked"]
    assert reapplied[2].activation_id == ids["activation"]
    restored = audit_entries("backup.restore")
    assert len(restored) == 1
    text = json.dumps([e.detail for e in [*reapplied, *restored]])
    assert EMAIL not in text and NAME not in text

    # Nothing pending in the backup is sent again: skipped, with the reason.
    items = {item.id: item for item in outbox()}
    for item_id in pending_before:
        assert items[item_id].status == "cancelled"
        assert items[item_id].last_error == SKIPPED
    assert not [item for item in items.values() if item.status == "pending"]

    # The restored database holds the entries now: a second restore of the same backup
    # re-applies them again (the backup lacks them), idempotently.
    _, factory = sessions()
    with factory() as session:
        assert len(session.scalars(select(LedgerEntry)).all()) == 4
    out = ok("server", "restore", str(file), "--yes")
    assert "Re-applied 4 " in out
    assert as_json("end-users", "export", ids["person"])["email"] is None
    assert as_json("licenses", "show", ids["revoked"])["status"] == "revoked"
    # The file was not duplicated.
    assert (home / LEDGER_FILE).read_text() == ledger_text


def test_the_ledger_file_alone_reapplies_after_the_database_is_lost(
        home: Path, tmp_path: Path, fresh_database_url: str, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The disaster case: the database is gone (SQLite: the file; PostgreSQL: a new empty
    database), only the data folder's ledger file remembers what happened since."""
    ids = setup_server()
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))
    ok("end-users", "erase", ids["person"], "--yes")
    ok("licenses", "revoke", ids["revoked"])

    if fresh_database_url.startswith("sqlite:///"):
        database = Path(fresh_database_url.removeprefix("sqlite:///"))
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)
    else:
        monkeypatch.setenv("DATABASE_URL",
                           request.getfixturevalue("pg_databases").create())

    # An empty (or missing) database needs no --yes.
    out = ok("server", "restore", str(file))
    assert "Re-applied 2 " in out
    assert as_json("end-users", "export", ids["person"])["email"] is None
    assert as_json("licenses", "show", ids["revoked"])["status"] == "revoked"
    _, factory = sessions()
    with factory() as session:
        person = session.get(EndUser, ids["person"])
        assert person is not None and person.email_ciphertext is None
        assert person.registration_ciphertext is None


def test_a_backup_older_than_the_code_is_migrated_and_reapplied(
        home: Path, tmp_path: Path, fresh_database_url: str, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A backup taken at the previous revision (made here from a current one: revision
    0010, no ledger table) is restored over a current database, migrated, then the ledger
    is re-applied. On PostgreSQL the current database's newer table is not in the dump:
    it goes, and the migration makes it anew."""
    ids = setup_server()
    file = tmp_path / "new.backup"
    ok("server", "backup", "-o", str(file))
    ok("licenses", "revoke", ids["revoked"])

    old = tmp_path / "old.backup"
    with tarfile.open(file) as tar:
        manifest = json.loads(_member(tar, "manifest.json"))
        member = next(name for name in tar.getnames() if name.startswith("database."))
        database = _member(tar, member)
    manifest["revision"] = "0010"
    older = "DROP TABLE erasure_ledger; UPDATE alembic_version SET version_num = '0010'"
    if member == "database.sqlite3":
        copy = tmp_path / "copy.db"
        copy.write_bytes(database)
        conn = sqlite3.connect(copy)
        conn.executescript(older)
        conn.close()
        _write(old, manifest, copy.read_bytes())
    else:
        # The dump restored into a scratch database, made older there, dumped again.
        scratch = make_url(request.getfixturevalue("pg_databases").create())
        uri = scratch.set(drivername="postgresql").render_as_string(hide_password=False)
        dump = tmp_path / "dump"
        dump.write_bytes(database)
        subprocess.run(["pg_restore", "--no-owner", f"--dbname={uri}", str(dump)], check=True)
        subprocess.run(["psql", "-q", f"--dbname={uri}", "-c", older], check=True)
        subprocess.run(["pg_dump", "-Fc", f"--file={dump}", f"--dbname={uri}"], check=True)
        _write(old, manifest, dump.read_bytes(), member)

    out = ok("server", "restore", str(old), "--yes")
    assert "schema upgraded" in out and "Re-applied 1 " in out
    assert as_json("licenses", "show", ids["revoked"])["status"] == "revoked"
    assert "already at revision" in ok("server", "migrate")


# --------------------------------------------------------------------------- bad input


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    stream = tar.extractfile(name)
    assert stream is not None
    return stream.read()


def _write(path: Path, manifest: dict[str, Any], database: bytes,
           member: str = "database.sqlite3", *, signed: bool = True) -> None:
    """A backup file of ``manifest`` and ``database``; ``signed``: as the holder of the
    configured master key would sign it (its SHA-256 in the manifest, the manifest's MAC)."""
    manifest = {**manifest, "database": {"sha256": hashlib.sha256(database).hexdigest()}}
    raw = json.dumps(manifest).encode()
    members = [("manifest.json", raw), (member, database)]
    if signed:
        mac = Vault.from_settings(Settings.from_env()).backup_mac(raw)
        members.insert(1, ("manifest.mac", mac.encode()))
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _state() -> tuple[int, str]:
    """What a refused restore must leave as it was: the audit log's length and a license's
    status."""
    _, factory = sessions()
    with factory() as session:
        count = len(session.scalars(select(AuditEntry.id)).all())
        status = session.scalars(select(License.status)).first() or ""
        return count, status


def test_bad_input_is_one_line_and_changes_nothing(home: Path, tmp_path: Path) -> None:
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    issue("app")
    good = tmp_path / "good.backup"
    ok("server", "backup", "-o", str(good))
    backend = read_manifest(good).backend
    member = "database.sqlite3" if backend == "sqlite" else "database.pgdump"
    with tarfile.open(good) as tar:
        manifest = json.loads(_member(tar, "manifest.json"))
        database = _member(tar, member)
    before = _state()

    assert "No backup at" in fails("server", "restore", str(tmp_path / "missing"), "--yes")

    text = tmp_path / "notes.txt"
    text.write_text("not a backup\n")
    assert "is not a software-dna backup" in fails("server", "restore", str(text), "--yes")

    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        payload = b'{"format": "something-else"}'
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    assert "is not a software-dna backup" in fails("server", "restore", str(foreign), "--yes")

    newer = tmp_path / "newer.backup"
    _write(newer, {**manifest, "revision": "9999"}, database, member)
    line = fails("server", "restore", str(newer), "--yes")
    assert "newer schema" in line and "upgrade software_dna" in line

    other_key = tmp_path / "other-key.backup"
    _write(other_key, {**manifest, "master_key": {**manifest["master_key"],
                                                  "id": "0123456789abcdef"}},
           database, member)
    assert "another master key" in fails("server", "restore", str(other_key), "--yes")

    damaged = tmp_path / "damaged.backup"
    _write(damaged, manifest, b"\0" * 4096, member)
    assert "is damaged" in fails("server", "restore", str(damaged), "--yes")

    unsigned = tmp_path / "unsigned.backup"
    _write(unsigned, manifest, database, member, signed=False)
    assert "altered after it was written" in fails("server", "restore", str(unsigned), "--yes")

    truncated = tmp_path / "truncated.backup"
    truncated.write_bytes(good.read_bytes()[:700])
    assert re.search(r"not a (complete )?software-dna backup|is damaged",
                     fails("server", "restore", str(truncated), "--yes"))

    assert _state() == before


def test_pg_dump_missing_or_too_old_is_one_line(home: Path, tmp_path: Path,
                                                fresh_database_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    if fresh_database_url.startswith("sqlite:///"):
        pytest.skip("pg_dump is for PostgreSQL")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    line = fails("server", "backup", "-o", str(tmp_path / "x.backup"))
    assert "pg_dump is not installed" in line
    # Only pg_dump 15 is installed here: an older one is a script printing what pg_dump
    # prints when the server is newer than itself.
    fake = empty / "pg_dump"
    fake.write_text("#!/bin/sh\necho 'pg_dump: error: aborting because of server version "
                    "mismatch' >&2\necho 'pg_dump: detail: server version: 15.20; pg_dump "
                    "version: 14.11' >&2\nexit 1\n")
    fake.chmod(0o755)
    line = fails("server", "backup", "-o", str(tmp_path / "x.backup"))
    assert "pg_dump 14.11" in line and "15.20" in line and "major version" in line
    assert not (tmp_path / "x.backup").exists()


def test_backup_refuses_a_database_behind_the_code(home: Path, tmp_path: Path,
                                                   fresh_database_url: str) -> None:
    if not fresh_database_url.startswith("sqlite:///"):
        pytest.skip("the schema check is the same on both")
    conn = sqlite3.connect(fresh_database_url.removeprefix("sqlite:///"))
    conn.execute("UPDATE alembic_version SET version_num = '0010'")
    conn.commit()
    conn.close()
    assert "server migrate" in fails("server", "backup", "-o", str(tmp_path / "x.backup"))
    assert not (tmp_path / "x.backup").exists()


# --------------------------------------------------------------------------- the ledger


def test_a_change_rolled_back_leaves_no_ledger_entry(home: Path) -> None:
    """The ledger file holds only what committed: an entry is appended after the commit,
    never for a change that was rolled back (re-applying it would revoke or erase what
    nobody did)."""
    ok("products", "create", "app")
    lic, _ = issue("app")
    _, factory = sessions()
    with factory() as session:
        ledger.record(session, ledger.LICENSE_REVOKE, lic)
        session.flush()
        session.rollback()
    assert not (home / LEDGER_FILE).exists()
    with factory() as session:
        assert session.scalars(select(LedgerEntry)).all() == []
        service.revoke_license(session, lic, actor="cli")
    lines = (home / LEDGER_FILE).read_text().splitlines()
    assert [(json.loads(x)["kind"], json.loads(x)["object"]) for x in lines] == [
        ("license.revoke", lic)]


def test_the_end_users_own_erasure_is_in_the_ledger_and_reapplied(
        home: Path, tmp_path: Path) -> None:
    """The SDK's erasure request (the end user's own) writes the ledger like the vendor's."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    lic, key = issue("app")
    person = activate_with_personal_data("app", key, "m1")
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))
    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    with factory() as session:
        activation = session.scalars(select(Activation).where(
            Activation.license_id == lic)).one()
        secret = ctx.vault.activation_secret(activation.id, activation.secret_generation)
        service.request_erasure(session, ctx, activation.id, secret, secrets.token_urlsafe(18))
    entry = json.loads((home / LEDGER_FILE).read_text())
    assert entry["kind"] == "erasure" and entry["object"] == person
    assert entry["detail"] == {"end_user": person, "licenses": [lic],
                               "activation": activation.id}
    ok("server", "restore", str(file), "--yes")
    assert as_json("end-users", "export", person)["email"] is None


@pytest.mark.parametrize("command", ["backup", "restore"])
def test_help(command: str) -> None:
    code, out, _ = run_cli("server", command, "--help")
    assert code == 0 and out.startswith(f"Usage: software-dna server {command}")
    code, out, _ = run_cli("server", "--help")
    assert code == 0 and re.search(rf"^\s+{command}\s", out, re.M)


def test_an_address_removed_in_the_portal_stays_removed_after_a_restore(
        home: Path, tmp_path: Path) -> None:
    """Removing one's address in the license portal is an erasure too: it is in the ledger
    (ids only) and a restore deletes the address the backup still holds."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    lic, key = issue("app")
    person = activate_with_personal_data("app", key, "m1")
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))

    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    with factory() as session:
        row = session.get(EndUser, person)
        licensed = session.get(License, lic)
        assert row is not None and licensed is not None
        # A session opened by a link mailed to the person (the portal's personal reach).
        holder = Holder(session=PortalSession(method="link"), license=licensed, end_user=row)
        portal_account.remove_email(session, ctx, holder)
    entry = json.loads((home / LEDGER_FILE).read_text())
    assert (entry["kind"], entry["object"], entry["detail"]) == ("address.remove", person, {})
    assert as_json("end-users", "export", person)["email"] is None

    ok("server", "restore", str(file), "--yes")
    exported = as_json("end-users", "export", person)
    assert exported["email"] is None
    # Only the address: the rest of what the person gave stays (they erased nothing else).
    assert exported["registration"] == {"name": NAME}
    reapplied = audit_entries("ledger.reapply")
    assert [(e.end_user_id, e.detail and e.detail["kind"]) for e in reapplied] == [
        (person, "address.remove")]


# --------------------------------------------------------------------------- security revocations


def _archive(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_a_backup_altered_or_signed_with_another_key_is_refused(
        home: Path, tmp_path: Path) -> None:
    """Invariant: only a file ``server backup`` wrote with the configured master key is
    restored. Each forgery keeps everything else genuine: the manifest changed under its
    MAC, the database changed under the manifest, a MAC made with another key."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    issue("app")
    good = tmp_path / "good.backup"
    ok("server", "backup", "-o", str(good))
    with tarfile.open(good) as tar:
        members = {name: _member(tar, name) for name in tar.getnames()}
    assert set(members) >= {"manifest.json", "manifest.mac"}
    member = next(name for name in members if name.startswith("database."))
    before = _state()

    manifest = json.loads(members["manifest.json"])
    manifest["ledger"]["entries"] += 1
    changed_manifest = tmp_path / "manifest.backup"
    _archive(changed_manifest, [("manifest.json", json.dumps(manifest).encode()),
                                ("manifest.mac", members["manifest.mac"]),
                                (member, members[member])])
    database = bytearray(members[member])
    database[-1] ^= 1
    changed_database = tmp_path / "database.backup"
    _archive(changed_database, [("manifest.json", members["manifest.json"]),
                                ("manifest.mac", members["manifest.mac"]),
                                (member, bytes(database))])
    other_mac = Vault(secrets.token_bytes(32)).backup_mac(members["manifest.json"])
    other_key = tmp_path / "other-key.backup"
    _archive(other_key, [("manifest.json", members["manifest.json"]),
                         ("manifest.mac", other_mac.encode()), (member, members[member])])
    for forged in (changed_manifest, changed_database, other_key):
        assert "altered after it was written" in fails("server", "restore", str(forged),
                                                       "--yes"), forged
    assert _state() == before
    assert "Restored the backup" in ok("server", "restore", str(good), "--yes")


def test_a_restore_keeps_the_newest_key_of_a_license_rekeyed_twice(
        home: Path, tmp_path: Path) -> None:
    """Invariant: after a restore only a license's newest key is its key (each rekey is in
    the ledger with the new key's keyed hash, never the key, and re-applied oldest first)."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    lic, first = issue("app")
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))
    second = as_json("licenses", "rekey", lic)["license_key"]
    third = as_json("licenses", "rekey", lic)["license_key"]
    text = (home / LEDGER_FILE).read_text()
    assert second not in text and third not in text and third[-4:] in text
    ok("server", "restore", str(file), "--yes")
    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    with factory() as session:
        row = session.get(License, lic)
        assert row is not None
        assert row.key_hash == ctx.vault.license_key_hash(licensekeys.normalize(third))
        assert row.key_last4 == third[-4:]
    assert [e.detail and e.detail["kind"] for e in audit_entries("ledger.reapply")] == [
        "license.rekey", "license.rekey"]
    assert first != third


def test_a_restore_never_undoes_staff_removals_resets_or_lowered_roles(
        home: Path, tmp_path: Path) -> None:
    """Invariants: after a restore a removed staff member stays disabled, a reset password
    of the backup no longer signs in (the account waits for a new reset), a lowered role
    stays lowered while a raised one is not re-applied (a restore never grants), and
    every panel session of the backup has ended."""
    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    boss, admin, helper, forgetful = (f"{n}@vendor.example"
                                      for n in ("boss", "admin", "helper", "forgetful"))
    with factory() as session:
        ids = {}
        for email, role in ((boss, "owner"), ("deputy@vendor.example", "owner"),
                            (admin, "admin"), (helper, "support"),
                            (forgetful, "developer")):
            ids[email] = staff_service.create_staff(session, email=email, role=role,
                                                    password="pw-" + email * 2).id
        assert staff_service.sign_in(session, ctx, boss, "pw-" + boss * 2) is not None
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))
    ok("staff", "role", admin, "read_only")
    ok("staff", "role", helper, "admin")
    ok("staff", "remove", boss, "--yes")
    with factory() as session:
        staff_service.reset_password(session, ids[forgetful], clear_totp=True)
    ok("server", "restore", str(file), "--yes")
    with factory() as session:
        rows = {row.email: row for row in session.scalars(select(StaffMember))}
        assert rows[boss].disabled_at is not None
        assert rows[admin].role == "read_only"
        assert rows[helper].role == "support"
        assert rows[forgetful].must_change_password
        assert staff_service.sign_in(session, ctx, forgetful, "pw-" + forgetful * 2) is None
        assert session.scalars(select(StaffSession)).all() == []
    kinds = sorted(e.detail["kind"] for e in audit_entries("ledger.reapply") if e.detail)
    assert kinds == ["staff.remove", "staff.reset", "staff.role", "staff.role"]
    for line in (home / LEDGER_FILE).read_text().splitlines():
        assert "@" not in line and "pw-" not in line, line


def test_an_opt_out_is_reapplied_but_an_erasure_after_it_still_erases_its_hash(
        home: Path, tmp_path: Path) -> None:
    """Invariants: the ledger entry of a one-click unsubscribe holds the address's keyed
    look-up hash and the license id, never the address; when the person is erased after
    it, no table keeps that hash (the entry's object is forgotten), and a restore of a
    backup taken before both re-applies the opt-out, then the erasure, which leaves no
    trace of the hash either."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    lic, key = issue("app")
    person = activate_with_personal_data("app", key, "m1")
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))
    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    index = ctx.vault.email_index(EMAIL)
    with factory() as session:
        assert emails.unsubscribe(session, ctx, emails.unsubscribe_token(ctx, lic, index))
    entry = json.loads((home / LEDGER_FILE).read_text())
    assert (entry["kind"], entry["object"], entry["detail"]) == (
        "mail.opt_out", index, {"license": lic})
    assert EMAIL not in (home / LEDGER_FILE).read_text()

    def traces() -> tuple[list[Any], list[Any]]:
        with factory() as session:
            return (session.scalars(select(MailOptOut).where(
                        MailOptOut.email_index == index)).all(),
                    session.scalars(select(LedgerEntry).where(
                        LedgerEntry.object_id == index)).all())

    ok("end-users", "erase", person, "--yes")
    assert traces() == ([], [])
    assert index not in (home / LEDGER_FILE).read_text()  # the file forgets it too
    ok("server", "restore", str(file), "--yes")
    assert traces() == ([], [])
    assert index not in (home / LEDGER_FILE).read_text()
    kinds = [e.detail and e.detail["kind"] for e in audit_entries("ledger.reapply")]
    assert kinds == ["mail.opt_out", "erasure"]


def test_a_reminder_mailed_after_the_backup_is_not_mailed_again_after_a_restore(
        home: Path, tmp_path: Path) -> None:
    """Invariant: a restore does not make the scheduler mail an expiry reminder again. The
    reminder's outbox item (its dedup key) was made after the backup was taken, so the
    restored database lacks it: the restore queues the reminders due now and skips them."""
    ok("products", "create", "app", "--reminder-days", "7")
    ok("keys", "generate", "app")
    ends = (datetime.now(timezone.utc) + timedelta(days=3)).strftime("%Y-%m-%d")
    lic = as_json("licenses", "issue", "app", "--expires", ends,
                  "--email", "reminded@example.com")["id"]
    file = tmp_path / "one.backup"
    ok("server", "backup", "-o", str(file))
    settings, factory = sessions()
    ctx = service.Context.from_settings(settings)
    with factory() as session:
        assert emails.queue_reminders(session, ctx) == 1
        # As the outbox worker does once the mail is handed over.
        row = session.scalars(select(OutboxItem).where(
            OutboxItem.topic == "expiry_reminder")).one()
        row.status = "sent"
        session.commit()
    ok("server", "restore", str(file), "--yes")
    with factory() as session:
        assert emails.queue_reminders(session, ctx) == 0
        items = session.scalars(select(OutboxItem).where(
            OutboxItem.topic == "expiry_reminder", OutboxItem.license_id == lic)).all()
    assert [(item.status, item.last_error) for item in items] == [("cancelled", SKIPPED)]


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://app:{secret}@db.example/sdna",
    "postgresql+psycopg://app@db.example/sdna?password={secret}&sslmode=require",
    "postgresql+psycopg://app:{secret}@db.example/sdna?password={secret}",
])
def test_a_shown_database_url_never_holds_a_password(url: str) -> None:
    """Invariant: a database URL as the doctor and the errors show it has every password
    masked, in the user part and in libpq's ``?password=`` parameter alike."""
    secret = "Pw" + secrets.token_hex(6)
    shown = shown_url(url.format(secret=secret))
    assert secret not in shown and "db.example/sdna" in shown and "***" in shown
    assert shown_url("not a url") == "(not a database URL)"
