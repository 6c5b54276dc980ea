"""The erasure ledger: every erasure of personal data and every revocation, ids only.

Revocations include what a restore must not undo for security: a license's new
key, a staff member removed, reset or lowered, a mail opt-out.

A restore puts the database back as it was when the backup was taken; what was
erased or revoked since must not come back. So each erasure and revocation
writes a :class:`~software_dna.server.models.LedgerEntry` in the same
transaction as the change, and once that transaction has committed the same
entry is appended to the ledger file of the data folder
(:data:`software_dna.server.db.LEDGER_FILE`: one JSON object a line, written
with ``O_APPEND`` and fsync'd, under a lock file beside it, so that a rewrite by
:func:`forget` loses no other process's line). The file lives outside the database, so a
restore reads it (and the ledger table of the database it replaces, when that
can still be read) and re-applies the entries the backup does not hold
(``services.backup``).

Kinds (:data:`KINDS`) and their object:

- ``erasure``: an end user's erasure (vendor, SDK or portal, including the
  portal's sweep of every record of a proven address); object: the end user id
  (or the activation / license id when there was no end user); ``detail``:
  ``end_user``, ``licenses``, ``activation``.
- ``address.remove``: the end user removed or replaced their address in the
  license portal; object: the end user id (a restore deletes the address the
  backup holds for them: the one removed, or an older one).
- ``license.revoke``: object: the license id.
- ``activation.remove``: an activation removed by the vendor or freed by its
  end user; object: the activation id; ``detail``: ``by``.
- ``admin_key.revoke``: object: the admin API key's id.
- ``key.retire``: a signing key no longer trusted; object: its ``kid``;
  ``detail``: ``product``.
- ``license.rekey``: a license got a new key (the old one may have leaked);
  object: the license id; ``detail``: ``key_hash`` (the new key's keyed look-up
  hash, which only the master key's holder can compute or use: not the key,
  not personal data) and ``key_last4``. A restore puts the newest one back.
- ``staff.remove``: a staff member disabled; object: the staff id.
- ``staff.reset``: a staff member's password reset by someone else (and their
  second factor, ``detail``: ``totp_cleared``); object: the staff id. A restore
  cannot bring the new password back (no password hash is ever in the ledger):
  it makes the restored one unusable, so an owner resets it again.
- ``staff.role``: a staff member's role changed; object: the staff id;
  ``detail``: ``role``. Only a lowering is re-applied: a restore never grants.
- ``mail.opt_out``: a one-click unsubscribe; object: the address's keyed
  look-up hash (``email_index``); ``detail``: ``license``. When the address is
  erased (or changed, or removed) the entry keeps its id but its object becomes
  :data:`FORGOTTEN`, in the table and in the file (:func:`forget`).

A restore also ends every panel and portal session (sign-outs and the session
ends of the changes above are not in the ledger): everyone signs in again.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, FileLock, Timeout
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from software_dna.server.db import ledger_file
from software_dna.server.models import LedgerEntry
from software_dna.server.services.common import new_id, utcnow
from software_dna.wire.times import format_rfc3339, parse_rfc3339

__all__ = ["KINDS", "Entry", "append_to_file", "entries_in", "forget", "forget_in_file",
           "read_file", "record"]

log = logging.getLogger(__name__)

ERASURE = "erasure"
LICENSE_REVOKE = "license.revoke"
ACTIVATION_REMOVE = "activation.remove"
ADMIN_KEY_REVOKE = "admin_key.revoke"
KEY_RETIRE = "key.retire"
ADDRESS_REMOVE = "address.remove"
LICENSE_REKEY = "license.rekey"
STAFF_REMOVE = "staff.remove"
STAFF_RESET = "staff.reset"
STAFF_ROLE = "staff.role"
MAIL_OPT_OUT = "mail.opt_out"
#: The object of a ``mail.opt_out`` entry whose address was erased since.
FORGOTTEN = "forgotten"
#: Every kind of entry (see the module docstring).
KINDS = (ERASURE, ADDRESS_REMOVE, LICENSE_REVOKE, ACTIVATION_REMOVE, ADMIN_KEY_REVOKE,
         KEY_RETIRE, LICENSE_REKEY, STAFF_REMOVE, STAFF_RESET, STAFF_ROLE, MAIL_OPT_OUT)

_PENDING = "software_dna_ledger_pending"
#: Session.info key: the look-up hashes forgotten in this transaction.
_FORGET = "software_dna_ledger_forget"
#: Seconds a writer waits for the ledger file's lock (a rewrite takes milliseconds).
_LOCK_TIMEOUT = 10.0
#: Longest ledger file line read back (an entry is far shorter; a longer line is not ours).
_MAX_LINE = 64 * 1024


@dataclass(frozen=True)
class Entry:
    """One ledger entry, as the table and the file hold it.

    Attributes:
        id: ``led_...``, unique across processes and hosts.
        kind: one of :data:`KINDS`.
        object_id: the id of what was erased or revoked.
        at: when (timezone-aware UTC, whole seconds).
        detail: the other ids the re-application needs (ids only).
    """

    id: str
    kind: str
    object_id: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)

    def line(self) -> bytes:
        """The entry as one line of the ledger file (JSON, ``\\n`` at the end)."""
        return (json.dumps({"id": self.id, "kind": self.kind, "object": self.object_id,
                            "at": format_rfc3339(self.at), "detail": self.detail},
                           sort_keys=True, separators=(",", ":")) + "\n").encode("ascii")

    @classmethod
    def of_row(cls, row: LedgerEntry) -> Entry:
        """The entry of a table row."""
        return cls(row.id, row.kind, row.object_id, row.at, dict(row.detail or {}))

    @classmethod
    def of_json(cls, data: Mapping[str, Any]) -> Entry:
        """The entry of one parsed file line.

        Raises:
            ValueError: the object is not a ledger entry.
        """
        ident, kind, obj, at = (data.get(k) for k in ("id", "kind", "object", "at"))
        detail = data.get("detail") or {}
        if not (isinstance(ident, str) and ident.startswith("led_") and kind in KINDS
                and isinstance(obj, str) and obj and isinstance(at, str)
                and isinstance(detail, dict) and all(map(_detail_value, detail.values()))):
            raise ValueError("not a ledger entry")
        return cls(ident, str(kind), obj, parse_rfc3339(at), detail)


def _detail_value(value: object) -> bool:
    """True for what an entry's ``detail`` holds: ids, flags, lists of ids, nothing."""
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return value is None or isinstance(value, (str, bool))


