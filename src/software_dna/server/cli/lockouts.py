"""``software-dna lockouts``: every limit that locks a license out, and lifting them
(docs/seats.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from software_dna.server.cli._common import CliError, Json
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import (
    format_duration,
    print_fields,
    print_json,
    print_line,
    print_table,
)

__all__ = ["app"]

app = typer.Typer(
    name="lockouts", no_args_is_help=True, rich_markup_mode=None,
    short_help="show and reset lock-outs (re-activations, attempts, client networks)",
    help="Every limit that can refuse a license: the re-activation lock-out (more new "
         "activations than its seats plus the product's re-activation limit within the "
         "period), its activation and password attempts (password guessing), renewal "
         "attempts, reset mails, and -- with --address -- the client network's requests "
         "and new activations (an IPv6 address counts as its /64 by default). Show them "
         "with their counts and until when each locks; reset them here.")

_Address = Annotated[str | None, typer.Option(
    "--address", metavar="IP", show_default=False,
    help="a client address as the server sees it (e.g. behind a proxy with "
         "--forwarded-allow-ips); any address of the network counts as the network")]


def _limit_row(limit: dict[str, Any]) -> list[Any]:
    cap = limit.get("limit")
    return [limit.get("kind"), f"{limit.get('count')} of {'-' if cap is None else cap}",
            format_duration(limit.get("window")), limit.get("locked_until") or "not locked",
            limit.get("description")]


@app.command("show", short_help="show every limit that applies to a license")
@vendor_command
def show(backend: Backend, *,
         license: Annotated[str, typer.Argument(metavar="LICENSE_ID", show_default=False,
                                                help="the license id (lic_…)")],
         address: _Address = None,
         as_json: Json = False) -> int:
    """Show every limit that applies to a license (and to a client network with
    --address): what it counts, how many in its window, the limit, and until when it
    locks -- the same instant the app is told."""
    answer = backend.lockout(license, address=address)
    if as_json:
        print_json(answer)
        return 0
    allowed = answer.get("allowed")
    print_fields([
        ("license", answer.get("license_id")),
        *([("network", answer["network"])] if answer.get("network") else []),
        ("locked until", answer.get("locked_until") or "not locked"),
        ("new activations", f"{answer.get('activations_in_period')} in the last "
                            f"{format_duration(answer.get('period'))}"),
        ("allowed", "no lock-out (the product has no re-activation limit)"
         if allowed is None else str(allowed)),
    ])
    print_line()
    print_table(["limit", "count", "window", "locked until", "counts"],
                [_limit_row(limit) for limit in answer.get("limits") or []])
    return 0


@app.command("reset", short_help="lift every lock-out of a license or a client network")
@vendor_command
def reset(
    backend: Backend, *,
    license: Annotated[str | None, typer.Option("--license", metavar="ID", show_default=False,
                                                help="the license id (lic_…)")] = None,
    address: _Address = None,
    as_json: Json = False,
) -> int:
    """Lift every limit of a license and/or a client network: its recorded new activations
    and its attempt counters are forgotten; says what was forgotten and what was locked."""
    if license is None and address is None:
        raise CliError("Name what to unlock: --license ID, --address IP, or both.", code=2)
    answer = backend.reset_lockout(license_id=license, address=address)
    if as_json:
        print_json(answer)
        return 0
    network = answer.get("network")
    what = " and ".join(w for w in (f"license {license}" if license else "",
                                    f"network {network}" if network else "") if w)
    unlocked = answer.get("unlocked") or []
    print_line(f"Unlocked {what}: "
               + (f"it was locked by {', '.join(unlocked)}." if unlocked
                  else "nothing was locked."))
    forgotten = answer.get("forgotten") or {}
    print_line(f"Forgot {answer.get('removed')} recorded activation(s) and "
               f"{answer.get('attempts_forgotten')} counted attempt(s)"
               + (": " + ", ".join(f"{kind} {n}" for kind, n in sorted(forgotten.items()))
                  if forgotten else "") + ".")
    return 0
