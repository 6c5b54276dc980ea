"""Mail templates: the built-in ones, the vendor's versions, and rendering them safely.

Each mail (:data:`TEMPLATES`) has a subject, a plain-text body and an HTML
body.  The built-in versions ship with the package
(``software_dna/server/templates/mail/<name>.{subject,txt,html}``); a vendor
may replace them for one product or for every product (the vendor default,
``product_id`` None) in :class:`~software_dna.server.models.EmailTemplate`.
The effective template of a product is its own, else the vendor default,
else the built-in one.

Templates are Jinja2 run in a sandbox (:mod:`software_dna.server.mailsandbox`): a
vendor-edited template reaches only the variables it is given, never Python
internals (``{{ ''.__class__ }}`` and the like are refused), and ``range()``
yields at most 1000 items.  Variables are
strict (an unknown name is an error, not an empty string) and the HTML body
is auto-escaped.  A template is rendered with its sample context when it is
saved, in a child process bounded in time and memory, so a broken or costly
one is refused then (400), not when a mail is due.

Every template receives the product's branding (:data:`BRANDING_DEFAULTS`)
and ``product_name``, ``product_id`` and ``unsubscribe_url`` (None for the
key delivery, and when no public URL is configured) besides its own
variables (docs/commerce.md, "E-mails").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from software_dna.server import mailsandbox
from software_dna.server.models import EmailTemplate, Product
from software_dna.server.services.common import audit, utcnow
from software_dna.server.services.errors import invalid, not_found
from software_dna.server.services.lookups import get_product

__all__ = [
    "BRANDING_DEFAULTS",
    "TEMPLATES",
    "MailTemplate",
    "Rendered",
    "TemplateSpec",
    "branding_context",
    "builtin_template",
    "effective_template",
    "list_templates",
    "preview_template",
    "render",
    "reset_template",
    "set_template",
    "show_template",
]

#: Longest subject, and longest body (characters) a vendor may save.
MAX_SUBJECT = 300
MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class TemplateSpec:
    """One kind of mail.

    Attributes:
        name: the template name (the outbox topic).
        description: what the mail is for.
        unsubscribable: reminders and notices carry a one-click unsubscribe and
            are not sent to an address that opted out; the key delivery is
            always sent.
        sample: the template's own variables with example values (previews,
            and the check when a vendor saves a template).
    """

    name: str
    description: str
    unsubscribable: bool
    sample: Mapping[str, Any]


#: Every mail the server sends, by name (new mails: add an entry and its three files).
TEMPLATES: dict[str, TemplateSpec] = {
    "license_key": TemplateSpec(
        "license_key", "the license key, to the buyer (always sent)", False,
        {"license_key": "ACME-7K2Q-9XW4-M3PA-ZT6R", "license_id": "lic_example",
         "seats": 1, "expires_at": "2027-01-31 23:59 UTC", "features": ["pro"],
         "duration_days": None, "subscription": False,
         "term": "until 2027-01-31 23:59 UTC"}),
    "expiry_reminder": TemplateSpec(
        "expiry_reminder", "the license ends soon (reminder_days before its end)", True,
        {"license_id": "lic_example", "key_hint": "\u2026-ZT6R",
         "expires_at": "2027-01-31 23:59 UTC", "days_left": 7}),
    "trial_ending": TemplateSpec(
        "trial_ending", "an evaluation ends soon (reminder_days before its end)", True,
        {"license_id": "lic_example", "key_hint": "\u2026-ZT6R",
         "expires_at": "2027-01-31 23:59 UTC", "days_left": 3}),
    "payment_failed": TemplateSpec(
        "payment_failed", "a payment failed; the license is suspended after the grace days",
        True,
        {"license_id": "lic_example", "key_hint": "\u2026-ZT6R", "grace_days": 14,
         "suspend_at": "2027-01-31 23:59 UTC",
         "billing_url": "https://billing.example/update-payment"}),
    "portal_link": TemplateSpec(
        "portal_link", "sign-in links to the license portal, to a confirmed address "
        "(always sent)", False,
        {"links": [{"url": "https://licenses.example/portal/app/link/3q2-EXAMPLE",
                    "key_hint": "\u2026-ZT6R", "kind": "full"}], "minutes": 15}),
}

#: Branding values used when the product sets none (``vendor_name`` defaults to the
#: product's name).
BRANDING_DEFAULTS: dict[str, str | None] = {
    "vendor_name": None, "support_email": None, "logo_url": None, "colour": "#1f4e79",
    "privacy_url": None,
}

_PARTS = (("subject", "subject"), ("text", "txt"), ("html", "html"))


@dataclass(frozen=True)
class MailTemplate:
    """A template's sources and where they come from.

    Attributes:
        name: the template name.
        source: ``product`` (this product's version), ``vendor`` (the vendor
            default) or ``builtin``.
        subject, text, html: the Jinja2 sources (``html`` None: plain text only).
    """

    name: str
    source: str
    subject: str
    text: str
    html: str | None


@dataclass(frozen=True)
class Rendered:
    """A rendered mail: one-line subject, plain text, HTML (or None)."""

    subject: str
    text: str
    html: str | None


def _spec(name: str) -> TemplateSpec:
    spec = TEMPLATES.get(name)
    if spec is None:
        raise not_found("mail template")
    return spec


def builtin_template(name: str) -> MailTemplate:
    """The packaged version of ``name``.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    _spec(name)
    folder = resources.files("software_dna.server").joinpath("templates").joinpath("mail")
    parts = {field: folder.joinpath(f"{name}.{suffix}").read_text("utf-8")
             for field, suffix in _PARTS}
    return MailTemplate(name, "builtin", parts["subject"].strip(), parts["text"],
                        parts["html"])


