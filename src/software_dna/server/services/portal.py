"""The end user's license portal: who is signed in, and what they may reach.

Two ways in, with different reach (docs/portal.md):

- :func:`sign_in_with_password`: the license key and the activation password.
  Reach: the license, its activations, freeing a computer, the password, and
  air-gapped answers, never personal data.
- :func:`request_links` then :func:`use_link`: a single-use link mailed to an
  end user's *confirmed* address, bound to the browser that asked for it.
  Reach: the same, plus that end user's own personal data (export, email,
  erasure).  A license without a password is reached this way only.

Invariants (every decision comes from server state; the browser chooses
nothing but what it types):

- A session is the keyed hash of a 256-bit random cookie token; it names one
  product, one license and, for a link, one end user.  Its reach is computed
  from those rows at every request (:class:`Holder`), so an erasure or a
  changed password takes effect at once.
- Wrong sign-ins are counted per client network and per license key as typed
  (keyed hash: an unknown key counts like a known one), in counters of their
  own: a failed portal sign-in never touches the app's activation limits.
  Every attempt is counted first and a good one is taken back, so concurrent
  guesses cannot pass the limit.
- No answer says whether a key, a password or an address exists: the same
  refusal, after one password hash check in every case; the same "if it is on
  file, a link is on its way" for every address.
- A link works once (a conditional ``UPDATE`` claims it), for
  ``portal_link_ttl`` seconds, in the browser whose cookie asked for it, and
  only while its address is still the end user's confirmed one.
- On a user-seat license a link session sees and frees only its own end
  user's seats; labels (personal) are shown only to the end user they belong to.
- Computers freed per license per period are limited by the product
  (``portal_release_limit`` / ``portal_release_period``), counted from the
  activations the license holder freed (server state).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from software_dna.server import licensekeys
from software_dna.server.crypto import hash_password, verify_password
from software_dna.server.domain.refusals import DEACTIVATED_BY_PORTAL
from software_dna.server.models import (
    Activation,
    EndUser,
    License,
    PortalLink,
    PortalSession,
    Product,
)
from software_dna.server.services import emails, ledger, ratelimit
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.email_confirmation import links_possible
from software_dna.server.services.endusers import activation_label, portal_link_counter
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.licenses import set_license_password
from software_dna.server.services.lookups import find_license_by_key, get_license
from software_dna.wire.claims import SeatMode
from software_dna.wire.codes import Code

__all__ = [
    "ACTOR",
    "LINK",
    "PASSWORD",
    "Holder",
    "ReleaseAllowance",
    "change_password",
    "end_session",
    "holder_of",
    "label_of",
    "may_set_password_without_current",
    "release_activation",
    "release_allowance",
    "request_links",
    "sign_in_with_password",
    "use_link",
    "visible_activations",
]

#: The audit log's actor of what the license holder does in the portal.
ACTOR = "portal"
#: How a session got in (``portal_sessions.method``).
PASSWORD = "password"  # noqa: S105  # a method's name, not a secret
LINK = "link"

#: Links mailed per request at most (one per license of the product the address reaches).
MAX_LINKS = 5
#: Link requests per address (its keyed hash) and browser per sign-in window: more are
#: answered the same way but mail nothing, so nobody floods a mailbox through the portal.
LINK_MAILS_PER_WINDOW = 3
#: Link requests per address from every browser together per sign-in window: a bound on
#: the mails one address can get, three times what one network may ask (so filling it
#: takes several networks; the holder's browser then still signs in with the key).
LINK_MAILS_PER_ADDRESS = 30

_SIGN_IN_FAILED = ("The license key or the activation password is wrong. (A license without "
                   "an activation password is reached with a link sent by email.)")
_LINK_FAILED = ("This sign-in link cannot be used: it was used already, it expired, or it "
                "was opened in another browser than the one that asked for it. Ask for a "
                "new link from this browser.")
USER = SeatMode.USER.value
#: What an id of ours looks like (anything else is no row; PostgreSQL text holds no NUL).
_OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
_MAX_SECRET = 1000


@dataclass(frozen=True)
class Holder:
    """The signed-in license holder of a request.

    Attributes:
        session: the portal session row.
        license: the license it is signed in to.
        end_user: the end user a link was mailed to (None with the password, and
            once that end user is erased).
    """

    session: PortalSession
    license: License
    end_user: EndUser | None
    #: A link session's end user still holds the license: its buyer, or the holder of
    #: a live seat (:func:`holds`).  Always True for a password session.
    member: bool = True

    @property
    def method(self) -> str:
        """``password`` or ``link``."""
        return self.session.method

    @property
    def personal(self) -> bool:
        """True when this session may reach personal data: a link, its end user not erased."""
        return (self.session.method == LINK and self.member and self.end_user is not None
                and self.end_user.erased_at is None)

    @property
    def product(self) -> Product:
        """The license's product."""
        return self.license.product

    def sees(self, activation: Activation) -> bool:
        """True when ``activation`` is this holder's to see and free.

        Every activation of the license, except on a user-seat license reached
        by a link, where only the end user's own seats are.
        """
        if activation.license_id != self.license.id or not self.member:
            return False
        if self.license.seat_mode == USER and self.session.method == LINK:
            return self.end_user is not None and activation.end_user_id == self.end_user.id
        return True

    def sees_label(self, activation: Activation) -> bool:
        """True when the computer's label (personal data) may be shown to this holder.

        To the end user it belongs to (a link session), and to a password
        session of a machine or floating license (the key holder's own
        computers); never another person's seat of a user-seat license.
        """
        if self.personal and self.end_user is not None:
            return activation.end_user_id == self.end_user.id
        return self.session.method == PASSWORD and self.license.seat_mode != USER


