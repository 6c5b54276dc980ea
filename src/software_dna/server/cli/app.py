"""The ``software-dna`` Typer application: every command group, ``--version``, exit codes.

This is the only module that imports the command modules (one per noun);
they import :mod:`._common`, :mod:`.backend`, :mod:`.command` and
:mod:`.output`, never each other or this module.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperArgument

from software_dna.server.cli import (
    activations,
    admin_keys,
    audit,
    end_users,
    keys,
    licenses,
    lockouts,
    mail,
    offline,
    products,
    renewal_codes,
    server,
    staff,
    stores,
    test_codes,
    trials,
    version_line,
    webhooks,
)
from software_dna.server.cli._common import PROG
from software_dna.server.cli.command import UsageError

__all__ = ["app", "run"]

app = typer.Typer(
    name=PROG, no_args_is_help=True, rich_markup_mode=None, add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="software_dna vendor tooling: the license server and its administration (products, "
         "signing keys, licenses, activations, end users, audit log).\n\n"
         "Vendor commands work on the server's database (SOFTWARE_DNA_SERVER_HOME, "
         "DATABASE_URL) or, with --server-url (or SOFTWARE_DNA_SERVER_URL), through a "
         "server's admin API. Exit status: 0 success, 1 refused / failed, 2 usage.")


def _version(value: bool) -> None:
    if value:
        print(version_line())
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True,
        help="print the version and exit")] = False,
) -> None:
    """The root of the command tree (its options come before the command)."""


app.add_typer(server.app)
app.add_typer(products.app)
app.add_typer(keys.app)
app.add_typer(licenses.app)
app.add_typer(activations.app)
app.add_typer(end_users.app)
app.command("audit", short_help="show the audit log")(audit.audit)
app.add_typer(test_codes.app)
app.add_typer(renewal_codes.app)
app.add_typer(trials.app)
app.add_typer(lockouts.app)
app.add_typer(offline.app)
app.add_typer(mail.app)
app.add_typer(stores.app)
app.add_typer(webhooks.app)
app.add_typer(staff.app)
app.add_typer(admin_keys.app)


class _PlainArgument(TyperArgument):
    """An argument shown in the usage line as ``ID`` (optional: ``[ID]``), not ``{ID}``."""

    def get_usage_pieces(self, ctx: object) -> list[str]:
        """``NAME``, ``[NAME]`` when optional, with ``...`` when it takes several values."""
        name = self.display_name_raw if self.required else f"[{self.display_name_raw}]"
        return [name + ("..." if self.nargs != 1 else "")]


def _plain_usage(command: Any) -> None:
    """Show the arguments of ``command`` and its subcommands the way the docs write them."""
    for param in command.params:
        if type(param) is TyperArgument:
            param.__class__ = _PlainArgument
    for sub in getattr(command, "commands", {}).values():
        _plain_usage(sub)


def run(argv: Sequence[str] | None = None) -> int:
    """Run ``software-dna`` with ``argv``; returns the command's exit status.

    ``--help`` and ``--version`` raise ``SystemExit(0)``; a usage error prints
    the usage and the error on stderr and raises ``SystemExit(2)`` when click
    found it (an unknown or malformed option), or returns 2 when the command
    did (:class:`~.command.UsageError`: conflicting options, nothing to do).
    """
    command = typer.main.get_command(app)
    _plain_usage(command)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with command.make_context(PROG, args) as ctx:
            result = command.invoke(ctx)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except UsageError as exc:  # found by the command itself: returned, as any exit code
        exc.show()
        return exc.exit_code
    except typer.TyperException as exc:  # a usage error: the usage, then "Error: ..."
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            print(f"Error: {exc.format_message()}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        print(f"{PROG}: error: interrupted", file=sys.stderr)
        return 130
    return result if isinstance(result, int) else 0
