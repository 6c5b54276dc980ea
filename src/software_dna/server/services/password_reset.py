"""Password reset by email: a single-use, short-lived code mailed to the end user.

- :func:`request_reset`: the end user (who knows the license key) asks for a
  code.  The server mails a fresh code to every *confirmed* email address
  on file for the license (end users who gave one, with consent, confirmed
  it with the link mailed to it (:mod:`.email_confirmation`), and were not
  erased), one message each.  Without a confirmed address the answer is 409
  ``no_email_on_file``, whether an unconfirmed address exists or none does
  (the same message: it reveals nothing more than before confirmation
  existed); an unconfirmed address without a live link is mailed a new
  confirmation link then.
- :func:`confirm_reset`: the code plus a new password set the license's
  activation password (scrypt, like every password).

The code is 12 characters of an unambiguous alphabet (60 bits), shown as
``XXXX-XXXX-XXXX``; the database keeps only a keyed hash of it
(HMAC-SHA256 under a master-derived key), valid for
``SOFTWARE_DNA_PASSWORD_RESET_TTL`` seconds (default 900), used once.  The
server never stores or mails a password.

Invariants (a key holder who is not the mailbox owner must not break the
owner's reset):

- Neither a new request nor a wrong code invalidates a live code.  Up to
  :data:`MAX_LIVE_CODES` codes live side by side; while that many live, a
  request is refused (429, until the oldest expires) rather than dropping
  one: every live code was mailed to the confirmed addresses, so the owner
  holds them all, and keeping the oldest means no request -- the owner's
  or anyone's -- ever takes a code out of the owner's hands.  Dropping the
  oldest would let three requests of someone else void the code the owner
  just asked for.
- Guesses are bounded: every confirmation counts against the license
  (``reset-guess:<license id>``, ``SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS`` per
  window) and the client's network (``reset-guess-net:<address key>``,
  ``SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS`` per window), apart from the
  activation counters, so guessing locks out nobody's activations.  With
  the defaults (10 per 300 s) at most 2,880 guesses a day reach a license,
  each matching one of at most 3 live codes out of 2^60: under 1 in 10^14
  a day (docs/security.md).
- Requests are rate limited per client address (the activation attempts
  counter) and per license (:data:`MAILS_PER_WINDOW` mails per window).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from software_dna.server.crypto import hash_password
from software_dna.server.domain.refusals import LICENSE_REVOKED
from software_dna.server.mail import MailError, MailUnavailable, mail_configured, send_mail
from software_dna.server.models import (
    Activation,
    EmailConfirmation,
    EndUser,
    License,
    PasswordResetCode,
)
from software_dna.server.services import email_confirmation
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.endusers import end_password_sessions
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.lookups import find_license_by_key
from software_dna.server.services.ratelimit import hit, hit_address
from software_dna.server.services.tokens import decrypt_end_user
from software_dna.wire.codes import Code

__all__ = ["MAILS_PER_WINDOW", "MAX_LIVE_CODES", "ResetRequested", "confirm_reset",
           "request_reset"]

#: Reset mails per license per rate-limit window.
MAILS_PER_WINDOW = 3
#: Live codes a license may have at once (each request adds one; none is dropped).
MAX_LIVE_CODES = 3
#: At most this many addresses get a code (the end users of the license).
MAX_RECIPIENTS = 5
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_RE = re.compile(r"^[A-Z2-9]{12}$")
_NO_CONFIRMED_EMAIL = (
    "No confirmed email address is on file for this license, so no reset code was sent. If "
    "you gave an address when activating, confirm it with the link mailed to it (a new link is "
    "mailed when the last one expired) and ask again; otherwise ask the vendor to reset the "
    "activation password.")
_NO_CONFIRMED_EMAIL_NO_LINKS = (
    "No confirmed email address is on file for this license, so no reset code was sent. Ask "
    "the vendor to reset the activation password.")


@dataclass(frozen=True)
class ResetRequested:
    """Result of :func:`request_reset`: how many mails went out, and the code's end."""

    sent: int
    expires_at: datetime
    server_time: datetime


def _new_code() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(12))


