"""``software-dna stores``: connect payment providers and map their prices to licenses."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from software_dna.server.cli._common import (
    CliError,
    Json,
    JSONDict,
    given,
    in_range,
    read_secret,
)
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_json, print_line, print_listing, print_result

__all__ = ["app"]

app = typer.Typer(
    name="stores", no_args_is_help=True, rich_markup_mode=None,
    short_help="connect Stripe, Paddle, Lemon Squeezy; map prices to licenses",
    help="Stores: the payment providers whose webhooks issue and manage licenses "
         "(docs/commerce.md). Connect each provider per mode (live / test) with its "
         "webhook signing secret, then map each price or variant id to the license a "
         "sale gives.")

Provider = Annotated[str, typer.Argument(metavar="PROVIDER", show_default=False,
                                         help="stripe, paddle or lemonsqueezy")]


@app.command("connect", short_help="connect a store (its webhook signing secret)")
@vendor_command
def connect(
    backend: Backend, provider: Provider, *,
    secret_stdin: Annotated[bool, typer.Option(
        "--secret-stdin", help="read the signing secret from the first line of stdin")] = False,
    secret: Annotated[str | None, typer.Option(
        "--secret", metavar="S", show_default=False,
        help="the signing secret (visible to other users: prefer --secret-stdin)")] = None,
    mode: Annotated[str, typer.Option("--mode", metavar="MODE",
                                      help="live, or test (the provider's test mode)")] = "live",
    refund_action: Annotated[str, typer.Option(
        "--refund-action", metavar="A",
        help="what a refund or dispute does: revoke, suspend or none")] = "revoke",
    as_json: Json = False,
) -> int:
    """Connect a provider's store in one mode; connecting again replaces the secret."""
    if (secret is None) == (not secret_stdin):
        raise CliError("Give one of --secret-stdin and --secret.", code=2)
    value = read_secret(sys.stdin, "signing secret") if secret_stdin else secret
    assert value is not None
    row = backend.connect_store(provider, value, mode=mode, refund_action=refund_action)
    if as_json:
        print_json(row)
        return 0
    print_line(f"Connected {row.get('provider')} ({row.get('mode')}) as {row.get('id')}; "
               f"webhook URL: {_webhook_url(row)}")
    if not row.get("webhook_url"):
        print_line("(SOFTWARE_DNA_PUBLIC_URL is not set on the server: put the address buyers "
                   "and the provider reach it at in front of the path.)")
    return 0


def _webhook_url(row: JSONDict) -> str:
    """The address to give the provider (the path alone without a public URL)."""
    return str(row.get("webhook_url") or f"<public server URL>{row.get('webhook_path')}")


def _terms(m: JSONDict) -> str:
    """A mapping's license terms in one cell: kind, term, seat mode, features."""
    parts = [str(m.get("kind") or "full")]
    if m.get("subscription"):
        parts.append("subscription")
    elif m.get("duration_days"):
        parts.append(f"{m['duration_days']} days from first activation")
    else:
        parts.append("perpetual")
    if m.get("seat_mode") and m.get("seat_mode") != "machine":
        parts.append(f"{m['seat_mode']} seats")
    features = m.get("features")
    parts.append("product's features" if features is None
                 else "features " + (",".join(features) or "none"))
    return ", ".join(parts)


@app.command("list", short_help="list connected stores")
@vendor_command
def list_(backend: Backend, *, as_json: Json = False) -> int:
    """List the connected stores (secrets are never shown)."""
    print_listing({"connectors": backend.list_stores()}, "connectors", as_json=as_json,
                  empty="No store connected.",
                  headers=["ID", "PROVIDER", "MODE", "REFUNDS", "WEBHOOK URL"],
                  row=lambda c: [c.get("id"), c.get("provider"), c.get("mode"),
                                 c.get("refund_action"), _webhook_url(c)])
    return 0


@app.command("disconnect", short_help="disconnect a store that issued no license")
@vendor_command
def disconnect(
    backend: Backend,
    connector_id: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                                help="the connector id (sc_…)")],
    *, as_json: Json = False,
) -> int:
    """Disconnect a store (its mappings go too); refused once it issued a license."""
    result = backend.disconnect_store(connector_id)
    print_result(result, as_json=as_json, headline=f"Disconnected {connector_id}.")
    return 0


@app.command("map", short_help="map a price / variant id to a license")
@vendor_command
def map_(
    backend: Backend,
    connector_id: Annotated[str, typer.Argument(metavar="CONNECTOR", show_default=False,
                                                help="the connector id (sc_…)")],
    price_ref: Annotated[str, typer.Argument(metavar="PRICE", show_default=False,
                                             help="price (Stripe, Paddle) or variant id")],
    product: Annotated[str, typer.Argument(metavar="PRODUCT", show_default=False,
                                           help="the product the sale gives")],
    *,
    seats: Annotated[int, typer.Option("--seats", metavar="N",
                                       parser=in_range(1, 100_000))] = 1,
    feature: Annotated[list[str] | None, typer.Option(
        "--feature", metavar="F", show_default=False,
        help="a feature (repeat; default: the product's)")] = None,
    kind: Annotated[str, typer.Option("--kind", metavar="K",
                                      help="full or evaluation")] = "full",
    subscription: Annotated[bool, typer.Option(
        "--subscription", help="the license follows the provider's subscription")] = False,
    seat_mode: Annotated[str, typer.Option("--seat-mode", metavar="M",
                                           help="machine, user or floating")] = "machine",
    days: Annotated[int | None, typer.Option(
        "--days", metavar="N", parser=in_range(1, 3650), show_default=False,
        help="one-off sale: days from the first activation; subscription: the term when "
             "the provider gives no period end")] = None,
    as_json: Json = False,
) -> int:
    """Map a price or variant id of a connected store to the license a sale issues."""
    row = backend.map_price(connector_id, price_ref, product, **given(
        seats=seats, features=feature, kind=kind, subscription=subscription,
        seat_mode=seat_mode, duration_days=days))
    print_result(row, as_json=as_json, headline=f"Mapped {row.get('price_ref')} to "
                 f"{row.get('product')} (mapping {row.get('id')}).")
    return 0


@app.command("unmap", short_help="remove a price mapping")
@vendor_command
def unmap(
    backend: Backend,
    mapping_id: Annotated[int, typer.Argument(metavar="MAPPING", show_default=False,
                                              parser=in_range(1, 2**62),
                                              help="the mapping id")],
    *, as_json: Json = False,
) -> int:
    """Remove a mapping (licenses already issued stay)."""
    result = backend.unmap_price(mapping_id)
    print_result(result, as_json=as_json, headline=f"Removed mapping {mapping_id}.")
    return 0


@app.command("mappings", short_help="list price mappings")
@vendor_command
def mappings(
    backend: Backend, *,
    connector: Annotated[str | None, typer.Option("--connector", metavar="ID",
                                                  show_default=False,
                                                  help="only this connector's")] = None,
    as_json: Json = False,
) -> int:
    """List the price mappings."""
    print_listing({"mappings": backend.list_mappings(connector)}, "mappings",
                  as_json=as_json, empty="No mappings.",
                  headers=["ID", "CONNECTOR", "PRICE", "PRODUCT", "SEATS", "LICENSE"],
                  row=lambda m: [m.get("id"), m.get("connector_id"), m.get("price_ref"),
                                 m.get("product"), m.get("seats"), _terms(m)])
    return 0
