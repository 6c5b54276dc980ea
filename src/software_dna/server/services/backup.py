"""Backups of the server's database, and restores that keep the erasure promise.

A backup is one file: an uncompressed tar archive holding ``manifest.json``
(:class:`Manifest`: when it was taken, the schema revision, the erasure
ledger's position, the id of the master key it needs -- never the key -- and
the SHA-256 of the database), ``manifest.mac`` (an HMAC of the manifest with a
key derived from the master key: :meth:`Vault.backup_mac`) and the database:
``database.sqlite3`` (SQLite's online backup API, consistent while the server
runs) or ``database.pgdump`` (``pg_dump -Fc`` in the snapshot
the manifest's ledger position was read in).

A restore (:func:`restore`) checks the file before it changes anything (the
MAC, then the database's SHA-256: a file altered after it was written, or made
without the master key, is refused), puts
the database back (SQLite: the backup API into the target file, one write
transaction; PostgreSQL: ``pg_restore --clean --if-exists
--single-transaction``), migrates it when the backup is older than the code,
then re-applies every erasure and revocation the backup does not hold, from
the ledger file of the data folder, the extra ledger files given and the
ledger table of the database being replaced (``services.ledger``), and marks
every outbox item still pending as skipped: it may have been delivered after
the backup was taken. The expiry reminders due at the restore are marked skipped
the same way (queued, then skipped): one mailed after the backup was taken is
not mailed again (one that fell due since and was never mailed is not mailed).
It also ends every panel and portal session: sessions ended since the backup
(sign-outs, removals, resets) would otherwise be back.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, func, inspect, make_url, select, update
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from software_dna._version import __version__
from software_dna.server.config import Settings
from software_dna.server.crypto import Vault, hash_password, locate_master_key
from software_dna.server.db import (
    LEDGER_FILE,
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    make_engine,
    make_session_factory,
    migrate,
    wal_checkpoint,
)
from software_dna.server.domain.roles import ROLE_PERMISSIONS, Role
from software_dna.server.models import (
    Activation,
    AdminApiKey,
    EndUser,
    LedgerEntry,
    License,
    MailOptOut,
    OutboxItem,
    PortalSession,
    SigningKey,
    StaffMember,
    StaffSession,
)
from software_dna.server.services import emails, ledger
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.endusers import erase
from software_dna.server.services.portal_account import clear_address
from software_dna.wire.times import format_rfc3339, parse_rfc3339

__all__ = ["FORMAT", "BackupError", "Manifest", "Restored", "backup", "read_manifest",
           "restore"]

#: The manifest's ``format`` value: what makes a file a software_dna backup.
FORMAT = "software-dna-backup/1"
MANIFEST = "manifest.json"
MAC_MEMBER = "manifest.mac"
SQLITE_MEMBER = "database.sqlite3"
PG_MEMBER = "database.pgdump"
#: The audit actor of a restore and of what it re-applies.
ACTOR = "restore"
#: ``last_error`` of an outbox item a restore skipped.
SKIPPED = "skipped: restored from a backup (it may have been delivered already)"
_MAX_MANIFEST = 64 * 1024
_PG_TIMEOUT = 3600


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Manifest:
    """What a backup says about itself (``manifest.json``).

    Attributes:
        taken_at: when the database was copied (UTC).
        backend: ``sqlite`` or ``postgresql``.
        revision: the schema's Alembic revision in the backup.
        ledger_entries: how many erasure ledger entries the backup holds.
        ledger_last: the newest of them (``led_...``), or None: the ledger's
            position when the backup was taken.
        key_id: the id (:meth:`Vault.fingerprint`) of the master key the
            backup's secrets need; the key itself is never in a backup.
        master_key: where that key was kept when the backup was taken.
        server_version: the software_dna version that took it.
        database_sha256: the SHA-256 (hex) of the archive's database member
            ("" in a file that has none: such a file is refused).
    """

    taken_at: datetime
    backend: str
    revision: str
    ledger_entries: int
    ledger_last: str | None
    key_id: str
    master_key: str
    server_version: str
    database_sha256: str = ""

    def to_json(self) -> bytes:
        """The manifest as written into the backup."""
        return json.dumps({
            "format": FORMAT, "taken_at": format_rfc3339(self.taken_at),
            "backend": self.backend, "revision": self.revision,
            "ledger": {"entries": self.ledger_entries, "last": self.ledger_last},
            "master_key": {"id": self.key_id, "where": self.master_key,
                           "included": False},
            "server_version": self.server_version,
            "database": {"sha256": self.database_sha256},
        }, indent=2, sort_keys=True).encode("utf-8") + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse a manifest.

        Raises:
            ValueError: not a software_dna backup manifest.
        """
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError("not a manifest")
        position, key = data["ledger"], data["master_key"]
        backend = data["backend"]
        if backend not in ("sqlite", "postgresql"):
            raise ValueError("unknown backend")
        return cls(taken_at=parse_rfc3339(data["taken_at"]), backend=backend,
                   revision=str(data["revision"]), ledger_entries=int(position["entries"]),
                   ledger_last=position.get("last"), key_id=str(key["id"]),
                   master_key=str(key["where"]), server_version=str(data["server_version"]),
                   database_sha256=str((data.get("database") or {}).get("sha256") or ""))


