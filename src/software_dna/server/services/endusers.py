"""End users: attach personal data (with consent), find, export (GDPR access), erase.

Personal data is only ever the end user's email, registration details and
the settings document, all encrypted (AES-256-GCM, data key derived from the
master key).  Erasure deletes them (columns set to NULL, settings rows
deleted), deletes the activation password hash of the end user's licenses
(the vendor must then set a new one: an erased license must not silently
become password-free), and marks the licenses and their activations erased:
they keep working, every token afterwards is ``limited``.  On SQLite
``secure_delete`` zeroes the erased bytes in the pages the erasure writes,
and after the commit the engine's :class:`~software_dna.server.db.CheckpointJob`
copies those pages into the database file and empties the WAL, off the
request path and at most once a minute, so that soon no byte of the erased
data remains in the database files.  Nothing as costly as ``VACUUM`` runs in
a request.

The end user's own erasure request is rate limited (:func:`throttle_erasure`):
per activation and per client network, so that credentials anyone can get (a
trial's) cannot be used to make the server erase in a loop.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from software_dna.server.db import after_erasure
from software_dna.server.models import (
    Activation,
    EndUser,
    License,
    LicenseSettings,
    MailOptOut,
    OutboxItem,
    PortalLink,
    PortalSession,
    RateLimitCounter,
)
from software_dna.server.services import email_confirmation, ledger, outbox
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.lookups import get_end_user, get_license
from software_dna.server.services.ratelimit import hit
from software_dna.server.services.seats import erase_user_seats
from software_dna.server.services.settings import read_settings
from software_dna.server.services.tokens import decrypt_end_user
from software_dna.wire.codes import Code

#: One address rule for every address the server keeps (buyers, end users): a bare
#: addr-spec, without the display-name and group syntax (``<>()[],;:"\``) and whitespace
#: that would make the address mailed to differ from the address stored.
_ATOM = r'[^@\s<>()\[\],;:"\\]'
_EMAIL_RE = re.compile(rf"^{_ATOM}{{1,64}}@{_ATOM}+\.{_ATOM}+$")

__all__ = [
    "activation_label",
    "end_password_sessions",
    "attach_buyer",
    "attach_end_user",
    "erase_end_user",
    "EndUserView",
    "erase_license_data",
    "export_end_user",
    "export_end_user_viewed",
    "find_end_users",
    "is_email_address",
    "normal_email",
    "forget_address_traces",
    "portal_link_counter",
    "throttle_erasure_activation",
    "throttle_erasure_address",
    "view_end_user",
]


def attach_end_user(
    session: Session,
    ctx: Context,
    activation: Activation,
    *,
    email: str | None,
    registration: Mapping[str, str] | None,
    now: datetime,
) -> EndUser | None:
    """Record personal data given (with consent) at activation; link it to ``activation``.

    The activation's own end user is reused (a computer activating again does
    not multiply records) unless the address changed to another one; else the
    confirmed end user with this address on this license; otherwise a new end
    user is created.  An unconfirmed record is never joined by another
    activation (the address is the person's word, not a proof), so an address
    may have several records; the license portal's erasure, asked by the
    address's proven owner, covers them all.  Does not commit.
    """
    if email is None and registration is None:
        return None
    if email is not None:
        # The address rule of every kept address; the end user's own spelling is kept
        # (the look-up hash ignores case), as the app shows it back to them.
        if normal_email(email) is None:
            raise ServiceError(Code.INVALID_REQUEST, "The email is not a bare address "
                               "(name@example.com, no <>, quotes or spaces).")
        email = email.strip()
    end_user: EndUser | None = None
    index = ctx.vault.email_index(email) if email is not None else None
    # This activation's own end user is reused (the same computer activating again),
    # else the record whose owner proved this address (confirmed) and uses this
    # license.  An unconfirmed record is never joined: an address typed elsewhere, or
    # set in the portal, proves nothing, so nobody attaches a seat or a registration to
    # another person's record by typing their address.  (So one address may have
    # several records; an erasure asked by its proven owner covers them all.)
    if activation.end_user_id is not None:
        current = session.get(EndUser, activation.end_user_id)
        if current is not None and current.erased_at is None and (
            index is None or current.email_index in (None, index)
        ):
            end_user = current
    if end_user is None and index is not None:
        end_user = session.scalars(
            select(EndUser)
            .join(Activation, Activation.end_user_id == EndUser.id)
            .where(EndUser.email_index == index, EndUser.erased_at.is_(None),
                   EndUser.email_confirmed_at.is_not(None),
                   Activation.license_id == activation.license_id)
            .limit(1)
        ).first()
    if end_user is None:
        end_user = EndUser(id=new_id("eu"), created_at=now, erased_at=None)
        session.add(end_user)
    if email is not None:
        assert index is not None
        email_confirmation.email_given(session, ctx, end_user, email, index,
                                       activation=activation, now=now)
        end_user.email_ciphertext = ctx.vault.encrypt_field(
            email.encode("utf-8"), aad=f"end_user:{end_user.id}:email"
        )
        end_user.email_index = index
    if registration is not None:
        end_user.registration_ciphertext = ctx.vault.encrypt_field(
            json.dumps(dict(registration), sort_keys=True).encode("utf-8"),
            aad=f"end_user:{end_user.id}:registration",
        )
    end_user.consent_at = now
    activation.end_user_id = end_user.id
    return end_user


def normal_email(text: str) -> str | None:
    r"""``text`` as the server keeps an address, or None when it is not one.

    The rule: a bare addr-spec (``local@domain.tld``; no ``<>()[],;:"\``,
    whitespace or control characters; at most 254 characters).  Normal form:
    trimmed, Unicode NFC, the domain lower-cased (the local part is kept as typed: some
    servers tell cases apart).  A buyer's address is normalised this way before
    its look-up hash (:meth:`~software_dna.server.crypto.Vault.email_index`) and
    its encryption, so the address mailed to is the address found; an address
    an end user gives at activation must pass the rule and is kept trimmed, as
    typed (the look-up hash ignores case either way).
    """
    text = unicodedata.normalize("NFC", text.strip())
    if len(text) > 254 or not _EMAIL_RE.match(text) or \
            any(unicodedata.category(char)[0] == "C" for char in text):
        return None
    local, _, domain = text.rpartition("@")
    return f"{local}@{domain.lower()}"


def is_email_address(text: str) -> bool:
    """True when ``text`` is an address by :func:`normal_email`'s rule."""
    return normal_email(text) is not None


def attach_buyer(session: Session, ctx: Context, lic: License, email: str) -> EndUser:
    """Record ``email`` as the buyer of ``lic`` (``License.buyer_id``). Does not commit.

    The buyer is an end user (the address encrypted, found by
    :func:`find_end_users`, exported and erased like any other).  One person
    buying several licenses is one end user: a live buyer with the same
    address is reused.  The address is not confirmed (a store or the vendor
    gave it) and no consent is recorded: mailing the key and the license's
    notices is part of the sale (docs/privacy.md).

    Args:
        lic: the license (already in the session).
        email: the buyer's address (checked by the caller's schema; trimmed here).

    Raises:
        ServiceError: 400 ``invalid_request`` (not an address).
    """
    normal = normal_email(email)
    if normal is None:
        raise ServiceError(Code.INVALID_REQUEST, "The buyer's email is not a bare address "
                           "(name@example.com, no <>, quotes or spaces).")
    email = normal
    index = ctx.vault.email_index(email)
    # A buyer record is reused for the same address, unless the end user set that
    # address themselves (consent recorded) and never confirmed it: typing someone
    # else's address in the portal must not pull their purchases into one's record.
    buyer = session.scalars(
        select(EndUser).join(License, License.buyer_id == EndUser.id)
        .where(EndUser.email_index == index, EndUser.erased_at.is_(None),
               EndUser.consent_at.is_(None) | EndUser.email_confirmed_at.is_not(None))
        .order_by(EndUser.created_at, EndUser.id).limit(1)).first()
    if buyer is None:
        buyer = EndUser(id=new_id("eu"), created_at=utcnow(), erased_at=None)
        buyer.email_ciphertext = ctx.vault.encrypt_field(
            email.encode("utf-8"), aad=f"end_user:{buyer.id}:email")
        buyer.email_index = index
        session.add(buyer)
        session.flush()
    lic.buyer_id = buyer.id
    return buyer


def find_end_users(session: Session, ctx: Context, email: str) -> list[EndUser]:
    """End users whose email is ``email`` (trimmed, case-insensitive), buyers included; erased
    ones never match."""
    return list(
        session.scalars(
            select(EndUser)
            .where(EndUser.email_index == ctx.vault.email_index(email))
            .order_by(EndUser.created_at, EndUser.id)
        )
    )


def activation_label(ctx: Context, activation: Activation) -> str | None:
    """The computer's name the app set on ``activation`` (decrypted), or None."""
    if activation.label_ciphertext is None:
        return None
    return ctx.vault.decrypt_field(activation.label_ciphertext,
                                   aad=f"activation:{activation.id}:label").decode("utf-8")


def export_end_user(session: Session, ctx: Context, end_user_id: str) -> dict[str, Any]:
    """Everything held about one end user (GDPR access), as a JSON-ready dict.

    Keys: ``id``, ``email``, ``registration``, ``consent_at``,
    ``email_confirmed_at`` (None: the address was never confirmed), ``created_at``,
    ``erased_at`` (datetimes, aware UTC), ``activations`` (list of dicts with
    ``id``, ``license_id``, ``product``, ``fingerprint_id``, ``created_at``,
    ``last_seen_at``, ``deactivated_at``, ``client``, ``label``: the computer's
    name the app set, or None), ``settings`` (license id -> the app's settings
    document, for the machine and floating licenses bought or held by a live
    seat: a user-seat license's document is shared by several people),
    ``licenses`` (ids of the licenses bought) and ``mails`` (the sent log's
    entries to this person: ``id``, ``template``, ``license_id``,
    ``status``, ``created_at``, ``sent_at``, ``to``).

    Raises:
        ServiceError: 404 ``not_found``.
    """
    end_user = get_end_user(session, end_user_id)
    email, registration = decrypt_end_user(ctx, end_user)
    activations = list(
        session.scalars(
            select(Activation)
            .where(Activation.end_user_id == end_user.id)
            .order_by(Activation.created_at, Activation.id)
        )
    )
    settings: dict[str, Any] = {}
    if end_user.erased_at is None:
        # A license's settings document is the app's, shared by everyone on the license:
        # it is this person's only on a license they bought, or hold a live seat of
        # where a seat is a computer (on user seats several people share it).
        bought = set(session.scalars(select(License.id).where(
            License.buyer_id == end_user.id, License.seat_mode != "user")))
        held = {a.license_id for a in activations
                if a.deactivated_at is None and a.license.seat_mode != "user"}
        for license_id in sorted(bought | held):
            document, _ = read_settings(session, ctx, license_id)
            if document:
                settings[license_id] = document
    return {
        "id": end_user.id,
        "email": email,
        "registration": registration,
        "consent_at": end_user.consent_at,
        "email_confirmed_at": end_user.email_confirmed_at,
        "created_at": end_user.created_at,
        "erased_at": end_user.erased_at,
        "activations": [
            {
                "id": a.id,
                "license_id": a.license_id,
                "product": a.license.product_id,
                "fingerprint_id": a.fingerprint_id,
                "created_at": a.created_at,
                "last_seen_at": a.last_seen_at,
                "deactivated_at": a.deactivated_at,
                "client": {
                    "sdk_version": a.sdk_version,
                    "os": a.client_os,
                    "python": a.client_python,
                    "app_version": a.app_version,
                },
                "label": activation_label(ctx, a),
            }
            for a in activations
        ],
        "settings": settings,
        "licenses": list(session.scalars(select(License.id).where(
            License.buyer_id == end_user.id).order_by(License.created_at, License.id))),
        "mails": [{"id": item.id, "template": item.topic, "license_id": item.license_id,
                   "status": item.status, "created_at": item.created_at,
                   "sent_at": item.delivered_at, "to": outbox.recipient_of(ctx, item)}
                  for item in session.scalars(
                      select(OutboxItem).where(OutboxItem.end_user_id == end_user.id,
                                               OutboxItem.channel == outbox.EMAIL)
                      .order_by(OutboxItem.created_at, OutboxItem.id))],
    }


def end_password_sessions(session: Session, license_id: str, *,
                          keep: str | None = None) -> None:
    """End the license portal's sessions opened with the license's key and password (not
    those opened by a mailed link: the address opened them), but ``keep`` (a session id).
    Called when the password or the key changes or is erased. No commit."""
    query = delete(PortalSession).where(PortalSession.license_id == license_id,
                                        PortalSession.method == "password")
    if keep is not None:
        query = query.where(PortalSession.id != keep)
    session.execute(query)


def erase_license_data(session: Session, license_id: str) -> None:
    """Erase what a license holds about its end user(s). Does not commit.

    Deletes the password hash (``password_reset_required`` until the vendor
    sets a new one) and the settings document; marks the license and all its
    activations erased (tokens become ``limited``).
    """
    lic = session.get(License, license_id)
    if lic is None:
        return
    if lic.password_hash is not None:
        lic.password_hash = None
        lic.password_erased = True
        end_password_sessions(session, lic.id)
    lic.erased = True
    lic.updated_at = utcnow()
    session.execute(
        update(Activation).where(Activation.license_id == license_id)
        .values(erased=True, label_ciphertext=None)
    )
    session.execute(delete(LicenseSettings).where(LicenseSettings.license_id == license_id))


def _wipe(end_user: EndUser, now: datetime) -> None:
    end_user.email_ciphertext = None
    end_user.email_index = None
    end_user.registration_ciphertext = None
    if end_user.erased_at is None:
        end_user.erased_at = now


def portal_link_counter(email_index: str, browser_hash: str | None = None) -> str:
    """The rate-limit key counting the portal's sign-in link requests for one address
    (half its look-up hash, ``email_index``), or for that address from one browser
    (``browser_hash``: the keyed hash of its link cookie).  Every such key starts with
    the address's key, so :func:`forget_address_traces` finds them all."""
    key = "portal-mail:" + email_index[:32]
    return key if browser_hash is None else f"{key}:{browser_hash[:16]}"


def forget_address_traces(session: Session, email_index: str) -> None:
    """Delete what is keyed by an address's look-up hash once the address is gone (erased,
    changed or removed): the mail opt-outs and the portal's link counters. No commit."""
    session.execute(delete(MailOptOut).where(MailOptOut.email_index == email_index))
    ledger.forget(session, email_index)
    session.execute(delete(RateLimitCounter).where(
        RateLimitCounter.key.startswith(portal_link_counter(email_index), autoescape=True)))


def erase(
    session: Session,
    ctx: Context,
    *,
    end_user: EndUser | None,
    license_ids: set[str],
    actor: str,
    activation_id: str | None = None,
    record: bool = True,
) -> None:
    """Erase ``end_user`` (if any) and the data of ``license_ids`` plus the end user's licenses.

    Commits, then asks for a WAL checkpoint (SQLite; see the module docstring).
    ``record``: write the erasure to the ledger (``services.ledger``), False only when
    a restore re-applies an entry already there.
    """
    now = utcnow()
    licenses = set(license_ids)
    if record:
        subject = (end_user.id if end_user is not None
                   else activation_id or min(license_ids, default="-"))
        ledger.record(session, ledger.ERASURE, subject, at=now, detail={
            "end_user": end_user.id if end_user is not None else None,
            "licenses": sorted(license_ids), "activation": activation_id})
    if end_user is not None:
        licenses.update(
            session.scalars(
                select(Activation.license_id).where(Activation.end_user_id == end_user.id)
            )
        )
        # A buyer is an end user: the licenses bought are erased like those used.
        licenses.update(session.scalars(select(License.id).where(
            License.buyer_id == end_user.id)))
        if end_user.email_index is not None:
            # The opt-outs, the portal's link counters and the reminders' dedup keys hold
            # the address's hash: a trace of it, so they go too.
            forget_address_traces(session, end_user.email_index)
            session.execute(update(OutboxItem).where(
                OutboxItem.end_user_id == end_user.id,
                OutboxItem.dedup_key.contains(end_user.email_index, autoescape=True))
                .values(dedup_key=None).execution_options(synchronize_session=False))
        # The sent log keeps what was sent when, not to whom; queued mails are cancelled.
        outbox.forget_end_user(session, end_user.id)
        _wipe(end_user, now)
        email_confirmation.forget(session, end_user)
        # Portal sign-in links go; its portal sessions stay, without personal reach.
        session.execute(delete(PortalLink).where(PortalLink.end_user_id == end_user.id))
    # User seats: only this person's seats are erased.
    per_seat = erase_user_seats(session, licenses,
                                end_user_id=end_user.id if end_user is not None else None,
                                activation_id=activation_id)
    for license_id in sorted(licenses - per_seat):
        erase_license_data(session, license_id)
    if end_user is not None:
        # The machine bindings stay (erasure keeps the seat limited, and a machine
        # coming back must be known): they are unlinked from the person instead.
        session.execute(update(Activation).where(Activation.end_user_id == end_user.id)
                        .values(end_user_id=None, label_ciphertext=None))
        # Like the activations, the licenses bought are unlinked from the wiped person.
        session.execute(update(License).where(License.buyer_id == end_user.id)
                        .values(buyer_id=None))
    audit(
        session,
        actor,
        "end_user.erase",
        at=now,
        end_user_id=end_user.id if end_user is not None else None,
        activation_id=activation_id,
        detail={"licenses": sorted(licenses)},
    )
    session.commit()
    after_erasure(session.get_bind().engine)


def _erasure_hit(session: Session, key: str, *, limit: int, window: int) -> None:
    try:
        hit(session, key, limit=limit, window=window)
    except ServiceError as exc:
        if exc.code is not Code.RATE_LIMITED:
            raise
        raise ServiceError(Code.RATE_LIMITED,
                           "Too many erasure requests. Wait and try again later.",
                           retry_after=exc.retry_after, retry_at=exc.retry_at) from None


def throttle_erasure_address(session: Session, ctx: Context, client_address: str | None) -> None:
    """Count one end-user erasure request from ``client_address``'s network. Commits.

    Counted before the activation's credentials are checked, so that guessing
    and credentials anyone can get (a trial's) are limited alike: at most
    ``erasure_address_attempts`` per ``erasure_window`` seconds per client
    network (the key is :meth:`Vault.address_key`, which groups an IPv6
    network and normalises IPv4-mapped addresses).  The address is the
    connection's peer (or what a trusted proxy says), never a field of the body.

    Raises:
        ServiceError: 429 ``rate_limited`` (with ``retry_after``).
    """
    if not client_address:
        return
    settings = ctx.settings
    _erasure_hit(session, "erase-addr:" + ctx.vault.address_key(client_address),
                 limit=settings.erasure_address_attempts, window=settings.erasure_window)


def throttle_erasure_activation(session: Session, ctx: Context, activation_id: str) -> None:
    """Count one erasure request of an authenticated activation. Commits.

    At most ``erasure_attempts`` per ``erasure_window`` seconds per activation
    (the id the server found for the credentials, not the path as sent).

    Raises:
        ServiceError: 429 ``rate_limited`` (with ``retry_after``).
    """
    settings = ctx.settings
    _erasure_hit(session, "erase-act:" + activation_id, limit=settings.erasure_attempts,
                 window=settings.erasure_window)


def restore_license(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """The vendor restores an erased license: its activations get full tokens again; commits.

    Erasure limits a license (and each erased user seat) whatever the end
    user does -- deactivating and activating again included -- until this.
    The erased personal data stays erased: an end user gives it again at
    the next activation if they wish.  Restoring a license that is not
    erased succeeds and changes nothing but the audit log.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    lic = get_license(session, license_id, lock=True)
    now = utcnow()
    was_erased = lic.erased
    restored = int(session.scalar(select(func.count()).select_from(Activation).where(
        Activation.license_id == lic.id, Activation.erased.is_(True))) or 0)
    lic.erased = False
    lic.updated_at = now
    session.execute(update(Activation).where(Activation.license_id == lic.id)
                    .values(erased=False))
    audit(session, actor, "license.restore", at=now, product_id=lic.product_id,
          license_id=lic.id, detail={"license_was_erased": bool(was_erased),
                                     "activations": restored})
    session.commit()
    return lic


def erase_end_user(session: Session, ctx: Context, end_user_id: str, *,
                   actor: str = "admin") -> EndUser:
    """The vendor's erasure of one end user (see the module docstring). Commits.

    Erasing an already erased end user is a no-op that succeeds.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    end_user = get_end_user(session, end_user_id)
    erase(session, ctx, end_user=end_user, license_ids=set(), actor=actor)
    return end_user


@dataclass(frozen=True)
class EndUserView:
    """One end user as a staff member sees them (decrypted), from :func:`view_end_user`.

    Attributes:
        end_user: the row (ids and times; ``erased_at`` set once erased).
        email, registration: the decrypted personal data (None where none is held).
        activations: their activations, oldest first (each with its ``license``).
        licenses: the licenses they bought (``License.buyer_id``), oldest first.
    """

    end_user: EndUser
    email: str | None
    registration: dict[str, str] | None
    activations: list[Activation]
    licenses: list[License]


def _viewed(session: Session, end_user: EndUser, actor: str, view: str) -> None:
    """Record that ``actor`` (and the staff member or key behind the request) saw the
    end user's personal data; commits.  Ids only: what was seen is never copied."""
    audit(session, actor, "end_user.viewed", end_user_id=end_user.id, detail={"view": view})
    session.commit()


def view_end_user(session: Session, ctx: Context, end_user_id: str, *,
                  actor: str = "admin") -> EndUserView:
    """Decrypt one end user's personal data for a staff member, and record the view.

    Every call adds an audit entry ``end_user.viewed`` (``end_user_id``; the
    staff member as ``actor_id``, from :func:`~.common.acting_as`;
    ``detail={"view": "page"}``) and commits, before anything is returned.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    end_user = get_end_user(session, end_user_id)
    _viewed(session, end_user, actor, "page")
    email, registration = decrypt_end_user(ctx, end_user)
    activations = list(session.scalars(
        select(Activation).where(Activation.end_user_id == end_user.id)
        .order_by(Activation.created_at, Activation.id)))
    licenses = list(session.scalars(
        select(License).where(License.buyer_id == end_user.id)
        .order_by(License.created_at, License.id)))
    return EndUserView(end_user=end_user, email=email, registration=registration,
                       activations=activations, licenses=licenses)


def export_end_user_viewed(session: Session, ctx: Context, end_user_id: str, *,
                           actor: str = "admin") -> dict[str, Any]:
    """:func:`export_end_user` for a staff member, recorded as a view of personal data.

    Adds the audit entry ``end_user.viewed`` (``detail={"view": "export"}``)
    and commits before exporting; the export itself is exactly
    :func:`export_end_user`'s.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    end_user = get_end_user(session, end_user_id)
    _viewed(session, end_user, actor, "export")
    return export_end_user(session, ctx, end_user_id)
