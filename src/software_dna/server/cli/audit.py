"""``software-dna audit``: the audit log of vendor actions and activations."""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import Json, given, positive_int
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_listing

__all__ = ["audit"]


@vendor_command
def audit(
    backend: Backend, *,
    limit: Annotated[int, typer.Option("--limit", metavar="N", parser=positive_int,
                                       help="at most N entries (at most 1000)")] = 50,
    product: Annotated[str | None, typer.Option("--product", metavar="P", show_default=False,
                                                help="only this product's")] = None,
    license: Annotated[str | None, typer.Option("--license", metavar="ID", show_default=False,
                                                help="only this license's")] = None,
    as_json: Json = False,
) -> int:
    """Show the audit log of vendor actions and activations, newest first. It holds ids only,
    never personal data."""
    entries = backend.audit(limit=limit, **given(product=product, license_id=license))
    print_listing(
        {"entries": entries}, "entries", as_json=as_json, empty="The audit log is empty.",
        headers=["ID", "AT", "ACTOR", "ACTION", "PRODUCT", "LICENSE", "ACTIVATION", "END USER",
                 "KID", "DETAIL"],
        row=lambda e: [e.get("id"), e.get("at"), e.get("actor"), e.get("action"),
                       e.get("product_id"), e.get("license_id"), e.get("activation_id"),
                       e.get("end_user_id"), e.get("kid"), e.get("detail")],
    )
    return 0