@dataclass(frozen=True)
class Restored:
    """What :func:`restore` did.

    Attributes:
        manifest: the backup's manifest.
        migrated: the schema was upgraded from ``manifest.revision`` to this code's.
        reapplied: ledger entries re-applied (newer than the backup), oldest first.
        changed: how many of them changed something (the others were so already, or
            their object was created after the backup).
        outbox_skipped: outbox items marked skipped (possibly delivered already).
    """

    manifest: Manifest
    migrated: bool
    reapplied: list[ledger.Entry]
    changed: int
    outbox_skipped: int


# --------------------------------------------------------------------------- backup


def backup(settings: Settings, output: Path) -> Manifest:
    """Write a backup of ``settings``' database to ``output`` (mode 0600, replaced atomically).

    The database must be at this code's schema revision. The master key must
    be loadable: its id goes into the manifest, never the key.

    Args:
        settings: the server's settings (database URL, master key).
        output: the backup file to write.

    Returns:
        The manifest written.

    Raises:
        BackupError: pg_dump missing or failing (one line saying what to do).
        SchemaError: the database is not at this code's revision.
        ConfigError: the master key cannot be loaded.
        SQLAlchemyError, OSError: the database or the file cannot be used.
    """
    vault = Vault.from_settings(settings)
    key_id = vault.fingerprint()
    where = locate_master_key(settings)
    master_key = str(where.path) if where.path is not None else "SOFTWARE_DNA_MASTER_KEY"
    engine = make_engine(settings, pooled=False)
    try:
        check_schema(engine, settings)
        with tempfile.TemporaryDirectory(prefix="sdna-backup-") as tmp:
            folder = Path(tmp)
            if settings.is_sqlite:
                member, copy = SQLITE_MEMBER, folder / SQLITE_MEMBER
                taken_at, revision, count, last = _sqlite_copy(engine, copy)
            else:
                member, copy = PG_MEMBER, folder / PG_MEMBER
                taken_at, revision, count, last = _pg_dump(engine, copy)
            manifest = Manifest(taken_at=taken_at,
                                backend="sqlite" if settings.is_sqlite else "postgresql",
                                revision=revision, ledger_entries=count, ledger_last=last,
                                key_id=key_id, master_key=master_key,
                                server_version=__version__, database_sha256=_sha256(copy))
            _write_archive(output, manifest, member, copy, vault)
    finally:
        engine.dispose()
    return manifest


def _position(conn: Any) -> tuple[int, str | None]:
    count = int(conn.execute(select(func.count()).select_from(LedgerEntry)).scalar() or 0)
    last = conn.execute(select(LedgerEntry.id).order_by(LedgerEntry.at.desc(),
                                                        LedgerEntry.id.desc()).limit(1)).scalar()
    return count, last


def _sqlite_copy(engine: Engine, copy: Path) -> tuple[datetime, str, int, str | None]:
    database = make_url(str(engine.url)).database
    assert database
    source = sqlite3.connect(database, timeout=30.0)
    try:
        target = sqlite3.connect(copy)
        try:
            taken_at = utcnow()
            source.backup(target)
            # The copy stands alone: no WAL beside it.
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    finally:
        source.close()
    copied = create_engine(f"sqlite:///{copy}", future=True)
    try:
        with copied.connect() as conn:
            revision = current_revision(copied) or ""
            count, last = _position(conn)
    finally:
        copied.dispose()
    return taken_at, revision, count, last


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: install PostgreSQL's client tools of the "
                          "server's major version (Debian: apt-get install postgresql-client) "
                          "and put them on PATH.")
    return found


