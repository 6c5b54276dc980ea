"""``software-dna server backup`` and ``server restore``: one backup file of the database
(never the master key), and a restore that re-applies the erasures and revocations made
since the backup was taken (``services.backup``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from software_dna.server.cli._common import PROG, CliError
from software_dna.server.cli.server._base import (
    DatabaseUrl,
    Home,
    app,
    checked,
    one_line,
    printed_warnings,
)

__all__ = ["backup_", "restore_"]


@app.command("backup", short_help="write a backup of the database (not the master key)")
def backup_(
    *, home: Home = None, database_url: DatabaseUrl = None,
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="FILE", show_default=False,
        help="the backup file (default: backups/software-dna-<UTC time>.backup in the data "
             "folder)")] = None,
) -> int:
    """Write a backup of the server's database, consistent while the servers run (SQLite:
    the online backup API; PostgreSQL: pg_dump of the server's major version, on PATH).
    The file (mode 0600) holds personal data but never the master key: back the key up
    separately, and keep the two copies apart. Its manifest records when it was taken, the
    schema revision, the erasure ledger's position and the id of the key it needs."""
    def run() -> int:
        # Lazy: the service layer only for this command, not every CLI start.
        from software_dna.server.services.backup import BackupError, backup
        from software_dna.wire.times import format_rfc3339

        settings = checked(home, database_url)
        target = (Path(output).expanduser() if output else settings.home / "backups" /
                  f"software-dna-{_stamp()}.backup")
        try:
            with printed_warnings():
                manifest = backup(settings, target)
        except BackupError as exc:
            raise CliError(str(exc)) from None
        print(f"Backup: {target.resolve()}")
        print(f"Taken at: {format_rfc3339(manifest.taken_at)} (schema revision "
              f"{manifest.revision}, erasure ledger entries: {manifest.ledger_entries})")
        print(f"Master key: not in the backup (id {manifest.key_id}, kept at "
              f"{manifest.master_key}); back it up separately, apart from this file.")
        return 0
    return one_line(run, database_url)


def _stamp() -> str:
    # Lazy: the clock of the service layer only for this command.
    from software_dna.server.services.common import utcnow

    return utcnow().strftime("%Y%m%dT%H%M%SZ")


@app.command("restore", short_help="restore a backup, re-applying later erasures and "
                                   "revocations")
def restore_(
    file: Annotated[str, typer.Argument(metavar="FILE", help="a file `server backup` wrote",
                                        show_default=False)],
    *, home: Home = None, database_url: DatabaseUrl = None,
    yes: Annotated[bool, typer.Option(
        "--yes", help="replace a database that is not empty")] = False,
    ledgers: Annotated[list[str] | None, typer.Option(
        "--ledger", metavar="FILE", show_default=False,
        help="another node's erasure ledger file to re-apply too (repeatable)")] = None,
) -> int:
    """Restore FILE into the configured database. Stop every server and worker first. The
    database is replaced (a database that is not empty only with --yes), migrated when the
    backup is older than this version, and then every erasure and revocation made after
    the backup was taken is done again (from the erasure ledger file in the data folder,
    the --ledger files, and the ledger of the database being replaced); outbox items still
    pending in the backup are skipped, never sent twice. Nothing changes when FILE is not
    a backup, holds a newer schema or needs another master key."""
    def run() -> int:
        # Lazy: the service layer only for this command, not every CLI start.
        from software_dna.server.services.backup import BackupError, restore
        from software_dna.wire.times import format_rfc3339

        settings = checked(home, database_url, must_exist=False)
        try:
            with printed_warnings():
                done = restore(settings, Path(file), overwrite=yes,
                               ledger_files=[Path(p) for p in ledgers or []])
        except BackupError as exc:
            raise CliError(str(exc)) from None
        manifest = done.manifest
        print(f"Restored the backup taken at {format_rfc3339(manifest.taken_at)} "
              f"(schema revision {manifest.revision}).")
        if done.migrated:
            print("Database schema upgraded to this version.")
        print(f"Re-applied {len(done.reapplied)} erasure(s) and revocation(s) made after the "
              f"backup, {done.changed} of them changing the restored data (audit log: "
              "ledger.reapply).")
        print(f"Outbox: {done.outbox_skipped} pending item(s) skipped (they may have been "
              f"delivered after the backup; `{PROG} webhooks resend ID` sends one again).")
        return 0
    return one_line(run, database_url)
