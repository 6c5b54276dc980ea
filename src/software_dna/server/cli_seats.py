"""Vendor CLI of seats: seat policy, seat modes, leases and the re-activation lock-out.

Hooked into :func:`software_dna.server.cli_vendor.add_vendor_commands`::

    software-dna products create|configure ID [--lease-time 15m]
        [--reactivation-limit N|off] [--reactivation-period 30d]
        [--address-activation-limit N|off]
    software-dna licenses issue PRODUCT [--seat-mode machine|user|floating] [--rollover]
    software-dna licenses set ID [--seat-mode ...] [--rollover | --no-rollover]
    software-dna licenses leases ID
    software-dna lockouts show LICENSE_ID
    software-dna lockouts reset [--license ID] [--address IP]

Each command works on both backends (the database, or a server's admin API)
and prints the admin API's JSON with ``--json``.  See docs/seats.md.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from software_dna.server.cli_backends import (
    Backend,
    CliError,
    JSONDict,
    call_backend,
    path_segment,
)
from software_dna.server.cli_output import (
    duration,
    format_duration,
    options_given,
    print_fields,
    print_json,
    print_line,
    print_table,
)
from software_dna.server.cli_vendor import add_license_id, group, leaf

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from software_dna.server.services import Context

__all__ = [
    "add_seat_commands",
    "add_seat_issue_options",
    "add_seat_policy_options",
    "license_seat_lines",
    "product_seat_lines",
    "seat_license_fields",
    "seat_policy_fields",
]

SEAT_MODES = ("machine", "user", "floating")
_OFF = "off"


def limit_or_off(text: str) -> int | str:
    """``off`` / ``none``, or an integer 0-100000 (argparse type)."""
    if text.strip().lower() in ("off", "none"):
        return _OFF
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number or 'off': {text!r}") from None
    if not 0 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be 0 to 100000, got {value}")
    return value


# --------------------------------------------------------------------------- options


def add_seat_policy_options(parser: argparse.ArgumentParser) -> None:
    """``products create|configure``: lease time and the lock-out limits."""
    seats = parser.add_argument_group("seats (docs/seats.md)")
    seats.add_argument("--lease-time", "--lease-duration", type=duration, dest="lease_duration",
                       default=None, metavar="SECONDS",
                       help="how long a floating lease lasts without a heartbeat (5s-1d; "
                            "default 15m)")
    seats.add_argument("--reactivation-limit", type=limit_or_off, default=None, metavar="N|off",
                       help="re-activations a license may have per period on top of its seats; "
                            "past it activation is locked (default off)")
    seats.add_argument("--reactivation-period", type=duration, default=None, metavar="SECONDS",
                       help="the lock-out window (1h-366d; default 30d)")
    seats.add_argument("--address-activation-limit", type=limit_or_off, default=None,
                       metavar="N|off",
                       help="new activations one client address may make per period "
                            "(default off)")


def seat_policy_fields(args: argparse.Namespace) -> JSONDict:
    """The seat policy fields given on the command line (``off`` becomes null)."""
    fields = options_given(args, "lease_duration", "reactivation_period")
    for name in ("reactivation_limit", "address_activation_limit"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = None if value == _OFF else value
    return fields


def add_seat_issue_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    """``licenses issue`` / ``licenses set``: ``--seat-mode`` and roll-over."""
    seats = parser.add_argument_group("seats (docs/seats.md)")
    seats.add_argument("--seat-mode", choices=SEAT_MODES, default=None,
                       help="what a seat is: a computer (machine, default), a person (user), "
                            "or a concurrent lease (floating)")
    if creating:
        seats.add_argument("--rollover", action="store_true", default=None,
                           help="when every seat is taken, a new activation moves the least "
                                "recently seen one (machine and user seats)")
    else:
        seats.add_argument("--rollover", action=argparse.BooleanOptionalAction, default=None,
                           help="turn roll-over on or off")


def seat_license_fields(args: argparse.Namespace) -> JSONDict:
    """``seat_mode`` / ``rollover`` as given on the command line."""
    fields: JSONDict = {}
    if getattr(args, "seat_mode", None) is not None:
        fields["seat_mode"] = args.seat_mode
    if getattr(args, "rollover", None) is not None:
        fields["rollover"] = bool(args.rollover)
    return fields


def _limit(value: Any) -> str:
    return "off" if value is None else str(value)


def product_seat_lines(p: JSONDict) -> list[tuple[str, Any]]:
    """The seat policy lines of ``products show``."""
    if "lease_duration" not in p:
        return []
    return [
        ("lease time", format_duration(p.get("lease_duration"))),
        ("re-activations", "no lock-out" if p.get("reactivation_limit") is None else
         f"{p.get('reactivation_limit')} per {format_duration(p.get('reactivation_period'))} "
         "on top of the seats"),
        ("per-address limit", _limit(p.get("address_activation_limit"))),  # keys <= 21 chars
    ]


def license_seat_lines(lic: JSONDict) -> list[tuple[str, Any]]:
    """The seat lines of ``licenses show``."""
    if "seat_mode" not in lic:
        return []
    return [("seat mode", str(lic.get("seat_mode"))
             + (", roll-over" if lic.get("rollover") else ""))]


# --------------------------------------------------------------------------- commands


def cmd_leases(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses leases``."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service
        from software_dna.server.services.leases import list_leases

        lic = service.get_license(session, args.license)
        return {"license_id": lic.id, "seats": lic.seats, "leases": [
            {"activation_id": r.activation_id, "fingerprint_id": r.fingerprint_id,
             "created_at": _time(r.created_at), "renewed_at": _time(r.renewed_at),
             "expires_at": _time(r.expires_at)}
            for r in list_leases(session, lic.id, service.utcnow())]}

    answer = call_backend(backend, direct, "GET",
                          f"/licenses/{path_segment(args.license)}/leases")
    if args.json:
        print_json(answer)
        return 0
    rows = answer.get("leases") or []
    print_line(f"{len(rows)} of {answer.get('seats')} floating seat(s) leased.")
    if rows:
        print_table(("activation", "since", "renewed", "ends"),
                    [(r.get("activation_id"), r.get("created_at"), r.get("renewed_at"),
                      r.get("expires_at")) for r in rows])
    return 0


def _time(value: Any) -> str:
    from software_dna.wire.times import format_rfc3339

    return format_rfc3339(value)


def cmd_lockout_show(backend: Backend, args: argparse.Namespace) -> int:
    """``lockouts show``."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service
        from software_dna.server.services.seats import lockout_status

        status = lockout_status(session, service.get_license(session, args.license))
        return {"license_id": status.license_id,
                "activations_in_period": status.activations_in_period,
                "allowed": status.allowed, "period": status.period,
                "locked_until": _time(status.locked_until) if status.locked_until else None}

    answer = call_backend(backend, direct, "GET",
                          f"/licenses/{path_segment(args.license)}/lockout")
    if args.json:
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


