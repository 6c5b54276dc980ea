"""The vendor's staff: accounts, roles, sign-in and control panel sessions.

A staff member signs in with email and password (scrypt,
:func:`software_dna.server.crypto.hash_password`), then a TOTP code when one
is enrolled.  A session is a random token in an HttpOnly cookie; the
server keeps only its keyed hash, its expiry (idle and absolute,
``panel_session_idle`` / ``panel_session_max``) and whether the second factor
is still due.  The CSRF token of a session is a keyed hash of its token
(:meth:`Vault.csrf_token`), so it needs no storage and dies with the session.

Invariants (tests/server/test_staff.py, tests/attack/):
- the role that decides what a request may do is the staff row's, read at
  every request: a changed role or a removed account takes effect at once;
- the last owner cannot be removed, disabled or demoted;
- a wrong password, an unknown address and a disabled account give the same
  answer after the same work (a password hash is checked either way).
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from software_dna.server.crypto import hash_password, verify_password
from software_dna.server.domain.roles import Role, role_names
from software_dna.server.models import StaffMember, StaffSession
from software_dna.server.services import ledger, ratelimit
from software_dna.server.services.common import Context, acting_as, audit, new_id, utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "TOTP_ISSUER",
    "SignedIn",
    "begin_totp",
    "change_password",
    "confirm_totp",
    "create_staff",
    "csrf_matches",
    "disable_totp",
    "end_session",
    "generate_password",
    "get_staff",
    "list_staff",
    "pending_totp",
    "remove_staff",
    "reset_password",
    "session_staff",
    "set_role",
    "sign_in",
    "verify_second_factor",
]

#: The shortest password a staff member may choose.
MIN_PASSWORD_LENGTH = 12
_MAX_PASSWORD_LENGTH = 1000
#: A hash checked when the address is unknown, so both answers cost the same.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def generate_password() -> str:
    """A random password for a new or reset account (20 URL-safe characters, 120 bits)."""
    return secrets.token_urlsafe(15)


def _normal_email(email: str) -> str:
    address = email.strip().lower()
    if not (3 <= len(address) <= 254) or address.count("@") != 1 or any(
            c.isspace() for c in address):
        raise ServiceError(Code.INVALID_REQUEST, "Give the staff member's email address "
                           "(name@example.com).", details={"field": "email"})
    return address


def _checked_password(password: str, field: str = "password") -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ServiceError(Code.INVALID_REQUEST, f"A staff password has at least "
                           f"{MIN_PASSWORD_LENGTH} characters.", details={"field": field})
    if len(password) > _MAX_PASSWORD_LENGTH:
        raise ServiceError(Code.INVALID_REQUEST, "That password is too long.",
                           details={"field": field})
    return password


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ServiceError(Code.INVALID_REQUEST, f"Unknown role {role!r}; one of: "
                           + ", ".join(role_names()) + ".", details={"field": "role"}) from None


def get_staff(session: Session, staff_id_or_email: str) -> StaffMember:
    """A staff member by id (``stf_...``) or email address.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    row = session.get(StaffMember, staff_id_or_email)
    if row is None:
        row = session.scalars(select(StaffMember).where(
            StaffMember.email == staff_id_or_email.strip().lower())).first()
    if row is None:
        raise ServiceError(Code.NOT_FOUND, "No such staff member.")
    return row


def list_staff(session: Session, *, include_disabled: bool = False) -> list[StaffMember]:
    """Staff members, by email address."""
    query = select(StaffMember).order_by(StaffMember.email)
    if not include_disabled:
        query = query.where(StaffMember.disabled_at.is_(None))
    return list(session.scalars(query))


