"""Setting up a server's data: the folder, the master key, the schema, an admin API key.

What ``software-dna server init`` does, and what the test harness does before
it starts a server.
"""

from __future__ import annotations

import contextlib

from software_dna.server import services as service
from software_dna.server.config import Settings
from software_dna.server.crypto import create_master_key_file
from software_dna.server.db import make_engine, make_session_factory, migrate

__all__ = ["initialize"]


def initialize(settings: Settings, *, new_admin_key: bool = False) -> tuple[bool, str | None]:
    """Set up a server: folder, master key, schema, admin key.

    Args:
        settings: the server's settings.
        new_admin_key: revoke existing admin keys and create a new one.

    Returns:
        ``(master key created, admin key or None)`` -- the admin key is
        returned only when one was created (the first time, or on request).

    Raises:
        ConfigError: malformed settings / master key.  OSError: the folder
        cannot be written.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):  # not our folder: leave its mode alone
        settings.home.chmod(0o700)
    created = False
    if settings.master_key is None:
        created = create_master_key_file(settings.key_file)
    migrate(settings)
    ctx = service.Context.from_settings(settings)
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