def _normalize(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


def _license(session: Session, ctx: Context, product_id: str, license_key: str) -> License:
    lic = find_license_by_key(session, ctx, license_key)
    if lic is None or lic.product_id != product_id:
        session.rollback()
        raise ServiceError(Code.UNKNOWN_LICENSE_KEY,
                           "This license key does not exist for this product. Check the key.")
    return lic


def _end_users(session: Session, license_id: str) -> list[EndUser]:
    """Who may receive the license's reset codes: the end users (with an email on file,
    not erased) of its live activations, latest seen first.

    Someone whose seat ended (deactivated, removed) no longer holds the license, so
    gets no code while anyone holds a seat -- even a holder who gave no email (then
    no code goes out: the vendor resets the password); when no activation is live
    at all (the only computer died and was removed), the end user seen last is the
    license's holder.
    """
    held = session.scalars(select(Activation.id).where(
        Activation.license_id == license_id, Activation.deactivated_at.is_(None)
    ).limit(1)).first() is not None
    query = (select(EndUser, Activation.deactivated_at)
             .join(Activation, Activation.end_user_id == EndUser.id)
             .where(Activation.license_id == license_id, EndUser.erased_at.is_(None),
                    EndUser.email_ciphertext.is_not(None))
             .order_by(Activation.last_seen_at.desc()))
    rows = session.execute(query).all()
    if held:  # whoever holds a seat now, even one who gave no email, outranks the past
        return list(dict.fromkeys(user for user, ended in rows if ended is None))
    return [rows[0][0]] if rows else []


def _confirmed_emails(ctx: Context, users: list[EndUser]) -> list[str]:
    found: dict[str, str] = {}
    for user in users:
        if user.email_confirmed_at is None:
            continue
        email, _ = decrypt_end_user(ctx, user)
        if email:
            found.setdefault(email.strip().lower(), email.strip())
    return list(found.values())[:MAX_RECIPIENTS]


def _new_links(session: Session, ctx: Context, lic: License, users: list[EndUser],
               now: datetime) -> None:
    """Queue a confirmation link for each unconfirmed address without a live one; commits
    and mails them (:func:`.email_confirmation.send_pending`)."""
    activation = session.scalars(select(Activation).where(
        Activation.license_id == lic.id).limit(1)).first()
    for user in users[:MAX_RECIPIENTS]:
        if user.email_confirmed_at is not None or user.email_index is None:
            continue
        live = session.scalars(select(EmailConfirmation.id).where(
            EmailConfirmation.end_user_id == user.id, EmailConfirmation.used_at.is_(None),
            EmailConfirmation.expires_at > now).limit(1)).first()
        email, _ = decrypt_end_user(ctx, user)
        if live is None and email:
            email_confirmation.queue_link(session, ctx, user, email, user.email_index,
                                          activation=activation, now=now)
    session.commit()
    email_confirmation.send_pending(session, ctx)


def _body(product_name: str, key_last4: str, code: str, expires_at: datetime) -> str:
    shown = f"{code[:4]}-{code[4:8]}-{code[8:]}"
    return (
        f"Someone (hopefully you) asked to reset the activation password of your "
        f"{product_name} license (key ending in {key_last4}).\n\n"
        f"Your reset code: {shown}\n\n"
        f"It works once, until {expires_at:%Y-%m-%d %H:%M} UTC. Enter it in the app together "
        "with the new password you want.\n\n"
        "If you did not ask for this, ignore this email: your password stays as it is.\n"
    )


def request_reset(session: Session, ctx: Context, *, product_id: str, license_key: str,
                  client_address: str | None = None) -> ResetRequested:
    """Mail a new reset code to the confirmed email address(es) of the license; commits.

    Earlier live codes keep working (see the module docstring).

    Raises:
        ServiceError: 429 ``rate_limited`` (per address, per license, or
        :data:`MAX_LIVE_CODES` codes live already); 404 ``unknown_license_key``;
        403 ``license_revoked``; 409 ``no_password`` (the license has none) or
        ``no_email_on_file`` (no confirmed address: confirm it, or the vendor
        must reset it); 503 ``mail_unavailable`` (no SMTP server configured)
        or ``mail_failed``.
    """
    settings = ctx.settings
    hit_address(session, ctx, client_address)
    lic = _license(session, ctx, product_id, license_key)
    hit(session, "reset:" + lic.id, limit=MAILS_PER_WINDOW,
                  window=settings.rate_limit_window)
    if lic.status == "revoked":
        raise ServiceError(LICENSE_REVOKED.code, LICENSE_REVOKED.message)
    if lic.password_hash is None and not lic.password_erased and not lic.product.password_required:
        raise ServiceError(Code.NO_PASSWORD,
                           "This license has no activation password: there is nothing to reset.")
    users = _end_users(session, lic.id)
    if not users:
        raise ServiceError(Code.NO_EMAIL_ON_FILE, _NO_CONFIRMED_EMAIL)
    if not mail_configured(settings):
        raise ServiceError(Code.MAIL_UNAVAILABLE,
                           "This license server does not send email. Ask the vendor to reset "
                           "the activation password.")
    now = utcnow()
    emails = _confirmed_emails(ctx, users)
    if not emails:
        if not email_confirmation.links_possible(ctx):  # no link could ever come: say so
            raise ServiceError(Code.NO_EMAIL_ON_FILE, _NO_CONFIRMED_EMAIL_NO_LINKS)
        _new_links(session, ctx, lic, users, now)
        raise ServiceError(Code.NO_EMAIL_ON_FILE, _NO_CONFIRMED_EMAIL)
    session.scalars(select(License.id).where(License.id == lic.id)
                    .with_for_update(of=License)).one()  # one request at a time per license
    live = session.scalars(
        select(PasswordResetCode.expires_at).where(
            PasswordResetCode.license_id == lic.id, PasswordResetCode.used_at.is_(None),
            PasswordResetCode.expires_at > now)
        .order_by(PasswordResetCode.expires_at)).all()
    if len(live) >= MAX_LIVE_CODES:
        session.rollback()
        wait = max(1, int((live[0] - now).total_seconds()))
        raise ServiceError(Code.RATE_LIMITED,
                           f"{len(live)} reset codes were mailed to the address on file and are "
                           "still valid: use the newest one, or ask again later.",
                           retry_after=wait)
    code = _new_code()
    expires_at = now + timedelta(seconds=settings.password_reset_ttl)
    row = PasswordResetCode(id=new_id("prc"), license_id=lic.id,
                            code_hash=ctx.vault.reset_code_hash(lic.id, code), created_at=now,
                            expires_at=expires_at, used_at=None, attempts=0)
    session.add(row)
    session.commit()
    try:
        sent = send_mail(settings, emails,
                         f"Your password reset code for {lic.product.name}",
                         _body(lic.product.name, lic.key_last4, code, expires_at))
    except MailError as exc:
        session.execute(delete(PasswordResetCode).where(PasswordResetCode.id == row.id))
        audit(session, "sdk", "password_reset.mail_failed", at=now, product_id=product_id,
              license_id=lic.id)
        session.commit()
        if isinstance(exc, MailUnavailable):  # pragma: no cover - checked above
            raise ServiceError(Code.MAIL_UNAVAILABLE, str(exc)) from None
        raise ServiceError(Code.MAIL_FAILED, "The reset code could not be mailed. Try again "
                           "later, or ask the vendor to reset the password.") from None
    audit(session, "sdk", "password_reset.request", at=now, product_id=product_id,
          license_id=lic.id, detail={"recipients": sent})
    session.commit()
    return ResetRequested(sent=sent, expires_at=expires_at, server_time=now)


def _guess(session: Session, key: str, limit: int, window: int) -> None:
    """Count one confirmation attempt against ``key`` (commits); 429 past ``limit``."""
    try:
        hit(session, key, limit=limit, window=window)
    except ServiceError as exc:
        raise ServiceError(Code.RATE_LIMITED, "Too many reset code attempts. Wait and try "
                           "again later.", retry_after=exc.retry_after) from None


def confirm_reset(session: Session, ctx: Context, *, product_id: str, license_key: str,
                  code: str, new_password: str, client_address: str | None = None) -> datetime:
    """Set a new activation password with a mailed reset code; commits. Returns the server time.

    Every attempt counts against the guess limits of the license and of the
    client's network (module docstring); a wrong code changes no code.  A
    right one is used, and the license's other live codes end with it.

    Raises:
        ServiceError: 429 ``rate_limited``; 404 ``unknown_license_key``; 403
        ``invalid_reset_code`` (wrong, used or expired: one answer for all);
        400 ``invalid_request`` (password length).
    """
    settings = ctx.settings
    if not 1 <= len(new_password) <= 256:
        raise ServiceError(Code.INVALID_REQUEST, "A password is 1 to 256 characters.")
    if client_address:
        _guess(session, "reset-guess-net:" + ctx.vault.address_key(client_address),
               settings.rate_limit_address_attempts, settings.rate_limit_window)
    found = _license(session, ctx, product_id, license_key)
    _guess(session, "reset-guess:" + found.id, settings.rate_limit_attempts,
           settings.rate_limit_window)
    now = utcnow()
    lic = session.scalars(
        select(License).where(License.id == found.id)
        .with_for_update(of=License).execution_options(populate_existing=True)
    ).one()
    normalized = _normalize(code)
    row = None
    if _CODE_RE.match(normalized):
        row = session.scalars(select(PasswordResetCode).where(
            PasswordResetCode.license_id == lic.id, PasswordResetCode.used_at.is_(None),
            PasswordResetCode.expires_at > now,
            PasswordResetCode.code_hash == ctx.vault.reset_code_hash(lic.id, normalized)
        )).first()
    if row is None:
        # A wrong code changes no code: it only counted against the guess limits above.
        audit(session, "sdk", "password_reset.wrong_code", at=now, product_id=lic.product_id,
              license_id=lic.id)
        session.commit()
        raise ServiceError(Code.INVALID_RESET_CODE,
                           "This reset code is wrong, already used or expired. Ask for a new one.")
    session.execute(update(PasswordResetCode).where(
        PasswordResetCode.license_id == lic.id, PasswordResetCode.used_at.is_(None)
    ).values(used_at=now))
    lic.password_hash = hash_password(new_password)
    end_password_sessions(session, lic.id)  # the portal's sessions of the old password end
    lic.password_erased = False
    lic.updated_at = now
    audit(session, "sdk", "license.password_reset", at=now, product_id=lic.product_id,
          license_id=lic.id)
    session.commit()
    return now
