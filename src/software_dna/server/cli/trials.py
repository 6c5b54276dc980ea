"""``software-dna trials``: the machines that used a product's trial."""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import Json, ProductId
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_listing, print_result

__all__ = ["app"]

app = typer.Typer(
    name="trials", no_args_is_help=True, rich_markup_mode=None,
    short_help="list and forget trial machines",
    help="Trials: the machines that used a product's trial (fingerprint ids only).")


@app.command("list", short_help="list a product's trial machines")
@vendor_command
def list_(backend: Backend, *, product: ProductId, as_json: Json = False) -> int:
    """List the machines that started a trial of the product, newest first."""
    print_listing({"trials": backend.list_trials(product)}, "trials", as_json=as_json,
                  empty="No trials.", headers=["ID", "LICENSE", "FINGERPRINT", "STARTED"],
                  row=lambda t: [t.get("id"), t.get("license_id"), t.get("fingerprint_id"),
                                 t.get("created_at")])
    return 0


@app.command("remove", short_help="forget a trial machine")
@vendor_command
def remove(backend: Backend, *,
           trial: Annotated[str, typer.Argument(metavar="TRIAL_ID", show_default=False,
                                                help="the trial id (trl_…)")],
           as_json: Json = False) -> int:
    """Forget a trial machine: its trial license is revoked and it may start a new trial (for
    your own test machines, or a support case)."""
    removed = backend.remove_trial(trial)
    print_result(removed, as_json=as_json,
                 headline=f"Trial {removed.get('id')} forgotten: its license "
                          f"{removed.get('license_id')} is revoked, and the machine may start "
                          "a new trial.")
    return 0
