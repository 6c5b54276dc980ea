"""Setting up a server's data: the folder, the master key, the schema, an admin API key.

What ``software-dna server init`` does, and what the test harness does before
it starts a server.

The master key lives apart from the data folder by default
(:func:`software_dna.server.config.default_key_file`), so that a copy of the
folder is not a copy of the key.  Invariant: a new master key is created only
for a database that holds nothing encrypted or keyed under a master key --
a new key could not read such a database, and creating one would hide the
real problem (the key was lost or moved) behind undecryptable data.  Nor
does ``server init`` go on with a key that does not open the database's
signing keys (another server's key found at the shared default location).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import Connection, Table, inspect, literal, make_url, select, text

from software_dna.server import services as service
from software_dna.server.config import ConfigError, Settings
from software_dna.server.crypto import (
    DecryptionError,
    Vault,
    create_master_key_file,
    locate_master_key,
)
from software_dna.server.db import make_engine, make_session_factory, migrate
from software_dna.server.models import (
    AdminApiKey,
    EndUser,
    License,
    LicenseSettings,
    MachineBinding,
    SigningKey,
    StaffMember,
)
from software_dna.server.services import staff as staff_service

__all__ = ["check_key_opens", "create_first_owner", "has_staff", "initialize", "keyed_rows_exist"]

#: Tables whose rows only the master key can read or match (ciphertexts, keyed hashes).
_KEYED_TABLES = (SigningKey, License, EndUser, AdminApiKey, MachineBinding, LicenseSettings,
                 StaffMember)


def _sqlite_file(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    return Path(database) if database and database != ":memory:" else None


def keyed_rows_exist(settings: Settings) -> bool:
    """True when the database of ``settings`` holds rows written under a master key.

    Reads only: a SQLite file that does not exist is not created, a database
    without the tables holds nothing.  Counts signing keys, licenses (keyed
    hashes of their keys), end users, admin API keys, machine bindings,
    settings documents and staff (sealed TOTP secrets).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
    """
    sqlite_file = _sqlite_file(settings)
    if settings.is_sqlite and (sqlite_file is None or not sqlite_file.exists()):
        return False
    engine = make_engine(settings, pooled=False)
    try:
        with engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
            for model in _KEYED_TABLES:
                table = Table(model.__tablename__, model.metadata)
                if table.name in present and conn.execute(
                        select(literal(1)).select_from(table).limit(1)).first() is not None:
                    return True
    finally:
        engine.dispose()
    return False


def check_key_opens(settings: Settings, vault: Vault, *,
                    connection: Connection | None = None) -> None:
    """Refuse a master key that does not decrypt the database's signing keys.

    The default key location is shared by every server of one account, so a
    server whose own key went missing could meet another server's key there:
    it must stop, not run on data it cannot read.  A database without
    signing keys has nothing to check.

    Args:
        settings: the server's settings (the database, where the key came from).
        vault: the vault opened with the key to check.
        connection: an open connection to read through (one holding SQLite's
            write lock must be the one used); default a new one.

    Raises:
        ConfigError: the key opens no signing key of the database (names the key's place).
    """
    if connection is not None:
        row = _first_signing_key(connection)
    else:
        sqlite_file = _sqlite_file(settings)
        if settings.is_sqlite and (sqlite_file is None or not sqlite_file.exists()):
            return
        engine = make_engine(settings, pooled=False)
        try:
            with engine.connect() as conn:
                row = _first_signing_key(conn)
        finally:
            engine.dispose()
    if row is None:
        return
    try:
        vault.signing_key(row[0], row[1])
    except DecryptionError:
        where = locate_master_key(settings)
        place = "SOFTWARE_DNA_MASTER_KEY" if where.path is None else str(where.path)
        raise ConfigError(
            f"The master key from {place} does not open this database (its signing keys do "
            "not decrypt): it belongs to another server. Put this server's key there, or set "
            "SOFTWARE_DNA_MASTER_KEY_FILE (or SOFTWARE_DNA_MASTER_KEY) to it."
        ) from None


def _first_signing_key(conn: Connection) -> tuple[str, bytes] | None:
    """``(kid, secret ciphertext)`` of one signing key, or None (none, or no such table)."""
    if not inspect(conn).has_table("signing_keys"):
        return None
    row = conn.execute(text("SELECT kid, secret_ciphertext FROM signing_keys LIMIT 1")).first()
    return None if row is None else (str(row[0]), bytes(row[1]))


def _new_key_refused(settings: Settings, path: Path) -> ConfigError:
    legacy = ("" if settings.master_key_file is not None
              else f" nor at the old location {settings.legacy_key_file}")
    return ConfigError(
        f"No master key at {path}{legacy}, but the database already holds data encrypted "
        "under one. A new key could not read it, so none was created. Put this server's key "
        f"back at {path}, or set SOFTWARE_DNA_MASTER_KEY_FILE (or SOFTWARE_DNA_MASTER_KEY) to "
        "it; a fresh server needs a fresh (empty) database."
    )


def initialize(settings: Settings, *, new_admin_key: bool = False) -> tuple[bool, str | None]:
    """Set up a server: folder, master key, schema, admin key.

    The master key file is created (mode 0600, its folder 0700 when created)
    at :func:`software_dna.server.crypto.locate_master_key`'s location when
    neither ``SOFTWARE_DNA_MASTER_KEY`` nor a key file is there -- but never
    while the database holds encrypted rows (see the module docstring).

    Args:
        settings: the server's settings.
        new_admin_key: revoke existing admin keys and create a new one.

    Returns:
        ``(master key created, admin key or None)`` -- the admin key is
        returned only when one was created (the first time, or on request).

    Raises:
        ConfigError: malformed settings / master key, no key for a database
        that holds encrypted rows (the message names both key locations), or
        a key that does not open the database's signing keys.
        OSError: the folder cannot be written.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # not our folder: leave its mode alone
        settings.home.chmod(0o700)
    created = False
    where = locate_master_key(settings)
    if where.path is not None and not where.path.exists():
        if keyed_rows_exist(settings):
            raise _new_key_refused(settings, where.path)
        created = create_master_key_file(where.path)
    ctx = service.Context.from_settings(settings)
    check_key_opens(settings, ctx.vault)
    migrate(settings)
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            if new_admin_key:
                service.revoke_admin_keys(session)
            if new_admin_key or not service.has_admin_key(session):
                return created, service.create_admin_key(session, ctx)
            return created, None
    finally:
        engine.dispose()


def has_staff(settings: Settings) -> bool:
    """True when the database holds at least one staff account (removed ones count)."""
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            return session.scalars(select(StaffMember.id).limit(1)).first() is not None
    finally:
        engine.dispose()


def create_first_owner(settings: Settings, email: str, *, name: str = "") -> str | None:
    """Create the first staff account, an owner with a random password; run after
    :func:`initialize`.

    The owner must choose their own password at the first sign-in.

    Returns:
        The generated password (show it once), or None when staff accounts exist
        already (nothing is created).

    Raises:
        ServiceError: 400 ``invalid_request`` for a malformed address.
    """
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            if session.scalars(select(StaffMember.id).limit(1)).first() is not None:
                return None
            password = staff_service.generate_password()
            staff_service.create_staff(session, email=email, password=password, role="owner",
                                       name=name, actor="cli", must_change_password=True)
            return password
    finally:
        engine.dispose()
