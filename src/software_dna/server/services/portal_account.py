"""What the signed-in license holder does with their own data in the portal.

The portal's session (:class:`~software_dna.server.services.portal.Holder`)
decides who acts; these functions decide what happens, from server state
only:

- :func:`set_email` / :func:`remove_email`: the end user's own address (a
  link session with personal reach only).  A new address is unconfirmed until
  its owner opens the confirmation link mailed to it; links mailed to the
  old address stop signing in (they are bound to the address they went to).
- :func:`export_for`: everything held about the end user, exactly the
  vendor's export (:func:`~software_dna.server.services.endusers.export_end_user`).
- :func:`erasure_effects` / :func:`erase_self`: what the end user's erasure
  would do, per license, and the erasure itself (the vendor's, actor ``portal``).
- :func:`answer_request`: an air-gapped activation request for the session's
  own license (a request for any other key is refused like an unknown key).

Every change is in the audit log with the actor ``portal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from software_dna.server.models import Activation, EndUser, License, PortalLink
from software_dna.server.services import email_confirmation, ledger, ratelimit
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.endusers import (
    erase,
    export_end_user,
    forget_address_traces,
    normal_email,
)
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.lookups import find_license_by_key
from software_dna.server.services.offline import OfflineActivated, respond
from software_dna.server.services.portal import ACTOR, USER, Holder
from software_dna.server.services.tokens import decrypt_end_user
from software_dna.wire.airgap import ArmorError, parse_request
from software_dna.wire.codes import Code

__all__ = [
    "EMAIL_CHANGES_PER_WINDOW",
    "LicenseErasure",
    "answer_request",
    "clear_address",
    "email_of",
    "erase_self",
    "erasure_effects",
    "export_for",
    "held_data",
    "remove_email",
    "set_email",
]

#: Address changes per end user per sign-in window: each one mails a confirmation link,
#: so the portal cannot be used to flood someone else's mailbox.
EMAIL_CHANGES_PER_WINDOW = 3
#: The refusal of a request for another license: the words of an unknown key, so the
#: portal tells nothing about keys other than the session's own.
UNKNOWN_KEY = "This license key does not exist for this product. Check the key."
_MAX_REQUEST = 20_000


def _person(holder: Holder) -> EndUser:
    """The session's end user, when the session has personal reach (else 403)."""
    if not holder.personal or holder.end_user is None:
        raise ServiceError(Code.FORBIDDEN, "Your personal data is reached only through a "
                           "sign-in link mailed to your confirmed address.")
    return holder.end_user


def email_of(ctx: Context, holder: Holder) -> str | None:
    """The address on file of the session's end user, decrypted (None: no address).

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach.
    """
    email, _ = decrypt_end_user(ctx, _person(holder))
    return email


def set_email(session: Session, ctx: Context, holder: Holder, email: str) -> bool:
    """Set or change the end user's address; commits, then mails the confirmation link.

    The address is unconfirmed until the link mailed to it is opened;
    ``consent_at`` is now (the end user's own action on their own data).
    Links mailed before stop working (they are bound to the address they
    went to).  The same address again (case aside) changes nothing.

    Args:
        email: the address as typed (trimmed here; the server's address rule).

    Returns:
        True when the address changed (a confirmation mail is on its way if
        mail is configured), False when it was the address on file already.

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach; 400
        ``invalid_request`` (``details.field`` ``email``: not an address);
        429 ``rate_limited`` (more than :data:`EMAIL_CHANGES_PER_WINDOW`
        changes per ``portal_sign_in_window``).
    """
    person = _person(holder)
    typed = email.strip()
    if normal_email(typed) is None:
        raise ServiceError(Code.INVALID_REQUEST, "Enter a whole email address "
                           "(name@example.com, no spaces).", details={"field": "email"})
    index = ctx.vault.email_index(typed)
    if person.email_index == index:
        return False
    ratelimit.hit(session, "portal-email:" + person.id, limit=EMAIL_CHANGES_PER_WINDOW,
                  window=ctx.settings.portal_sign_in_window)
    now = utcnow()
    # The mail names this license when the person uses it (else the product only).
    activation = session.scalars(select(Activation).where(
        Activation.end_user_id == person.id, Activation.license_id == holder.license.id)
        .order_by(Activation.created_at).limit(1)).first()
    email_confirmation.email_given(session, ctx, person, typed, index, activation=activation,
                                   now=now)
    if person.email_index is not None:
        # The address left behind is erased: a restore must not bring it back.
        ledger.record(session, ledger.ADDRESS_REMOVE, person.id, at=now)
    _forget_old_address(session, person)
    person.email_ciphertext = ctx.vault.encrypt_field(typed.encode("utf-8"),
                                                      aad=f"end_user:{person.id}:email")
    person.email_index = index
    person.consent_at = now
    session.execute(delete(PortalLink).where(PortalLink.end_user_id == person.id,
                                             PortalLink.used_at.is_(None)))
    audit(session, ACTOR, "end_user.email_set", at=now, product_id=holder.license.product_id,
          license_id=holder.license.id, end_user_id=person.id)
    session.commit()
    email_confirmation.send_pending(session, ctx)
    return True


