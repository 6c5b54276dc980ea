"""Where the master key lives: outside the data folder by default, the old location still
used (with a warning), and never a new key for a database that holds encrypted rows.

Every test here runs with its own user config folder (``own_key_folder`` in
tests/conftest.py sets XDG_CONFIG_HOME), so none writes to the real one, nor
touches another test's key.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from software_dna.server import services as service
from software_dna.server.bootstrap import initialize, keyed_rows_exist
from software_dna.server.cli import main
from software_dna.server.config import ConfigError, Settings, default_key_file
from software_dna.server.crypto import (
    create_master_key_file,
    load_master_key,
    locate_master_key,
)
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.models import AdminApiKey
from software_dna.server.services.staff import create_staff

pytestmark = pytest.mark.usefixtures("own_key_folder")


def _settings(home: Path, database_url: str | None = None) -> Settings:
    env = {"SOFTWARE_DNA_SERVER_HOME": str(home)}
    if database_url:
        env["DATABASE_URL"] = database_url
    return Settings.from_env(env)


def test_master_key_default_is_outside_the_data_folder(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    expected = Path(os.environ["XDG_CONFIG_HOME"]) / "software-dna-keys" / "master.key"
    assert default_key_file() == expected == settings.key_file
    assert not expected.is_relative_to(settings.home)
    created, admin_key = initialize(settings)
    assert created and admin_key
    assert expected.is_file() and not (settings.home / "master.key").exists()
    assert stat.S_IMODE(expected.stat().st_mode) == 0o600
    assert stat.S_IMODE(expected.parent.stat().st_mode) == 0o700
    assert all(p.name.startswith("server.db") for p in settings.home.iterdir())
    assert locate_master_key(settings).warning is None
    assert initialize(settings) == (False, None)  # kept, never overwritten


def test_master_key_at_the_old_location_is_used_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "data"
    settings = _settings(home)
    create_master_key_file(home / "master.key")  # what an older version made
    old = (home / "master.key").read_text()
    with caplog.at_level(logging.WARNING, logger="software_dna.server"):
        created, _ = initialize(settings)
    assert not created and not settings.key_file.exists()  # no second key elsewhere
    where = locate_master_key(settings)
    assert where.source == "legacy" and where.path == home / "master.key"
    assert any("in the data folder" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="software_dna.server"):
        key = load_master_key(settings)
    assert key and any(str(home / "master.key") in r.getMessage() for r in caplog.records)
    # The CLI prints the warning, and says where the key is.
    capsys.readouterr()
    assert main(["server", "init", "--data-dir", str(home)]) == 0
    out = capsys.readouterr()
    assert f"Master key: {home / 'master.key'} (already there, kept)" in out.out
    assert "warning: The master key is in the data folder" in out.err
    assert (home / "master.key").read_text() == old
    # An explicit key file is used as given, without the old-location search.
    explicit = tmp_path / "elsewhere" / "master.key"
    create_master_key_file(explicit)
    moved = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(home),
                               "SOFTWARE_DNA_MASTER_KEY_FILE": str(explicit)})
    assert locate_master_key(moved).source == "file"
    assert locate_master_key(moved).path == explicit


def test_no_new_master_key_while_encrypted_rows_exist(tmp_path: Path,
                                                      fresh_database_url: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(tmp_path / "data", fresh_database_url)
    assert not keyed_rows_exist(settings)
    initialize(settings)  # the admin API key is a keyed row already
    assert keyed_rows_exist(settings)
    settings.key_file.unlink()  # the key is lost (or was moved)
    with pytest.raises(ConfigError) as refused:
        initialize(settings)
    message = str(refused.value)
    assert str(settings.key_file) in message and str(settings.legacy_key_file) in message
    assert "could not read" in message
    assert not settings.key_file.exists() and not settings.legacy_key_file.exists()
    # The same through the CLI: exit 1, one line, no key made.
    capsys.readouterr()
    code = main(["server", "init", "--data-dir", str(settings.home),
                 "--database-url", fresh_database_url])
    assert code == 1
    err = capsys.readouterr().err
    assert "could not read" in err and len(err.strip().splitlines()) == 1
    assert not settings.key_file.exists()
    # Loading says where it looked, both places.
    with pytest.raises(ConfigError) as missing:
        load_master_key(settings)
    assert str(settings.legacy_key_file) in str(missing.value)


def test_an_empty_database_gets_a_new_key(tmp_path: Path) -> None:
    settings = _settings(tmp_path / "data")
    assert not keyed_rows_exist(settings)
    assert not (settings.home / "server.db").exists()  # looking created nothing
    assert initialize(settings)[0]


def test_another_servers_key_at_the_default_location_is_refused(tmp_path: Path) -> None:
    """The default location is shared by an account's servers: a server whose own key is
    gone must not go on with another one's key found there."""
    settings = _settings(tmp_path / "data")
    initialize(settings)
    ctx = service.Context.from_settings(settings)
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            service.create_product(session, product_id="p")
            service.generate_key(session, ctx, "p")
    finally:
        engine.dispose()
    assert initialize(settings) == (False, None)  # its own key opens it
    settings.key_file.unlink()
    create_master_key_file(settings.key_file)  # another server's key
    with pytest.raises(ConfigError, match="does not open this database"):
        initialize(settings)


def test_staff_alone_make_the_database_keyed(tmp_path: Path) -> None:
    """A staff member's TOTP secret is sealed under the master key: a database holding only
    staff (its admin keys deleted by hand, say) still refuses a new key."""
    settings = _settings(tmp_path / "data")
    initialize(settings)
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            create_staff(session, email="owner@vendor.example",
                                 password="a long enough password", role="owner")
            session.query(AdminApiKey).delete()
            session.commit()
    finally:
        engine.dispose()
    assert keyed_rows_exist(settings)