def _pg_target(url: URL) -> tuple[str, dict[str, str]]:
    """The libpq URI of ``url`` (no password) and the environment carrying the password.

    libpq also reads a password from the URI's query (``?password=``): it is taken out
    of there too, so that no spelling puts it on the command line (readable in /proc).
    """
    env = dict(os.environ)
    env.pop("PGPASSWORD", None)
    query = dict(url.query)
    in_query = query.pop("password", None)
    if isinstance(in_query, tuple):
        in_query = in_query[-1] if in_query else None
    password = url.password if url.password is not None else in_query
    if password is not None:
        env["PGPASSWORD"] = str(password)
    plain = url.set(drivername="postgresql", password=None, query=query)
    return plain.render_as_string(hide_password=False), env


def _pg_failure(tool: str, stderr: str) -> BackupError:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = " ".join(lines)
    if "version mismatch" in text:
        server = re.search(r"server version: ([0-9.]+)", text)
        mine = re.search(rf"{tool} version: ([0-9.]+)", text)
        return BackupError(
            f"{tool} {mine.group(1) if mine else ''} cannot handle this PostgreSQL server "
            f"({server.group(1) if server else 'a newer version'}): install the client "
            "tools of the server's major version and put them first on PATH.")
    first = lines[0] if lines else "no message"
    return BackupError(f"{tool} failed: {first[:300]}")


def _pg_dump(engine: Engine, copy: Path) -> tuple[datetime, str, int, str | None]:
    tool = _pg_tool("pg_dump")
    uri, env = _pg_target(engine.url)
    with engine.connect() as conn:
        conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            # The dump and the ledger position are read in one snapshot.
            snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
            taken_at = utcnow()
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            count, last = _position(conn)
            done = subprocess.run(  # noqa: S603  (fixed argv, no shell)
                [tool, "--format=custom", f"--snapshot={snapshot}", f"--file={copy}",
                 "--no-password", f"--dbname={uri}"],
                env=env, capture_output=True, text=True, timeout=_PG_TIMEOUT, check=False)
            if done.returncode != 0:
                raise _pg_failure("pg_dump", done.stderr)
    return taken_at, str(revision or ""), count, last


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_archive(output: Path, manifest: Manifest, member: str, copy: Path,
                   vault: Vault) -> None:
    output = output.expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as stream:
            with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
                raw = manifest.to_json()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(raw), 0o600
                info.mtime = int(manifest.taken_at.timestamp())
                tar.addfile(info, io.BytesIO(raw))
                mac = (vault.backup_mac(raw) + "\n").encode("ascii")
                info = tarfile.TarInfo(MAC_MEMBER)
                info.size, info.mode = len(mac), 0o600
                info.mtime = int(manifest.taken_at.timestamp())
                tar.addfile(info, io.BytesIO(mac))
                info = tar.gettarinfo(str(copy), arcname=member)
                info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
                with copy.open("rb") as data:
                    tar.addfile(info, data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------- reading a backup


def read_manifest(path: Path) -> Manifest:
    """The manifest of the backup at ``path``.

    Raises:
        BackupError: no such file, or not a software_dna backup.
    """
    with _opened(path) as (manifest, _tar, _raw):
        return manifest


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[Manifest, tarfile.TarFile, bytes]]:
    path = path.expanduser()
    if not path.is_file():
        raise BackupError(f"No backup at {path}: give the file `software-dna server backup` "
                          "wrote.")
    not_backup = BackupError(f"{path} is not a software-dna backup (made by `software-dna "
                             "server backup`).")
    try:
        tar = tarfile.open(path, mode="r:")  # noqa: SIM115  (closed below)
    except (tarfile.TarError, OSError):
        raise not_backup from None
    try:
        try:
            info = tar.getmember(MANIFEST)
            if not info.isfile() or info.size > _MAX_MANIFEST:
                raise ValueError("manifest")
            stream = tar.extractfile(info)
            assert stream is not None
            raw = stream.read()
            manifest = Manifest.from_json(raw)
        except (KeyError, ValueError, TypeError, tarfile.TarError):
            raise not_backup from None
        yield manifest, tar, raw
    finally:
        tar.close()


