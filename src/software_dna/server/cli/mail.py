"""``software-dna mail``: the mail templates (list, show, set, reset, preview) and the sent log."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from software_dna.server.cli._common import CliError, Json, JSONDict
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import (
    print_fields,
    print_json,
    print_line,
    print_listing,
    print_result,
)

__all__ = ["app"]

app = typer.Typer(
    name="mail", no_args_is_help=True, rich_markup_mode=None,
    short_help="mail templates and the sent log",
    help="Mails to buyers and end users: the templates (per product, or the vendor default "
         "for every product) and the sent log.")
templates = typer.Typer(
    name="templates", no_args_is_help=True, rich_markup_mode=None,
    short_help="list, show, set, reset and preview mail templates",
    help="Mail templates: Jinja2 (sandboxed) with a subject, a plain-text and an HTML part. "
         "Without --product the vendor default (every product without its own) is used.")
app.add_typer(templates)

Name = Annotated[str, typer.Argument(
    metavar="NAME", show_default=False,
    help="license_key, expiry_reminder, trial_ending, payment_failed or portal_link")]
Product = Annotated[str | None, typer.Option(
    "--product", metavar="P", show_default=False,
    help="the product's template (default: the vendor default for every product)")]


@templates.command("list", short_help="list the templates and where each comes from")
@vendor_command
def list_(backend: Backend, *, product: Product = None, as_json: Json = False) -> int:
    """List the mail templates: ``product`` (the product's own), ``vendor`` (your default) or
    ``builtin``."""
    print_listing(
        backend.list_mail_templates(product), "templates", as_json=as_json,
        empty="No templates.", headers=["NAME", "SOURCE", "UNSUBSCRIBE", "WHAT"],
        row=lambda t: [t.get("name"), t.get("source"),
                       "yes" if t.get("unsubscribable") else "no (always sent)",
                       t.get("description")])
    return 0


def _show(template: JSONDict) -> None:
    print_fields([("name", template.get("name")), ("product", template.get("product")),
                  ("source", template.get("source")), ("subject", template.get("subject"))])
    print_line("--- text")
    print_line(str(template.get("text") or "").rstrip("\n"))
    if template.get("html") is not None:
        print_line("--- html")
        print_line(str(template.get("html")).rstrip("\n"))


@templates.command("show", short_help="print a template's sources")
@vendor_command
def show(backend: Backend, *, name: Name, product: Product = None,
         as_json: Json = False) -> int:
    """Print the template in use: the product's own, else your default, else the built-in."""
    template = backend.get_mail_template(name, product)
    if as_json:
        print_json(template)
    else:
        _show(template)
    return 0


def _read(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"Cannot read the {what} file {str(path)!r}: {type(exc).__name__}.",
                       code=2) from None


@templates.command("set", short_help="save your version of a template")
@vendor_command
def set_(backend: Backend, *, name: Name, product: Product = None,
         subject: Annotated[str | None, typer.Option(
             "--subject", metavar="TEXT", show_default=False,
             help="the subject (default: the one in use)")] = None,
         text_file: Annotated[Path | None, typer.Option(
             "--text", metavar="FILE", show_default=False,
             help="the plain-text part (default: the one in use)")] = None,
         html_file: Annotated[Path | None, typer.Option(
             "--html", metavar="FILE", show_default=False,
             help="the HTML part (default: the one in use)")] = None,
         no_html: Annotated[bool, typer.Option(
             "--no-html", help="send plain text only")] = False,
         as_json: Json = False) -> int:
    """Save your version of a template for --product (or for every product). It is rendered
    with sample values first: a template that does not render is refused."""
    if html_file is not None and no_html:
        raise CliError("Give --html or --no-html, not both.", code=2)
    if subject is None and text_file is None and html_file is None and not no_html:
        raise CliError("Nothing to change: give --subject, --text FILE or --html FILE.", code=2)
    current = backend.get_mail_template(name, product)
    text = _read(text_file, "text")
    html = _read(html_file, "HTML")
    saved = backend.set_mail_template(
        name, product_id=product, subject=subject if subject is not None else current["subject"],
        text=text if text is not None else current["text"],
        html=None if no_html else (html if html is not None else current.get("html")))
    where = f"product {product}" if product else "every product (your default)"
    print_result(saved, as_json=as_json, headline=f"Saved the template {name} for {where}.")
    return 0


@templates.command("reset", short_help="drop your version of a template")
@vendor_command
def reset(backend: Backend, *, name: Name, product: Product = None,
          as_json: Json = False) -> int:
    """Drop your version at this level: the product then uses your default, or the built-in."""
    now = backend.reset_mail_template(name, product)
    print_result(now, as_json=as_json,
                 headline=f"Reset the template {name}; now in use: {now.get('source')}.")
    return 0


@templates.command("preview", short_help="render a template with sample values")
@vendor_command
def preview(backend: Backend, *, name: Name, product: Product = None,
            context: Annotated[str | None, typer.Option(
                "--context", metavar="JSON", show_default=False,
                help="values replacing the sample ones, as a JSON object")] = None,
            as_json: Json = False) -> int:
    """Render the template in use with sample values and the product's branding."""
    values: JSONDict | None = None
    if context is not None:
        try:
            values = json.loads(context)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise CliError("--context takes a JSON object, e.g. '{\"days_left\": 3}'.", code=2)
    rendered = backend.preview_mail_template(name, product, values)
    if as_json:
        print_json(rendered)
        return 0
    print_line(f"Subject: {rendered.get('subject')}")
    print_line("--- text")
    print_line(str(rendered.get("text") or "").rstrip("\n"))
    if rendered.get("html") is not None:
        print_line("--- html")
        print_line(str(rendered.get("html")).rstrip("\n"))
    return 0


@app.command("log", short_help="the mails queued and sent (with addresses)")
@vendor_command
def log(backend: Backend, *,
        license_id: Annotated[str | None, typer.Option(
            "--license", metavar="ID", show_default=False,
            help="only this license's mails")] = None,
        limit: Annotated[int, typer.Option("--limit", metavar="N", min=1, max=1000,
                                           help="at most N mails")] = 50,
        as_json: Json = False) -> int:
    """The sent log, newest first: Message-ID, template, license, status, sent time and the
    address. The addresses are personal data: handle the output accordingly."""
    print_listing(
        {"mails": backend.mail_log(license_id=license_id, limit=limit)}, "mails",
        as_json=as_json, empty="No mails.",
        headers=["ID", "TEMPLATE", "LICENSE", "STATUS", "SENT", "TO"],
        row=lambda m: [m.get("id"), m.get("template"), m.get("license_id"), m.get("status"),
                       m.get("sent_at") or "-", m.get("to") or "(erased)"])
    return 0