def create_staff(session: Session, *, email: str, password: str, role: Role | str,
                 name: str = "", actor: str = "cli",
                 must_change_password: bool = False) -> StaffMember:
    """Add a staff member; commits.

    Args:
        email: the sign-in address (kept lower-cased).
        password: at least :data:`MIN_PASSWORD_LENGTH` characters.
        role: a :class:`Role` or its name.
        name: a display name (optional, at most 100 characters).
        must_change_password: true for a password someone else will see (a generated
            one): the staff member chooses their own at the first sign-in.

    Raises:
        ServiceError: 400 ``invalid_request`` (address, password, role, name),
            409 ``conflict`` when the address is taken.
    """
    address = _normal_email(email)
    role = _role(role)
    if len(name) > 100:
        raise ServiceError(Code.INVALID_REQUEST, "A name is at most 100 characters.",
                           details={"field": "name"})
    if session.scalars(select(StaffMember.id).where(StaffMember.email == address)).first():
        raise ServiceError(Code.CONFLICT, "A staff member with that address exists.",
                           details={"field": "email"})
    row = StaffMember(id=new_id("stf"), email=address, name=name.strip(), role=role.value,
                      password_hash=hash_password(_checked_password(password)),
                      must_change_password=must_change_password, created_at=utcnow())
    session.add(row)
    audit(session, actor, "staff.create", detail={"staff_id": row.id, "role": role.value})
    session.commit()
    return row


def _owners_left(session: Session, without: str) -> int:
    return session.scalar(select(func.count()).select_from(StaffMember).where(
        StaffMember.role == Role.OWNER.value, StaffMember.disabled_at.is_(None),
        StaffMember.id != without)) or 0


def _keep_an_owner(session: Session, row: StaffMember) -> None:
    if row.role == Role.OWNER.value and _owners_left(session, row.id) == 0:
        raise ServiceError(Code.CONFLICT, "This is the last owner: make someone else an "
                           "owner first.")


def set_role(session: Session, staff_id: str, role: Role | str, *,
             actor: str = "cli") -> StaffMember:
    """Change a staff member's role (effective at their next request); commits.

    Raises:
        ServiceError: 404, 400 for an unknown role, 409 for the last owner.
    """
    row = get_staff(session, staff_id)
    new = _role(role)
    if new.value != row.role:
        if new is not Role.OWNER:
            _keep_an_owner(session, row)
        audit(session, actor, "staff.role", detail={"staff_id": row.id, "from": row.role,
                                                     "to": new.value})
        ledger.record(session, ledger.STAFF_ROLE, row.id, detail={"role": new.value})
        row.role = new.value
        session.commit()
    return row


def remove_staff(session: Session, staff_id: str, *, actor: str = "cli") -> StaffMember:
    """Disable a staff member and end their sessions; commits.

    The row stays (disabled) so the audit log keeps naming who did what.

    Raises:
        ServiceError: 404, 409 for the last owner.
    """
    row = get_staff(session, staff_id)
    if row.disabled_at is None:
        _keep_an_owner(session, row)
        row.disabled_at = utcnow()
        session.execute(delete(StaffSession).where(StaffSession.staff_id == row.id))
        audit(session, actor, "staff.remove", detail={"staff_id": row.id})
        ledger.record(session, ledger.STAFF_REMOVE, row.id, at=row.disabled_at)
        session.commit()
    return row


def reset_password(session: Session, staff_id: str, *, actor: str = "cli",
                   password: str | None = None, clear_totp: bool = False
                   ) -> tuple[StaffMember, str]:
    """Give a staff member a new password (random unless given), ends their sessions; commits.

    The staff member must choose their own at the next sign-in.  ``clear_totp``
    also removes their second factor (a lost phone).

    Returns:
        ``(staff member, the new password)``: show it once.

    Raises:
        ServiceError: 404; 400 for a given password that is too short.
    """
    row = get_staff(session, staff_id)
    new = _checked_password(password) if password is not None else generate_password()
    row.password_hash = hash_password(new)
    row.must_change_password = True
    if clear_totp:
        row.totp_sealed = None
        row.totp_confirmed_at = None
        row.totp_last_step = None
    session.execute(delete(StaffSession).where(StaffSession.staff_id == row.id))
    audit(session, actor, "staff.reset", detail={"staff_id": row.id, "totp_cleared": clear_totp})
    ledger.record(session, ledger.STAFF_RESET, row.id, detail={"totp_cleared": clear_totp})
    session.commit()
    return row, new


