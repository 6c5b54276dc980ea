"""Attack review: the vendor's CLI with a master key that is not the database's.

One account running several servers shares the default key location (docs/server.md);
`server init` and `server run` refuse a key that opens none of the database's signing keys.
The vendor commands in direct mode (`licenses issue`, `keys generate`, ...) do not: they
write rows under the wrong key into a database encrypted under another, after which the
server answers 500 for that product and the issued license key does not exist.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from software_dna.server.bootstrap import initialize
from software_dna.server.cli import main
from software_dna.server.config import Settings
from software_dna.server.crypto import create_master_key_file

pytestmark = pytest.mark.usefixtures("own_key_folder")


@pytest.mark.parametrize("command", [
    ["keys", "generate", "acme"],
    ["licenses", "issue", "acme"],
])
def test_vendor_cli_refuses_a_master_key_that_does_not_open_the_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str],
        capsys: pytest.CaptureFixture[str]) -> None:
    home = tmp_path / "data"
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(home))
    initialize(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(home)}))
    assert main(["products", "create", "acme"]) == 0
    assert main(["keys", "generate", "acme"]) == 0  # a signing key under the server's key
    other = tmp_path / "other-server" / "master.key"
    create_master_key_file(other)  # another server's key, e.g. the shared default location
    monkeypatch.setenv("SOFTWARE_DNA_MASTER_KEY_FILE", str(other))
    assert os.environ["SOFTWARE_DNA_MASTER_KEY_FILE"] == str(other)
    capsys.readouterr()
    code = main(command)
    out = capsys.readouterr()
    assert code != 0, out.out
