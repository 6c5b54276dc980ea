"""``software-dna licenses``: issue, list, show, change, extend and end licenses."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from software_dna.server.cli._common import (
    CliError,
    Json,
    JSONDict,
    LicenseId,
    ProductId,
    choice,
    feature_list,
    given,
    in_range,
    positive_int,
    read_secret,
)
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import (
    format_expiry,
    format_list,
    format_seats,
    print_json,
    print_line,
    print_listing,
    print_result,
    print_table,
    show_license,
)
from software_dna.server.domain.seats import SEAT_MODES
from software_dna.server.domain.terms import EVALUATION_MAX_DAYS, ISSUABLE_KINDS
from software_dna.server.schemas.licenses import (
    CUSTOMER_REF_MAX,
    NOTES_MAX,
    ORDER_REF_MAX,
    expiry_from_text,
    looks_like_full_key,
)
from software_dna.wire.times import format_rfc3339

__all__ = ["app"]

app = typer.Typer(
    name="licenses", no_args_is_help=True, rich_markup_mode=None,
    short_help="issue, list, show and change licenses",
    help="Licenses: issue (the key is shown once), list, show, suspend, resume, revoke, set "
         "seats / expiry / features, set or clear the activation password, extend, convert to "
         "perpetual, cancel a subscription, list floating leases, replace a lost key (rekey).")

Features = Annotated[str | None, typer.Option(
    "--features", metavar="A,B", show_default=False,
    help="entitlements (default: the product's features; '' for none)")]
SeatMode = Annotated[str | None, typer.Option(
    "--seat-mode", metavar=f"[{'|'.join(SEAT_MODES)}]", parser=choice(*SEAT_MODES),
    show_default=False,
    help="what a seat is: a computer (machine, default), a person (user), or a concurrent "
         "lease (floating)")]


def end_date(text: str) -> str:
    """An end as typed: ``YYYY-MM-DD`` (through that day: ends at the next day's 00:00 UTC)
    or RFC 3339 with an offset; normalised to RFC 3339 ``...Z``."""
    try:
        return format_rfc3339(expiry_from_text(text))
    except ValueError as exc:
        raise typer.BadParameter(f"{exc} (e.g. 2027-01-31, or 2027-01-31T23:59:59Z)") from None


def end_date_or_never(text: str) -> str:
    """Like :func:`end_date`, or ``never`` (a perpetual license)."""
    if text.strip().lower() in ("never", "none"):
        return "never"
    return end_date(text)


_DATES = ("YYYY-MM-DD means through that day (the license ends at the next day's 00:00 "
          "UTC); or an RFC 3339 time such as 2027-01-31T23:59:59Z")
AllowPast = Annotated[bool, typer.Option(
    "--allow-past", help="accept an end that is already past (the license ends at once); "
                         "without it such a date is refused")]
Customer = Annotated[str | None, typer.Option(
    "--customer", metavar="REF", show_default=False,
    help=f"your customer reference (at most {CUSTOMER_REF_MAX} characters; not personal "
         "data: no names or addresses)")]
Order = Annotated[str | None, typer.Option(
    "--order", metavar="REF", show_default=False,
    help=f"your order reference (at most {ORDER_REF_MAX} characters; not personal data)")]
Notes = Annotated[str | None, typer.Option(
    "--notes", metavar="TEXT", show_default=False,
    help=f"your notes (at most {NOTES_MAX} characters; not personal data)")]


@app.command("issue", short_help="issue a license (prints the key once)")
@vendor_command
def issue(
    backend: Backend, *, product: ProductId,
    seats: Annotated[int, typer.Option("--seats", metavar="N", parser=positive_int,
                                       help="machines active at once")] = 1,
    expires: Annotated[str | None, typer.Option(
        "--expires", metavar="DATE", parser=end_date, show_default=False,
        help=f"end of the license: {_DATES} (default: never)")] = None,
    allow_past: AllowPast = False,
    features: Features = None,
    password: Annotated[str | None, typer.Option(
        "--password", metavar="P", show_default=False,
        help="activation password (visible to other users: prefer --password-stdin)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin",
        help="read the activation password from the first line of stdin")] = False,
    prefix: Annotated[str | None, typer.Option(
        "--prefix", metavar="ACME", show_default=False,
        help="1-12 characters A-Z 0-9 in front of the key")] = None,
    kind: Annotated[str, typer.Option(
        "--kind", metavar=f"[{'|'.join(ISSUABLE_KINDS)}]", parser=choice(*ISSUABLE_KINDS),
        help="full or evaluation (needs --expires-after-days 1-60)")] = "full",
    expires_after_days: Annotated[int | None, typer.Option(
        "--expires-after-days", metavar="N", parser=in_range(1, 3650), show_default=False,
        help="the license ends N days after its first activation (instead of "
             "--expires)")] = None,
    subscription: Annotated[bool, typer.Option(
        "--subscription", help="a subscription (the product's protection must be mandatory); "
                               "`licenses cancel` ends it")] = False,
    seat_mode: SeatMode = None,
    rollover: Annotated[bool, typer.Option(
        "--rollover", help="when every seat is taken, a new activation moves the least "
                           "recently seen one (machine and user seats)")] = False,
    air_gapped: Annotated[str | None, typer.Option(
        "--air-gapped", metavar="on|off", parser=choice("on", "off"), show_default=False,
        help="allow or forbid air-gapped activation of this license (default: the "
             "product's setting)")] = None,
    email: Annotated[str | None, typer.Option(
        "--email", metavar="ADDR", show_default=False,
        help="the buyer's address: kept (encrypted) as the license's buyer, and the key is "
             "mailed there by the worker (always sent)")] = None,
    customer: Customer = None,
    order: Order = None,
    notes: Notes = None,
    as_json: Json = False,
) -> int:
    """Issue a license and print its key. The server keeps only a keyed hash: the key cannot
    be shown again."""
    if password is not None and password_stdin:
        raise CliError("Give --password or --password-stdin, not both.", code=2)
    if kind == "evaluation" and expires_after_days is None:  # over 60: the server's refusal
        raise CliError(f"--kind evaluation needs --expires-after-days N (1 to "
                       f"{EVALUATION_MAX_DAYS}).", code=2)
    secret = read_secret(sys.stdin, "password") if password_stdin else password
    terms: JSONDict = given(
        expires_at=expires, features=feature_list(features) if features is not None else None,
        password=secret, key_prefix=prefix, expires_after_days=expires_after_days,
        seat_mode=seat_mode, customer_ref=customer, order_ref=order, notes=notes)
    terms["allow_past"] = allow_past
    if kind != "full":
        terms["kind"] = kind
    if subscription:
        terms["subscription"] = True
    if rollover:
        terms["rollover"] = True
    if air_gapped is not None:
        terms["air_gapped"] = air_gapped == "on"
    if email is not None:
        terms["email"] = email
    issued = backend.issue_license(product, seats=seats, **terms)
    if as_json:
        print_json(issued)
        return 0
    print_line(f"Issued license {issued.get('id')} for {issued.get('product')}: "
               f"{issued.get('seats')} seat(s), expires {issued.get('expires_at') or 'never'}, "
               f"features {format_list(issued.get('features'))}, "
               f"password {'set' if issued.get('password_set') else 'none'}.")
    print_line("License key (shown only now, the server cannot show it again):")
    print_line(f"  {issued.get('license_key')}")
    if email is not None:
        print_line("The key is queued for the buyer's address (`software-dna mail log "
                   f"--license {issued.get('id')}` shows when it is sent).")
    return 0


@app.command("list", short_help="list licenses")
@vendor_command
def list_(
    backend: Backend, *,
    product: Annotated[str | None, typer.Option("--product", metavar="P", show_default=False,
                                                help="only this product's")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", parser=positive_int,
                                       help="at most N licenses")] = 100,
    as_json: Json = False,
) -> int:
    """List licenses, newest first (the key shows as its last four characters)."""
    if product is not None:
        backend.get_product(product)  # a clear "no such product"
    print_listing(
        {"licenses": backend.list_licenses(product, limit=limit)}, "licenses",
        as_json=as_json, empty="No licenses.",
        headers=["ID", "PRODUCT", "KEY", "STATUS", "SEATS", "EXPIRES", "FEATURES"],
        row=lambda lic: [lic.get("id"), lic.get("product"), lic.get("key_hint"),
                         str(lic.get("status")) + (" (erased)" if lic.get("erased") else ""),
                         format_seats(lic), format_expiry(lic),
                         lic.get("features")],
    )
    return 0


@app.command("show", short_help="show one license (by id or full key)")
@vendor_command
def show(backend: Backend, *, license: Annotated[str, typer.Argument(
        metavar="ID", help="the license id (lic_…) or its full license key",
        show_default=False)], as_json: Json = False) -> int:
    """Show a license: status, seats in use, expiry, features, password, references. Give its
    id or the full key a customer sent (looked up by its keyed hash)."""
    lic = (backend.lookup_license(license) if looks_like_full_key(license)
           else backend.get_license(license))
    print_result(lic, as_json=as_json, show=show_license)
    return 0


@app.command("find", short_help="search licenses by hint, reference, email or key")
@vendor_command
def find(
    backend: Backend, *,
    query: Annotated[str, typer.Argument(
        metavar="QUERY", show_default=False,
        help="a full key, a key hint (last 4 characters), a customer or order reference "
             "(prefix, any case), a license id or an email address")],
    product: Annotated[str | None, typer.Option("--product", metavar="P", show_default=False,
                                                help="only this product's")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", parser=positive_int,
                                       help="at most N licenses")] = 100,
    as_json: Json = False,
) -> int:
    """Find licenses the way support hears of them. A full key is looked up by its keyed hash
    (sent in a request body, never in a URL); an email address matches the buyer or an end
    user through the keyed index (nothing is decrypted to search)."""
    if looks_like_full_key(query):  # "No such license" when no license has this key
        rows = [backend.lookup_license(query)]
        if product is not None:
            rows = [r for r in rows if r.get("product") == product]
    else:
        params: JSONDict = {"limit": limit}
        if product is not None:
            params["product"] = product
        rows = backend.search_licenses(query, **params)
    print_listing(
        {"licenses": rows}, "licenses", as_json=as_json, empty="No license matches.",
        headers=["ID", "PRODUCT", "KEY", "STATUS", "SEATS", "EXPIRES", "CUSTOMER", "ORDER"],
        row=lambda lic: [lic.get("id"), lic.get("product"), lic.get("key_hint"),
                         lic.get("status"), format_seats(lic), format_expiry(lic),
                         lic.get("customer_ref") or "-", lic.get("order_ref") or "-"],
    )
    return 0


def _status(lic: JSONDict, as_json: bool) -> int:
    print_result(lic, as_json=as_json,
                 headline=f"License {lic.get('id')} is now {lic.get('status')}.")
    return 0


@app.command("suspend", short_help="suspend a license")
@vendor_command
def suspend(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """Suspend a license: validations are refused until it is resumed."""
    return _status(backend.suspend_license(license), as_json)


@app.command("resume", short_help="resume a suspended license")
@vendor_command
def resume(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """Resume a suspended license."""
    return _status(backend.resume_license(license), as_json)


@app.command("revoke", short_help="revoke a license for good")
@vendor_command
def revoke(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """Revoke a license: validations are refused for good. It cannot be resumed."""
    return _status(backend.revoke_license(license), as_json)


@app.command("set", short_help="set seats, expiry, features or references")
@vendor_command
def set_(
    backend: Backend, *, license: LicenseId,
    seats: Annotated[int | None, typer.Option("--seats", metavar="N", parser=positive_int,
                                              show_default=False,
                                              help="machines active at once")] = None,
    expires: Annotated[str | None, typer.Option(
        "--expires", metavar="DATE|never", parser=end_date_or_never, show_default=False,
        help=f"new end of the license: {_DATES}; or 'never'")] = None,
    allow_past: AllowPast = False,
    features: Features = None,
    seat_mode: SeatMode = None,
    rollover: Annotated[bool | None, typer.Option(
        "--rollover/--no-rollover", show_default=False,
        help="turn roll-over on or off")] = None,
    air_gapped: Annotated[str | None, typer.Option(
        "--air-gapped", metavar="on|off|product", parser=choice("on", "off", "product"),
        show_default=False,
        help="allow or forbid air-gapped activation of this license, or follow the "
             "product's setting")] = None,
    customer: Customer = None,
    order: Order = None,
    notes: Notes = None,
    as_json: Json = False,
) -> int:
    """Change a license's seats, expiry, features, references or notes; options not given stay
    as they are ('' clears a reference or the notes). Lowering seats keeps existing
    activations working."""
    fields = given(seats=seats,
                   features=feature_list(features) if features is not None else None,
                   seat_mode=seat_mode, rollover=rollover, customer_ref=customer,
                   order_ref=order, notes=notes)
    if expires is not None:
        fields["expires_at"] = None if expires == "never" else expires
    if air_gapped is not None:
        fields["air_gapped"] = None if air_gapped == "product" else air_gapped == "on"
    if not fields:
        raise CliError("Nothing to change: give --seats, --expires, --features, --seat-mode, "
                       "--rollover, --air-gapped, --customer, --order or --notes.", code=2)
    changed = sorted(fields)
    if "expires_at" in fields:
        fields["allow_past"] = allow_past
    lic = backend.update_license(license, **fields)
    print_result(lic, as_json=as_json, show=show_license,
                 headline=f"Updated license {lic.get('id')} ({', '.join(changed)}).")
    return 0


@app.command("password", short_help="set or clear the activation password")
@vendor_command
def password(
    backend: Backend, *, license: LicenseId,
    set_to: Annotated[str | None, typer.Option(
        "--set", metavar="P", show_default=False,
        help="the new password (visible to other users: prefer --stdin)")] = None,
    stdin: Annotated[bool, typer.Option(
        "--stdin", help="read the new password from the first line of stdin")] = False,
    clear: Annotated[bool, typer.Option("--clear", help="remove the password")] = False,
    as_json: Json = False,
) -> int:
    """Set or clear a license's activation password (also lifts 'password reset required'
    after an erasure). Give exactly one of --set, --stdin and --clear."""
    if (set_to is not None) + stdin + clear != 1:
        raise CliError("Give exactly one of --set, --stdin and --clear.", code=2)
    secret = None if clear else read_secret(sys.stdin, "password") if stdin else set_to
    lic = backend.set_password(license, secret)
    license_id = lic.get("id", license)
    print_result(lic, as_json=as_json,
                 headline=f"Removed the activation password of license {license_id}."
                 if secret is None else
                 f"Set a new activation password for license {license_id}.")
    return 0


@app.command("extend", short_help="extend a timed license")
@vendor_command
def extend(
    backend: Backend, *, license: LicenseId,
    days: Annotated[int | None, typer.Option("--days", metavar="N", parser=in_range(1, 3650),
                                             show_default=False,
                                             help="days to add (1-3650)")] = None,
    until: Annotated[str | None, typer.Option(
        "--until", metavar="DATE", parser=end_date, show_default=False,
        help=f"the new end, later than the current one: {_DATES}")] = None,
    allow_past: AllowPast = False,
    as_json: Json = False,
) -> int:
    """Add days to a license: to its end, or to now when it already ended (before its first
    activation, to its 'N days after' term). Or move its end with --until. Apps get the new
    end at their next refresh. Give one of --days and --until."""
    if (days is None) == (until is None):
        raise CliError("Give one of --days and --until.", code=2)
    lic = backend.extend_license(license, days=days, until=until, allow_past=allow_past)
    print_result(lic, as_json=as_json, show=show_license,
                 headline=f"License {lic.get('id')} now ends "
                          f"{lic.get('expires_at') or 'after its first activation'}.")
    return 0


@app.command("perpetual", short_help="convert a license to perpetual")
@vendor_command
def perpetual(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """Convert a license to perpetual: no end, no subscription; a trial or evaluation becomes
    a full license."""
    lic = backend.make_perpetual(license)
    print_result(lic, as_json=as_json, show=show_license,
                 headline=f"License {lic.get('id')} is now perpetual.")
    return 0


@app.command("restore", short_help="lift the limits of an erased license")
@vendor_command
def restore(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """Give an erased license (and its erased user seats) full tokens again.

    After an erasure the license stays limited whatever the end user does,
    deactivating and activating again included, until the vendor restores
    it. Erased personal data stays erased.
    """
    erased = bool(backend.get_license(license).get("erased")) or any(
        a.get("erased") for a in backend.list_activations(license))
    lic = backend.restore_license(license)
    headline = (f"License {lic.get('id')} is restored." if erased else
                f"License {lic.get('id')} was not erased: nothing to restore.")
    print_result(lic, as_json=as_json, show=show_license, headline=headline)
    return 0


@app.command("cancel", short_help="cancel a subscription")
@vendor_command
def cancel(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """Cancel a subscription: the license is suspended. Each app learns it at its next refresh
    and stops after the product's warning period. `licenses resume` renews it."""
    lic = backend.cancel_subscription(license)
    print_result(lic, as_json=as_json, show=show_license,
                 headline=f"Subscription {lic.get('id')} cancelled: its apps stop after the "
                          "warning period, from their next refresh.")
    return 0