def change_password(session: Session, staff: StaffMember, current: str, new: str, *,
                    keep_session: str | None = None) -> None:
    """A staff member changes their own password; other sessions end; commits.

    Args:
        keep_session: the hash (``StaffSession.id``) of the session to keep.

    Raises:
        ServiceError: 400 ``invalid_request`` (wrong current password, new one
            too short or the same as before).
    """
    if not verify_password(current, staff.password_hash):
        raise ServiceError(Code.INVALID_REQUEST, "The current password is wrong.",
                           details={"field": "current"})
    _checked_password(new, field="new")
    if verify_password(new, staff.password_hash):
        raise ServiceError(Code.INVALID_REQUEST, "Choose a password you have not used here.",
                           details={"field": "new"})
    staff.password_hash = hash_password(new)
    staff.must_change_password = False
    query = delete(StaffSession).where(StaffSession.staff_id == staff.id)
    if keep_session is not None:
        query = query.where(StaffSession.id != keep_session)
    session.execute(query)
    with acting_as(staff.id):
        audit(session, "panel", "staff.password", detail={"staff_id": staff.id})
    session.commit()


@dataclass(frozen=True)
class SignedIn:
    """A new panel session: the cookie's ``token`` (show it to nobody else) and its staff."""

    token: str
    staff: StaffMember
    second_factor_due: bool


def sign_in(session: Session, ctx: Context, email: str, password: str) -> SignedIn | None:
    """Check a staff member's address and password; on success start a session (commits).

    Rate limiting is the caller's (it knows the client address); this function
    answers None for an unknown address, a disabled account and a wrong
    password alike, after checking one password hash in each case.
    """
    address = email.strip().lower()[:254]
    row = session.scalars(select(StaffMember).where(StaffMember.email == address)).first()
    good = verify_password(password[:_MAX_PASSWORD_LENGTH],
                           row.password_hash if row is not None else _DUMMY_HASH)
    if row is None or not good or row.disabled_at is not None:
        return None
    token = secrets.token_urlsafe(32)
    now = utcnow()
    due = row.totp_confirmed_at is not None
    session.add(StaffSession(id=ctx.vault.staff_session_hash(token), staff_id=row.id,
                             second_factor_due=due, created_at=now, last_seen_at=now,
                             expires_at=now + timedelta(seconds=ctx.settings.panel_session_max)))
    if not due:
        row.last_sign_in_at = now
    with acting_as(row.id):
        audit(session, "panel", "staff.sign_in", detail={"staff_id": row.id,
                                                         "second_factor_due": due})
    session.commit()
    return SignedIn(token=token, staff=row, second_factor_due=due)


def session_staff(session: Session, ctx: Context, token: str | None) -> StaffSession | None:
    """The live session of a cookie's token (its staff joined), or None.

    Expired sessions (idle or absolute) and those of disabled staff are None;
    a live one has its ``last_seen_at`` moved on (committed at most once a
    minute, so a page of requests costs one write).
    """
    if not token or len(token) > 100:
        return None
    row = session.get(StaffSession, ctx.vault.staff_session_hash(token))
    now = utcnow()
    if row is None:
        return None
    idle = timedelta(seconds=ctx.settings.panel_session_idle)
    if row.expires_at <= now or row.last_seen_at + idle <= now or row.staff.disabled_at:
        session.delete(row)
        session.commit()
        return None
    if now - row.last_seen_at >= timedelta(seconds=60):
        row.last_seen_at = now
        session.commit()
    return row


def end_session(session: Session, ctx: Context, token: str | None) -> None:
    """Sign out: forget the session of this cookie's token; commits."""
    if token and len(token) <= 100:
        session.execute(delete(StaffSession).where(
            StaffSession.id == ctx.vault.staff_session_hash(token)))
        session.commit()


