"""Vendor CLI commands of trials, test codes, terms and renewal (docs/cli.md).

Added to the ``software-dna`` parser by :func:`add_terms_commands` (called by
:func:`software_dna.server.cli_vendor.add_vendor_commands`)::

    software-dna licenses issue PRODUCT [--kind evaluation] [--expires-after-days N]
                                        [--subscription]
    software-dna licenses extend ID (--days N | --until RFC3339)
    software-dna licenses perpetual ID
    software-dna licenses cancel ID
    software-dna test-codes issue PRODUCT [--days N] [--features A,B] [--password-stdin]
    software-dna test-codes list PRODUCT
    software-dna test-codes reset LICENSE_ID
    software-dna renewal-codes issue (--product P | --license ID) --days N [--count N]
    software-dna renewal-codes list [--product P] [--license ID]
    software-dna trials list PRODUCT
    software-dna trials remove TRIAL_ID

Each command works on both backends (the database, or a server's admin API)
and prints the admin API's JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from software_dna.server.cli_backends import Backend, JSONDict, call_backend, path_segment
from software_dna.server.cli_output import (
    feature_list,
    format_seats,
    options_given,
    positive_int,
    print_json,
    print_line,
    print_listing,
    print_result,
    read_secret,
    rfc3339,
    show_license,
)
from software_dna.server.cli_vendor import add_license_id, add_product_id, group, leaf

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from software_dna.server.models import License
    from software_dna.server.services import Context

__all__ = ["add_issue_options", "add_terms_commands"]

def _license_json(session: Session, lic: License, *, key: str | None = None) -> JSONDict:
    from software_dna.server import services as service
    from software_dna.server.schemas import LicenseOut

    out: JSONDict = LicenseOut.model_validate(
        lic, context={"seats_in_use": service.seats_in_use(session, lic.id)}).model_dump(
        mode="json")
    if key is not None:
        out["license_key"] = key
    return out


# --------------------------------------------------------------------------- licenses


def cmd_extend(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses extend``."""
    from software_dna.wire.times import parse_rfc3339

    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        until = parse_rfc3339(args.until) if args.until is not None else None
        return _license_json(session, service.extend_license(
            session, args.license, days=args.days, until=until, actor="cli"))

    body: JSONDict = {"days": args.days} if args.days is not None else {"until": args.until}
    lic = call_backend(backend, direct, "POST", f"/licenses/{path_segment(args.license)}/extend",
                       body=body)
    print_result(lic, as_json=args.json, show=show_license,
                 headline=f"License {lic.get('id')} now ends "
                          f"{lic.get('expires_at') or 'after its first activation'}.")
    return 0


def _change_license(backend: Backend, args: argparse.Namespace, action: str) -> JSONDict:
    """``POST /licenses/{id}/perpetual|cancel|reset``; returns the license."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        change = {
            "perpetual": service.make_perpetual,
            "cancel": service.cancel_subscription,
            "reset": service.reset_test_code,
        }[action]
        return _license_json(session, change(session, args.license, actor="cli"))

    lic: JSONDict = call_backend(backend, direct, "POST",
                                 f"/licenses/{path_segment(args.license)}/{action}")
    return lic


def cmd_perpetual(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses perpetual``."""
    lic = _change_license(backend, args, "perpetual")
    print_result(lic, as_json=args.json, show=show_license,
                 headline=f"License {lic.get('id')} is now perpetual.")
    return 0


def cmd_cancel(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses cancel``."""
    lic = _change_license(backend, args, "cancel")
    print_result(lic, as_json=args.json, show=show_license,
                 headline=f"Subscription {lic.get('id')} cancelled: its apps stop after "
                          "the warning period, from their next refresh.")
    return 0


# --------------------------------------------------------------------------- test codes


def cmd_test_codes_issue(backend: Backend, args: argparse.Namespace) -> int:
    """``test-codes issue``."""
    password = read_secret(sys.stdin, "password") if args.password_stdin else None

    def direct(session: Session, ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        lic, key = service.issue_test_code(session, ctx, product_id=args.product,
                                           days=args.days, features=args.features,
                                           password=password, actor="cli")
        return _license_json(session, lic, key=key)

    body: JSONDict = {"days": args.days, **options_given(args, "features")}
    if password is not None:
        body["password"] = password
    issued = call_backend(backend, direct, "POST",
                          f"/products/{path_segment(args.product)}/test-codes", body=body)
    if args.json:
        print_json(issued)
        return 0
    print_line(f"Issued test code {issued.get('id')} for {issued.get('product')}: it runs "
               f"{issued.get('expires_after_days')} day(s) after its first activation.")
    print_line("Test code (shown only now):")
    print_line(f"  {issued.get('license_key')}")
    return 0


def cmd_test_codes_list(backend: Backend, args: argparse.Namespace) -> int:
    """``test-codes list``."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        return {"licenses": [_license_json(session, lic)
                             for lic in service.list_test_codes(session, args.product)]}

    answer = call_backend(backend, direct, "GET",
                          f"/products/{path_segment(args.product)}/test-codes")
    print_listing(
        answer, "licenses", as_json=args.json, empty="No test codes.",
        headers=["ID", "KEY", "STATUS", "SEATS", "FIRST ACTIVATED", "EXPIRES"],
        row=lambda lic: [lic.get("id"), lic.get("key_hint"), lic.get("status"),
                         format_seats(lic), lic.get("first_activated_at") or "-",
                         lic.get("expires_at")
                         or f"{lic.get('expires_after_days')}d after activation"],
    )
    return 0