def _check_mac(tar: tarfile.TarFile, raw: bytes, vault: Vault, source: Path) -> None:
    """Refuse a manifest whose MAC this master key did not make (nothing changed yet)."""
    forged = BackupError(f"{source} was altered after it was written, or not written by "
                         "`software-dna server backup` with the configured master key: "
                         "nothing was changed; restore a genuine backup.")
    try:
        info = tar.getmember(MAC_MEMBER)
        stream = tar.extractfile(info) if info.isfile() and info.size <= 256 else None
        given = stream.read().strip() if stream is not None else b""
    except (KeyError, tarfile.TarError):
        raise forged from None
    if not hmac.compare_digest(given, vault.backup_mac(raw).encode("ascii")):
        raise forged


def _extract(tar: tarfile.TarFile, name: str, target: Path, source: Path) -> None:
    try:
        info = tar.getmember(name)
    except KeyError:
        raise BackupError(f"{source} is not a complete software-dna backup (no {name}).") from None
    stream = tar.extractfile(info) if info.isfile() else None
    if stream is None:
        raise BackupError(f"{source} is not a complete software-dna backup (no {name}).")
    with target.open("wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)


# --------------------------------------------------------------------------- restore


def restore(settings: Settings, path: Path, *, overwrite: bool = False,
            ledger_files: Sequence[Path] = ()) -> Restored:
    """Restore the backup at ``path`` into ``settings``' database; see the module docstring.

    Everything is checked before anything changes: the file is a backup, of
    this kind of database, of a schema this code knows, taken with the
    configured master key, and the database is empty unless ``overwrite``.

    Args:
        settings: the server's settings (database URL, master key, data folder).
        path: the backup file.
        overwrite: replace a database that is not empty (``--yes``).
        ledger_files: more ledger files to re-apply (other nodes' data folders);
            the data folder's own is always read.

    Returns:
        What was done (:class:`Restored`).

    Raises:
        BackupError: the file, the database or pg_restore refused (one line).
        ConfigError: the master key cannot be loaded.
        SQLAlchemyError, OSError: the database or a file cannot be used.
    """
    ctx = Context.from_settings(settings)
    backend = "sqlite" if settings.is_sqlite else "postgresql"
    with _opened(path) as (manifest, tar, raw), \
            tempfile.TemporaryDirectory(prefix="sdna-restore-") as tmp:
        if manifest.backend != backend:
            raise BackupError(f"{path} is a backup of a {manifest.backend} database; the "
                              f"configured database is {backend}: restore it into a "
                              f"{manifest.backend} database.")
        known = {rev.revision for rev in
                 ScriptDirectory.from_config(alembic_config(settings)).walk_revisions()}
        if manifest.revision not in known:
            raise BackupError(f"{path} holds a newer schema (revision {manifest.revision}) "
                              f"than this server ({head_revision(settings)}): upgrade "
                              "software_dna before restoring it.")
        if manifest.key_id != ctx.vault.fingerprint():
            raise BackupError(f"{path} was taken with another master key (id "
                              f"{manifest.key_id}, kept at {manifest.master_key}); the "
                              f"configured key's id is {ctx.vault.fingerprint()}: configure "
                              "the key the backup was taken with.")
        _check_mac(tar, raw, ctx.vault, path)
        copy = Path(tmp) / (SQLITE_MEMBER if backend == "sqlite" else PG_MEMBER)
        _extract(tar, copy.name, copy, path)
        if not hmac.compare_digest(_sha256(copy), manifest.database_sha256):
            raise BackupError(f"{path} was altered after it was written: its database is "
                              "not the one its manifest names. Nothing was changed; restore "
                              "a genuine backup.")
        tables: set[str] = set()
        if backend == "sqlite":
            _check_sqlite_copy(copy, manifest, path)
        else:
            tables = _check_pg_copy(copy, path)
        engine = make_engine(settings, pooled=False)
        try:
            if not overwrite and not _empty(engine):
                raise BackupError("The configured database is not empty: a restore replaces "
                                  "everything in it. Stop the servers and run again with "
                                  "--yes.")
            newer = _ledger_entries(settings, engine, ledger_files)
        finally:
            engine.dispose()
        if backend == "sqlite":
            _restore_sqlite(copy, settings)
        else:
            _restore_pg(copy, settings)
    migrated = False
    engine = make_engine(settings, pooled=False)
    try:
        if backend == "postgresql":
            _drop_tables_not_in(engine, tables)
        if current_revision(engine) != head_revision(settings):
            engine.dispose()
            migrate(settings)
            migrated = True
        reapplied, changed, skipped = _after_restore(engine, ctx, manifest, newer)
        ledger.append_to_file(settings.home / LEDGER_FILE,
                              _missing_from_file(settings.home / LEDGER_FILE, newer))
        wal_checkpoint(engine)
    finally:
        engine.dispose()
    return Restored(manifest=manifest, migrated=migrated, reapplied=reapplied,
                    changed=changed, outbox_skipped=skipped)


def _check_sqlite_copy(copy: Path, manifest: Manifest, source: Path) -> None:
    try:
        conn = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
        try:
            ok = conn.execute("PRAGMA quick_check").fetchone()
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        raise BackupError(f"{source} is damaged: its database cannot be read.") from None
    if ok is None or ok[0] != "ok" or revision is None or revision[0] != manifest.revision:
        raise BackupError(f"{source} is damaged: its database does not match its manifest.")


def _check_pg_copy(copy: Path, source: Path) -> set[str]:
    """The tables of the dump; raises :class:`BackupError` when pg_restore cannot read it."""
    done = subprocess.run([_pg_tool("pg_restore"), "--list", str(copy)],  # noqa: S603
                          capture_output=True, text=True, timeout=_PG_TIMEOUT, check=False)
    tables = set(re.findall(r"^\d+; \d+ \d+ TABLE \S+ (\S+) ", done.stdout, re.M))
    if done.returncode != 0 or "alembic_version" not in tables:
        raise BackupError(f"{source} is damaged: pg_restore cannot read its database.")
    return tables


def _empty(engine: Engine) -> bool:
    if engine.dialect.name == "sqlite":
        database = make_url(str(engine.url)).database
        if not database or not Path(database).exists():
            return True
    return not inspect(engine).get_table_names()


def _ledger_entries(settings: Settings, engine: Engine,
                    files: Iterable[Path]) -> list[ledger.Entry]:
    """Every known ledger entry: the data folder's file, ``files`` and the table of the
    database about to be replaced (when it has one and can be read)."""
    found: dict[str, ledger.Entry] = {}
    for path in [settings.home / LEDGER_FILE, *files]:
        try:
            for entry in ledger.read_file(path.expanduser()):
                found.setdefault(entry.id, entry)
        except OSError as exc:
            raise BackupError(f"Cannot read the erasure ledger {path}: {exc.strerror or exc}"
                              ) from None
    if not _empty(engine):
        with contextlib.suppress(SQLAlchemyError):
            if "erasure_ledger" in inspect(engine).get_table_names():
                with make_session_factory(engine)() as session:
                    for entry in ledger.entries_in(session):
                        found.setdefault(entry.id, entry)
    # Stable: entries of the same second keep the order they were appended in.
    return sorted(found.values(), key=lambda e: e.at)


def _missing_from_file(path: Path, entries: Sequence[ledger.Entry]) -> list[ledger.Entry]:
    there = {entry.id for entry in ledger.read_file(path)}
    return [entry for entry in entries if entry.id not in there]


def _restore_sqlite(copy: Path, settings: Settings) -> None:
    database = make_url(settings.database_url).database
    assert database
    target_path = Path(database).expanduser()
    target_path.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{copy}?mode=ro", uri=True)
    try:
        target = sqlite3.connect(target_path, timeout=float(settings.db_busy_timeout))
        try:
            # One write transaction on the target: readers see the old or the new database.
            source.backup(target)
            target.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            target.close()
    finally:
        source.close()
    with contextlib.suppress(OSError):
        os.chmod(target_path, 0o600)


def _restore_pg(copy: Path, settings: Settings) -> None:
    tool = _pg_tool("pg_restore")
    uri, env = _pg_target(make_url(settings.database_url))
    done = subprocess.run(  # noqa: S603  (fixed argv, no shell)
        [tool, "--clean", "--if-exists", "--single-transaction", "--exit-on-error",
         "--no-owner", "--no-privileges", "--no-password", f"--dbname={uri}", str(copy)],
        env=env, capture_output=True, text=True, timeout=_PG_TIMEOUT, check=False)
    if done.returncode != 0:
        raise _pg_failure("pg_restore", done.stderr)


def _drop_tables_not_in(engine: Engine, tables: set[str]) -> None:
    """Drop the tables a newer schema added that the (older) dump does not have: their
    rows belong to the state the restore replaces, and the migrations create them anew."""
    extra = sorted(set(inspect(engine).get_table_names()) - tables)
    if not extra:
        return
    with engine.begin() as conn:
        for name in extra:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}" CASCADE')