def cmd_lockout_reset(backend: Backend, args: argparse.Namespace) -> int:
    """``lockouts reset``."""
    if args.license is None and args.address is None:
        raise CliError("Name what to unlock: --license ID, --address IP, or both.", code=2)

    def direct(session: Session, ctx: Context) -> JSONDict:
        from software_dna.server.services.seats import reset_lockout

        removed = reset_lockout(session, ctx, license_id=args.license, address=args.address,
                                actor="cli")
        return {"removed": removed, "license_id": args.license}

    body = options_given(args, license="license_id", address="address")
    answer = call_backend(backend, direct, "POST", "/lockouts/reset", body=body)
    if args.json:
        print_json(answer)
    else:
        what = " and ".join(w for w in (
            f"license {args.license}" if args.license else "",
            f"address {args.address}" if args.address else "") if w)
        print_line(f"Unlocked {what}: {answer.get('removed')} recorded activation(s) forgotten.")
    return 0


def add_seat_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                      licenses: argparse._SubParsersAction[argparse.ArgumentParser],
                      common: argparse.ArgumentParser) -> None:
    """Add ``licenses leases`` and the ``lockouts`` group."""
    p = leaf(licenses, "leases", cmd_leases, "list a floating license's leases",
             "List the live leases of a floating license: which activation holds a seat, "
             "since when, and when the lease ends unless renewed.", parent=common)
    add_license_id(p)

    lockouts = group(subparsers, "lockouts", "show and reset re-activation lock-outs",
                     "Re-activation lock-out: a license that takes more new activations than "
                     "its seats plus the product's re-activation limit within the period, or "
                     "a client address past the product's per-address limit, is locked "
                     "until the oldest counted activation leaves the period. Reset it here.")
    p = leaf(lockouts, "show", cmd_lockout_show, "show a license's lock-out",
             "Show how many new activations a license had in the product's period, how "
             "many it may have, and until when it is locked.", parent=common)
    add_license_id(p, "LICENSE_ID")
    p = leaf(lockouts, "reset", cmd_lockout_reset, "lift a lock-out",
             "Lift the lock-out of a license and/or a client address: its recorded "
             "activations and attempt counters are forgotten.", parent=common)
    p.add_argument("--license", metavar="ID", default=None, help="the license id (lic_…)")
    p.add_argument("--address", metavar="IP", default=None,
                   help="the client address (as the server sees it, e.g. behind a proxy "
                        "with --forwarded-allow-ips)")