@app.command("leases", short_help="list a floating license's leases")
@vendor_command
def leases(backend: Backend, *, license: LicenseId, as_json: Json = False) -> int:
    """List the live leases of a floating license: which activation holds a seat, since when,
    and when the lease ends unless renewed."""
    answer = backend.leases(license)
    if as_json:
        print_json(answer)
        return 0
    rows = answer.get("leases") or []
    seat_mode = backend.get_license(license).get("seat_mode", "floating")
    if seat_mode != "floating" and not rows:
        print_line(f"License {answer.get('license_id', license)} is not a floating license "
                   f"(its seats are {seat_mode} seats): it has no leases. See `activations "
                   "list`.")
        return 0
    print_line(f"{len(rows)} of {answer.get('seats')} floating seat(s) leased.")
    if rows:
        print_table(("activation", "since", "renewed", "ends"),
                    [(r.get("activation_id"), r.get("created_at"), r.get("renewed_at"),
                      r.get("expires_at")) for r in rows])
    return 0


@app.command("rekey", short_help="a new key for a lost one (prints it once)")
@vendor_command
def rekey(
    backend: Backend, *, license: LicenseId,
    email: Annotated[str | None, typer.Option(
        "--email", metavar="ADDR", show_default=False,
        help="the buyer's address: kept (encrypted) as the license's buyer and the new key "
             "is mailed there (default: the buyer on file, if any)")] = None,
    as_json: Json = False,
) -> int:
    """Give a license a new key, for a buyer who lost it or never got it. The old key no
    longer activates; machines already activated keep working. The new key is printed once
    and mailed to --email or to the buyer on file."""
    rekeyed = backend.rekey_license(license, email=email)
    if as_json:
        print_json(rekeyed)
        return 0
    print_line(f"License {rekeyed.get('id')} has a new key; the old one no longer activates "
               "(activated machines keep working).")
    print_line("License key (shown only now, the server cannot show it again):")
    print_line(f"  {rekeyed.get('license_key')}")
    if rekeyed.get("key_mailed"):
        print_line("The key is queued for the buyer's address (`software-dna mail log "
                   f"--license {rekeyed.get('id')}` shows when it is sent).")
    else:
        print_line("No buyer address is on file: nothing was mailed (give --email to mail it).")
    return 0