def _row(session: Session, name: str, product_id: str | None) -> EmailTemplate | None:
    where = (EmailTemplate.product_id.is_(None) if product_id is None
             else EmailTemplate.product_id == product_id)
    return session.scalars(select(EmailTemplate).where(EmailTemplate.name == name, where)
                           ).first()


def effective_template(session: Session, name: str, product_id: str | None) -> MailTemplate:
    """The template ``product_id`` uses (None: the vendor default's level).

    Raises:
        ServiceError: 404 ``not_found`` (no such template name).
    """
    _spec(name)
    if product_id is not None:
        row = _row(session, name, product_id)
        if row is not None:
            return MailTemplate(name, "product", row.subject, row.text, row.html)
    row = _row(session, name, None)
    if row is not None:
        return MailTemplate(name, "vendor", row.subject, row.text, row.html)
    return builtin_template(name)


def show_template(session: Session, name: str, product_id: str | None) -> MailTemplate:
    """:func:`effective_template` for the vendor's tools: an unknown product is refused.

    Raises:
        ServiceError: 404 ``not_found`` (template name or product).
    """
    if product_id is not None:
        get_product(session, product_id)
    return effective_template(session, name, product_id)


def list_templates(session: Session, product_id: str | None) -> list[dict[str, Any]]:
    """Every template name with the source ``product_id`` uses (``product`` / ``vendor`` /
    ``builtin``), its description and whether it is unsubscribable."""
    if product_id is not None:
        get_product(session, product_id)
    return [{"name": spec.name, "description": spec.description,
             "unsubscribable": spec.unsubscribable,
             "source": effective_template(session, spec.name, product_id).source,
             "variables": sorted({*spec.sample, *BRANDING_DEFAULTS, "product_name",
                                  "product_id", "unsubscribe_url"})}
            for spec in TEMPLATES.values()]


def branding_context(product: Product) -> dict[str, Any]:
    """The branding variables of ``product``'s mails (defaults filled in)."""
    given = product.branding or {}
    context: dict[str, Any] = {key: given.get(key) or default
                               for key, default in BRANDING_DEFAULTS.items()}
    context["vendor_name"] = context["vendor_name"] or product.name
    context["product_name"] = product.name
    context["product_id"] = product.id
    return context


def _render(template: MailTemplate, context: Mapping[str, Any]) -> Rendered:
    """Render ``template``: a built-in one in this process, a vendor's in a bounded child
    process (its branches may depend on the real values, so the check at save time
    alone cannot bound it).

    Raises:
        Exception: jinja2's TemplateError (SecurityError, UndefinedError), what a
            template's expression raised (OverflowError of a huge range, TypeError),
            or :class:`mailsandbox.CheckFailed` (a vendor template over its bounds).
    """
    parts = mailsandbox.Parts(template.subject, template.text, template.html)
    done = (mailsandbox.render(parts, context) if template.source == "builtin"
            else mailsandbox.render_bounded(parts, context))
    return Rendered(done.subject, done.text, done.html)


