"""Shared pytest configuration.

Fixtures that start the reference server live in ``tests/fixtures_server.py``
(a subprocess), ``tests/inprocess.py`` (the app in this process, no socket) and
``tests/threaded.py`` (the app in this process behind a socket) and are
loaded as plugins, so every test module can use them; so is ``machine``, an
air-gapped app per name (``tests/airgapped.py``).
"""

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tools.catalogues import compile_catalogues

# A license server's master key goes to the user config folder by default
# (software_dna.server.config.default_key_file): never the real one. One folder for the
# whole run (module-scoped servers keep finding their key); a test that creates, moves or
# deletes the default key sets XDG_CONFIG_HOME to a folder of its own (own_key_folder).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="sdna-config-")


@pytest.fixture
def own_key_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user config folder of this test's own (XDG_CONFIG_HOME): its default master key."""
    folder = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder

pytest_plugins = ["tests.fixtures_server", "tests.inprocess", "tests.threaded",
                  "tests.airgapped", "software_dna.testing.plugin"]


@pytest.fixture(autouse=True)
def _witness_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test gets its own folder for the SDK's rollback witness (software_dna.client.rollback).

    Keeps witness files out of the real home and tests independent of each other.
    """
    old = os.environ.get("SOFTWARE_DNA_STATE_HOME")
    os.environ["SOFTWARE_DNA_STATE_HOME"] = str(tmp_path_factory.mktemp("witness"))
    yield
    if old is None:
        os.environ.pop("SOFTWARE_DNA_STATE_HOME", None)
    else:
        os.environ["SOFTWARE_DNA_STATE_HOME"] = old



@pytest.fixture(scope="session", autouse=True)
def _catalogues() -> None:
    """The compiled message catalogues (.mo files are build artefacts): each ``.po`` newer
    than its ``.mo`` is compiled before the first test, as the build does."""
    compile_catalogues()
