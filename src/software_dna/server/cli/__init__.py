"""The ``software-dna`` command: the license server and its administration.

This module is the console script's entry point and imports nothing of the
server stack itself, so that ``software-dna`` installed without the
``server`` extra prints one line saying what to install instead of a
traceback. The Typer application is :mod:`software_dna.server.cli.app`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

__all__ = ["EXIT_BROKEN_PIPE", "INSTALL_HINT", "main", "version_line"]

#: What ``software-dna`` prints when the server extra is not installed.
INSTALL_HINT = ("software-dna: the license server and its tools need the server extra: "
                "install software-dna[server] where you installed software-dna (e.g. pip "
                "install 'software-dna[server]'; from a wheel or a checkout: see "
                "docs/installation.md)")

#: The exit status when standard output is closed early (``software-dna audit | head -1``):
#: 128 + SIGPIPE, what a shell reports for a command that a closed pipe stopped.
EXIT_BROKEN_PIPE = 141

#: Top-level packages of the server extra; a missing one means the extra is not installed.
_EXTRA = frozenset({"typer", "click", "fastapi", "starlette", "pydantic", "pydantic_settings",
                    "pydantic_core", "sqlalchemy", "alembic", "uvicorn", "psycopg"})

#: The top-level help when the server extra is not installed (``-h`` / ``--help``).
_HELP_WITHOUT_EXTRA = """Usage: software-dna [OPTIONS] COMMAND [ARGS]...

  software_dna vendor tooling: the license server and its administration.
  The commands need the server extra: pip install 'software-dna[server]'

Options:
  --version   print the version and exit
  -h, --help  show this message and exit
"""


def version_line() -> str:
    """``software-dna X.Y.Z``: the installed distribution's version (``unknown`` in a bare
    source tree). Needs nothing of the server extra."""
    try:
        number = version("software-dna")
    except PackageNotFoundError:  # a source tree that was never installed
        number = "unknown"
    return f"software-dna {number}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``software-dna`` with ``argv`` (default: the command line); returns the exit status.

    ``--help`` and usage errors raise ``SystemExit`` (0 and 2), as they do on
    the command line. Standard output closed early (a pipe into ``head``)
    ends the command quietly with :data:`EXIT_BROKEN_PIPE`.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            return _main(args)
        finally:
            sys.stdout.flush()  # a closed pipe shows here when the output was short
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_BROKEN_PIPE


def _main(args: list[str]) -> int:
    try:
        # Lazy: the server stack is an extra; without it this line is all that runs.
        from software_dna.server.cli.app import run

        return run(args)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in _EXTRA:
            raise
        if args[:1] == ["--version"]:
            print(version_line())
            return 0
        if args[:1] in (["-h"], ["--help"]):
            print(_HELP_WITHOUT_EXTRA, end="")
            return 0
        print(INSTALL_HINT, file=sys.stderr)
        return 1


def _discard_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # not a real file (a test's capture): nothing to silence
        pass
