"""``software-dna lockouts``: show and lift re-activation lock-outs (docs/seats.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import CliError, Json
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import format_duration, print_fields, print_json, print_line

__all__ = ["app"]

app = typer.Typer(
    name="lockouts", no_args_is_help=True, rich_markup_mode=None,
    short_help="show and reset re-activation lock-outs",
    help="Re-activation lock-out: a license that takes more new activations than its seats "
         "plus the product's re-activation limit within the period, or a client address past "
         "the product's per-address limit, is locked until the oldest counted activation "
         "leaves the period. Reset it here.")


@app.command("show", short_help="show a license's lock-out")
@vendor_command
def show(backend: Backend, *,
         license: Annotated[str, typer.Argument(metavar="LICENSE_ID", show_default=False,
                                                help="the license id (lic_…)")],
         as_json: Json = False) -> int:
    """Show how many new activations a license had in the product's period, how many it may
    have, and until when it is locked."""
    answer = backend.lockout(license)
    if as_json:
        print_json(answer)
        return 0
    allowed = answer.get("allowed")
    print_fields([
        ("license", answer.get("license_id")),
        ("new activations", f"{answer.get('activations_in_period')} in the last "
                            f"{format_duration(answer.get('period'))}"),
        ("allowed", "no lock-out (the product has no re-activation limit)"
         if allowed is None else str(allowed)),
        ("locked until", answer.get("locked_until") or "not locked"),
    ])
    return 0


@app.command("reset", short_help="lift a lock-out")
@vendor_command
def reset(
    backend: Backend, *,
    license: Annotated[str | None, typer.Option("--license", metavar="ID", show_default=False,
                                                help="the license id (lic_…)")] = None,
    address: Annotated[str | None, typer.Option(
        "--address", metavar="IP", show_default=False,
        help="the client address (as the server sees it, e.g. behind a proxy with "
             "--forwarded-allow-ips)")] = None,
    as_json: Json = False,
) -> int:
    """Lift the lock-out of a license and/or a client address: its recorded activations and
    attempt counters are forgotten."""
    if license is None and address is None:
        raise CliError("Name what to unlock: --license ID, --address IP, or both.", code=2)
    answer = backend.reset_lockout(license_id=license, address=address)
    if as_json:
        print_json(answer)
    else:
        what = " and ".join(w for w in (f"license {license}" if license else "",
                                        f"address {address}" if address else "") if w)
        print_line(f"Unlocked {what}: {answer.get('removed')} recorded activation(s) forgotten.")
    return 0
