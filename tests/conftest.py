"""Shared pytest configuration.

Fixtures that start the reference server live in ``tests/fixtures_server.py``
(a subprocess), ``tests/inprocess.py`` (the app in this process, no socket) and
``tests/threaded.py`` (the app in this process behind a socket) and are
loaded as plugins, so every test module can use them.
"""

import os
import tempfile
from collections.abc import Iterator

import pytest

# A license server's master key goes to the user config folder by default
# (software_dna.server.config.default_key_file): never the real one, for module- and
# session-scoped fixtures too (each test then gets its own, below).
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="sdna-config-")

pytest_plugins = ["tests.fixtures_server", "tests.inprocess", "tests.threaded",
                  "software_dna.testing.plugin"]


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


@pytest.fixture(autouse=True)
def _server_key_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each test gets its own user config folder (XDG_CONFIG_HOME), where a license server's
    master key goes by default (software_dna.server.config.default_key_file).

    No test writes a key to the real user config folder, nor reads another test's key.
    """
    old = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("config"))
    yield
    if old is None:
        os.environ.pop("XDG_CONFIG_HOME", None)
    else:
        os.environ["XDG_CONFIG_HOME"] = old
