"""``software-dna webhooks``: outbound webhook endpoints, their delivery log, re-send, test."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from software_dna.server.cli._common import CliError, Json, confirm, feature_list
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_fields, print_line, print_listing, print_result

__all__ = ["app"]

#: The event types (kept here so --help needs no server stack; checked by the server).
EVENTS = ("license.issued, license.changed, license.expiring, license.expired, "
          "license.revoked, activation.created, activation.removed, activation.moved, "
          "activation.flagged, trial.started, trial.converted, end_user.erased")

app = typer.Typer(
    name="webhooks", no_args_is_help=True, rich_markup_mode=None,
    short_help="tell your own systems what happens (signed webhooks)",
    help="Outbound webhooks: endpoints subscribed to events, signed per the Standard Webhooks "
         "specification, retried for more than a day; the delivery log and re-send. "
         f"Events: {EVENTS}.")

EndpointId = Annotated[str, typer.Argument(metavar="ENDPOINT", help="the endpoint id (whe_…)",
                                           show_default=False)]
EventsOpt = Annotated[str | None, typer.Option(
    "--events", metavar="E1,E2", show_default=False,
    help="comma-separated event types (all: every type)")]
ProductOpt = Annotated[str | None, typer.Option(
    "--product", metavar="PRODUCT", show_default=False,
    help="only this product's events (default: every product)")]
DescriptionOpt = Annotated[str | None, typer.Option(
    "--description", metavar="TEXT", show_default=False, help="a note for you")]


def _events(text: str) -> list[str]:
    if text.strip() == "all":
        return [e.strip() for e in EVENTS.split(",")]
    chosen = feature_list(text)
    if not chosen:
        raise CliError("--events needs at least one event type", 2)
    return chosen


def _show(endpoint: dict[str, Any]) -> None:
    print_fields([
        ("id", endpoint.get("id")),
        ("url", endpoint.get("url")),
        ("events", ", ".join(endpoint.get("events") or [])),
        ("product", endpoint.get("product_id") or "every product"),
        ("personal data", "yes" if endpoint.get("personal_data") else "no"),
        ("enabled", "yes" if endpoint.get("enabled") else "no"),
        ("description", endpoint.get("description") or "-"),
    ])


def _show_secret(data: dict[str, Any]) -> None:
    _show(data["endpoint"])
    print_line("Signing secret (shown once; give it to the receiving side):")
    print_line(data["secret"])


@app.command("add", short_help="add an endpoint (prints its signing secret once)")
@vendor_command
def add(backend: Backend, *,
        url: Annotated[str, typer.Argument(metavar="URL", show_default=False,
                                           help="https:// URL (http:// only to localhost)")],
        events: Annotated[str, typer.Option(
            "--events", metavar="E1,E2", show_default=False,
            help="comma-separated event types, or all")],
        product: ProductOpt = None, description: DescriptionOpt = None,
        personal_data: Annotated[bool, typer.Option(
            "--personal-data", help="this endpoint may receive personal data (a buyer's "
                                    "email) in payloads")] = False,
        disabled: Annotated[bool, typer.Option("--disabled", help="add it disabled")] = False,
        as_json: Json = False) -> int:
    """Add an endpoint. Redirects are never followed. Prints the signing secret once."""
    fields: dict[str, Any] = {"personal_data": personal_data, "enabled": not disabled}
    if product is not None:
        fields["product"] = product
    if description is not None:
        fields["description"] = description
    data = backend.webhook_create(url, _events(events), **fields)
    print_result(data, as_json=as_json, headline="Endpoint added.", show=_show_secret)
    return 0


@app.command("list", short_help="list the endpoints")
@vendor_command
def list_(backend: Backend, *, product: ProductOpt = None, as_json: Json = False) -> int:
    """List the endpoints (never their secrets)."""
    print_listing(
        {"endpoints": backend.webhook_list(product=product)}, "endpoints", as_json=as_json,
        empty="No webhook endpoint.",
        headers=["ID", "URL", "EVENTS", "PRODUCT", "ENABLED", "PERSONAL DATA"],
        row=lambda e: [e.get("id"), e.get("url"), len(e.get("events") or []),
                       e.get("product_id") or "*", "yes" if e.get("enabled") else "no",
                       "yes" if e.get("personal_data") else "no"])
    return 0


@app.command("update", short_help="change an endpoint")
@vendor_command
def update(backend: Backend, *, endpoint: EndpointId, url: Annotated[str | None, typer.Option(
               "--url", metavar="URL", show_default=False, help="a new URL")] = None,
           events: EventsOpt = None, product: ProductOpt = None,
           all_products: Annotated[bool, typer.Option(
               "--all-products", help="receive every product's events")] = False,
           description: DescriptionOpt = None,
           personal_data: Annotated[bool | None, typer.Option(
               "--personal-data/--no-personal-data", show_default=False,
               help="may receive personal data")] = None,
           enabled: Annotated[bool | None, typer.Option(
               "--enable/--disable", show_default=False, help="deliver to it or not")] = None,
           as_json: Json = False) -> int:
    """Change an endpoint; options not given stay as they are."""
    if product is not None and all_products:
        raise CliError("--product and --all-products exclude each other", 2)
    changes: dict[str, Any] = {}
    for name, value in (("url", url), ("description", description),
                        ("personal_data", personal_data), ("enabled", enabled),
                        ("product", product)):
        if value is not None:
            changes[name] = value
    if events is not None:
        changes["events"] = _events(events)
    if all_products:
        changes["product"] = None
    if not changes:
        raise CliError("nothing to change: give at least one option", 2)
    data = backend.webhook_update(endpoint, **changes)
    print_result(data, as_json=as_json, headline="Endpoint updated.", show=_show)
    return 0


@app.command("rotate-secret", short_help="give an endpoint a new signing secret")
@vendor_command
def rotate_secret(backend: Backend, *, endpoint: EndpointId, as_json: Json = False) -> int:
    """A new signing secret, printed once; the old one stops signing at once."""
    data = backend.webhook_rotate_secret(endpoint)
    print_result(data, as_json=as_json, headline="Secret rotated.", show=_show_secret)
    return 0


@app.command("remove", short_help="remove an endpoint")
@vendor_command
def remove(backend: Backend, *, endpoint: EndpointId,
           yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
           as_json: Json = False) -> int:
    """Remove an endpoint: its queued messages are cancelled, its delivery log is kept."""
    if not yes and not confirm(f"Remove webhook endpoint {endpoint}? [y/N] "):
        raise CliError("Not removed: confirm with --yes.", code=1)
    data = backend.webhook_remove(endpoint)
    print_result(data, as_json=as_json, headline=f"Endpoint {endpoint} removed.")
    return 0


@app.command("test", short_help="send a webhook.ping event to an endpoint")
@vendor_command
def test(backend: Backend, *, endpoint: EndpointId, as_json: Json = False) -> int:
    """Queue a ``webhook.ping`` event to the endpoint; the worker delivers it (see
    ``webhooks deliveries``)."""
    data = backend.webhook_test(endpoint)
    print_result(data, as_json=as_json, headline=f"Ping queued: {data.get('id')}.")
    return 0


@app.command("deliveries", short_help="the delivery log")
@vendor_command
def deliveries(backend: Backend, *,
               endpoint: Annotated[str | None, typer.Option(
                   "--endpoint", metavar="ENDPOINT", show_default=False,
                   help="only this endpoint's")] = None,
               status: Annotated[str | None, typer.Option(
                   "--status", metavar="pending|delivered|failed|cancelled",
                   show_default=False, help="only these")] = None,
               limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, max=1000,
                                                  help="at most N, newest first")] = 50,
               as_json: Json = False) -> int:
    """The delivery log, newest first: the webhook id, event, status, attempts, last response
    code and error, times."""
    rows = backend.webhook_deliveries(endpoint=endpoint, status=status, limit=limit)
    print_listing(
        {"deliveries": rows}, "deliveries", as_json=as_json, empty="No delivery.",
        headers=["ID", "EVENT", "STATUS", "ATTEMPTS", "CODE", "ERROR", "CREATED", "NEXT/DONE"],
        row=lambda d: [d.get("id"), d.get("event"), d.get("status"), d.get("attempts"),
                       d.get("last_status"), d.get("last_error"), d.get("created_at"),
                       d.get("delivered_at") or (d.get("next_attempt_at")
                                                 if d.get("status") == "pending" else None)])
    return 0


@app.command("resend", short_help="send a delivered or failed message again (same id)")
@vendor_command
def resend(backend: Backend, *,
           item: Annotated[str, typer.Argument(metavar="ID", show_default=False,
                                               help="the message id (msg_…)")],
           as_json: Json = False) -> int:
    """Queue a delivered or failed message again with the same webhook id (the receiver
    can tell it is a repeat)."""
    data = backend.webhook_resend(item)
    print_result(data, as_json=as_json, headline=f"Queued again: {data.get('id')}.")
    return 0
