"""``software-dna keys``: generate, list, rotate, retire and export signing keys."""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import PROG, CliError, Json, ProductId
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_json, print_line, print_listing, print_result

__all__ = ["app"]

app = typer.Typer(
    name="keys", no_args_is_help=True, rich_markup_mode=None,
    short_help="generate, list, rotate, retire and export signing keys",
    help="Ed25519 signing keys of a product. The active key signs tokens; trusted keys are "
         "still exported so that tokens they signed keep verifying; retired keys are dropped. "
         "Private keys stay encrypted on the server.\n\n"
         "Rotation: `keys generate` (a trusted key), ship `keys export` in the app, "
         "`keys rotate --kid`, later `keys retire` the old one. `keys rotate` without --kid "
         "makes a fresh key active at once.")


@app.command("generate", short_help="generate a signing key")
@vendor_command
def generate(backend: Backend, *, product: ProductId, as_json: Json = False) -> int:
    """Generate a signing key. The product's first key becomes active; later ones are trusted
    until you rotate to them."""
    key = backend.generate_key(product)
    if as_json:
        print_json(key)
        return 0
    print_line(f"Generated signing key {key.get('kid')} ({key.get('status')}) for {product}.")
    if key.get("status") == "active":
        print_line(f"It signs every token. Paste the output of `{PROG} keys export {product}` "
                   "into the app.")
    else:
        print_line(f"It is trusted but does not sign yet: ship it in the app "
                   f"(`{PROG} keys export {product}`), then "
                   f"`{PROG} keys rotate {product} --kid {key.get('kid')}`.")
    return 0


@app.command("list", short_help="list a product's keys")
@vendor_command
def list_(backend: Backend, *, product: ProductId, as_json: Json = False) -> int:
    """List a product's signing keys (kid, status, dates)."""
    print_listing(
        {"keys": backend.list_keys(product)}, "keys", as_json=as_json,
        empty=f"No signing keys for {product}: `{PROG} keys generate {product}`.",
        headers=["KID", "STATUS", "CREATED", "RETIRED"],
        row=lambda k: [k.get("kid"), k.get("status"), k.get("created_at"), k.get("retired_at")],
    )
    return 0


@app.command("rotate", short_help="make a new key sign")
@vendor_command
def rotate(backend: Backend, *, product: ProductId,
           kid: Annotated[str | None, typer.Option(
               "--kid", metavar="KID", show_default=False,
               help="rotate to this trusted key (k4.pid.…) instead of a new one")] = None,
           as_json: Json = False) -> int:
    """Make a new key (or, with --kid, a trusted key) active. The previous active key stays
    trusted until retired."""
    key = backend.rotate_key(product, kid)
    if as_json:
        print_json(key)
        return 0
    print_line(f"Key {key.get('kid')} now signs for {product}; the previous active key stays "
               "trusted until you retire it.")
    print_line(f"Ship the new key set in the app (`{PROG} keys export {product}`) before "
               "retiring the old key.")
    return 0


@app.command("retire", short_help="stop trusting a key")
@vendor_command
def retire(backend: Backend, *, product: ProductId,
           kid: Annotated[str, typer.Argument(metavar="KID", help="the key id (k4.pid.…)",
                                              show_default=False)],
           as_json: Json = False) -> int:
    """Retire a key: it is no longer exported. The active key cannot be retired."""
    key = backend.retire_key(product, kid)
    print_result(key, as_json=as_json,
                 headline=f"Retired key {key.get('kid', kid)}: it is no longer exported, and "
                          "tokens it signed stop verifying in app builds without it.")
    return 0


@app.command("export", short_help="print the public keys for the app")
@vendor_command
def export(backend: Backend, *, product: ProductId, as_json: Json = False) -> int:
    """Print the k4.public keys the app must trust, one per line (active first). Paste them
    into LicenseClient(public_keys=[...])."""
    keys = backend.public_keys(product)
    if as_json:
        print_json({"product": product, "public_keys": keys})
    elif not keys:
        raise CliError(f"{product} has no signing key yet: `{PROG} keys generate {product}`.")
    else:
        for key in keys:
            print_line(key)
    return 0