# --------------------------------------------------------------------------- sessions


def _open_session(session: Session, ctx: Context, lic: License, *, method: str,
                  end_user_id: str | None) -> str:
    """Start a portal session (no commit); returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(PortalSession(
        id=ctx.vault.portal_hash("sessions", token), product_id=lic.product_id,
        license_id=lic.id, end_user_id=end_user_id, method=method, created_at=now,
        last_seen_at=now, expires_at=now + timedelta(seconds=ctx.settings.portal_session_max)))
    # Now and then, forget the sessions that ended (nothing else reads them).
    if secrets.randbelow(20) == 0:
        session.execute(delete(PortalSession).where(PortalSession.expires_at <= now))
    return token


def holder_of(session: Session, ctx: Context, token: str | None,
              product_id: str) -> Holder | None:
    """The live session of a cookie's ``token`` for ``product_id``, or None.

    An expired session (idle ``portal_session_idle`` or older than
    ``portal_session_max`` seconds) is deleted, and so is a link session whose
    person no longer holds the license (:func:`holds`), except after they
    erased their data: then ``member`` is False and the pages offer a
    read-only view of the (limited) license.  A live one has its
    ``last_seen_at`` moved on (committed at most once a minute).
    """
    if not token or len(token) > 100:
        return None
    row = session.get(PortalSession, ctx.vault.portal_hash("sessions", token))
    if row is None or row.product_id != product_id:
        return None
    now = utcnow()
    idle = timedelta(seconds=ctx.settings.portal_session_idle)
    if row.expires_at <= now or row.last_seen_at + idle <= now:
        session.delete(row)
        session.commit()
        return None
    if now - row.last_seen_at >= timedelta(seconds=60):
        row.last_seen_at = now
        session.commit()
    lic = session.get(License, row.license_id)
    if lic is None:
        return None
    end_user = session.get(EndUser, row.end_user_id) if row.end_user_id else None
    member = row.method == PASSWORD or (end_user is not None and holds(session, lic, end_user))
    if not member and (end_user is None or end_user.erased_at is None):
        # Their seat was freed (or the license sold on): the link no longer speaks for them.
        session.delete(row)
        session.commit()
        return None
    # A person who erased their data keeps a read-only view of the license (limited).
    return Holder(session=row, license=lic, end_user=end_user, member=member)


def holds(session: Session, lic: License, end_user: EndUser) -> bool:
    """True when ``end_user`` holds ``lic`` now: its buyer, or the end user of a live seat.

    A person whose seat was freed (by themselves, the vendor, a roll-over) or
    who erased their data no longer holds it: a mailed link no longer reaches
    the license, and an open link session keeps no reach over it.
    """
    if end_user.erased_at is not None:
        return False
    if lic.buyer_id == end_user.id:
        return True
    return session.scalar(select(func.count()).select_from(Activation).where(
        Activation.license_id == lic.id, Activation.end_user_id == end_user.id,
        Activation.deactivated_at.is_(None))) != 0


def end_session(session: Session, ctx: Context, token: str | None) -> None:
    """Sign out: forget the session of this cookie's token; commits."""
    if token and len(token) <= 100:
        session.execute(delete(PortalSession).where(
            PortalSession.id == ctx.vault.portal_hash("sessions", token)))
        session.commit()


