"""``software-dna staff``: the control panel's staff accounts (add, list, role, reset, remove).

A staff member is named by email address (or id, ``stf_…``).  Generated
passwords are printed once; the staff member chooses their own at the next
sign-in.  Through the admin API (``--server-url``) this needs an owner key.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from software_dna.server.cli._common import CliError, Json, JSONDict, Refused, choice, confirm
from software_dna.server.cli._common import read_secret as _read_secret
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import format_value, print_listing, print_result
from software_dna.server.domain.roles import role_names

__all__ = ["app"]

app = typer.Typer(
    name="staff", no_args_is_help=True, rich_markup_mode=None,
    short_help="manage the control panel's staff accounts",
    help="Staff accounts of the control panel (/panel): owner, admin, support, developer, "
         "read_only (see docs/server.md for what each may do).")

_ROLES = "|".join(role_names())
Email = Annotated[str, typer.Argument(metavar="EMAIL", show_default=False,
                                      help="the staff member's email address (or stf_… id)")]
RoleArg = Annotated[str, typer.Argument(metavar=f"[{_ROLES}]", parser=choice(*role_names()),
                                        show_default=False, help="the role")]


def _staff_id(backend: Backend, who: str) -> str:
    """The id of the staff member ``who`` names (an address or an id)."""
    if who.startswith("stf_"):
        return who
    address = who.strip().lower()
    for row in backend.list_staff():
        if row.get("email") == address:
            return str(row["id"])
    raise Refused("not_found", f"No staff member {who}.", None)


def _password_lines(data: JSONDict, what: str) -> None:
    password = data.get("password")
    if password:
        print(f"{what} (shown once; they choose their own at the next sign-in):")
        print(password)


@app.command("add", short_help="add a staff member")
@vendor_command
def add(backend: Backend, *, email: Email,
        role: Annotated[str, typer.Option("--role", metavar=f"[{_ROLES}]",
                                          parser=choice(*role_names()), show_default=False,
                                          help="their role")],
        name: Annotated[str, typer.Option("--name", help="their display name")] = "",
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin",
            help="read their initial password from the first line of standard input "
                 "(else one is generated and printed once)")] = False,
        as_json: Json = False) -> int:
    """Add a staff member who signs in to the panel with EMAIL. Without --password-stdin a
    random password is printed once, and they must choose their own at the first sign-in."""
    password = _read_secret(sys.stdin, "password") if password_stdin else None
    data = backend.add_staff(email, role=role, name=name, password=password)
    member = data["staff"]
    print_result(data, as_json=as_json,
                 headline=f"Staff member {member['email']} added ({member['role']}).",
                 show=lambda d: _password_lines(d, "Password"))
    return 0


@app.command("list", short_help="list the staff members")
@vendor_command
def list_(backend: Backend, *, as_json: Json = False) -> int:
    """List the staff members (removed ones are not shown)."""
    print_listing({"staff": backend.list_staff()}, "staff", as_json=as_json,
                  empty="No staff members.",
                  headers=["EMAIL", "NAME", "ROLE", "2FA", "LAST SIGN-IN", "ID"],
                  row=lambda s: [s.get("email"), s.get("name") or "-", s.get("role"),
                                 "on" if s.get("totp") else "off",
                                 format_value(s.get("last_sign_in_at")), s.get("id")])
    return 0


@app.command("role", short_help="change a staff member's role")
@vendor_command
def role_(backend: Backend, *, email: Email, role: RoleArg, as_json: Json = False) -> int:
    """Give a staff member another role (effective at their next request). The last owner
    keeps theirs."""
    changed = backend.set_staff_role(_staff_id(backend, email), role)
    print_result(changed, as_json=as_json,
                 headline=f"Staff member {changed['email']} is now {changed['role']}.")
    return 0


@app.command("reset", short_help="give a staff member a new password")
@vendor_command
def reset(backend: Backend, *, email: Email,
          clear_totp: Annotated[bool, typer.Option(
              "--clear-totp", help="also turn their two-step sign-in off (a lost phone)")
          ] = False,
          as_json: Json = False) -> int:
    """Give a staff member a new random password, printed once; their sessions end and they
    choose their own at the next sign-in."""
    data = backend.reset_staff(_staff_id(backend, email), clear_totp=clear_totp)
    extra = " Two-step sign-in is off." if clear_totp else ""
    print_result(data, as_json=as_json,
                 headline=f"Password of {data['staff']['email']} reset; their sessions "
                          f"ended.{extra}",
                 show=lambda d: _password_lines(d, "New password"))
    return 0


@app.command("remove", short_help="remove a staff member")
@vendor_command
def remove(backend: Backend, *, email: Email,
           yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
           as_json: Json = False) -> int:
    """Remove a staff member: they can no longer sign in and their sessions end (the audit
    log keeps naming them). The last owner cannot be removed. Asks unless --yes is given."""
    staff_id = _staff_id(backend, email)
    if not yes and not confirm(f"Remove staff member {email}? They can no longer sign in. "
                               "[y/N] "):
        raise CliError("Not removed: confirm with --yes.", code=1)
    removed = backend.remove_staff(staff_id)
    print_result(removed, as_json=as_json,
                 headline=f"Staff member {removed['email']} removed.")
    return 0
