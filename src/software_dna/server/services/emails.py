"""Mail to end users and buyers, queued in the outbox (docs/commerce.md, "E-mails").

:func:`queue_mail` is how every service sends a mail: it adds one outbox item
per recipient in the caller's transaction; the worker renders the product's
template and sends it through the vendor's SMTP server
(:func:`software_dna.server.services.mailer.deliver`).

Also here: the key delivery (:func:`queue_key_delivery`), the scheduled
reminders (:func:`queue_reminders`), the one-click unsubscribe links
(:func:`unsubscribe_token`, :func:`unsubscribe`) and the sent log
(:func:`mail_log`).

Unsubscribe links (RFC 8058 / RFC 2369) carry a token binding one license
and one address without naming the address::

    <license id> "." b64url(email look-up hash) "." b64url(HMAC-SHA256(k, license id NUL hash)[:16])

``k`` is a key of its own derived from the master key
(:meth:`~software_dna.server.crypto.Vault.unsubscribe_mac`).  A token cannot
be forged or moved to another license or address without the master key; it
does not expire (a reminder read a year later still unsubscribes).  Opting
out is recorded per (license, address) as a :class:`MailOptOut` holding the
address's keyed look-up hash, never the address.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from software_dna.server.crypto import b64url, unb64url
from software_dna.server.models import Activation, EndUser, License, MailOptOut, OutboxItem
from software_dna.server.services import ledger, outbox
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.endusers import normal_email
from software_dna.server.services.errors import invalid
from software_dna.server.services.events import days_left
from software_dna.server.services.tokens import decrypt_end_user

__all__ = [
    "REMINDER_KINDS",
    "TRIAL_KINDS",
    "Recipient",
    "due_reminder_day",
    "format_time",
    "license_term",
    "mail_log",
    "opted_out",
    "queue_key_delivery",
    "queue_mail",
    "queue_payment_failed",
    "queue_reminders",
    "read_unsubscribe_token",
    "recipients",
    "unsubscribe",
    "unsubscribe_token",
    "unsubscribe_url",
]

#: License kinds whose end gets ``trial_ending`` instead of ``expiry_reminder``.
TRIAL_KINDS = ("trial", "evaluation")
#: License kinds that get reminders (test codes never do).
REMINDER_KINDS = ("full", "trial", "evaluation")
#: The largest reminder day a product may set (product settings).
MAX_REMINDER_DAY = 365


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
            ``end_user_id``; opt-outs are per ``license_id``).
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


def format_time(value: datetime | None) -> str | None:
    """A time as mails show it: ``2027-01-31 23:59 UTC`` (None stays None)."""
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else None


def license_term(lic: License) -> str:
    """How long ``lic`` runs, as the key mail says it (the ``term`` variable).

    ``renews each period`` (a subscription), ``until 2027-01-31 23:59 UTC`` (a
    fixed end), ``30 days from the first activation`` (a term that starts on
    first use and has not started yet) or ``perpetual``.
    """
    if lic.subscription:
        return "renews each period"
    if lic.expires_at is not None:
        return f"until {format_time(lic.expires_at)}"
    if lic.duration_days:
        days = int(lic.duration_days)
        return f"{days} day{'s' if days != 1 else ''} from the first activation"
    return "perpetual"


def queue_key_delivery(session: Session, ctx: Context, lic: License, license_key: str, *,
                       buyer: EndUser, email: str) -> OutboxItem | None:
    """Queue the ``license_key`` mail of ``lic`` to its buyer (no commit; once per key).

    The key delivery is always sent: it carries no unsubscribe link and opt-outs
    do not apply to it.

    Args:
        lic: the license just issued.
        license_key: the key (held only in the encrypted payload, dropped once sent).
        buyer: the buyer's end user (erasure finds the mail by its id).
        email: the buyer's address (mailed in its normal form,
            :func:`~.endusers.normal_email`, as the buyer is stored).
    """
    return queue_mail(
        session, ctx, template="license_key", recipient=normal_email(email) or email.strip(),
        product_id=lic.product_id,
        license_id=lic.id, end_user_id=buyer.id,
        context={"license_key": license_key, "license_id": lic.id, "seats": lic.seats,
                 "expires_at": format_time(lic.expires_at), "features": list(lic.features),
                 "duration_days": lic.duration_days, "subscription": bool(lic.subscription),
                 "term": license_term(lic)},
        # Once per key: a new key (licenses.rekey_license) is mailed again.
        dedup_key=f"key:{lic.id}:{lic.key_hash[:32]}")


# -- unsubscribe


def _mac(ctx: Context, license_id: str, email_index: str) -> bytes:
    return ctx.vault.unsubscribe_mac(f"{license_id}\0{email_index}")[:16]


def unsubscribe_token(ctx: Context, license_id: str, email_index: str) -> str:
    """The token of the unsubscribe link for (``license_id``, address look-up hash)."""
    return ".".join((license_id, b64url(bytes.fromhex(email_index)),
                     b64url(_mac(ctx, license_id, email_index))))


def unsubscribe_url(ctx: Context, license_id: str, email_index: str) -> str | None:
    """``<public url>/v1/unsubscribe/<token>``, or None without ``SOFTWARE_DNA_PUBLIC_URL``."""
    base = ctx.settings.public_url
    if not base:
        return None
    return f"{base.rstrip('/')}/v1/unsubscribe/{unsubscribe_token(ctx, license_id, email_index)}"


def read_unsubscribe_token(ctx: Context, token: str) -> tuple[str, str]:
    """``(license_id, email_index)`` of a genuine token.

    Raises:
        ServiceError: 400 ``invalid_request`` (malformed, forged or tampered).
    """
    refused = invalid("This unsubscribe link is not valid.")
    parts = token.split(".")
    if len(parts) != 3 or not 1 <= len(parts[0]) <= 40:
        raise refused
    license_id = parts[0]
    try:
        index_bytes, mac = unb64url(parts[1]), unb64url(parts[2])
    except ValueError:
        raise refused from None
    if len(index_bytes) != 32:
        raise refused
    email_index = index_bytes.hex()
    if not hmac.compare_digest(mac, _mac(ctx, license_id, email_index)):
        raise refused
    return license_id, email_index


def unsubscribe(session: Session, ctx: Context, token: str) -> bool:
    """Record the opt-out a one-click unsubscribe asks for; commits. Idempotent.

    Returns:
        True when it is new, False when the address had opted out already.

    Raises:
        ServiceError: 400 ``invalid_request`` (a forged or tampered token).
    """
    license_id, email_index = read_unsubscribe_token(ctx, token)
    if opted_out(session, license_id, email_index):
        return False
    now = utcnow()
    try:
        with session.begin_nested():
            session.add(MailOptOut(license_id=license_id, email_index=email_index,
                                   created_at=now))
    except IntegrityError:  # a concurrent click recorded it
        session.rollback()
        return False
    audit(session, "end_user", "mail.unsubscribe", at=now, license_id=license_id)
    ledger.record(session, ledger.MAIL_OPT_OUT, email_index, at=now,
                  detail={"license": license_id})
    session.commit()
    return True


def opted_out(session: Session, license_id: str, email_index: str) -> bool:
    """True when the address (look-up hash) unsubscribed from this license's mails."""
    return session.scalar(select(MailOptOut.id).where(
        MailOptOut.license_id == license_id, MailOptOut.email_index == email_index)) is not None


