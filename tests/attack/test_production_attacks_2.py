"""Attack review of the backup/restore fixes and the erasure ledger file.

Each test is one attack, through the real CLI (``server backup`` / ``server restore``) on
SQLite and PostgreSQL and the real services. A failing test is a defect; a passing one is
an attack that is defeated and kept as a regression test.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server import services as service
from software_dna.server.config import Settings
from software_dna.server.db import LEDGER_FILE, make_engine, make_session_factory
from software_dna.server.models import AuditEntry, License
from software_dna.server.services import emails, ledger
from software_dna.server.services.common import utcnow
from software_dna.wire.times import format_rfc3339
from tests.cli_runner import cli_json as as_json
from tests.cli_runner import cli_ok as ok
from tests.cli_runner import init_server_home, run_cli


@pytest.fixture
def home(tmp_path: Path, fresh_database_url: str, own_key_folder: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A server set up by ``server init`` on a fresh database (SQLite and PostgreSQL)."""
    yield init_server_home(tmp_path / "home", fresh_database_url, monkeypatch)


def ledger_lines(home: Path) -> list[dict[str, Any]]:
    path = home / LEDGER_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_line(home: Path, data: dict[str, Any]) -> None:
    with (home / LEDGER_FILE).open("a") as stream:
        stream.write(json.dumps(data) + "\n")


def license_key_hash(license_id: str) -> str:
    settings = Settings.from_env()
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            lic = session.get(License, license_id)
            assert lic is not None
            return lic.key_hash
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- the ledger file


def test_a_malformed_ledger_line_does_not_break_a_restore_half_way(
        home: Path, tmp_path: Path) -> None:
    """Invariant: a ledger line that is not a valid entry is skipped (``read_file``: "a line
    that is not an entry is skipped"), never fails a restore after the database has been
    replaced. An ``erasure`` line whose ``licenses`` is a number passes ``Entry.of_json``
    (only ``detail`` being a dict is checked) and raises TypeError in the re-application:
    the restore stops half done (database replaced, sessions not ended, outbox not skipped)
    and every later restore fails the same way until someone edits the file by hand."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    as_json("licenses", "issue", "app")
    backup = tmp_path / "b.backup"
    ok("server", "backup", "--output", str(backup))
    append_line(home, {"id": "led_" + secrets.token_hex(8), "kind": "erasure",
                       "object": "eu_x", "at": format_rfc3339(utcnow()),
                       "detail": {"end_user": None, "licenses": 5, "activation": None}})
    code, _out, err = run_cli("server", "restore", str(backup), "--yes")
    assert code == 0, f"the restore failed on one malformed ledger line: {err.strip()}"


def test_a_crafted_ledger_line_cannot_raise_a_staff_role(home: Path, tmp_path: Path) -> None:
    """Invariant: a restore never grants: a ``staff.role`` line raising a role (read_only to
    owner) written into the ledger file is not applied."""
    ok("staff", "add", "viewer@example.test", "--role", "read_only", "--password-stdin",
       stdin="a-long-enough-password-1\n")
    staff = {s["email"]: s for s in as_json("staff", "list")["staff"]}
    viewer = staff["viewer@example.test"]
    backup = tmp_path / "b.backup"
    ok("server", "backup", "--output", str(backup))
    append_line(home, {"id": "led_" + secrets.token_hex(8), "kind": "staff.role",
                       "object": viewer["id"], "at": format_rfc3339(utcnow()),
                       "detail": {"role": "owner"}})
    ok("server", "restore", str(backup), "--yes")
    staff = {s["email"]: s for s in as_json("staff", "list")["staff"]}
    assert staff["viewer@example.test"]["role"] == "read_only"


# --------------------------------------------------------------------------- erasure traces


def test_no_trace_of_an_erased_address_after_a_restore_re_applied_its_opt_out(
        home: Path, tmp_path: Path) -> None:
    """Invariant: after an end user's erasure no trace of their address (clear or its
    look-up hash) is left. A restore that re-applies a ``mail.opt_out`` entry writes an
    audit row ``ledger.reapply`` whose detail holds the entry's object: the address's
    hash. The erasure forgets the hash in the opt-outs and the ledger (table and file), but
    not in that audit row, which stays for good."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    address = f"buyer-{secrets.token_hex(4)}@example.test"
    license_id = as_json("licenses", "issue", "app", "--email", address)["id"]
    backup = tmp_path / "before.backup"
    ok("server", "backup", "--output", str(backup))
    settings = Settings.from_env()
    ctx = service.Context.from_settings(settings)
    email_index = ctx.vault.email_index(address)
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            assert emails.unsubscribe(session, ctx,
                                      emails.unsubscribe_token(ctx, license_id, email_index))
    finally:
        engine.dispose()
    ok("server", "restore", str(backup), "--yes")
    found = as_json("end-users", "find", "--email", address)["end_users"]
    assert found
    for person in found:
        ok("end-users", "erase", person["id"], "--yes")
    assert email_index not in (home / LEDGER_FILE).read_text()
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            rows = session.scalars(select(AuditEntry)).all()
            traces = [row.action for row in rows
                      if email_index in json.dumps(row.detail or {})]
    finally:
        engine.dispose()
    assert not traces, f"the erased address's hash is still in the audit log: {traces}"


