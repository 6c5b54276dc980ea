"""Running one vendor command: its connection options, its backend, its errors.

:func:`vendor_command` turns ``func(backend, ...) -> exit code`` into a Typer
command that also takes the connection options (``--data-dir``,
``--database-url``, ``--server-url``, ``--admin-key``), opens the backend
they choose (:func:`~software_dna.server.cli.backend.open_backend`) and runs
``func`` through :func:`execute`, which turns every failure into one line on
stderr and an exit code:

* a refusal (:class:`~._common.Refused`): its message, by its protocol code
  (``not_found`` names what was not found with the value given), exit 1;
* a :class:`~._common.CliError`: its message and exit 1; a usage error
  (code 2) is shown as click shows its own: the command's usage line, the
  ``-h`` hint, then ``Error: ...``, exit 2;
* anything else: one line, exit 1 (``SOFTWARE_DNA_DEBUG=1``: the traceback);
  but a closed standard output (``BrokenPipeError``) goes on to
  :func:`software_dna.server.cli.main`, which ends quietly.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import typer
from pydantic import SecretStr

from software_dna.server.cli._common import (
    ENV_ADMIN_KEY,
    ENV_CA_FILE,
    ENV_DEBUG,
    ENV_SERVER_URL,
    PROG,
    CliError,
    Refused,
)
from software_dna.server.cli.backend import Backend, Connection, open_backend
from software_dna.wire.codes import Code

__all__ = ["UsageError", "execute", "refusal_message", "vendor_command"]

_CONNECTION = [
    inspect.Parameter("data_dir", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
            "--data-dir", "--home", metavar="DIR", show_default=False,
            help="the server's data folder (master key; SQLite database unless DATABASE_URL "
                 "is set) (env SOFTWARE_DNA_SERVER_HOME)")]),
    inspect.Parameter("database_url", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--database-url", metavar="URL", show_default=False,
                          help="the server's database (env DATABASE_URL)")]),
    inspect.Parameter("server_url", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--server-url", metavar="URL", show_default=False,
                          help=f"use this server's admin API (env {ENV_SERVER_URL})")]),
    inspect.Parameter("admin_key", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--admin-key", metavar="KEY", show_default=False,
                          help=f"the admin API key for --server-url (env {ENV_ADMIN_KEY}; "
                               "prefer the variable: arguments are visible to other users)")]),
    inspect.Parameter("ca_file", inspect.Parameter.KEYWORD_ONLY, default=None,
                      annotation=Annotated[str | None, typer.Option(
                          "--ca-file", metavar="PEM", show_default=False,
                          help="trust this CA bundle for an https:// --server-url (a private "
                               f"CA; default: the system's) (env {ENV_CA_FILE})")]),
]
_CONNECTION_NAMES = frozenset(p.name for p in _CONNECTION)
#: The click context, which Typer passes to a parameter of this type (for usage errors).
_CONTEXT = inspect.Parameter("typer_context", inspect.Parameter.KEYWORD_ONLY,
                             annotation=typer.Context)


class UsageError(typer.BadParameter):
    """A usage error of a whole command (not of one option): the usage, then ``Error: ...``."""

    def format_message(self) -> str:
        """The message as it is (``BadParameter`` would add ``Invalid value:``)."""
        return self.message

#: ``not_found``'s ``details["kind"]`` -> the parameter that named it.
_NAMED_BY = {
    "product": "product",
    "license": "license",
    "activation": "activation",
    "end user": "end_user",
    "signing key": "kid",
    "trial": "trial",
}


def vendor_command(func: Callable[..., int]) -> Callable[..., int]:
    """The Typer command of ``func(backend, **options)``: connection options added.

    ``func``'s other parameters are the command's own arguments and options;
    the returned function takes those plus the connection options, opens the
    backend and runs ``func`` through :func:`execute`.
    """
    signature = inspect.signature(func, eval_str=True)
    own = list(signature.parameters.values())[1:]

    @functools.wraps(func)
    def command(**options: Any) -> int:
        context = options.pop(_CONTEXT.name, None)
        key = options.pop("admin_key", None)
        conn = Connection(data_dir=options.pop("data_dir", None),
                          database_url=options.pop("database_url", None),
                          server_url=options.pop("server_url", None),
                          admin_key=SecretStr(key) if key else None,
                          ca_file=options.pop("ca_file", None))
        return execute(conn, lambda backend: func(backend, **options), options, context)

    parameters = [*own, *_CONNECTION, _CONTEXT]
    command.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__annotations__["return"] = int
    return command


def refusal_message(exc: Refused, named: Mapping[str, Any]) -> str:
    """The one line of a refusal; ``not_found`` names the value given for what was not found."""
    kind = exc.details.get("kind")
    if exc.code == Code.NOT_FOUND and isinstance(kind, str):
        value = named.get(_NAMED_BY.get(kind, ""))
        if isinstance(value, str):
            return f"No such {kind}: {value!r}."
    return f"{exc.message} ({exc.code})" if exc.code else exc.message


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _describe(exc: Exception) -> str:
    if isinstance(exc, ValueError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    return f"unexpected {type(exc).__name__}: {exc} (set {ENV_DEBUG}=1 for the traceback)"


def execute(conn: Connection, run: Callable[[Backend], int], named: Mapping[str, Any],
            context: typer.Context | None = None) -> int:
    """Run ``run(backend)`` on the backend ``conn`` chooses; returns the exit code.

    ``named`` are the command's arguments (to name what was not found);
    ``context`` is the command's click context (for the usage line of a usage error).
    Every failure becomes one line on stderr (see the module's doc).

    Raises:
        UsageError: a usage error (exit 2), when ``context`` is given.
    """
    try:
        with open_backend(conn) as backend:
            return run(backend)
    except Refused as exc:
        _error(refusal_message(exc, named))
        return 1
    except CliError as exc:
        if exc.code == 2 and context is not None:
            raise UsageError(exc.message, ctx=context) from None
        _error(exc.message)
        return exc.code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:  # stdout closed early: main() ends quietly
        raise
    except Exception as exc:
        if os.environ.get(ENV_DEBUG):
            raise
        _error(_describe(exc))
        return 1