def _after_restore(engine: Engine, ctx: Context, manifest: Manifest,
                   entries: Sequence[ledger.Entry]) -> tuple[list[ledger.Entry], int, int]:
    """Re-apply the entries the restored database lacks; skip the pending outbox; audit."""
    reapplied: list[ledger.Entry] = []
    changed = 0
    with make_session_factory(engine)() as session:
        held = set(session.scalars(select(LedgerEntry.id)))
        for entry in entries:
            if entry.id in held:
                continue
            failed: str | None = None
            try:
                applied = _reapply(session, ctx, entry)
            except (ValueError, TypeError, KeyError, LookupError) as exc:
                # An entry that cannot be done (a hand-edited file) is skipped and audited:
                # it never stops a restore whose database was already replaced.
                session.rollback()
                applied, failed = False, type(exc).__name__
            changed += applied
            session.add(LedgerEntry(id=entry.id, kind=entry.kind, object_id=entry.object_id,
                                    at=entry.at, detail=entry.detail or None))
            ids = _audit_ids(entry)
            # An opt-out's object is an address's look-up hash: the audit keeps the entry's
            # id only, so that the person's erasure leaves no copy of it here.
            shown = None if entry.kind == ledger.MAIL_OPT_OUT else entry.object_id
            audit(session, ACTOR, "ledger.reapply", end_user_id=ids.get("end_user_id"),
                  activation_id=ids.get("activation_id"), license_id=ids.get("license_id"),
                  kid=ids.get("kid"), product_id=ids.get("product_id"),
                  detail={"entry": entry.id, "kind": entry.kind, "object": shown,
                          "applied": applied, **({"failed": failed} if failed else {})})
            session.commit()
            reapplied.append(entry)
        # Sessions ended since the backup (sign-outs, removals, resets) are not in the
        # ledger: every session ends and everyone signs in again.
        session.execute(delete(StaffSession))
        session.execute(delete(PortalSession))
        # The reminders due now may have been mailed after the backup was taken, and their
        # outbox items (the dedup keys) are not in it: queued here, they are skipped below
        # and their keys stop the scheduler from mailing them again.
        reminders = emails.queue_reminders(session, ctx)
        # Whatever was pending in the backup (or queued by a re-applied erasure) may have
        # been delivered after the backup was taken: it is not sent again.
        skipped = session.execute(
            update(OutboxItem).where(OutboxItem.status == "pending")
            .values(status="cancelled", last_error=SKIPPED, claim=None, locked_until=None)
            .execution_options(synchronize_session=False))
        skipped_count = int(getattr(skipped, "rowcount", 0) or 0)
        audit(session, ACTOR, "backup.restore", detail={
            "taken_at": format_rfc3339(manifest.taken_at), "revision": manifest.revision,
            "ledger_last": manifest.ledger_last, "reapplied": len(reapplied),
            "changed": changed, "outbox_skipped": skipped_count,
            "reminders_skipped": reminders})
        session.commit()
    return reapplied, changed, skipped_count