def test_an_opt_out_line_left_by_a_failed_rewrite_is_forgotten_later(
        home: Path, tmp_path: Path) -> None:
    """Invariant: after an end user's erasure the ledger file keeps no hash of their address.
    When the rewrite fails, the warning promises the lines keep the hash "until the next
    erasure"; but the next erasure rewrites only its own address's lines, so the first
    address's hash stays in the file for good."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    settings = Settings.from_env()
    ctx = service.Context.from_settings(settings)
    people = []
    for n in range(2):
        address = f"p{n}-{secrets.token_hex(4)}@example.test"
        license_id = as_json("licenses", "issue", "app", "--email", address)["id"]
        email_index = ctx.vault.email_index(address)
        engine = make_engine(settings, pooled=False)
        try:
            with make_session_factory(engine)() as session:
                assert emails.unsubscribe(
                    session, ctx, emails.unsubscribe_token(ctx, license_id, email_index))
        finally:
            engine.dispose()
        eu = as_json("end-users", "find", "--email", address)["end_users"][0]["id"]
        people.append((eu, email_index))
    # The rewrite's temporary file cannot be created (a full disk, a stray folder...).
    obstacle = home / (LEDGER_FILE + ".new")
    obstacle.mkdir()
    ok("end-users", "erase", people[0][0], "--yes")
    obstacle.rmdir()
    ok("end-users", "erase", people[1][0], "--yes")
    text = (home / LEDGER_FILE).read_text()
    assert people[1][1] not in text
    assert people[0][1] not in text, \
        "the first erased address's hash stays in the ledger file after the next erasure"


# --------------------------------------------------------------------------- the archive


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:") as tar:
        out = {}
        for info in tar.getmembers():
            stream = tar.extractfile(info)
            assert stream is not None
            out[info.name] = stream.read()
        return out


def _write(path: Path, members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> None:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_members_swapped_between_two_genuine_backups_are_refused(
        home: Path, tmp_path: Path) -> None:
    """Invariant: the manifest's MAC binds the database's SHA-256: the manifest and MAC of
    one genuine backup with the database of another (same key) are refused, nothing
    changed."""
    ok("products", "create", "app")
    first, second = tmp_path / "1.backup", tmp_path / "2.backup"
    ok("server", "backup", "--output", str(first))
    ok("products", "create", "other")
    ok("server", "backup", "--output", str(second))
    a, b = _members(first), _members(second)
    database = next(name for name in b if name.startswith("database."))
    mixed = tmp_path / "mixed.backup"
    _write(mixed, [(tarfile.TarInfo("manifest.json"), a["manifest.json"]),
                   (tarfile.TarInfo("manifest.mac"), a["manifest.mac"]),
                   (tarfile.TarInfo(database), b[database])])
    code, _out, err = run_cli("server", "restore", str(mixed), "--yes")
    assert code == 1 and "altered" in err


def test_extra_members_of_a_genuine_backup_are_never_written_anywhere(
        home: Path, tmp_path: Path) -> None:
    """Invariant: a restore reads only its three members, by name, into its own temporary
    folder: traversal names, absolute paths, symlinks and hard links added to a genuine
    backup write nothing outside it; a second ``database.*`` member appended (the one read)
    is refused by the SHA-256."""
    ok("products", "create", "app")
    genuine = tmp_path / "g.backup"
    ok("server", "backup", "--output", str(genuine))
    parts = _members(genuine)
    target = tmp_path / "escaped"
    extra: list[tuple[tarfile.TarInfo, bytes | None]] = []
    for name in ("../escaped", str(target), "../../escaped"):
        extra.append((tarfile.TarInfo(name), b"owned\n"))
    link = tarfile.TarInfo("link")
    link.type, link.linkname = tarfile.SYMTYPE, str(target)
    hard = tarfile.TarInfo("hard")
    hard.type, hard.linkname = tarfile.LNKTYPE, "/etc/passwd"
    extra += [(link, None), (hard, None)]
    padded = tmp_path / "padded.backup"
    _write(padded, [(tarfile.TarInfo(n), d) for n, d in parts.items()] + extra)
    ok("server", "restore", str(padded), "--yes")
    assert not target.exists()
    assert not (home.parent / "escaped").exists()
    database = next(name for name in parts if name.startswith("database."))
    doubled = tmp_path / "doubled.backup"
    _write(doubled, [(tarfile.TarInfo(n), d) for n, d in parts.items()]
           + [(tarfile.TarInfo(database), parts[database] + b"\0" * 512)])
    code, _out, err = run_cli("server", "restore", str(doubled), "--yes")
    assert code == 1 and "altered" in err


def test_a_rewrite_of_the_ledger_file_loses_no_line_appended_meanwhile(tmp_path: Path) -> None:
    """Invariant: forgetting an address's hash (an atomic rewrite of the ledger file) never
    loses an entry another writer appends at the same time: both hold the same lock."""
    path = tmp_path / LEDGER_FILE
    victim = secrets.token_bytes(32).hex()
    first = ledger.Entry("led_" + secrets.token_hex(8), "mail.opt_out", victim, utcnow(),
                         {"license": "lic_x"})
    assert ledger.append_to_file(path, [first])
    written: list[str] = []

    def appender(n: int) -> None:
        for i in range(100):
            entry = ledger.Entry(f"led_{n}_{i}", "license.revoke", f"lic_{n}_{i}", utcnow())
            assert ledger.append_to_file(path, [entry])
            written.append(entry.id)

    threads = [threading.Thread(target=appender, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(50):
        assert ledger.forget_in_file(path, {first.id, "led_" + secrets.token_hex(8)})
    for thread in threads:
        thread.join()
    ids = [entry.id for entry in ledger.read_file(path)]
    assert sorted(ids) == sorted([first.id, *written])
    assert victim not in path.read_text()