def _forget_old_address(session: Session, person: EndUser) -> None:
    """The address ``person`` is leaving: drop what is keyed by its hash, unless another
    record still has that address."""
    old = person.email_index
    if old is None:
        return
    others = session.scalar(select(func.count()).select_from(EndUser).where(
        EndUser.email_index == old, EndUser.id != person.id, EndUser.erased_at.is_(None)))
    if not others:
        forget_address_traces(session, old)


def remove_email(session: Session, ctx: Context, holder: Holder) -> None:
    """Remove the end user's address (and its confirmation and sign-in links); commits.

    The session goes on; without an address no mail reaches the end user and
    no new sign-in link can be asked for until they set one again.

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach.
    """
    person = _person(holder)
    if person.email_index is not None:
        ledger.record(session, ledger.ADDRESS_REMOVE, person.id)
    clear_address(session, person)
    audit(session, ACTOR, "end_user.email_removed", product_id=holder.license.product_id,
          license_id=holder.license.id, end_user_id=person.id)
    session.commit()


def clear_address(session: Session, person: EndUser) -> None:
    """Delete ``person``'s address, its confirmation, its sign-in links and what is keyed
    by its hash (unless another record still has it). No commit, no audit, no ledger
    entry: :func:`remove_email`, and a restore re-applying one, do those."""
    email_confirmation.forget(session, person)
    _forget_old_address(session, person)
    person.email_ciphertext = None
    person.email_index = None
    session.execute(delete(PortalLink).where(PortalLink.end_user_id == person.id))


def export_for(session: Session, ctx: Context, holder: Holder) -> dict[str, Any]:
    """Everything held about the session's end user: exactly the vendor's export.

    Audited as ``end_user.exported`` (actor ``portal``) and committed before
    the data is returned.  Serialise with
    :func:`~software_dna.server.schemas.end_users.export_document`.

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach.
    """
    person = _person(holder)
    audit(session, ACTOR, "end_user.exported", product_id=holder.license.product_id,
          license_id=holder.license.id, end_user_id=person.id)
    session.commit()
    return export_end_user(session, ctx, person.id)


def held_data(session: Session, ctx: Context, holder: Holder) -> dict[str, Any]:
    """A summary of what is held about the session's end user, for their own page.

    Keys: ``email`` (decrypted, or None), ``email_confirmed`` (bool),
    ``registration`` (field names and values, or None), ``consent_at``,
    ``created_at``, ``activations`` (how many, live or not), ``settings``
    (how many licenses hold a settings document), ``licenses_bought`` and
    ``mails`` (counts).  Nothing is audited: the end user reads their own data.

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach.
    """
    person = _person(holder)
    data = export_end_user(session, ctx, person.id)
    return {"email": data["email"], "email_confirmed": data["email_confirmed_at"] is not None,
            "registration": data["registration"], "consent_at": data["consent_at"],
            "created_at": data["created_at"], "activations": len(data["activations"]),
            "settings": len(data["settings"]), "licenses_bought": len(data["licenses"]),
            "mails": len(data["mails"])}


@dataclass(frozen=True)
class LicenseErasure:
    """What erasing the end user does to one license (see :func:`erasure_effects`).

    Attributes:
        license: the license.
        this: True for the session's license.
        per_seat: a user-seat license: only the end user's own seats turn
            limited; the license, its password and the other seats stay.
        password_removed: the license's activation password is deleted (the
            vendor sets a new one before the next activation).
        limited_features: what the app offers in limited mode (the product's list).
    """

    license: License
    this: bool
    per_seat: bool
    password_removed: bool
    limited_features: list[str]


