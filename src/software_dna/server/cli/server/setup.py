"""``software-dna server init`` and ``server migrate``: create the data folder, the master
key (kept outside it) and an admin API key; upgrade the database schema.

``migrate`` refuses a SQLite database that is not there (run ``server init``) and
creates nothing.
"""

from __future__ import annotations

import contextlib
import sys
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
from software_dna.server.config import Settings

__all__ = ["init", "migrate_"]


@app.command("init", short_help="create the data folder, master key and an admin API key")
def init(
    *, home: Home = None, database_url: DatabaseUrl = None,
    new_admin_key: Annotated[bool, typer.Option(
        "--new-admin-key",
        help="revoke the existing admin API keys and print a new one")] = False,
    owner_email: Annotated[str | None, typer.Option(
        "--owner-email", metavar="EMAIL", show_default=False,
        help="create the first staff account (an owner of the control panel) with this "
             "address when there is none; asked for on a terminal")] = None,
) -> int:
    """Create the data folder, the master key file (mode 0600, outside the data folder by
    default) and the database schema, and print a new admin API key once (only its hash is
    kept). When there is no staff account yet, create the first owner of the control panel
    (--owner-email, or asked on a terminal) and print their password once. Never overwrites
    an existing master key, and never creates one for a database that already holds
    encrypted data."""
    def run() -> int:
        # Lazy: the service layer only for this command, not every CLI start.
        # Lazy: the key's location and the database's only for this command.
        from sqlalchemy import make_url

        from software_dna.server.bootstrap import initialize
        from software_dna.server.crypto import locate_master_key

        settings = checked(home, database_url, must_exist=False)
        with printed_warnings():
            created, admin_key = initialize(settings, new_admin_key=new_admin_key)
        where = locate_master_key(settings)
        print(f"Data folder: {settings.home}")
        if where.path is None:
            print("Master key: from SOFTWARE_DNA_MASTER_KEY (not stored on disk by the server)")
        else:
            state = "created" if created else "already there, kept"
            print(f"Master key: {where.path} ({state})")
            if where.path.resolve().is_relative_to(settings.home.resolve()):
                print(f"{PROG}: warning: the master key is inside the data folder, so a backup "
                      "of the folder holds the key to its own secrets; keep it elsewhere "
                      "(SOFTWARE_DNA_MASTER_KEY_FILE).", file=sys.stderr)
        print("Database: schema up to date")
        database = (f"the SQLite file {make_url(settings.database_url).database}"
                    if settings.is_sqlite else "your PostgreSQL database")
        key = (f"the master key file {where.path}" if where.path is not None
               else "SOFTWARE_DNA_MASTER_KEY")
        if admin_key:
            print("Admin API key (shown once; store it safely):")
            print(admin_key)
        else:
            print("Admin API key: one exists already (use --new-admin-key to replace it)")
        _first_owner(settings, owner_email)
        _next_steps(settings, database, key)
        return 0
    return one_line(run, database_url)


def _next_steps(settings: Settings, database: str, key: str) -> None:
    """What is left to do before the server serves end users (printed last by ``init``)."""
    # Lazy: the doctor's names only for this command, not every CLI start.
    from software_dna.server.doctor import METRICS_TOKEN_VARIABLE, metrics_token_set
    from software_dna.server.mail import mail_configured

    steps: list[str] = []
    if settings.public_url is None or not settings.public_url.startswith("https://"):
        steps.append("Set SOFTWARE_DNA_PUBLIC_URL to the https:// address end users reach "
                     "the server at (mailed links and the control panel need it).")
    if not mail_configured(settings):
        steps.append("To send mail (password reset codes, reminders), set "
                     "SOFTWARE_DNA_SMTP_HOST and SOFTWARE_DNA_SMTP_SENDER (and _PORT, _TLS, "
                     "_USERNAME, _PASSWORD as your mail server wants).")
    if not metrics_token_set(settings):
        steps.append(f"Set {METRICS_TOKEN_VARIABLE} to a long random value for your "
                     "Prometheus to read the metrics.")
    steps.append(f"Run `{PROG} server doctor` (with the settings and --workers the server "
                 "will have): it checks all this and says what is left.")
    steps.append(f"Serve behind a TLS-terminating proxy: `{PROG} server run --host 127.0.0.1 "
                 "--port 8000 --forwarded-allow-ips 127.0.0.1` (the proxy's address), one "
                 "worker per CPU on PostgreSQL (docs/operations.md).")
    steps.append(f"Back up the database ({database}) regularly with `{PROG} server backup`, "
                 f"and {key} apart from it: without the key the database's secrets cannot be "
                 "read, and one backup holding both gives them all away.")
    print("Next steps:")
    for number, step in enumerate(steps, 1):
        print(f"  {number}. {step}")


def _first_owner(settings: Settings, owner_email: str | None) -> None:
    """Create the control panel's first owner when there is no staff account yet."""
    # Lazy: the service layer only for this command, not every CLI start.
    from software_dna.server.bootstrap import create_first_owner, has_staff
    from software_dna.server.services.errors import ServiceError

    if has_staff(settings):
        if owner_email:
            print("Staff: accounts exist already; --owner-email not used (add staff with "
                  f"`{PROG} staff add EMAIL --role owner`)")
        return
    address = owner_email
    if not address and sys.stdin.isatty():
        with contextlib.suppress(EOFError):
            address = input("Email address of the first owner of the control panel "
                            "(empty: later): ").strip()
    if not address:
        print(f"Staff: none yet; add the first owner with `{PROG} staff add EMAIL --role "
              f"owner` (or `{PROG} server init --owner-email EMAIL`)")
        return
    try:
        password = create_first_owner(settings, address)
    except ServiceError as exc:
        raise CliError(f"--owner-email: {exc.message}") from None
    if password is not None:
        print(f"Control panel owner: {address.strip().lower()} (sign in at /panel; choose "
              "your own password at the first sign-in)")
        print("Owner password (shown once):")
        print(password)


@app.command("migrate", short_help="upgrade the database schema to this version")
def migrate_(*, home: Home = None, database_url: DatabaseUrl = None) -> int:
    """Apply the pending database migrations (safe to run again)."""
    def run() -> int:
        # Lazy: Alembic only for this command, not every CLI start.
        from software_dna.server.db import migrate

        before, after = migrate(checked(home, database_url))
        if before == after:
            print(f"Database schema already at revision {after}.")
        else:
            print(f"Database schema upgraded: {before or 'empty'} -> {after}.")
        return 0
    return one_line(run, database_url)