# -- recipients and reminders


@dataclass(frozen=True)
class Recipient:
    """One address a license's notices go to."""

    email: str
    email_index: str
    end_user_id: str


def recipients(session: Session, ctx: Context, lic: License) -> list[Recipient]:
    """Who a license's reminders and notices go to, without repeats and opt-outs.

    The buyer's address, and the confirmed addresses of the end users of its
    live activations (an unconfirmed address might not be the end user's).
    """
    users: list[EndUser] = []
    if lic.buyer_id is not None:
        buyer = session.get(EndUser, lic.buyer_id)
        if buyer is not None:
            users.append(buyer)
    users += list(session.scalars(
        select(EndUser).join(Activation, Activation.end_user_id == EndUser.id)
        .where(Activation.license_id == lic.id, Activation.deactivated_at.is_(None),
               EndUser.email_confirmed_at.is_not(None))
        .order_by(Activation.created_at, Activation.id)))
    found: dict[str, Recipient] = {}
    for user in users:
        if user.erased_at is not None or user.email_index is None or \
                user.email_index in found:
            continue
        email, _ = decrypt_end_user(ctx, user)
        if email is None or opted_out(session, lic.id, user.email_index):
            continue
        found[user.email_index] = Recipient(email, user.email_index, user.id)
    return list(found.values())


def due_reminder_day(reminder_days: list[int], expires_at: datetime, now: datetime) -> int | None:
    """The reminder to send now: the smallest day ``d`` with ``days left <= d``.

    When several are due at once (a license issued 2 days before its end, or a
    worker that was down), only the nearest is sent: a mail saying "3 days"
    followed at once by one saying "7 days" would mislead.  None when the end
    has passed or no reminder is due.
    """
    left = (expires_at - now).total_seconds() / 86400
    if left <= 0:
        return None
    due = [d for d in reminder_days if left <= d]
    return min(due) if due else None