def _erased_licenses(session: Session, holder: Holder, person: EndUser) -> list[License]:
    """The licenses :func:`~software_dna.server.services.endusers.erase` touches for this
    person and this license, the session's first."""
    ids = {holder.license.id}
    ids.update(session.scalars(select(Activation.license_id).where(
        Activation.end_user_id == person.id)))
    ids.update(session.scalars(select(License.id).where(License.buyer_id == person.id)))
    rows = session.scalars(select(License).where(License.id.in_(ids))
                           .order_by(License.created_at, License.id)).all()
    return sorted(rows, key=lambda lic: lic.id != holder.license.id)


def erasure_effects(session: Session, holder: Holder) -> list[LicenseErasure]:
    """What the end user's erasure would do, one entry per license it touches.

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach.
    """
    person = _person(holder)
    effects = []
    for lic in _erased_licenses(session, holder, person):
        per_seat = lic.seat_mode == USER
        effects.append(LicenseErasure(
            license=lic, this=lic.id == holder.license.id, per_seat=per_seat,
            password_removed=not per_seat and lic.password_hash is not None,
            limited_features=list(lic.product.limited_features or [])))
    return effects


def erase_self(session: Session, ctx: Context, holder: Holder) -> None:
    """Erase the session's end user and this license's personal data; commits.

    The vendor's erasure (:func:`~software_dna.server.services.endusers.erase`,
    actor ``portal``): the address, registration and labels go; machine and
    floating licenses (this one and the others the person uses or bought) lose
    their settings and activation password and run limited; on a user-seat
    license only the person's own seats do.  When the address on file is the one
    the session's link was mailed to (and is confirmed), every other
    record carrying that address is erased the same way: each activation that
    gave the address before it was proven has a record of its own.  The
    session stays, as a read-only view of the limited license.

    Raises:
        ServiceError: 403 ``forbidden`` without personal reach.
    """
    person = _person(holder)
    # The session proves the address on file only if the link that opened it was mailed
    # to that address; an address changed since (even if confirmed) proves nothing.
    opened_by = session.scalar(select(PortalLink.email_index).where(
        PortalLink.end_user_id == person.id, PortalLink.used_at.is_not(None))
        .order_by(PortalLink.used_at.desc()).limit(1))
    proven = person.email_confirmed_at is not None and opened_by == person.email_index
    index = person.email_index if proven else None
    erase(session, ctx, end_user=person, license_ids={holder.license.id}, actor=ACTOR)
    if index is None:
        return
    # The proven owner of the address asks: every other record carrying it goes too
    # (each activation that gave the address before it was proven has its own record).
    for other in session.scalars(select(EndUser).where(
            EndUser.email_index == index, EndUser.erased_at.is_(None))).all():
        erase(session, ctx, end_user=other, license_ids=set(), actor=ACTOR)


def answer_request(session: Session, ctx: Context, holder: Holder, request_text: str, *,
                   password: str | None, client_address: str | None) -> OfflineActivated:
    """Answer an air-gapped activation request for the session's own license; commits.

    Exactly the public route's answer
    (:func:`~software_dna.server.services.offline.respond`, actor ``portal``):
    the activation password is typed beside the request whenever the license
    has one (a session is not the password: it may predate a change by the
    vendor), and every rule of an activation applies (consent, seats, rate
    limits per network and license, the lock-out ledger).

    Args:
        request_text: the armored request as pasted.
        password: the activation password typed beside it (None: none typed).
        client_address: the browser's address (rate limited like the app's).

    Raises:
        ServiceError: 404 ``unknown_license_key`` for a request of another
        license (the words of an unknown key); 403 ``offline_not_allowed``;
        400 ``invalid_request`` (a damaged request), and every refusal of
        :func:`~software_dna.server.services.offline.respond`.
    """
    if not holder.member:
        raise ServiceError(Code.FORBIDDEN, "You no longer hold this license.")
    text = request_text[:_MAX_REQUEST]
    try:
        doc = parse_request(text)
    except ArmorError as exc:
        raise ServiceError(Code.INVALID_REQUEST, str(exc),
                           details={"field": "request"}) from None
    found = find_license_by_key(session, ctx, doc.license_key[:200])
    if found is None or found.id != holder.license.id or doc.product != holder.product.id:
        raise ServiceError(Code.UNKNOWN_LICENSE_KEY, UNKNOWN_KEY)
    return respond(session, ctx, text, password=password or None, staff=False, actor=ACTOR,
                   client_address=client_address)
