"""The package's public surface and import cost."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import software_dna
from software_dna import errors


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