def cmd_test_codes_reset(backend: Backend, args: argparse.Namespace) -> int:
    """``test-codes reset``."""
    lic = _change_license(backend, args, "reset")
    print_result(lic, as_json=args.json, show=show_license,
                 headline=f"Test code {lic.get('id')} reset: its activations are "
                          "removed and its days start again at the next activation.")
    return 0


# --------------------------------------------------------------------------- renewal codes


def _codes_json(rows: list[tuple[Any, str | None]]) -> JSONDict:
    from software_dna.server.schemas import RenewalCodeOut

    return {"renewal_codes": [
        RenewalCodeOut.model_validate(row, context={"code": code}).model_dump(mode="json")
        for row, code in rows]}


def cmd_renewal_codes_issue(backend: Backend, args: argparse.Namespace) -> int:
    """``renewal-codes issue``."""
    def direct(session: Session, ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        made = service.issue_renewal_codes(session, ctx, days=args.days,
                                           product_id=args.product, license_id=args.license,
                                           count=args.count, actor="cli")
        return _codes_json([(row, code) for row, code in made])

    body: JSONDict = {"days": args.days, "count": args.count,
                      **options_given(args, "product", license="license_id")}
    answer = call_backend(backend, direct, "POST", "/renewal-codes", body=body)
    if args.json:
        print_json(answer)
        return 0
    codes = answer.get("renewal_codes", [])
    target = f"license {args.license}" if args.license else f"product {args.product}"
    print_line(f"{len(codes)} renewal code(s) of {args.days} day(s) for {target} "
               "(shown only now; each works once):")
    for code in codes:
        print_line(f"  {code.get('code')}")
    return 0


def cmd_renewal_codes_list(backend: Backend, args: argparse.Namespace) -> int:
    """``renewal-codes list``."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        rows = service.list_renewal_codes(session, product_id=args.product,
                                          license_id=args.license)
        return _codes_json([(row, None) for row in rows])

    params = options_given(args, "product", license="license_id")
    answer = call_backend(backend, direct, "GET", "/renewal-codes", params=params)
    print_listing(
        answer, "renewal_codes", as_json=args.json, empty="No renewal codes.",
        headers=["ID", "CODE", "DAYS", "FOR", "REDEEMED"],
        row=lambda c: [c.get("id"), c.get("code_hint"), c.get("days"),
                       c.get("license_id") or c.get("product"),
                       f"{c.get('redeemed_at')} by {c.get('redeemed_license_id')}"
                       if c.get("redeemed_at") else "no"],
    )
    return 0


# --------------------------------------------------------------------------- trials


def _trial_json(row: Any) -> JSONDict:
    from software_dna.server.schemas import TrialOut

    out: JSONDict = TrialOut.model_validate(row).model_dump(mode="json")
    return out


def cmd_trials_list(backend: Backend, args: argparse.Namespace) -> int:
    """``trials list``."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        return {"trials": [_trial_json(t) for t in service.list_trials(session, args.product)]}

    answer = call_backend(backend, direct, "GET",
                          f"/products/{path_segment(args.product)}/trials")
    print_listing(answer, "trials", as_json=args.json, empty="No trials.",
                  headers=["ID", "LICENSE", "FINGERPRINT", "STARTED"],
                  row=lambda t: [t.get("id"), t.get("license_id"), t.get("fingerprint_id"),
                                 t.get("created_at")])
    return 0


def cmd_trials_remove(backend: Backend, args: argparse.Namespace) -> int:
    """``trials remove``."""
    def direct(session: Session, _ctx: Context) -> JSONDict:
        from software_dna.server import services as service

        return _trial_json(service.remove_trial(session, args.trial, actor="cli"))

    trial = call_backend(backend, direct, "DELETE", f"/trials/{path_segment(args.trial)}")
    print_result(trial, as_json=args.json,
                 headline=f"Trial {trial.get('id')} forgotten: its license "
                          f"{trial.get('license_id')} is revoked, and the machine may start a "
                          "new trial.")
    return 0


# --------------------------------------------------------------------------- parser


def _days(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = positive_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low} to {high}")
        return value
    return parse


def add_issue_options(parser: argparse.ArgumentParser) -> None:
    """``licenses issue``: ``--kind``, ``--expires-after-days``, ``--subscription``."""
    terms = parser.add_argument_group("kind and term")
    terms.add_argument("--kind", choices=("full", "evaluation"), default="full",
                       help="full (default) or evaluation (needs --expires-after-days 1-60)")
    terms.add_argument("--expires-after-days", type=_days(1, 3650), default=None, metavar="N",
                       help="the license ends N days after its first activation "
                            "(instead of --expires)")
    terms.add_argument("--subscription", action="store_true",
                       help="a subscription (the product's protection must be mandatory); "
                            "`licenses cancel` ends it")


def add_terms_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                       licenses: argparse._SubParsersAction[argparse.ArgumentParser],
                       common: argparse.ArgumentParser) -> None:
    """Add ``licenses extend|perpetual|cancel`` and the ``test-codes``,
    ``renewal-codes`` and ``trials`` groups."""
    p = leaf(licenses, "extend", cmd_extend, "extend a timed license",
             "Add days to a license: to its end, or to now when it already ended (before "
             "its first activation, to its 'N days after' term). Or move its end with "
             "--until. Apps get the new end at their next refresh.", parent=common)
    add_license_id(p)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--days", type=_days(1, 3650), default=None, metavar="N",
                     help="days to add (1-3650)")
    how.add_argument("--until", type=rfc3339, default=None, metavar="RFC3339",
                     help="the new end, later than the current one")
    p = leaf(licenses, "perpetual", cmd_perpetual, "convert a license to perpetual",
             "Convert a license to perpetual: no end, no subscription; a trial or "
             "evaluation becomes a full license.", parent=common)
    add_license_id(p)
    p = leaf(licenses, "cancel", cmd_cancel, "cancel a subscription",
             "Cancel a subscription: the license is suspended. Each app learns it at its "
             "next refresh and stops after the product's warning period. `licenses resume` "
             "renews it.", parent=common)
    add_license_id(p)

    codes = group(subparsers, "test-codes", "issue, list and reset test codes",
                  "Test codes: short-lived keys (1-7 days after their first activation) for "
                  "your own testing, at most the product's test code limit live at once. "
                  "`reset` removes a code's activations and starts its days again.")
    p = leaf(codes, "issue", cmd_test_codes_issue, "issue a test code (prints it once)",
             "Issue a test code of kind 'test' and print it.", parent=common)
    add_product_id(p)
    p.add_argument("--days", type=_days(1, 7), default=1, metavar="N",
                   help="days after the first activation (1-7, default 1)")
    p.add_argument("--features", type=feature_list, default=None, metavar="A,B",
                   help="entitlements (default: the product's features)")
    p.add_argument("--password-stdin", action="store_true",
                   help="read an activation password from the first line of stdin")
    p = leaf(codes, "list", cmd_test_codes_list, "list a product's test codes",
             "List a product's test codes, newest first.", parent=common)
    add_product_id(p)
    p = leaf(codes, "reset", cmd_test_codes_reset, "reset a test code",
             "Reset a test code: its activations are removed, its settings deleted, and "
             "its days start again at the next activation.", parent=common)
    add_license_id(p, "LICENSE_ID", "the test code's license id (lic_…)")

    renewal = group(subparsers, "renewal-codes", "issue and list renewal codes",
                    "Renewal codes: single-use codes the end user enters in the app "
                    "(LicenseClient.renew) to add days to their license.")
    p = leaf(renewal, "issue", cmd_renewal_codes_issue, "make renewal codes (prints them once)",
             "Make renewal codes for any license of a product, or bound to one license.",
             parent=common)
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--product", metavar="P", default=None,
                        help="codes for any license of this product")
    target.add_argument("--license", metavar="ID", default=None,
                        help="codes for this license only")
    p.add_argument("--days", type=_days(1, 3650), required=True, metavar="N",
                   help="days each code adds (1-3650)")
    p.add_argument("--count", type=_days(1, 100), default=1, metavar="N",
                   help="how many codes (1-100, default 1)")
    p = leaf(renewal, "list", cmd_renewal_codes_list, "list renewal codes",
             "List renewal codes (shown by their last four characters) and whether they "
             "were redeemed.", parent=common)
    p.add_argument("--product", metavar="P", default=None, help="only this product's")
    p.add_argument("--license", metavar="ID", default=None, help="only those bound to it")

    trials = group(subparsers, "trials", "list and forget trial machines",
                   "Trials: the machines that used a product's trial (fingerprint ids only).")
    p = leaf(trials, "list", cmd_trials_list, "list a product's trial machines",
             "List the machines that started a trial of the product, newest first.",
             parent=common)
    add_product_id(p)
    p = leaf(trials, "remove", cmd_trials_remove, "forget a trial machine",
             "Forget a trial machine: its trial license is revoked and it may start a new "
             "trial (for your own test machines, or a support case).", parent=common)
    p.add_argument("trial", metavar="TRIAL_ID", help="the trial id (trl_…)")