def csrf_matches(ctx: Context, token: str, presented: str | None) -> bool:
    """True when ``presented`` is the CSRF token of the session whose cookie is ``token``."""
    if not presented or len(presented) > 200:
        return False
    return secrets.compare_digest(ctx.vault.csrf_token(token), presented)


# --- TOTP second factor (RFC 6238: SHA-1, 6 digits, 30 s steps) -------------------------

#: The issuer shown by authenticator apps next to the staff member's address.
TOTP_ISSUER = "software_dna panel"
_STEP = 30
_DIGITS = 6
_SECRET_BYTES = 20  # 160 bits, the RFC 4226 recommendation
#: How long a session waits for its code after the password (then: sign in again).
_CODE_WAIT = timedelta(minutes=10)


def _totp(secret: bytes) -> TOTP:
    # SHA-1 as RFC 6238 and every authenticator app use it (HMAC-SHA1 is not broken).
    return TOTP(secret, _DIGITS, SHA1(), _STEP, enforce_key_length=True)  # noqa: S303


def _matching_step(ctx: Context, row: StaffMember, code: str, now: float) -> int | None:
    """The time step (now, one before or one after) whose code is ``code`` and that was not
    used yet, or None."""
    code = code.strip().replace(" ", "")
    if row.totp_sealed is None or len(code) != _DIGITS or not code.isdigit():
        return None
    totp = _totp(ctx.vault.open_totp_secret(row.id, row.totp_sealed))
    current = int(now) // _STEP
    found = None
    for step in (current - 1, current, current + 1):
        expected = totp.generate(step * _STEP).decode()
        # Check every step (no early exit): the time taken says nothing about which matched.
        if secrets.compare_digest(expected, code) and (
                row.totp_last_step is None or step > row.totp_last_step):
            found = step
    return found


def _count_code_attempt(session: Session, ctx: Context, row: StaffMember) -> None:
    try:
        ratelimit.hit(session, "totp:" + row.id, limit=ctx.settings.panel_sign_in_attempts,
                      window=ctx.settings.panel_sign_in_window)
    except ServiceError as exc:
        raise ServiceError(Code.RATE_LIMITED, "Too many codes tried. Wait "
                           f"{exc.retry_after or 60} seconds and try again.",
                           details={"field": "code"}, retry_after=exc.retry_after,
                           retry_at=exc.retry_at) from None


def _claim_step(session: Session, row: StaffMember, step: int) -> bool:
    """Record ``step`` as used unless a request got there first (a code is good once, even
    when two requests bring it at the same moment)."""
    claimed = session.execute(
        update(StaffMember)
        .where(StaffMember.id == row.id,
               or_(StaffMember.totp_last_step.is_(None), StaffMember.totp_last_step < step))
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False))
    if getattr(claimed, "rowcount", 0) != 1:
        return False
    row.totp_last_step = step
    return True


def begin_totp(session: Session, ctx: Context, staff: StaffMember) -> tuple[str, str]:
    """Start enrolling a TOTP second factor: a new secret, sealed; commits.

    The factor is not used until :func:`confirm_totp` accepts a code made
    from it.  Starting again replaces an unconfirmed secret.

    Returns:
        ``(the secret in base32, an otpauth:// URI for authenticator apps)``.

    Raises:
        ServiceError: 409 ``conflict`` when a confirmed factor is on (disable it first).
    """
    if staff.totp_confirmed_at is not None:
        raise ServiceError(Code.CONFLICT, "Two-step sign-in is already on; turn it off first.")
    secret = secrets.token_bytes(_SECRET_BYTES)
    staff.totp_sealed = ctx.vault.seal_totp_secret(staff.id, secret)
    staff.totp_last_step = None
    session.commit()
    uri = _totp(secret).get_provisioning_uri(staff.email, TOTP_ISSUER)
    return base64.b32encode(secret).decode().rstrip("="), uri


