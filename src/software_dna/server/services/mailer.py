"""The worker's ``email`` handler: render one queued mail and send it through the vendor's SMTP.

:func:`deliver` is called by the outbox worker for each claimed e-mail item,
outside any transaction.  It reads what it needs (the product, its template,
the opt-outs) in a short session of its own, closed before the SMTP
conversation, so that no database lock is held while the mail server talks.

Outcomes (:class:`~software_dna.server.services.outbox.Outcome`):

- 250: delivered.
- The address unsubscribed from this license's notices since the mail was
  queued: not sent, permanent, error ``unsubscribed`` (the key delivery is
  always sent).
- A 5xx refusal of the recipient or the message: permanent.
- A 4xx reply, a connection, TLS or login failure: retried on the outbox's
  back-off schedule.  Every attempt carries the same Message-ID,
  ``<outbox item id@sender's domain>``, so a repeat after a worker died
  between the server's 250 and the commit can be dropped by the receiver.
- No SMTP server configured: retried later (the mail is not lost), with a
  warning in the log.
- The payload or address is gone (erased), the product or template is
  unknown: permanent.
"""

from __future__ import annotations

import logging
from email.utils import parseaddr
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from software_dna.server.mail import (
    MailRefused,
    MailTemporary,
    MailUnavailable,
    build_message,
    message_domain,
    send_message,
)
from software_dna.server.models import OutboxItem, Product
from software_dna.server.services import mail_templates, outbox
from software_dna.server.services.common import Context
from software_dna.server.services.emails import opted_out, unsubscribe_url

__all__ = ["deliver", "deliverer", "message_id"]

log = logging.getLogger("software_dna.server.mail")


def message_id(ctx: Context, item: OutboxItem) -> str:
    """The Message-ID of ``item``'s mail: ``<item id@sender's domain>``, the same every attempt."""
    return f"<{item.id}@{message_domain(ctx.settings)}>"


def deliverer(sessions: sessionmaker[Session]) -> outbox.Handler:
    """:func:`deliver` bound to ``sessions``: the worker's handler for the e-mail channel."""
    def handler(ctx: Context, item: OutboxItem, payload: dict[str, Any]) -> outbox.Outcome:
        return deliver(ctx, item, payload, sessions=sessions)
    return handler


def deliver(ctx: Context, item: OutboxItem, payload: dict[str, Any], *,
            sessions: sessionmaker[Session]) -> outbox.Outcome:
    """Render and send one queued mail; never raises for a delivery failure.

    Args:
        ctx: the service context (settings: SMTP, public URL; the vault).
        item: the claimed outbox item (its id makes the Message-ID).
        payload: the item's decrypted payload (``template``, ``product_id``,
            ``context``; :func:`outbox.payload_of`).
        sessions: the session factory; one short session reads the product,
            its templates and the opt-outs and is closed before the SMTP
            conversation (on SQLite every transaction holds the write lock).

    Returns:
        The outcome for :func:`outbox.finish` (see the module docstring).
    """
    recipient = outbox.recipient_of(ctx, item)
    if recipient is None:
        return outbox.Outcome(False, error="no recipient (erased)", permanent=True)
    name = str(payload.get("template", item.topic))
    spec = mail_templates.TEMPLATES.get(name)
    if spec is None:
        return outbox.Outcome(False, error=f"unknown mail template {name[:40]!r}",
                              permanent=True)
    try:
        return _render_and_send(ctx, item, payload, recipient=recipient, spec=spec,
                                sessions=sessions)
    except SQLAlchemyError as exc:
        # The database was busy or away while reading the template: try again later.
        return outbox.Outcome(False, error=f"database: {type(exc).__name__}")


def _render_and_send(ctx: Context, item: OutboxItem, payload: dict[str, Any], *,
                     recipient: str, spec: mail_templates.TemplateSpec,
                     sessions: sessionmaker[Session]) -> outbox.Outcome:
    name = spec.name
    reader = sessions()
    try:
        product = reader.get(Product, str(payload.get("product_id") or item.product_id))
        if product is None:
            return outbox.Outcome(False, error="unknown product", permanent=True)
        link: str | None = None
        if spec.unsubscribable and item.license_id is not None:
            index = ctx.vault.email_index(recipient)
            if opted_out(reader, item.license_id, index):
                return outbox.Outcome(False, error="unsubscribed", permanent=True)
            link = unsubscribe_url(ctx, item.license_id, index)
        try:
            rendered = mail_templates.render(reader, name, product,
                                             dict(payload.get("context") or {}),
                                             unsubscribe_url=link)
        except Exception as exc:  # a vendor's template fault, of any kind
            # The vendor may fix the template meanwhile: retried on the back-off schedule.
            log.warning("mail template %s of product %s does not render: %s", name,
                        product.id, type(exc).__name__)
            return outbox.Outcome(False, error=f"template error: {type(exc).__name__}")
        branding = mail_templates.branding_context(product)
    finally:
        reader.close()  # no lock is held while the SMTP server talks
    headers: dict[str, str] = {}
    support = branding.get("support_email")
    if support and "@" in parseaddr(str(support))[1]:
        headers["Reply-To"] = str(support)
    if link is not None:
        headers["List-Unsubscribe"] = f"<{link}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message = build_message(ctx.settings, to=recipient, subject=rendered.subject,
                            text=rendered.text, html=rendered.html,
                            message_id=message_id(ctx, item),
                            sender_name=str(branding.get("vendor_name") or "") or None,
                            headers=headers)
    try:
        send_message(ctx.settings, message)
    except MailUnavailable:
        log.warning("a mail is queued but no SMTP server is configured "
                    "(SOFTWARE_DNA_SMTP_HOST): it is kept and retried")
        return outbox.Outcome(False, error="no SMTP server configured")
    except MailRefused as exc:
        return outbox.Outcome(False, status_code=exc.code, error=str(exc), permanent=True)
    except MailTemporary as exc:
        return outbox.Outcome(False, status_code=exc.code, error=str(exc))
    return outbox.Outcome(True, status_code=250)