def _audit_ids(entry: ledger.Entry) -> dict[str, str | None]:
    if entry.kind == ledger.ADDRESS_REMOVE:
        return {"end_user_id": entry.object_id}
    if entry.kind == ledger.ERASURE:
        return {"end_user_id": entry.detail.get("end_user"),
                "activation_id": entry.detail.get("activation")}
    if entry.kind == ledger.LICENSE_REVOKE:
        return {"license_id": entry.object_id}
    if entry.kind == ledger.ACTIVATION_REMOVE:
        return {"activation_id": entry.object_id}
    if entry.kind == ledger.KEY_RETIRE:
        return {"kid": entry.object_id, "product_id": entry.detail.get("product")}
    if entry.kind == ledger.LICENSE_REKEY:
        return {"license_id": entry.object_id}
    if entry.kind == ledger.MAIL_OPT_OUT:
        return {"license_id": entry.detail.get("license")}
    return {}


def _reapply(session: Session, ctx: Context, entry: ledger.Entry) -> bool:
    """Do ``entry`` again on the restored database; False when there was nothing to do
    (already so, or the object was created after the backup). Idempotent."""
    now = utcnow()
    if entry.kind == ledger.ERASURE:
        detail = entry.detail
        person = session.get(EndUser, detail["end_user"]) if detail.get("end_user") else None
        licenses = {lid for lid in detail.get("licenses") or []
                    if session.get(License, lid) is not None}
        activation = detail.get("activation")
        if activation and session.get(Activation, activation) is None:
            activation = None
        if person is None and not licenses and activation is None:
            return False
        erase(session, ctx, end_user=person, license_ids=licenses, actor=ACTOR,
              activation_id=activation, record=False)
        return True
    if entry.kind == ledger.ADDRESS_REMOVE:
        person = session.get(EndUser, entry.object_id)
        if person is None or person.email_index is None:
            return False
        clear_address(session, person)
        return True
    if entry.kind == ledger.LICENSE_REVOKE:
        lic = session.get(License, entry.object_id)
        if lic is None or lic.status == "revoked":
            return False
        lic.status, lic.updated_at = "revoked", now
        return True
    if entry.kind == ledger.ACTIVATION_REMOVE:
        act = session.get(Activation, entry.object_id)
        if act is None or act.deactivated_at is not None:
            return False
        act.deactivated_at = entry.at
        act.deactivated_by = str(entry.detail.get("by") or "vendor")
        return True
    if entry.kind == ledger.ADMIN_KEY_REVOKE:
        row = session.get(AdminApiKey, entry.object_id)
        if row is None or row.revoked_at is not None:
            return False
        row.revoked_at = entry.at
        return True
    if entry.kind == ledger.KEY_RETIRE:
        key = session.get(SigningKey, entry.object_id)
        # The active key stays: retiring it would leave the product unable to sign (the
        # rotation that preceded the retirement is not in the backup).
        if key is None or key.status in ("retired", "active"):
            return False
        key.status, key.retired_at = "retired", entry.at
        return True
    if entry.kind == ledger.LICENSE_REKEY:
        return _reapply_rekey(session, entry)
    if entry.kind in (ledger.STAFF_REMOVE, ledger.STAFF_RESET, ledger.STAFF_ROLE):
        return _reapply_staff(session, entry)
    if entry.kind == ledger.MAIL_OPT_OUT:
        return _reapply_opt_out(session, entry)
    return False


