"""``software-dna renewal-codes``: single-use codes that add days to a license."""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import CliError, Json, given, in_range
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_json, print_line, print_listing

__all__ = ["app"]

app = typer.Typer(
    name="renewal-codes", no_args_is_help=True, rich_markup_mode=None,
    short_help="issue and list renewal codes",
    help="Renewal codes: single-use codes the end user enters in the app "
         "(LicenseClient.renew) to add days to their license.")


@app.command("issue", short_help="make renewal codes (prints them once)")
@vendor_command
def issue(
    backend: Backend, *,
    days: Annotated[int, typer.Option("--days", metavar="N", parser=in_range(1, 3650),
                                      show_default=False,
                                      help="days each code adds (1-3650)")],
    product: Annotated[str | None, typer.Option(
        "--product", metavar="P", show_default=False,
        help="codes for any license of this product")] = None,
    license: Annotated[str | None, typer.Option(
        "--license", metavar="ID", show_default=False,
        help="codes for this license only")] = None,
    count: Annotated[int, typer.Option("--count", metavar="N", parser=in_range(1, 100),
                                       help="how many codes (1-100)")] = 1,
    as_json: Json = False,
) -> int:
    """Make renewal codes for any license of a product (--product), or bound to one license
    (--license)."""
    if (product is None) == (license is None):
        raise CliError("Give one of --product and --license.", code=2)
    codes = backend.make_renewal_codes(days, product_id=product, license_id=license,
                                       count=count)
    if as_json:
        print_json({"renewal_codes": codes})
        return 0
    target = f"license {license}" if license else f"product {product}"
    print_line(f"{len(codes)} renewal code(s) of {days} day(s) for {target} "
               "(shown only now; each works once):")
    for code in codes:
        print_line(f"  {code.get('code')}")
    return 0


@app.command("list", short_help="list renewal codes")
@vendor_command
def list_(
    backend: Backend, *,
    product: Annotated[str | None, typer.Option("--product", metavar="P", show_default=False,
                                                help="only this product's")] = None,
    license: Annotated[str | None, typer.Option("--license", metavar="ID", show_default=False,
                                                help="only those bound to it")] = None,
    as_json: Json = False,
) -> int:
    """List renewal codes (shown by their last four characters) and whether they were
    redeemed."""
    rows = backend.list_renewal_codes(**given(product=product, license_id=license))
    print_listing(
        {"renewal_codes": rows}, "renewal_codes", as_json=as_json, empty="No renewal codes.",
        headers=["ID", "CODE", "DAYS", "FOR", "REDEEMED"],
        row=lambda c: [c.get("id"), c.get("code_hint"), c.get("days"),
                       c.get("license_id") or c.get("product"),
                       f"{c.get('redeemed_at')} by {c.get('redeemed_license_id')}"
                       if c.get("redeemed_at") else "no"],
    )
    return 0