def record(session: Session, kind: str, object_id: str, *, at: datetime | None = None,
           detail: Mapping[str, Any] | None = None) -> Entry:
    """Add a ledger entry to the session: committed (or rolled back) with the change.

    After the session's commit the entry is also appended to the ledger file of
    the data folder (:func:`append_to_file`). Never pass personal data: ids only.

    Args:
        session: the session making the change.
        kind: one of :data:`KINDS`.
        object_id: the id of what is erased or revoked.
        at: the change's time (default: now).
        detail: the other ids the re-application needs.

    Returns:
        The entry.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown ledger kind {kind!r}")
    entry = Entry(new_id("led"), kind, object_id, at or utcnow(), dict(detail or {}))
    session.add(LedgerEntry(id=entry.id, kind=entry.kind, object_id=entry.object_id,
                            at=entry.at, detail=entry.detail or None))
    session.info.setdefault(_PENDING, []).append(entry)
    return entry


def forget(session: Session, email_index: str) -> None:
    """Forget an address's look-up hash in the ledger: its opt-out entries keep their ids
    (a restore must know them as done) but their object becomes :data:`FORGOTTEN`, in
    the table now and, once the session commits, in the ledger file (rewritten, for
    every opt-out entry the table has forgotten).

    Args:
        session: the session erasing, changing or removing the address (no commit).
        email_index: the address's keyed look-up hash.
    """
    session.execute(update(LedgerEntry).where(
        LedgerEntry.kind == MAIL_OPT_OUT, LedgerEntry.object_id == email_index)
        .values(object_id=FORGOTTEN).execution_options(synchronize_session=False))
    # Every opt-out the table has forgotten, not only this one: a rewrite that failed
    # before (a full disk) is caught up by this one.
    session.info[_FORGET] = set(session.scalars(select(LedgerEntry.id).where(
        LedgerEntry.kind == MAIL_OPT_OUT, LedgerEntry.object_id == FORGOTTEN)))


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    pending: list[Entry] = session.info.pop(_PENDING, [])
    forgotten: set[str] = session.info.pop(_FORGET, set())
    if not pending and not forgotten:
        return
    path = ledger_file(session.get_bind().engine)
    if path is None:
        return
    if pending:
        append_to_file(path, pending)
    if forgotten:
        forget_in_file(path, forgotten)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
    session.info.pop(_FORGET, None)


def _file_lock(path: Path) -> BaseFileLock:
    """The lock every writer of the ledger file at ``path`` holds (``<file>.lock``)."""
    return FileLock(str(path) + ".lock", timeout=_LOCK_TIMEOUT)


def forget_in_file(path: Path, entry_ids: set[str]) -> bool:
    """Rewrite the ledger file at ``path`` with the opt-out entries ``entry_ids`` forgotten
    (object :data:`FORGOTTEN`), atomically (a new file, fsync'd, renamed over
    the old one) and under the writers' lock. A failure is logged (no personal data) and
    returns False; no file is no work."""
    try:
        with _file_lock(path):
            if not path.exists():
                return True
            lines = path.read_bytes().splitlines(keepends=True)
            kept = [_forgotten_line(line, entry_ids) for line in lines]
            if kept == lines:
                return True
            fresh = path.with_name(path.name + ".new")
            fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b"".join(kept))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(fresh, path)
    except (OSError, Timeout) as exc:
        log.warning("Could not rewrite the erasure ledger file %s (%s); its opt-out lines "
                    "keep the address's hash until the next erasure's rewrite", path.name,
                    type(exc).__name__)
        return False
    return True


def _forgotten_line(line: bytes, entry_ids: set[str]) -> bytes:
    """``line``, or the same entry with its object forgotten when it is one of the opt-out
    entries ``entry_ids`` and still names an address."""
    try:
        data = json.loads(line)
    except ValueError:
        return line
    if (not isinstance(data, dict) or data.get("kind") != MAIL_OPT_OUT
            or data.get("id") not in entry_ids or data.get("object") == FORGOTTEN):
        return line
    return Entry.of_json({**data, "object": FORGOTTEN}).line()


def append_to_file(path: Path, entries: Iterable[Entry]) -> bool:
    """Append ``entries`` to the ledger file at ``path`` (created 0600) and fsync it.

    One ``write`` in append mode, so that several processes appending at once
    never interleave within a line. A failure is logged (no personal data: the
    file name and the error kind) and returns False: the change has committed
    and its entry is in the database's table, which a restore reads too.
    """
    data = b"".join(entry.line() for entry in entries)
    if not data:
        return True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _file_lock(path):
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
    except (OSError, Timeout) as exc:
        log.warning("Could not append to the erasure ledger file %s (%s); the entries are "
                    "in the database's ledger table", path.name, type(exc).__name__)
        return False
    return True


def read_file(path: Path) -> Iterator[Entry]:
    """The entries of the ledger file at ``path`` (none if there is no file).

    A line that is not an entry (a torn last line after a crash) is skipped.

    Raises:
        OSError: the file exists but cannot be read.
    """
    if not path.exists():
        return
    with path.open("rb") as stream:
        for raw in stream:
            if len(raw) > _MAX_LINE or not raw.endswith(b"\n"):
                continue
            try:
                yield Entry.of_json(json.loads(raw))
            except (ValueError, TypeError, AttributeError):
                continue


def entries_in(session: Session) -> list[Entry]:
    """Every entry of the database's ledger table, oldest first."""
    rows = session.scalars(select(LedgerEntry).order_by(LedgerEntry.at, LedgerEntry.id))
    return [Entry.of_row(row) for row in rows]