def _reapply_rekey(session: Session, entry: ledger.Entry) -> bool:
    lic = session.get(License, entry.object_id)
    key_hash, last4 = entry.detail.get("key_hash"), entry.detail.get("key_last4")
    if (lic is None or not isinstance(key_hash, str) or not isinstance(last4, str)
            or lic.key_hash == key_hash):
        return False
    # Entries are applied oldest first: the newest key wins, every older one stops working.
    # The hash is keyed by the master key: only its holder can make one a key matches.
    lic.key_hash, lic.key_last4, lic.updated_at = key_hash, last4, utcnow()
    return True


def _reapply_staff(session: Session, entry: ledger.Entry) -> bool:
    row = session.get(StaffMember, entry.object_id)
    if row is None:
        return False
    if entry.kind == ledger.STAFF_REMOVE:
        if row.disabled_at is not None:
            return False
        row.disabled_at = entry.at
        return True
    if entry.kind == ledger.STAFF_RESET:
        # The new password is in no ledger: the restored (reset) one must not sign in
        # again, so the account gets an unusable password until an owner resets it.
        row.password_hash = hash_password(os.urandom(24).hex())
        row.must_change_password = True
        if entry.detail.get("totp_cleared"):
            row.totp_sealed = row.totp_confirmed_at = row.totp_last_step = None
        return True
    try:
        new = Role(str(entry.detail.get("role")))
        now = Role(row.role)
    except ValueError:
        return False
    # Only a lowering is re-applied: a restore takes rights away, never grants them.
    if new is now or not ROLE_PERMISSIONS[new] <= ROLE_PERMISSIONS[now]:
        return False
    row.role = new.value
    return True


def _reapply_opt_out(session: Session, entry: ledger.Entry) -> bool:
    # An erasure made after it (re-applied later, oldest first) deletes it again.
    email_index, license_id = entry.object_id, entry.detail.get("license")
    if (email_index == ledger.FORGOTTEN or not isinstance(license_id, str)
            or session.get(License, license_id) is None
            or session.scalar(select(MailOptOut.id).where(
                MailOptOut.license_id == license_id,
                MailOptOut.email_index == email_index)) is not None):
        return False
    session.add(MailOptOut(license_id=license_id, email_index=email_index,
                           created_at=entry.at))
    return True
