"""``software-dna test-codes``: short-lived keys for the vendor's own testing."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from software_dna.server.cli._common import (
    Json,
    ProductId,
    feature_list,
    given,
    in_range,
    read_secret,
)
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import (
    format_seats,
    print_json,
    print_line,
    print_listing,
    print_result,
    show_license,
)

__all__ = ["app"]

app = typer.Typer(
    name="test-codes", no_args_is_help=True, rich_markup_mode=None,
    short_help="issue, list and reset test codes",
    help="Test codes: short-lived keys (1-7 days after their first activation) for your own "
         "testing, at most the product's test code limit live at once. `reset` removes a "
         "code's activations and starts its days again.")


@app.command("issue", short_help="issue a test code (prints it once)")
@vendor_command
def issue(
    backend: Backend, *, product: ProductId,
    days: Annotated[int, typer.Option("--days", metavar="N", parser=in_range(1, 7),
                                      help="days after the first activation (1-7)")] = 1,
    features: Annotated[str | None, typer.Option(
        "--features", metavar="A,B", show_default=False,
        help="entitlements (default: the product's features)")] = None,
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin",
        help="read an activation password from the first line of stdin")] = False,
    as_json: Json = False,
) -> int:
    """Issue a test code of kind 'test' and print it."""
    password = read_secret(sys.stdin, "password") if password_stdin else None
    issued = backend.issue_test_code(product, days=days, **given(
        features=feature_list(features) if features is not None else None, password=password))
    if as_json:
        print_json(issued)
        return 0
    print_line(f"Issued test code {issued.get('id')} for {issued.get('product')}: it runs "
               f"{issued.get('expires_after_days')} day(s) after its first activation.")
    print_line("Test code (shown only now):")
    print_line(f"  {issued.get('license_key')}")
    return 0


@app.command("list", short_help="list a product's test codes")
@vendor_command
def list_(backend: Backend, *, product: ProductId, as_json: Json = False) -> int:
    """List a product's test codes, newest first."""
    print_listing(
        {"licenses": backend.list_test_codes(product)}, "licenses", as_json=as_json,
        empty="No test codes.",
        headers=["ID", "KEY", "STATUS", "SEATS", "FIRST ACTIVATED", "EXPIRES"],
        row=lambda lic: [lic.get("id"), lic.get("key_hint"), lic.get("status"),
                         format_seats(lic), lic.get("first_activated_at") or "-",
                         lic.get("expires_at")
                         or f"{lic.get('expires_after_days')}d after activation"],
    )
    return 0


@app.command("reset", short_help="reset a test code")
@vendor_command
def reset(backend: Backend, *,
          license: Annotated[str, typer.Argument(metavar="LICENSE_ID", show_default=False,
                                                 help="the test code's license id (lic_…)")],
          as_json: Json = False) -> int:
    """Reset a test code: its activations are removed, its settings deleted, and its days
    start again at the next activation."""
    lic = backend.reset_test_code(license)
    print_result(lic, as_json=as_json, show=show_license,
                 headline=f"Test code {lic.get('id')} reset: its activations are removed and "
                          "its days start again at the next activation.")
    return 0
