"""``software-dna activations``: list and remove the machines using a license's seats."""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import Json
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import (
    activation_state,
    print_listing,
    print_result,
    sharing_flag,
)

__all__ = ["app"]

app = typer.Typer(name="activations", no_args_is_help=True, rich_markup_mode=None,
                  short_help="list and remove activations",
                  help="Activations: the machines using a license's seats.")


@app.command("list", short_help="list a license's activations")
@vendor_command
def list_(backend: Backend, *,
          license: Annotated[str, typer.Argument(metavar="LICENSE_ID", show_default=False,
                                                 help="the license id (lic_…)")],
          as_json: Json = False) -> int:
    """List a license's activations, removed and deactivated ones included.

    MODE is what the machine's tokens really say: ``full``, ``limited`` (after an
    erasure of the license or of that activation, until restored), with
    ", air-gapped" added for an air-gapped activation's (offline) tokens.
    """
    print_listing(
        {"activations": backend.list_activations(license)}, "activations",
        as_json=as_json, empty=f"License {license} has no activations.",
        headers=["ID", "STATE", "FINGERPRINT", "CREATED", "LAST SEEN", "END USER", "MODE",
                 "SHARED"],
        row=lambda a: [a.get("id"), activation_state(a), a.get("fingerprint_id"),
                       a.get("created_at"), a.get("last_seen_at"), a.get("end_user_id"),
                       token_mode(a), sharing_flag(a)],
    )
    return 0


def token_mode(a: dict[str, object]) -> str:
    """The MODE column: the server's ``mode`` (or, from an older server, ``erased``),
    ``, air-gapped`` for air-gapped (offline) tokens."""
    mode = a.get("mode") or ("limited" if a.get("erased") else "full")
    return f"{mode}, air-gapped" if a.get("offline") else str(mode)


@app.command("remove", short_help="remove an activation")
@vendor_command
def remove(backend: Backend, *,
           activation: Annotated[str, typer.Argument(metavar="ACTIVATION_ID",
                                                     show_default=False,
                                                     help="the activation id")],
           as_json: Json = False) -> int:
    """Remove an activation: its seat is free and the machine is refused at its next
    validation."""
    removed = backend.remove_activation(activation)
    print_result(removed, as_json=as_json,
                 headline=f"Removed activation {activation}: its seat is free, and the "
                          "machine is told at its next validation.")
    return 0