# --------------------------------------------------------------------------- password


def _sign_in_keys(ctx: Context, license_key: str,
                  client_address: str | None) -> tuple[str | None, str]:
    network = ("portal:" + ctx.vault.address_key(client_address)
               if client_address else None)
    try:  # every spelling of one key counts as that key
        typed = licensekeys.normalize(license_key[:200])
    except licensekeys.InvalidKeyFormat:
        typed = "".join(license_key.split()).upper()[:200]
    return network, "portal-key:" + ctx.vault.portal_hash("keys", typed)[:32]


def sign_in_with_password(session: Session, ctx: Context, *, product_id: str,
                          license_key: str, password: str,
                          client_address: str | None) -> str:
    """Sign in with the license key and the activation password; commits.

    Args:
        product_id: the product of the portal page (a key of another product fails).
        license_key: as typed (case and spaces do not matter).
        password: the activation password as typed.
        client_address: the browser's address (its network is rate limited).

    Returns:
        The new session's cookie token.

    Raises:
        ServiceError: 401 ``unauthorized`` for an unknown key, a key of another
        product, a license without a password, or a wrong password alike (one
        password hash checked in each case); 429 ``rate_limited`` (with
        ``retry_after``) when the network or the key failed too often in
        ``portal_sign_in_window`` seconds.
    """
    settings = ctx.settings
    limit, window = settings.portal_sign_in_attempts, settings.portal_sign_in_window
    network, key_counter = _sign_in_keys(ctx, license_key, client_address)
    counters = [c for c in (network, key_counter) if c is not None]
    for counter in counters:
        ratelimit.hit(session, counter, limit=limit, window=window)
    lic = find_license_by_key(session, ctx, license_key[:200])
    stored = lic.password_hash if lic is not None else None
    good = verify_password(password[:_MAX_SECRET], stored or _DUMMY_HASH)
    if lic is None or lic.product_id != product_id or stored is None or not good:
        if lic is not None and lic.product_id == product_id:
            audit(session, ACTOR, "portal.sign_in_failed", product_id=lic.product_id,
                  license_id=lic.id)
            session.commit()
        raise ServiceError(Code.UNAUTHORIZED, _SIGN_IN_FAILED)
    for counter in counters:
        ratelimit.refund(session, counter)
    token = _open_session(session, ctx, lic, method=PASSWORD, end_user_id=None)
    audit(session, ACTOR, "portal.sign_in", product_id=lic.product_id, license_id=lic.id,
          detail={"method": PASSWORD})
    session.commit()
    return token


# --------------------------------------------------------------------------- links


def _reachable_licenses(session: Session, product_id: str,
                        end_user: EndUser) -> list[License]:
    """The licenses of ``product_id`` an end user holds a live seat of or bought, newest
    first."""
    used = select(Activation.license_id).where(Activation.end_user_id == end_user.id,
                                               Activation.deactivated_at.is_(None))
    return list(session.scalars(
        select(License).where(License.product_id == product_id,
                              (License.id.in_(used)) | (License.buyer_id == end_user.id))
        .order_by(License.created_at.desc(), License.id).limit(MAX_LINKS)))


