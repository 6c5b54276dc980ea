"""Password reset by email: a single-use, short-lived code mailed to the end user.

- :func:`request_reset`: the end user (who knows the license key) asks for a
  code.  The server mails a fresh code to every email address on file for
  the license (end users who gave one, with consent, and were not erased),
  one message each.  Without an address on file the answer is 409
  ``no_email_on_file``: the vendor must set the password.
- :func:`confirm_reset`: the code plus a new password set the license's
  activation password (scrypt, like every password).

The code is 12 characters of an unambiguous alphabet (60 bits), shown as
``XXXX-XXXX-XXXX``; the database keeps only a keyed hash of it
(HMAC-SHA256 under a master-derived key), valid for
``SOFTWARE_DNA_PASSWORD_RESET_TTL`` seconds (default 900), used once.  A new
request replaces older codes; 5 wrong codes kill the live ones.  The server
never stores or mails a password.  Requests are rate limited per client
address (the activation attempts counter) and per license (3 mails per
rate-limit window); confirmations count as activation attempts.
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
from software_dna.server.models import Activation, EndUser, License, PasswordResetCode
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.lookups import find_license_by_key
from software_dna.server.services.ratelimit import hit, hit_address
from software_dna.server.services.tokens import decrypt_end_user
from software_dna.wire.codes import Code

__all__ = ["MAILS_PER_WINDOW", "ResetRequested", "confirm_reset", "request_reset"]

#: Reset mails per license per rate-limit window.
MAILS_PER_WINDOW = 3
#: Wrong codes after which the live codes of a license stop working.
MAX_CODE_ATTEMPTS = 5
#: At most this many addresses get a code (the end users of the license).
MAX_RECIPIENTS = 5
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_CODE_RE = re.compile(r"^[A-Z2-9]{12}$")


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


def _emails(session: Session, ctx: Context, license_id: str) -> list[str]:
    users = session.scalars(
        select(EndUser).join(Activation, Activation.end_user_id == EndUser.id)
        .where(Activation.license_id == license_id, EndUser.erased_at.is_(None),
               EndUser.email_ciphertext.is_not(None))
        .order_by(Activation.last_seen_at.desc())
    ).all()
    found: dict[str, str] = {}
    for user in users:
        email, _ = decrypt_end_user(ctx, user)
        if email:
            found.setdefault(email.strip().lower(), email.strip())
    return list(found.values())[:MAX_RECIPIENTS]


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
    """Mail a reset code to the email address(es) on file for the license; commits.

    Raises:
        ServiceError: 429 ``rate_limited``; 404 ``unknown_license_key``; 403
        ``license_revoked``; 409 ``no_password`` (the license has none) or
        ``no_email_on_file`` (the vendor must reset it); 503
        ``mail_unavailable`` (no SMTP server configured) or ``mail_failed``.
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
    emails = _emails(session, ctx, lic.id)
    if not emails:
        raise ServiceError(Code.NO_EMAIL_ON_FILE,
                           "No email address is on file for this license, so no reset code can "
                           "be sent. Ask the vendor to reset the activation password.")
    if not mail_configured(settings):
        raise ServiceError(Code.MAIL_UNAVAILABLE,
                           "This license server does not send email. Ask the vendor to reset "
                           "the activation password.")
    now = utcnow()
    code = _new_code()
    expires_at = now + timedelta(seconds=settings.password_reset_ttl)
    session.execute(delete(PasswordResetCode).where(PasswordResetCode.license_id == lic.id))
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


def confirm_reset(session: Session, ctx: Context, *, product_id: str, license_key: str,
                  code: str, new_password: str, client_address: str | None = None) -> datetime:
    """Set a new activation password with a mailed reset code; commits. Returns the server time.

    Raises:
        ServiceError: 429 ``rate_limited``; 404 ``unknown_license_key``; 403
        ``invalid_reset_code`` (wrong, used or expired: one answer for all);
        400 ``invalid_request`` (password length).
    """
    settings = ctx.settings
    if not 1 <= len(new_password) <= 256:
        raise ServiceError(Code.INVALID_REQUEST, "A password is 1 to 256 characters.")
    hit_address(session, ctx, client_address)
    found = _license(session, ctx, product_id, license_key)
    hit(session, "lic:" + found.id, limit=settings.rate_limit_attempts,
                  window=settings.rate_limit_window)
    now = utcnow()
    lic = session.scalars(
        select(License).where(License.id == found.id)
        .with_for_update(of=License).execution_options(populate_existing=True)
    ).one()
    live = (PasswordResetCode.license_id == lic.id, PasswordResetCode.used_at.is_(None),
            PasswordResetCode.expires_at > now,
            PasswordResetCode.attempts < MAX_CODE_ATTEMPTS)
    normalized = _normalize(code)
    row = None
    if _CODE_RE.match(normalized):
        row = session.scalars(select(PasswordResetCode).where(
            *live, PasswordResetCode.code_hash == ctx.vault.reset_code_hash(lic.id, normalized)
        )).first()
    if row is None:
        session.execute(update(PasswordResetCode).where(*live)
                        .values(attempts=PasswordResetCode.attempts + 1))
        audit(session, "sdk", "password_reset.wrong_code", at=now, product_id=lic.product_id,
              license_id=lic.id)
        session.commit()
        raise ServiceError(Code.INVALID_RESET_CODE,
                           "This reset code is wrong, already used or expired. Ask for a new one.")
    session.execute(update(PasswordResetCode).where(
        PasswordResetCode.license_id == lic.id, PasswordResetCode.used_at.is_(None)
    ).values(used_at=now))
    lic.password_hash = hash_password(new_password)
    lic.password_erased = False
    lic.updated_at = now
    audit(session, "sdk", "license.password_reset", at=now, product_id=lic.product_id,
          license_id=lic.id)
    session.commit()
    return now
