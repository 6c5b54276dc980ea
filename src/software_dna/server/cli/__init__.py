"""The ``software-dna`` command: the license server and its administration.

This module is the console script's entry point and imports nothing of the
server stack itself, so that ``software-dna`` installed without the
``server`` extra prints one line saying what to install instead of a
traceback. The Typer application is :mod:`software_dna.server.cli.app`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["INSTALL_HINT", "main"]

#: What ``software-dna`` prints when the server extra is not installed.
INSTALL_HINT = ("software-dna: the license server and its tools need the server extra: "
                "pip install 'software-dna[server]'")

#: Top-level packages of the server extra; a missing one means the extra is not installed.
_EXTRA = frozenset({"typer", "click", "fastapi", "starlette", "pydantic", "pydantic_settings",
                    "pydantic_core", "sqlalchemy", "alembic", "uvicorn", "psycopg"})


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``software-dna`` with ``argv`` (default: the command line); returns the exit status.

    ``--help`` and usage errors raise ``SystemExit`` (0 and 2), as they do on
    the command line.
    """
    try:
        # Lazy: the server stack is an extra; without it this line is all that runs.
        from software_dna.server.cli.app import run

        return run(argv)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] not in _EXTRA:
            raise
        print(INSTALL_HINT, file=sys.stderr)
        return 1