def request_links(session: Session, ctx: Context, *, product_id: str, email: str,
                  browser_token: str, client_address: str | None) -> int:
    """Mail sign-in links to ``email`` if it is a confirmed address on file; commits.

    One link per license of ``product_id`` the address reaches (at most
    :data:`MAX_LINKS`), each bound to the browser whose cookie is
    ``browser_token``; the mails go through the outbox (template
    ``portal_link``).  The caller answers the same whatever this returns.

    Args:
        email: the address as typed.
        browser_token: the random value of the browser's link cookie.
        client_address: the browser's address (its network is rate limited).

    Returns:
        How many links were made (0: unknown, unconfirmed or erased address, too
        many requests for it, or links impossible: no public URL or no mail).

    Raises:
        ServiceError: 429 ``rate_limited`` when the network asked too often.
    """
    settings = ctx.settings
    window = settings.portal_sign_in_window
    if client_address:
        ratelimit.hit(session, "portal-link:" + ctx.vault.address_key(client_address),
                      limit=settings.portal_sign_in_attempts, window=window)
    address = email.strip()[:254]
    if not address or not links_possible(ctx) or not browser_token:
        return 0
    index = ctx.vault.email_index(address)
    browser_hash = ctx.vault.portal_hash("browsers", browser_token[:200])
    # Per address and browser a few mails; per address more, from every browser together:
    # a stranger asking from their browser uses up only their own share, never the one of
    # the holder's browser, and a mailbox still gets a bounded number of mails.
    try:
        ratelimit.hit(session, portal_link_counter(index, browser_hash),
                      limit=LINK_MAILS_PER_WINDOW, window=window)
        ratelimit.hit(session, portal_link_counter(index), limit=LINK_MAILS_PER_ADDRESS,
                      window=window)
    except ServiceError:
        return 0
    product = session.get(Product, product_id)
    if product is None:
        return 0
    people = session.scalars(select(EndUser).where(
        EndUser.email_index == index, EndUser.erased_at.is_(None),
        EndUser.email_confirmed_at.is_not(None)).order_by(EndUser.created_at)).all()
    now = utcnow()
    if secrets.randbelow(20) == 0:  # now and then, forget the links that can no longer work
        # (a used link is kept while its session may live: it says which address
        # opened that session)
        session.execute(delete(PortalLink).where(PortalLink.expires_at <= now - timedelta(
            seconds=settings.portal_session_max)))
    expires_at = now + timedelta(seconds=settings.portal_link_ttl)
    links: list[dict[str, str]] = []
    reached: set[str] = set()
    for person in people:
        for lic in _reachable_licenses(session, product_id, person):
            if len(links) >= MAX_LINKS or lic.id in reached:
                continue
            reached.add(lic.id)
            token = secrets.token_urlsafe(32)
            session.add(PortalLink(
                id=new_id("pln"), token_hash=ctx.vault.portal_hash("links", token),
                browser_hash=browser_hash, product_id=product_id, license_id=lic.id,
                end_user_id=person.id, email_index=index, created_at=now,
                expires_at=expires_at, used_at=None))
            links.append({"url": link_url(ctx, product_id, token), "key_hint": lic.key_hint,
                          "kind": lic.kind})
    if links:
        # One mail per request, whatever the number of records the address has.
        emails.queue_mail(session, ctx, template="portal_link", recipient=address,
                          product_id=product_id, end_user_id=people[0].id,
                          context={"links": links, "minutes": settings.portal_link_ttl // 60})
        audit(session, ACTOR, "portal.link_sent", product_id=product_id,
              end_user_id=people[0].id, detail={"links": len(links)})
    made = len(links)
    session.commit()
    return made


def link_url(ctx: Context, product_id: str, token: str) -> str:
    """The address of a sign-in link (``SOFTWARE_DNA_PUBLIC_URL`` must be set)."""
    base = (ctx.settings.public_url or "").rstrip("/")
    return f"{base}/portal/{product_id}/link/{token}"


def use_link(session: Session, ctx: Context, *, product_id: str, token: str,
             browser_token: str | None, client_address: str | None) -> str:
    """Sign in with a mailed link; commits.  The link is used up, whatever follows.

    Returns:
        The new session's cookie token.

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown, used or expired link, another
        browser, another product, or an address changed, unconfirmed or erased
        since); 429 ``rate_limited`` (too many tries from the network).
    """
    settings = ctx.settings
    if client_address:
        ratelimit.hit(session, "portal-use:" + ctx.vault.address_key(client_address),
                      limit=settings.portal_sign_in_attempts * 3,
                      window=settings.portal_sign_in_window)
    refused = ServiceError(Code.UNAUTHORIZED, _LINK_FAILED)
    if not token or len(token) > 100 or not browser_token:
        raise refused
    now = utcnow()
    row = session.scalars(select(PortalLink).where(
        PortalLink.token_hash == ctx.vault.portal_hash("links", token))).first()
    if (row is None or row.product_id != product_id or row.used_at is not None
            or row.expires_at <= now
            or not secrets.compare_digest(
                row.browser_hash, ctx.vault.portal_hash("browsers", browser_token[:200]))):
        raise refused
    claimed = session.execute(update(PortalLink).where(
        PortalLink.id == row.id, PortalLink.used_at.is_(None)).values(used_at=now)
        .execution_options(synchronize_session=False))
    person = session.get(EndUser, row.end_user_id)
    lic = session.get(License, row.license_id)
    if (claimed.rowcount != 1 or person is None or lic is None  # type: ignore[attr-defined]
            or person.erased_at is not None or person.email_confirmed_at is None
            or person.email_index != row.email_index or not holds(session, lic, person)):
        session.commit()  # the link is used up all the same
        raise refused
    token_out = _open_session(session, ctx, lic, method=LINK, end_user_id=person.id)
    audit(session, ACTOR, "portal.sign_in", product_id=lic.product_id, license_id=lic.id,
          end_user_id=person.id, detail={"method": LINK})
    session.commit()
    return token_out


# --------------------------------------------------------------------------- activations


def visible_activations(session: Session, holder: Holder) -> list[Activation]:
    """The live activations the holder sees (:meth:`Holder.sees`), oldest first."""
    rows = session.scalars(select(Activation).where(
        Activation.license_id == holder.license.id, Activation.deactivated_at.is_(None))
        .order_by(Activation.created_at, Activation.id))
    return [a for a in rows if holder.sees(a)]


def label_of(ctx: Context, holder: Holder, activation: Activation) -> str | None:
    """The computer's label as the app set it, when the holder may see it (else None)."""
    return activation_label(ctx, activation) if holder.sees_label(activation) else None


@dataclass(frozen=True)
class ReleaseAllowance:
    """How many computers the license holder may still free now.

    Attributes:
        limit: per period (None: no limit; 0: only the vendor frees computers).
        period_days: the period, in days.
        used: computers freed in the portal in the current period.
    """

    limit: int | None
    period_days: int
    used: int

    @property
    def left(self) -> int | None:
        """Computers that may still be freed (None: no limit)."""
        return None if self.limit is None else max(0, self.limit - self.used)


def release_allowance(session: Session, lic: License) -> ReleaseAllowance:
    """The product's release limit for ``lic`` and what was used of it (server state)."""
    product = lic.product
    since = utcnow() - timedelta(seconds=product.portal_release_period)
    used = session.scalar(select(func.count()).select_from(Activation).where(
        Activation.license_id == lic.id,
        Activation.deactivated_by == DEACTIVATED_BY_PORTAL,
        Activation.deactivated_at >= since)) or 0
    return ReleaseAllowance(limit=product.portal_release_limit,
                            period_days=max(1, product.portal_release_period // 86400),
                            used=used)


def release_activation(session: Session, ctx: Context, holder: Holder,
                       activation_id: str) -> Activation:
    """Free a computer's seat from the portal; commits.

    The activation's next validation answers 410 ``activation_released``
    (signed): the app on that computer learns it was freed by the license
    holder.  The license row is locked while the allowance is counted, so two
    concurrent releases cannot pass the limit.

    Raises:
        ServiceError: 404 ``not_found`` (not this holder's to see, or already
        freed); 409 ``conflict`` (an air-gapped activation: its token lives on
        without the server, so only its signed deactivation receipt or the
        vendor frees the seat); 429 ``release_limit_reached`` (the product's
        limit per period).
    """
    lic = get_license(session, holder.license.id, lock=True)
    activation = (session.get(Activation, activation_id)
                  if _OBJECT_ID.fullmatch(activation_id) else None)
    if activation is None or activation.deactivated_at is not None or not holder.sees(activation):
        session.rollback()
        raise ServiceError(Code.NOT_FOUND, "This computer is not among this license's "
                           "activations (it may have been freed already).")
    if activation.offline:
        session.rollback()
        raise ServiceError(Code.CONFLICT, "An air-gapped computer never tells the server it "
                           "stopped: its seat is freed by the deactivation receipt the app "
                           "makes there, or by the vendor.")
    allowance = release_allowance(session, lic)
    if allowance.left is not None and allowance.left <= 0:
        session.rollback()
        if allowance.limit == 0:
            message = ("Computers of this product are freed by the vendor only: contact "
                       "the vendor's support.")
        else:
            message = (f"You have freed {allowance.used} computers in the last "
                       f"{allowance.period_days} days, the most this product allows. "
                       "Contact the vendor's support to free another one.")
        raise ServiceError(Code.RELEASE_LIMIT_REACHED, message)
    now = utcnow()
    activation.deactivated_at = now
    activation.deactivated_by = DEACTIVATED_BY_PORTAL
    ledger.record(session, ledger.ACTIVATION_REMOVE, activation.id, at=now,
                  detail={"by": DEACTIVATED_BY_PORTAL})
    audit(session, ACTOR, "activation.release", at=now, product_id=lic.product_id,
          license_id=lic.id, activation_id=activation.id,
          end_user_id=holder.end_user.id if holder.personal and holder.end_user else None,
          detail={"method": holder.method})
    session.commit()
    return activation


# --------------------------------------------------------------------------- password


def _invalid(message: str, field: str) -> ServiceError:
    return ServiceError(Code.INVALID_REQUEST, message, details={"field": field})


def may_set_password_without_current(holder: Holder) -> bool:
    """True when the holder may replace the activation password without typing it
    (:func:`change_password` says who)."""
    person = holder.end_user
    if not holder.personal or person is None:  # personal: the person holds the license now
        return False
    return holder.license.buyer_id == person.id or holder.license.seat_mode != USER


def change_password(session: Session, ctx: Context, holder: Holder, new: str, *,
                    current: str | None) -> None:
    """Set or change the license's activation password from the portal; commits.

    The current password is needed, except where the holder proved more than
    a browser left signed in: a link session of the license's buyer, or of an
    end user holding a live seat of a machine or floating license (the people
    the reset codes by mail go to).  On a user-seat license the password is
    shared by several people, so one of them never replaces it without
    knowing it.  The new password may not be the current one.  Every other
    password session of the license ends (services.licenses.set_license_password).

    Raises:
        ServiceError: 400 ``invalid_request`` (``details.field``: ``current``
        wrong or missing, ``password`` empty, too long or the current one).
    """
    lic = holder.license
    if not holder.member:
        raise _invalid("You no longer hold this license.", field="password")
    if lic.password_hash is not None and not may_set_password_without_current(holder) \
            and (not current or not verify_password(current[:_MAX_SECRET], lic.password_hash)):
        raise _invalid("The current activation password is wrong.", field="current")
    if not new:
        raise _invalid("Enter the new activation password.", field="password")
    if lic.password_hash is not None and verify_password(new[:_MAX_SECRET], lic.password_hash):
        raise _invalid("Choose a password other than the current one.", field="password")
    try:
        set_license_password(session, lic.id, new, actor=ACTOR,
                             keep_portal_session=holder.session.id)
    except ServiceError as exc:
        raise _invalid(exc.message, field="password") from None
