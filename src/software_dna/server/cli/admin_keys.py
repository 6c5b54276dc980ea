"""``software-dna admin-keys``: scoped admin API keys (create, list, revoke).

Each tool or person gets a key of its own with a role; a key is printed once.
Through the admin API (``--server-url``) this needs an owner key.
"""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import Json, choice
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_listing, print_result
from software_dna.server.domain.roles import role_names

__all__ = ["app"]

app = typer.Typer(
    name="admin-keys", no_args_is_help=True, rich_markup_mode=None,
    short_help="manage scoped admin API keys",
    help="Admin API keys, each with a role (owner, admin, support, developer, read_only): "
         "what a request with it may do.")

_ROLES = "|".join(role_names())


@app.command("create", short_help="make an admin API key for a role")
@vendor_command
def create(backend: Backend, *,
           role: Annotated[str, typer.Option("--role", metavar=f"[{_ROLES}]",
                                             parser=choice(*role_names()), show_default=False,
                                             help="what the key may do")],
           name: Annotated[str, typer.Option("--name", metavar="NAME", show_default=False,
                                             help="who or what uses the key")],
           as_json: Json = False) -> int:
    """Make an admin API key; it is printed once (only its keyed hash is kept)."""
    data = backend.create_api_key(role=role, name=name)
    made = data["api_key"]

    def show(d: dict[str, object]) -> None:
        print("Admin API key (shown once; store it safely):")
        print(d["key"])

    print_result(data, as_json=as_json,
                 headline=f"Admin API key {made['id']} ({made['role']}, {made['name']!r}) made.",
                 show=show)
    return 0


@app.command("list", short_help="list the admin API keys in use")
@vendor_command
def list_(backend: Backend, *, as_json: Json = False) -> int:
    """List the usable admin API keys: id, role, name, when made (never the keys)."""
    print_listing({"api_keys": backend.list_api_keys()}, "api_keys", as_json=as_json,
                  empty="No admin API key is in use.", headers=["ID", "ROLE", "NAME", "CREATED"],
                  row=lambda k: [k.get("id"), k.get("role"), k.get("name") or "-",
                                 k.get("created_at")])
    return 0


@app.command("revoke", short_help="revoke an admin API key")
@vendor_command
def revoke(backend: Backend, *,
           key_id: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                                 help="the key's id (adk_…)")],
           as_json: Json = False) -> int:
    """Revoke an admin API key: requests with it are refused from now on."""
    row = backend.revoke_api_key(key_id)
    print_result(row, as_json=as_json, headline=f"Admin API key {row['id']} revoked.")
    return 0