def queue_reminders(session: Session, ctx: Context, now: datetime | None = None) -> int:
    """The scheduled job: queue the reminders due at ``now``; commits. Returns how many.

    For each active, non-subscription license with an end (``expires_at``)
    within its product's largest ``reminder_days``: the nearest due day
    (:func:`due_reminder_day`) is mailed to each recipient
    (:func:`recipients`) -- ``trial_ending`` for evaluations and trials,
    ``expiry_reminder`` otherwise.  Each mail's ``dedup_key`` is
    ``reminder:<license>:<end %Y%m%d>:<day>:<address hash>``, so however many
    times and workers run this, each reminder is queued once; a license
    renewed to a new end is reminded again.  Subscriptions renew by
    themselves and get no expiry reminder.
    """
    now = now or utcnow()
    horizon = now + timedelta(days=MAX_REMINDER_DAY)
    rows = list(session.scalars(
        select(License).where(License.status == "active", License.expires_at.is_not(None),
                              License.expires_at > now, License.expires_at <= horizon,
                              License.subscription.is_(False),
                              License.kind.in_(REMINDER_KINDS))
        .order_by(License.expires_at, License.id)))
    queued = 0
    for lic in rows:
        assert lic.expires_at is not None
        day = due_reminder_day(list(lic.product.reminder_days or []), lic.expires_at, now)
        if day is None:
            continue
        template = "trial_ending" if lic.kind in TRIAL_KINDS else "expiry_reminder"
        left = days_left(lic.expires_at, now)  # the same count as license.expiring
        for person in recipients(session, ctx, lic):
            item = queue_mail(
                session, ctx, template=template, recipient=person.email,
                product_id=lic.product_id, license_id=lic.id, end_user_id=person.end_user_id,
                context={"license_id": lic.id, "key_hint": lic.key_hint,
                         "expires_at": format_time(lic.expires_at), "days_left": left},
                dedup_key=(f"reminder:{lic.id}:{lic.expires_at:%Y%m%d}:{day}:"
                           f"{person.email_index}"))
            queued += item is not None
    session.commit()
    return queued


def _billing_link(url: str | None) -> str | None:
    """``url`` when it is one printable https:// URL of at most 2000 characters, else None."""
    if not url or len(url) > 2000 or not url.startswith("https://") or \
            not url.isprintable() or any(char.isspace() for char in url):
        return None
    return url


def queue_payment_failed(session: Session, ctx: Context, lic: License, *,
                         billing_url: str | None = None) -> int:
    """Queue the ``payment_failed`` notice of ``lic`` to its recipients (no commit).

    Call it when a store reports a failed payment, after setting
    ``lic.payment_failed_at``: the notice says the license is suspended
    ``product.payment_grace_days`` after that time.  Once per failure (the
    dedup key holds ``payment_failed_at``) and address; opted-out addresses
    get none.

    Args:
        billing_url: where the buyer updates the payment method, when the
            store's event carries one (Stripe ``hosted_invoice_url``, Paddle's
            ``management_urls.update_payment_method``, Lemon Squeezy's
            ``urls.update_payment_method``); the template's ``billing_url``
            (None when absent or not an https:// URL).

    Returns:
        How many mails were queued.

    Raises:
        ValueError: ``lic.payment_failed_at`` is not set.
    """
    failed_at = lic.payment_failed_at
    if failed_at is None:
        raise ValueError("payment_failed_at is not set")
    grace = int(lic.product.payment_grace_days)
    queued = 0
    for person in recipients(session, ctx, lic):
        item = queue_mail(
            session, ctx, template="payment_failed", recipient=person.email,
            product_id=lic.product_id, license_id=lic.id, end_user_id=person.end_user_id,
            context={"license_id": lic.id, "key_hint": lic.key_hint, "grace_days": grace,
                     "suspend_at": format_time(failed_at + timedelta(days=grace)),
                     "billing_url": _billing_link(billing_url)},
            dedup_key=f"payment_failed:{lic.id}:{failed_at:%Y%m%d%H%M%S}:{person.email_index}")
        queued += item is not None
    return queued


# -- the sent log


def mail_log(session: Session, ctx: Context, *, license_id: str | None = None,
             limit: int = 100) -> list[dict[str, Any]]:
    """The mails queued and sent, newest first: the sent log (personal data: the address).

    Each entry: ``id`` (the Message-ID's left part), ``template``, ``product``,
    ``license_id``, ``end_user_id``, ``status``, ``attempts``, ``created_at``,
    ``sent_at``, ``last_error`` and ``to`` (the address, decrypted; None after
    the end user's erasure).
    """
    query = (select(OutboxItem).where(OutboxItem.channel == outbox.EMAIL)
             .order_by(OutboxItem.created_at.desc(), OutboxItem.id).limit(limit))
    if license_id is not None:
        query = query.where(OutboxItem.license_id == license_id)
    return [{"id": item.id, "template": item.topic, "product": item.product_id,
             "license_id": item.license_id, "end_user_id": item.end_user_id,
             "status": item.status, "attempts": item.attempts, "created_at": item.created_at,
             "sent_at": item.delivered_at, "last_error": item.last_error,
             "to": outbox.recipient_of(ctx, item)}
            for item in session.scalars(query)]
