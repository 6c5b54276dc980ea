"""Email confirmation: an address counts only once its owner opened the link mailed to it.

An end user gives an email address at activation; nothing proves it is
theirs.  Password reset codes therefore go only to *confirmed* addresses
(:mod:`.password_reset`), so a key holder cannot point them, or any other
mail of the server, at someone else's mailbox.

- :func:`email_given` (the hook, called wherever an end user's email is
  stored): when the address changes, the end user is unconfirmed again,
  earlier links die, and a new link is queued for the new address.
- :func:`send_pending` (after the caller's commit) mails the queued links;
  the one place this module sends mail.
- :func:`link_state` answers ``GET /v1/email-confirmations/<token>`` (a page
  whose button POSTs: a mail scanner that prefetches the link confirms
  nothing); :func:`confirm` the POST.
- :func:`forget` (erasure): the confirmation state goes with the email.

Invariants (server state only; the client chooses nothing here):

- ``email_confirmed_at`` is set only by :func:`confirm` with a live token
  whose address (its ``email_index``) is the one on file now; any change of
  the address clears it.
- A token is 256 random bits, kept only as a keyed hash (HMAC under the
  master key's ``email-confirmations`` key), used once, valid
  :data:`CONFIRMATION_TTL` seconds.
- Confirmation mails per license are limited (:data:`MAILS_PER_WINDOW` per
  rate-limit window) and the confirmation routes per client network.

A link needs the server's public address (``SOFTWARE_DNA_PUBLIC_URL``) and
mail (``SOFTWARE_DNA_SMTP_*``); without both no link is made and addresses
stay unconfirmed (the vendor resets passwords).
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from software_dna.server.mail import MailError, mail_configured, send_mail
from software_dna.server.models import (
    Activation,
    EmailConfirmation,
    EndUser,
)
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.ratelimit import hit
from software_dna.wire.codes import Code

__all__ = [
    "CONFIRMATION_TTL",
    "MAILS_PER_WINDOW",
    "LinkState",
    "confirm",
    "email_given",
    "forget",
    "link_state",
    "links_possible",
    "queue_link",
    "send_pending",
]

#: Seconds a confirmation link works (7 days).
CONFIRMATION_TTL = 7 * 24 * 3600
#: Confirmation mails per license per rate-limit window.
MAILS_PER_WINDOW = 3
#: The path of a link, under the public URL.
LINK_PATH = "/v1/email-confirmations/"
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32)
_PENDING = "software_dna.email_confirmations"
_log = logging.getLogger("software_dna.server")


@dataclass(frozen=True)
class _Link:
    """A link made in this transaction, mailed after the commit (memory only)."""

    confirmation_id: str
    end_user_id: str
    license_id: str | None
    email: str
    token: str
    product_name: str
    key_last4: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkState:
    """What a link's token stands for: ``live`` (it would confirm), ``done`` (it confirmed
    the address on file already), else neither (unknown, expired, replaced, erased)."""

    live: bool
    done: bool


def links_possible(ctx: Context) -> bool:
    """True when links can be made: a public URL and mail are configured."""
    return ctx.settings.public_url is not None and mail_configured(ctx.settings)


def _forget_links(session: Session, end_user_id: str) -> None:
    session.execute(delete(EmailConfirmation).where(EmailConfirmation.end_user_id == end_user_id))


def email_given(session: Session, ctx: Context, end_user: EndUser, email: str, index: str, *,
                activation: Activation | None, now: datetime) -> None:
    """The hook for an email being stored on ``end_user``: call before it is stored.

    When ``index`` (:meth:`Vault.email_index` of ``email``) differs from the
    address on file, the end user becomes unconfirmed, its earlier links are
    deleted and a link to ``email`` is queued (mailed by :func:`send_pending`
    after the commit).  The same address again changes nothing.  ``activation``
    names the license in the mail (None: an address set without one, in the
    portal).  Does not commit.
    """
    if end_user.email_index == index:
        return
    end_user.email_confirmed_at = None
    _forget_links(session, end_user.id)
    queue_link(session, ctx, end_user, email, index, activation=activation, now=now)


def queue_link(session: Session, ctx: Context, end_user: EndUser, email: str, index: str, *,
               activation: Activation | None, now: datetime) -> bool:
    """Make a link for ``email`` (with ``index``) of ``end_user`` and queue its mail.

    Returns False (and makes nothing) when links are not possible
    (:func:`links_possible`).  Does not commit.
    """
    if not links_possible(ctx):
        return False
    token = secrets.token_urlsafe(32)
    expires_at = now + timedelta(seconds=CONFIRMATION_TTL)
    row = EmailConfirmation(id=new_id("ecf"), end_user_id=end_user.id,
                            token_hash=ctx.vault.confirmation_token_hash(token),
                            email_index=index, created_at=now, expires_at=expires_at,
                            used_at=None)
    session.add(row)
    lic = activation.license if activation is not None else None
    session.info.setdefault(_PENDING, []).append(_Link(
        confirmation_id=row.id, end_user_id=end_user.id,
        license_id=lic.id if lic is not None else None, email=email, token=token,
        product_name=lic.product.name if lic is not None else "your software",
        key_last4=lic.key_last4 if lic is not None else "", expires_at=expires_at))
    return True


def _body(link: _Link, url: str) -> str:
    which = f" (license key ending in {link.key_last4})" if link.key_last4 else ""
    return (
        f"This address was given for a license of {link.product_name}{which}.\n\n"
        f"If it is yours, open this link and press \"Confirm\":\n\n{url}\n\n"
        f"The link works until {link.expires_at:%Y-%m-%d %H:%M} UTC. Once the address is "
        "confirmed, password reset codes for the license can be sent to it, and you can "
        "sign in to the license portal with a link mailed to it.\n\n"
        "If you did not give this address, ignore this email: it stays unconfirmed.\n"
    )


def send_pending(session: Session, ctx: Context) -> int:
    """Mail the links queued in ``session`` (call after the commit that stored them).

    Mail failures never reach the caller (the activation that set the email
    has succeeded): each outcome is audited (ids only) and a failure logged.
    A license over :data:`MAILS_PER_WINDOW` confirmation mails per window
    gets no more (the link stays valid; a password reset request mails a new
    one later).  Commits.  Returns how many mails went out.
    """
    links: list[_Link] = session.info.pop(_PENDING, [])
    sent = 0
    settings = ctx.settings
    for link in links:
        if session.get(EmailConfirmation, link.confirmation_id) is None:
            continue  # rolled back, or replaced since
        if link.license_id is not None:
            try:
                hit(session, "confirm-mail:" + link.license_id, limit=MAILS_PER_WINDOW,
                    window=settings.rate_limit_window)
            except ServiceError:
                audit(session, "system", "email_confirmation.mail_limited", at=utcnow(),
                      license_id=link.license_id, end_user_id=link.end_user_id)
                session.commit()
                continue
        url = f"{settings.public_url}{LINK_PATH}{link.token}"
        try:
            send_mail(settings, [link.email], f"Confirm your email address for "
                      f"{link.product_name}", _body(link, url))
        except MailError as exc:
            _log.warning("A confirmation mail could not be sent: %s", exc)
            audit(session, "system", "email_confirmation.mail_failed", at=utcnow(),
                  license_id=link.license_id, end_user_id=link.end_user_id)
        else:
            sent += 1
            audit(session, "system", "email_confirmation.mailed", at=utcnow(),
                  license_id=link.license_id, end_user_id=link.end_user_id)
        session.commit()
    return sent


def forget(session: Session, end_user: EndUser) -> None:
    """Erasure: the confirmation state and every link of ``end_user`` go. Does not commit."""
    end_user.email_confirmed_at = None
    _forget_links(session, end_user.id)


def _limit(session: Session, ctx: Context, client_address: str | None) -> None:
    if client_address:
        try:
            hit(session, "confirm-net:" + ctx.vault.address_key(client_address),
                limit=ctx.settings.rate_limit_address_attempts,
                window=ctx.settings.rate_limit_window)
        except ServiceError as exc:
            raise ServiceError(Code.RATE_LIMITED, "Too many confirmation requests from your "
                               "network. Wait and try again later.",
                               retry_after=exc.retry_after) from None


def _row(session: Session, ctx: Context, token: str) -> tuple[EmailConfirmation, EndUser] | None:
    if not _TOKEN_RE.match(token):
        return None
    row = session.scalars(select(EmailConfirmation).where(
        EmailConfirmation.token_hash == ctx.vault.confirmation_token_hash(token))).first()
    if row is None:
        return None
    end_user = session.get(EndUser, row.end_user_id)
    if end_user is None or end_user.erased_at is not None or \
            end_user.email_index != row.email_index:
        return None  # erased, or the address changed since the link was sent
    return row, end_user


def _state(row: EmailConfirmation, end_user: EndUser, now: datetime) -> LinkState:
    if row.used_at is not None:
        return LinkState(live=False, done=end_user.email_confirmed_at is not None)
    return LinkState(live=row.expires_at > now, done=False)


def link_state(session: Session, ctx: Context, token: str, *,
               client_address: str | None = None) -> LinkState:
    """What ``token`` would do; changes nothing but the rate-limit counter (commits it).

    Raises:
        ServiceError: 429 ``rate_limited`` (per client network).
    """
    _limit(session, ctx, client_address)
    found = _row(session, ctx, token)
    if found is None:
        return LinkState(live=False, done=False)
    return _state(*found, utcnow())


def confirm(session: Session, ctx: Context, token: str, *,
            client_address: str | None = None) -> datetime:
    """Confirm the address a link was mailed to; commits. Returns when it was confirmed.

    Confirming with a link that already did is a success (a second press);
    the confirmation is audited (ids only).

    Raises:
        ServiceError: 429 ``rate_limited`` (per client network); 404 ``not_found``
        (``details.kind`` ``email_confirmation``): unknown, expired or replaced.
    """
    _limit(session, ctx, client_address)
    found = _row(session, ctx, token)
    now = utcnow()
    if found is not None:
        row, end_user = found
        state = _state(row, end_user, now)
        if state.done and end_user.email_confirmed_at is not None:
            return end_user.email_confirmed_at
        if state.live:
            row.used_at = now
            end_user.email_confirmed_at = now
            audit(session, "end_user", "end_user.email_confirmed", at=now,
                  end_user_id=end_user.id)
            session.commit()
            return now
    session.rollback()
    raise ServiceError(Code.NOT_FOUND, "This confirmation link is not valid (any more): it "
                       "expired, was replaced by a newer one, or the address changed. Ask for "
                       "a new one with a password reset request, or ask the vendor.",
                       details={"kind": "email_confirmation"})
