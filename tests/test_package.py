"""The package's public surface and import cost."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import software_dna
from software_dna import errors
from software_dna.fingerprint import collect
from software_dna.wire.paseto import SecretKey
from tests.tokens import make_token


def test_all_is_sorted_and_complete() -> None:
    names = software_dna.__all__
    assert names == sorted(names)
    # Submodules appear as attributes once imported; they are not the package's API.
    public = {
        n for n, v in vars(software_dna).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    } - {"annotations"}
    assert public <= set(names), public - set(names)
    for name in names:
        assert hasattr(software_dna, name), name


def test_every_error_is_exported_and_a_license_error() -> None:
    for name in errors.__all__:
        error = getattr(errors, name)
        assert issubclass(error, errors.LicenseError)
        assert name in software_dna.__all__
        assert name in (errors.__doc__ or ""), f"{name} missing from the tree in the docstring"


def test_import_does_not_load_requests_or_server() -> None:
    code = (
        "import sys, json, software_dna; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('requests', 'urllib3', 'fastapi', 'sqlalchemy', 'uvicorn', 'starlette', 'pydantic', "
        "'alembic', 'psycopg') or m.startswith('software_dna.server'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# Modules the start-up path (import + an offline check()) used to load without
# needing them; see docs/performance.md ("Client cold start: what was done, what is left").
_NOT_AT_START_UP = [
    "dataclasses", "inspect", "ast", "dis", "tokenize",  # dataclasses and what it imports
    "secrets", "random",  # nonces and ids are made only when writing or going online
    "filelock",  # only when the store is written
    "requests", "urllib3",  # only when the server is contacted
]
# Read from os.uname() and the XDG variables on Linux instead (other systems use them).
_NOT_AT_START_UP_LINUX = ["platform", "socket", "platformdirs", "tempfile", "shutil"]


def test_start_up_check_loads_no_heavy_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh process doing import + check() on an installed token (the app's cold start).

    Default store and witness folders (no SOFTWARE_DNA_HOME / _STATE_HOME), a
    server URL (not contacted: no refresh is due). Not a timing test: it checks
    that what check() does not need is not imported.
    """
    for name in ("SOFTWARE_DNA_HOME", "SOFTWARE_DNA_STATE_HOME", "XDG_DATA_HOME",
                 "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    product = "startup-product"
    key = SecretKey.generate()
    public = key.public_key.to_paserk()
    client = software_dna.LicenseClient(product=product, public_keys=[public],
                                        server_url="https://license.example.invalid")
    client.install_token(make_token(key, product, collect(product)))
    assert client.store_path.is_relative_to(tmp_path)

    code = (
        "import json, sys\n"
        "import software_dna\n"
        f"client = software_dna.LicenseClient(product={product!r}, public_keys=[{public!r}], "
        "server_url='https://license.example.invalid')\n"
        "assert client.check().license_id == 'lic_1'\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    loaded = set(json.loads(out.stdout))
    unwanted = _NOT_AT_START_UP + (_NOT_AT_START_UP_LINUX if sys.platform == "linux" else [])
    assert sorted(loaded & set(unwanted)) == []


def test_requests_floor_excludes_the_cve_2024_35195_versions() -> None:
    """requests before 2.32.0 kept a session's ``verify=False`` for later requests to
    the same host (CVE-2024-35195); 2.32.0 and 2.32.1 are yanked; before 2.32.4 a crafted
    URL could leak ``.netrc`` credentials (CVE-2024-47081): the floor is 2.32.4."""
    wanted = [Requirement(r) for r in requires("software-dna") or []
              if Requirement(r).name == "requests" and Requirement(r).marker is None]
    assert wanted, "software-dna does not require requests"
    specifier = wanted[0].specifier
    assert "2.32.4" in specifier
    for excluded in ("2.31.0", "2.32.0", "2.32.1", "2.32.3"):
        assert excluded not in specifier
