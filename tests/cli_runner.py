"""Running the ``software-dna`` CLI inside the test process, as a shell would.

``run_cli`` calls :func:`software_dna.server.cli.main` with the arguments,
with stdin given, and returns its exit code and both outputs; a traceback on
stderr fails the test (the CLI maps every error to a message).
"""

from __future__ import annotations

import io
import json
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from software_dna.server import cli
from software_dna.server.cli import _common

__all__ = ["ENV_CLEARED", "cli_json", "cli_ok", "init_server_home", "run_cli"]

#: The variables that choose a backend: cleared before a CLI test sets its own.
ENV_CLEARED = ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL", "SOFTWARE_DNA_MASTER_KEY",
               "SOFTWARE_DNA_MASTER_KEY_FILE", _common.ENV_SERVER_URL, _common.ENV_ADMIN_KEY)


def run_cli(*argv: str, stdin: str = "") -> tuple[int, str, str]:
    """Run ``software-dna *argv``; returns ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = cli.main(list(argv))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdin = old
    assert "Traceback" not in err.getvalue()
    return code, out.getvalue(), err.getvalue()


def cli_ok(*argv: str, stdin: str = "") -> str:
    """Run the CLI and require exit code 0; returns stdout."""
    code, out, err = run_cli(*argv, stdin=stdin)
    assert code == 0, (argv, err)
    return out


def cli_json(*argv: str) -> Any:
    """Run the CLI with ``--json`` and require exit code 0; returns the parsed output."""
    return json.loads(cli_ok(*argv, "--json"))


def init_server_home(folder: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the environment at a new server in ``folder`` on ``database_url`` (the backend
    variables cleared first) and run ``server init`` there; returns ``folder``."""
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(folder))
    monkeypatch.setenv("DATABASE_URL", database_url)
    cli_ok("server", "init")
    return folder