def pending_totp(ctx: Context, staff: StaffMember) -> tuple[str, str] | None:
    """The secret and URI of an enrolment begun but not confirmed, or None."""
    if staff.totp_sealed is None or staff.totp_confirmed_at is not None:
        return None
    secret = ctx.vault.open_totp_secret(staff.id, staff.totp_sealed)
    return (base64.b32encode(secret).decode().rstrip("="),
            _totp(secret).get_provisioning_uri(staff.email, TOTP_ISSUER))


def confirm_totp(session: Session, ctx: Context, staff: StaffMember, code: str, *,
                 now: float | None = None) -> None:
    """Turn the enrolled second factor on once ``code`` comes from it; commits.

    Attempts count against the staff member's code limit
    (``panel_sign_in_attempts`` per ``panel_sign_in_window``).

    Raises:
        ServiceError: 409 ``conflict`` (nothing enrolled, or already on),
            400 ``invalid_request`` (field ``code``) for a wrong code,
            429 ``rate_limited``.
    """
    if staff.totp_sealed is None or staff.totp_confirmed_at is not None:
        raise ServiceError(Code.CONFLICT, "Start the two-step sign-in set-up first.")
    _count_code_attempt(session, ctx, staff)
    step = _matching_step(ctx, staff, code, time.time() if now is None else now)
    if step is None or not _claim_step(session, staff, step):
        session.rollback()
        raise ServiceError(Code.INVALID_REQUEST, "That code is wrong or too old: type the "
                           "6 digits the app shows now.", details={"field": "code"})
    staff.totp_confirmed_at = utcnow()
    with acting_as(staff.id):
        audit(session, "panel", "staff.totp_on", detail={"staff_id": staff.id})
    session.commit()


def disable_totp(session: Session, ctx: Context, staff: StaffMember, password: str) -> None:
    """Turn the second factor off (the password confirms it is them); commits.

    Raises:
        ServiceError: 400 ``invalid_request`` (field ``password``) for a wrong password.
    """
    if not verify_password(password[:_MAX_PASSWORD_LENGTH], staff.password_hash):
        raise ServiceError(Code.INVALID_REQUEST, "The password is wrong.",
                           details={"field": "password"})
    staff.totp_sealed = None
    staff.totp_confirmed_at = None
    staff.totp_last_step = None
    with acting_as(staff.id):
        audit(session, "panel", "staff.totp_off", detail={"staff_id": staff.id})
    session.commit()


def verify_second_factor(session: Session, ctx: Context, token: str, code: str, *,
                         now: float | None = None) -> bool:
    """Check the TOTP code of a session waiting for it; commits.

    A good code (each time step is good once) clears ``second_factor_due``
    and records the sign-in.  Every attempt counts against the staff
    member's limit; past it the session is ended (sign in again), as it is
    ten minutes after the password was checked.

    Returns:
        True when the session is now fully signed in; False for a wrong code,
        or a session that is gone or was not waiting for a code.

    Raises:
        ServiceError: 429 ``rate_limited`` (the session has been ended).
    """
    row = session_staff(session, ctx, token)
    if row is None or not row.second_factor_due:
        return False
    if utcnow() - row.created_at > _CODE_WAIT:  # a half-signed-in session does not linger
        end_session(session, ctx, token)
        return False
    member = row.staff
    try:
        _count_code_attempt(session, ctx, member)
    except ServiceError:
        end_session(session, ctx, token)
        raise
    step = _matching_step(ctx, member, code, time.time() if now is None else now)
    if step is None or not _claim_step(session, member, step):
        with acting_as(member.id):
            audit(session, "panel", "staff.second_factor_failed", detail={"staff_id": member.id})
        session.commit()
        return False
    member.last_sign_in_at = utcnow()
    row.second_factor_due = False
    with acting_as(member.id):
        audit(session, "panel", "staff.second_factor", detail={"staff_id": member.id})
    session.commit()
    return True
