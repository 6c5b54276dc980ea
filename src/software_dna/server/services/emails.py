"""Mail to end users and buyers, queued in the outbox (docs/commerce.md, "E-mails").

:func:`queue_mail` is how every service sends a mail: it adds one outbox item
per recipient in the caller's transaction; the worker renders the product's
template and sends it through the vendor's SMTP server.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from software_dna.server.models import OutboxItem
from software_dna.server.services import outbox
from software_dna.server.services.common import Context

__all__ = ["queue_mail"]


def queue_mail(
    session: Session,
    ctx: Context,
    *,
    template: str,
    recipient: str,
    product_id: str,
    license_id: str | None = None,
    end_user_id: str | None = None,
    context: Mapping[str, Any] | None = None,
    dedup_key: str | None = None,
) -> OutboxItem | None:
    """Queue one mail from ``template`` to ``recipient`` (no commit).

    Args:
        template: the template name (``license_key``, ``expiry_reminder``,
            ``payment_failed``, ``trial_ending``, ...).
        recipient: the address (encrypted in the outbox; erased with the end user).
        product_id: whose template and branding.
        license_id, end_user_id: what the mail is about (erasure finds it by
            ``end_user_id``).
        context: JSON values the template may use (a license key, a date);
            encrypted, dropped once sent.
        dedup_key: at most one mail per key, ever (None for no limit).

    Returns:
        The outbox item (its id is the Message-ID), or None when ``dedup_key``
        was already used.
    """
    return outbox.enqueue(
        session, ctx, channel=outbox.EMAIL, topic=template,
        payload={"template": template, "product_id": product_id,
                 "context": dict(context or {})},
        product_id=product_id, license_id=license_id, end_user_id=end_user_id,
        personal=True, recipient=recipient, dedup_key=dedup_key)