def render(session: Session, name: str, product: Product, context: Mapping[str, Any], *,
           unsubscribe_url: str | None) -> Rendered:
    """Render ``product``'s mail ``name`` with ``context`` plus the branding.

    Raises:
        ServiceError: 404 ``not_found`` (no such template).
        Exception: the template does not render with this context (jinja2's
            TemplateError for a variable the queued mail does not carry, or what
            an expression raised).
    """
    template = effective_template(session, name, product.id)
    full = {**dict(context), **branding_context(product), "unsubscribe_url": unsubscribe_url}
    return _render(template, full)


def _sample_product(session: Session, product_id: str | None) -> Product:
    if product_id is not None:
        return get_product(session, product_id)
    return Product(id="example-product", name="Example Product", branding={})


def preview_template(session: Session, name: str, *, product_id: str | None,
                     context: Mapping[str, Any] | None = None) -> Rendered:
    """``product_id``'s template ``name`` rendered with its sample context (values in
    ``context`` replace sample values).

    Raises:
        ServiceError: 404 ``not_found``; 400 ``invalid_request`` (the template
            does not render).
    """
    spec = _spec(name)
    product = _sample_product(session, product_id)
    sample_link = "https://licenses.example/v1/unsubscribe/example" if spec.unsubscribable \
        else None
    try:
        return render(session, name, product, {**spec.sample, **dict(context or {})},
                      unsubscribe_url=sample_link)
    except Exception as exc:  # any fault of a vendor's template is a 400
        raise invalid(f"The template does not render: {type(exc).__name__}: "
                      f"{str(exc)[:200]}") from None


def _check(name: str, template: MailTemplate) -> None:
    """Render ``template`` with the sample context (with and without an unsubscribe link)."""
    spec = TEMPLATES[name]
    if not template.subject.strip() or len(template.subject) > MAX_SUBJECT:
        raise invalid(f"The subject is 1 to {MAX_SUBJECT} characters.")
    if "\n" in template.subject.strip() or "\r" in template.subject:
        raise invalid("The subject is one line.")
    for body in (template.text, template.html or ""):
        if len(body) > MAX_BODY:
            raise invalid(f"A template body is at most {MAX_BODY} characters.")
    if not template.text.strip():
        raise invalid("The plain-text body is required.")
    product = Product(id="example-product", name="Example Product", branding={})
    contexts = [{**spec.sample, **branding_context(product), "unsubscribe_url": link}
                for link in ("https://licenses.example/v1/unsubscribe/example", None)]
    try:
        # In a child process with a time and memory bound: a template is a vendor's
        # program, and a loop or a padding filter can be made to run for hours.
        mailsandbox.check(mailsandbox.Parts(template.subject, template.text, template.html),
                          contexts)
    except mailsandbox.CheckFailed as exc:
        raise invalid(str(exc)) from None


def set_template(session: Session, name: str, *, product_id: str | None, subject: str,
                 text: str, html: str | None, actor: str = "admin") -> MailTemplate:
    """Save the vendor's version of ``name`` for ``product_id`` (None: every product); commits.

    The template is rendered with its sample context first: one that uses an
    unknown variable, does not parse, or reaches for what the sandbox forbids
    is refused, and so is one whose render takes over 2 s or 512 MB
    (:func:`software_dna.server.mailsandbox.check`).

    Raises:
        ServiceError: 404 ``not_found`` (template name or product), 400
            ``invalid_request`` (the template does not render, renders too
            slowly or too big, or is too long).
    """
    _spec(name)
    if product_id is not None:
        get_product(session, product_id)
    template = MailTemplate(name, "product" if product_id else "vendor", subject.strip(), text,
                            html)
    _check(name, template)
    now = utcnow()
    row = _row(session, name, product_id)
    if row is None:
        row = EmailTemplate(product_id=product_id, name=name, subject=template.subject,
                            text=text, html=html, updated_at=now)
        session.add(row)
    else:
        row.subject, row.text, row.html, row.updated_at = template.subject, text, html, now
    audit(session, actor, "mail_template.set", at=now, product_id=product_id,
          detail={"template": name})
    session.commit()
    return template


def reset_template(session: Session, name: str, *, product_id: str | None,
                   actor: str = "admin") -> MailTemplate:
    """Drop the vendor's version of ``name`` at this level; returns what is used now. Commits.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    _spec(name)
    if product_id is not None:
        get_product(session, product_id)
    where = (EmailTemplate.product_id.is_(None) if product_id is None
             else EmailTemplate.product_id == product_id)
    session.execute(delete(EmailTemplate).where(EmailTemplate.name == name, where))
    audit(session, actor, "mail_template.reset", product_id=product_id,
          detail={"template": name})
    session.commit()
    return effective_template(session, name, product_id)
