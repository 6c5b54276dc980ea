"""``software-dna end-users``: find, export and erase end users' personal data."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from software_dna.server.cli._common import PROG, CliError, Json, confirm
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import (
    format_value,
    print_fields,
    print_json,
    print_line,
    print_listing,
    print_result,
)

__all__ = ["app"]

app = typer.Typer(
    name="end-users", no_args_is_help=True, rich_markup_mode=None,
    short_help="find, export and erase end users' data",
    help="End users' personal data (email, registration details, settings), given only with "
         "consent: find by email, export everything held (GDPR access), erase (their licenses "
         "keep working in limited mode).")

EndUserId = Annotated[str, typer.Argument(metavar="ID", help="the end user id (eu_…)",
                                          show_default=False)]


@app.command("find", short_help="find end users by email")
@vendor_command
def find(backend: Backend, *,
         email: Annotated[str, typer.Option("--email", metavar="E", show_default=False,
                                            help="the email address")],
         as_json: Json = False) -> int:
    """Find end users by email address (trimmed, case-insensitive). Prints ids only."""
    print_listing(
        {"end_users": backend.find_end_users(email)}, "end_users", as_json=as_json,
        empty="No end user with that email address.",
        headers=["ID", "CREATED", "CONSENT", "ERASED"],
        row=lambda u: [u.get("id"), u.get("created_at"), u.get("consent_at"),
                       u.get("erased_at")],
    )
    return 0


@app.command("export", short_help="print everything held about one")
@vendor_command
def export(backend: Backend, *, end_user: EndUserId, as_json: Json = False) -> int:
    """Print everything held about an end user (GDPR access). Use --json for a file to hand
    over."""
    data = backend.export_end_user(end_user)
    if as_json:
        print_json(data)
        return 0
    print_fields([
        ("id", data.get("id")),
        ("email", data.get("email")),
        ("consent given", data.get("consent_at")),
        ("created", data.get("created_at")),
        ("erased", data.get("erased_at")),
    ])
    registration = data.get("registration") or {}
    print_line("registration:" + ("" if registration else " -"))
    for key, value in sorted(registration.items()):
        print_line(f"  {key}: {value}")
    activations = data.get("activations") or []
    print_line("activations:" + ("" if activations else " -"))
    for a in activations:
        client = a.get("client") or {}
        print_line(f"  {a.get('id')}  license {a.get('license_id')} ({a.get('product')})  "
                   f"created {a.get('created_at')}  last seen {a.get('last_seen_at')}  "
                   f"{'active' if a.get('deactivated_at') is None else 'deactivated'}  "
                   f"sdk {format_value(client.get('sdk_version'))} / "
                   f"{format_value(client.get('os'))} / "
                   f"python {format_value(client.get('python'))}")
    settings = data.get("settings") or {}
    print_line("settings:" + ("" if settings else " -"))
    for license_id, document in sorted(settings.items()):
        print_line(f"  {license_id}: {json.dumps(document, sort_keys=True, ensure_ascii=False)}")
    return 0


@app.command("erase", short_help="erase one end user's personal data")
@vendor_command
def erase(backend: Backend, *, end_user: EndUserId,
          yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
          as_json: Json = False) -> int:
    """Erase an end user's email, registration details, settings and activation password
    hashes. Their licenses keep working in limited mode. Asks for confirmation unless --yes is
    given."""
    if not yes and not confirm(f"Erase every piece of personal data of end user {end_user}? "
                               "This cannot be undone. [y/N] "):
        raise CliError("Not erased: confirm with --yes.", code=1)
    backend.erase_end_user(end_user)
    print_result({"ok": True, "end_user_id": end_user}, as_json=as_json,
                 headline=f"Erased the personal data of end user {end_user}. Their licenses "
                          "keep working in limited mode; a license that had an activation "
                          f"password needs a new one (`{PROG} licenses password`).")
    return 0
