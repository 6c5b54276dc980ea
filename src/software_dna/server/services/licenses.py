"""Licenses: issue, list, show, suspend, resume, revoke, seats, expiry, features, password.

A license key is shown once, when issued.  The database holds only a keyed
hash of it (HMAC-SHA256 under a key derived from the master key) for
look-up, and its last four characters for display.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from software_dna.server import licensekeys
from software_dna.server.crypto import hash_password
from software_dna.server.domain.seats import FLOATING
from software_dna.server.domain.terms import terms_problem
from software_dna.server.models import Activation, EndUser, License
from software_dna.server.schemas.licenses import looks_like_full_key
from software_dna.server.services import events, ledger, outbox
from software_dna.server.services.common import (
    Context,
    audit,
    new_id,
    precise_now,
    utcnow,
)
from software_dna.server.services.emails import queue_key_delivery
from software_dna.server.services.endusers import attach_buyer, end_password_sessions
from software_dna.server.services.errors import ServiceError, conflict, invalid
from software_dna.server.services.lookups import find_license_by_key, get_license, get_product
from software_dna.server.services.products import clean_features
from software_dna.server.services.seats import check_seat_options, seats_used
from software_dna.server.services.tokens import decrypt_end_user
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code

__all__ = [
    "MAX_SEATS",
    "LicenseChanges",
    "LicenseSearch",
    "buyer_on_file",
    "check_expiry",
    "issue_license",
    "list_licenses",
    "search_licenses",
    "rekey_license",
    "resume_license",
    "revoke_license",
    "seats_in_use",
    "set_license_password",
    "suspend_license",
    "update_license",
]

MAX_SEATS = 100_000
MAX_PASSWORD = 256


def _check_password(password: str) -> None:
    if not 1 <= len(password) <= MAX_PASSWORD:
        raise invalid(f"An activation password is 1 to {MAX_PASSWORD} characters.")


def _check_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at.tzinfo is None:
        raise invalid("expires_at needs a time zone (UTC).")


def check_expiry(expires_at: datetime | None, *, allow_past: bool,
                 field: str = "expires_at") -> None:
    """Refuse an end in the past unless the vendor confirmed it (``allow_past``).

    A plain date typed by a vendor means "through that day"; a date already
    over is almost always a typo (the wrong year), so it needs a confirmation.

    Raises:
        ServiceError: 400 ``invalid_request`` with ``details.field`` = ``field``.
    """
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise ServiceError(Code.INVALID_REQUEST, f"{field} needs a time zone (UTC).",
                           details={"field": field})
    if not allow_past and expires_at <= utcnow():
        raise ServiceError(
            Code.INVALID_REQUEST,
            f"{field}: the date is in the past ({expires_at.year:04d}-{expires_at:%m-%d %H:%M} "
            "UTC); the license "
            "would end at once. Confirm it (allow_past) if that is what you mean.",
            details={"field": field})


_REF_FIELDS = {"customer_ref": 100, "order_ref": 100, "notes": 2000}


def _clean_ref(name: str, value: str | None) -> str | None:
    """A reference or notes as stored: stripped (refs), '' becomes None; length checked."""
    if value is None:
        return None
    text = value.strip() if name != "notes" else value
    if not text.strip():
        return None
    limit = _REF_FIELDS[name]
    if len(text) > limit:
        raise ServiceError(Code.INVALID_REQUEST, f"{name} is at most {limit} characters.",
                           details={"field": name})
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text) or (
            name != "notes" and any(c in "\n\r\t" for c in text)):
        raise ServiceError(Code.INVALID_REQUEST, f"{name} has control characters.",
                           details={"field": name})
    return text


def issue_license(
    session: Session,
    ctx: Context,
    *,
    product_id: str,
    seats: int = 1,
    expires_at: datetime | None = None,
    features: Iterable[str] | None = None,
    password: str | None = None,
    key_prefix: str | None = None,
    actor: str = "admin",
    kind: str = "full",
    duration_days: int | None = None,
    subscription: bool = False,
    seat_mode: str = "machine",
    rollover: bool = False,
    air_gapped: bool | None = None,
    buyer_email: str | None = None,
    customer_ref: str | None = None,
    order_ref: str | None = None,
    notes: str | None = None,
    allow_past: bool = True,
) -> tuple[License, str]:
    """Issue a license and commit; returns ``(license, license_key)``.

    The key is returned only here: the server cannot show it again.

    Args:
        product_id: the product.
        seats: how many machines may be active at once (1..100000).
        expires_at: end of the license (aware datetime, UTC), None = perpetual.
        features: entitlements (default: the product's features).
        password: activation password (required when the product says so).
        key_prefix: 1-12 characters A-Z 0-9 put in front of the key.
        kind: ``full``, ``evaluation`` (``duration_days`` 1-60) or ``test``
            (use :func:`~software_dna.server.services.trials.issue_test_code`).
        duration_days: the license ends this many days after its first
            activation (instead of ``expires_at``); see :mod:`.license_terms`.
        subscription: a subscription (needs protection ``mandatory``).
        seat_mode: what a seat is: ``machine``, ``user`` or ``floating``
            (concurrent leases); see :mod:`.seats`.
        rollover: when every machine / user seat is taken, a new activation
            moves the least recently seen one (not for floating seats).
        air_gapped: allow (True) or forbid (False) air-gapped activation of
            this license whatever the product says; None: the product's setting.
        buyer_email: the buyer's address: recorded as the license's buyer
            (:func:`~.endusers.attach_buyer`, encrypted) and the key is mailed
            there through the outbox (``license_key``, always sent), in the
            same transaction as the license.
        customer_ref, order_ref: the vendor's own references (at most 100
            characters each), notes (at most 2000): not personal data by design.
        allow_past: False refuses an ``expires_at`` in the past
            (:func:`check_expiry`); the admin API, CLI and panel pass the
            vendor's confirmation.

    Raises:
        ServiceError: 404 ``not_found`` (product), 400 ``invalid_request``.
    """
    product = get_product(session, product_id)
    if not 1 <= seats <= MAX_SEATS:
        raise invalid(f"seats must be 1 to {MAX_SEATS}.")
    _check_expiry(expires_at)
    check_expiry(expires_at, allow_past=allow_past)
    refs = {name: _clean_ref(name, value) for name, value in
            (("customer_ref", customer_ref), ("order_ref", order_ref), ("notes", notes))}
    problem = terms_problem(protection=product.protection, kind=kind, expires_at=expires_at,
                            duration_days=duration_days, subscription=subscription)
    if problem is not None:
        raise invalid(problem)
    check_seat_options(seat_mode, rollover)
    if password is not None:
        _check_password(password)
    elif product.password_required:
        raise invalid("This product requires an activation password for every license.")
    feature_list = clean_features(product.features if features is None else features)
    now = precise_now()
    for _attempt in range(5):
        try:
            key = licensekeys.generate(key_prefix)
        except licensekeys.InvalidKeyFormat as exc:
            raise invalid(str(exc)) from None
        lic = License(
            id=new_id("lic"),
            product_id=product_id,
            key_hash=ctx.vault.license_key_hash(licensekeys.normalize(key)),
            key_last4=key[-4:],
            status="active",
            seats=seats,
            expires_at=expires_at,
            features=feature_list,
            password_hash=hash_password(password) if password is not None else None,
            password_erased=False,
            erased=False,
            kind=kind,
            duration_days=duration_days,
            first_activated_at=None,
            subscription=subscription,
            cancelled_at=None,
            seat_mode=seat_mode,
            rollover=rollover,
            air_gapped=air_gapped,
            customer_ref=refs["customer_ref"],
            order_ref=refs["order_ref"],
            notes=refs["notes"],
            created_at=now,
            updated_at=now,
        )
        session.add(lic)
        try:
            session.flush()
        except IntegrityError:  # pragma: no cover - a 2**80 key space collision
            session.rollback()
            continue
        buyer_data: AbstractContextManager[None] = nullcontext()
        if buyer_email is not None:
            buyer = attach_buyer(session, ctx, lic, buyer_email)
            queue_key_delivery(session, ctx, lic, key, buyer=buyer, email=buyer_email.strip())
            # license.issued carries the address to endpoints marked for personal data.
            buyer_data = events.personal_data(session, ctx, lic.id,
                                              {"email": buyer_email.strip()})
        with buyer_data:
            audit(session, actor, "license.issue", at=now, product_id=product_id,
                  license_id=lic.id, detail={"seats": seats, "kind": kind,
                                             "key_mailed": buyer_email is not None})
        session.commit()
        return lic, key
    raise conflict("Could not generate a unique license key; try again.")  # pragma: no cover


def list_licenses(
    session: Session,
    *,
    product_id: str | None = None,
    status: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[License]:
    """Licenses, newest first, optionally of one product / with one status."""
    query = select(License).order_by(License.created_at.desc(), License.id)
    if product_id is not None:
        query = query.where(License.product_id == product_id)
    if status is not None:
        query = query.where(License.status == status)
    return list(session.scalars(query.limit(limit).offset(offset)))


def seats_in_use(session: Session, license_id: str) -> int:
    """Seats in use: live activations, or live leases of a floating license."""
    lic = session.get(License, license_id)
    if lic is not None and lic.seat_mode == FLOATING:
        return seats_used(session, lic)
    return int(
        session.scalar(
            select(func.count())
            .select_from(Activation)
            .where(Activation.license_id == license_id, Activation.deactivated_at.is_(None))
        )
        or 0
    )


class LicenseChanges(TypedDict, total=False):
    """What :func:`update_license` changes: a key that is absent stays as it is.

    ``seats``, ``features``, ``seat_mode``, ``rollover``: None also leaves it
    as it is; ``expires_at`` (aware): None makes the license perpetual;
    ``air_gapped``: True / False overrides the product's setting, None follows it.
    """

    seats: int | None
    expires_at: datetime | None
    features: Iterable[str] | None
    seat_mode: str | None
    rollover: bool | None
    air_gapped: bool | None
    customer_ref: str | None
    order_ref: str | None
    notes: str | None


def _stretches_test_code(lic: License, changes: Mapping[str, Any]) -> bool:
    """True when ``changes`` would give a test code more than it has: seats, features, or
    an end later than its own (or than a week from now before its first activation)."""
    if {"seats", "features"} & set(changes):
        return True
    if "expires_at" not in changes:
        return False
    end = changes["expires_at"]
    bound = lic.expires_at or utcnow() + timedelta(days=7)
    return end is None or end > bound


def update_license(session: Session, license_id: str, *, actor: str = "admin",
                   allow_past: bool = True,
                   **changes: Unpack[LicenseChanges]) -> License:
    """Set seats, expiry, features or seating (:class:`LicenseChanges`); commits.

    Lowering seats below the seats in use is allowed: existing activations
    keep working, new ones are refused until enough are deactivated.
    ``seat_mode`` / ``rollover``: see :func:`issue_license`.  A PATCH body
    passes the fields it set (``model_fields_set``).  ``customer_ref``,
    ``order_ref``, ``notes``: None or '' clears one.  ``allow_past``: False
    refuses an ``expires_at`` in the past (:func:`check_expiry`).

    Raises:
        ServiceError: 404 ``not_found``, 400 ``invalid_request``, 409 ``conflict``
            (the seats, term or features of a test code).
    """
    lic = get_license(session, license_id)
    if lic.kind == Kind.TEST.value and _stretches_test_code(lic, changes):
        # Test codes have their own bounds (services.trials.issue_test_code).
        raise conflict("A test code's seats and features are fixed and its term can only "
                       "be shortened; reset it or issue a license instead.")
    seats, features = changes.get("seats"), changes.get("features")
    seat_mode, rollover = changes.get("seat_mode"), changes.get("rollover")
    changed: list[str] = []
    if seats is not None:
        if not 1 <= seats <= MAX_SEATS:
            raise invalid(f"seats must be 1 to {MAX_SEATS}.")
        lic.seats = seats
        changed.append("seats")
    if "expires_at" in changes:
        expires_at = changes["expires_at"]
        _check_expiry(expires_at)
        check_expiry(expires_at, allow_past=allow_past)
        lic.expires_at = expires_at
        lic.duration_days = None  # a fixed end (or none) replaces "N days after"
        changed.append("expires_at")
    if features is not None:
        lic.features = clean_features(features)
        changed.append("features")
    if seat_mode is not None or rollover is not None:
        new_mode = seat_mode if seat_mode is not None else lic.seat_mode
        new_rollover = rollover if rollover is not None else lic.rollover
        check_seat_options(new_mode, new_rollover)
        lic.seat_mode, lic.rollover = new_mode, new_rollover
        changed.extend(n for n, v in (("seat_mode", seat_mode), ("rollover", rollover))
                       if v is not None)
    if "air_gapped" in changes:
        lic.air_gapped = changes["air_gapped"]
        changed.append("air_gapped")
    for name in ("customer_ref", "order_ref", "notes"):
        if name in changes:
            setattr(lic, name, _clean_ref(name, changes[name]))
            changed.append(name)
    now = utcnow()
    lic.updated_at = now
    audit(session, actor, "license.update", at=now, product_id=lic.product_id,
          license_id=lic.id, detail={"changed": changed})
    session.commit()
    return lic


def _set_status(session: Session, license_id: str, status: str, actor: str) -> License:
    lic = get_license(session, license_id)
    if lic.status == "revoked" and status != "revoked":
        raise conflict("A revoked license cannot be changed back; issue a new one.")
    if lic.status != status:
        now = utcnow()
        lic.status = status
        if status == "active":
            lic.cancelled_at = None  # resuming a cancelled subscription renews it
        lic.updated_at = now
        action = {"active": "resume", "suspended": "suspend", "revoked": "revoke"}[status]
        if status == "revoked":
            ledger.record(session, ledger.LICENSE_REVOKE, lic.id, at=now)
        audit(session, actor, f"license.{action}", at=now, product_id=lic.product_id,
              license_id=lic.id)
        session.commit()
    return lic


def suspend_license(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """Suspend: validations answer ``license_suspended`` until resumed. Commits.

    Raises:
        ServiceError: 404 ``not_found``, 409 ``conflict`` (revoked).
    """
    return _set_status(session, license_id, "suspended", actor)


def resume_license(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """Resume a suspended license. Commits.

    Raises:
        ServiceError: 404 ``not_found``, 409 ``conflict`` (revoked).
    """
    return _set_status(session, license_id, "active", actor)


def revoke_license(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """Revoke for good: validations answer ``license_revoked``. Commits.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    return _set_status(session, license_id, "revoked", actor)


def set_license_password(
    session: Session, license_id: str, password: str | None, *, actor: str = "admin",
    keep_portal_session: str | None = None,
) -> License:
    """Set (or with None remove) the activation password; commits.

    Setting a password also lifts ``password_reset_required`` after an erasure.
    The license portal's sessions opened with the old password end (all but
    ``keep_portal_session``, the id of the portal session that changed it).

    Raises:
        ServiceError: 404 ``not_found``, 400 ``invalid_request`` (None while
        the product requires a password, or a bad length).
    """
    lic = get_license(session, license_id)
    if password is None:
        if lic.product.password_required:
            raise invalid("This product requires an activation password.")
        lic.password_hash = None
    else:
        _check_password(password)
        lic.password_hash = hash_password(password)
    lic.password_erased = False
    now = utcnow()
    lic.updated_at = now
    end_password_sessions(session, lic.id, keep=keep_portal_session)
    audit(session, actor, "license.password", at=now, product_id=lic.product_id,
          license_id=lic.id, detail={"set": password is not None})
    session.commit()
    return lic


def buyer_on_file(session: Session, lic: License) -> EndUser | None:
    """The license's buyer when one is recorded and not erased (the key mail goes there)."""
    if lic.buyer_id is None:
        return None
    buyer = session.get(EndUser, lic.buyer_id)
    if buyer is None or buyer.erased_at is not None:
        return None
    return buyer


def rekey_license(session: Session, ctx: Context, license_id: str, *,
                  email: str | None = None, actor: str = "admin") -> tuple[License, str]:
    """Give a license a new key and commit; returns ``(license, new_key)``.

    For a buyer whose key was lost (a sale without an address, or a key mail
    that failed for good): the old key no longer activates (its hash is
    replaced); activations made with it keep working (they are validated by
    their own id and secret, not by the key). Seats, terms and everything
    else stay as they are. Audited as ``license.rekey`` (no key in the log).

    Args:
        license_id: the license.
        email: the buyer's address: recorded as the license's buyer (as
            :func:`issue_license` ``buyer_email=`` does) and the new key is
            mailed there. Without it, the key is mailed to the buyer on file,
            if any; with neither, nothing is mailed (hand the key over yourself).
        actor: who asked (the audit log's actor).

    Raises:
        ServiceError: 404 ``not_found`` (license), 400 ``invalid_request`` (the
        address is not one), 409 ``conflict`` (a revoked license, or a trial,
        which has no key).
    """
    lic = get_license(session, license_id, lock=True)
    if lic.status == "revoked":
        raise conflict("A revoked license gets no new key.")
    if not lic.key_last4:
        raise conflict("A trial has no license key to replace.")
    now = precise_now()
    for _attempt in range(5):
        key = licensekeys.generate(None)
        lic.key_hash = ctx.vault.license_key_hash(licensekeys.normalize(key))
        lic.key_last4 = key[-4:]
        lic.updated_at = now
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError:  # pragma: no cover - a 2**80 key space collision
            continue
        break
    else:  # pragma: no cover
        session.rollback()
        raise conflict("Could not generate a unique license key; try again.")
    end_password_sessions(session, lic.id)
    address: str | None = None
    buyer: EndUser | None
    if email is not None:
        buyer = attach_buyer(session, ctx, lic, email)
        address = email.strip()
    else:
        buyer = buyer_on_file(session, lic)
        if buyer is not None:
            address, _ = decrypt_end_user(ctx, buyer)
    # A key mail still queued holds the old key, which no longer activates.
    outbox.cancel_pending(session, license_id=lic.id, topic="license_key")
    if buyer is not None and address:
        queue_key_delivery(session, ctx, lic, key, buyer=buyer, email=address)
    # The old key may have leaked: a restore of an older backup must not bring it back.
    ledger.record(session, ledger.LICENSE_REKEY, lic.id, at=now,
                  detail={"key_hash": lic.key_hash, "key_last4": lic.key_last4})
    audit(session, actor, "license.rekey", at=now, product_id=lic.product_id,
          license_id=lic.id, end_user_id=buyer.id if buyer is not None and address else None,
          detail={"key_mailed": bool(buyer is not None and address)})
    session.commit()
    return lic, key


#: A key hint as typed: four key characters, alone or after "-" / "…-".
_HINT = re.compile(r"^(?:\u2026|\.\.\.)?-?([A-Za-z0-9]{4})$")
_LICENSE_ID = re.compile(r"^lic_[A-Za-z0-9_-]{1,36}$")


@dataclass(frozen=True)
class LicenseSearch:
    """What :func:`search_licenses` found: the query (ordered, not yet run) or one license.

    Attributes:
        query: licenses matching, newest first (paginate it).
        exact: the license a full key named (the panel can go straight to it), else None.
        matched: what ``q`` was read as: ``key``, ``hint``, ``id``, ``email``,
            ``ref`` or ``""`` (no ``q``).
    """

    query: Select[License]
    exact: License | None
    matched: str


def _like_prefix(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def search_licenses(session: Session, ctx: Context, *, q: str | None = None,
                    product_id: str | None = None, status: str | None = None,
                    kind: str | None = None) -> LicenseSearch:
    """Find licenses by what a customer or a colleague gives support, plus filters.

    ``q`` is read as, in order: a full license key (normalised, then the
    keyed-hash look-up: the key itself is never stored); a license id
    (``lic_...``); an email address (the buyer, or an activation's end user,
    through the keyed email index: nothing is decrypted to search); a key
    hint (the last four characters, with or without ``…-``) -- which also
    matches references starting with those characters; otherwise a customer
    or order reference (case-insensitive prefix).

    Args:
        q: the search text (blank: no text filter); at most 200 characters used.
        product_id, status, kind: filters (None: any).

    Returns:
        :class:`LicenseSearch`; a full key that matches no license gives an empty query.
    """
    query = select(License).order_by(License.created_at.desc(), License.id)
    if product_id:
        query = query.where(License.product_id == product_id)
    if status:
        query = query.where(License.status == status)
    if kind:
        query = query.where(License.kind == kind)
    text = (q or "").strip()[:200]
    if not text:
        return LicenseSearch(query=query, exact=None, matched="")
    if looks_like_full_key(text):
        lic = find_license_by_key(session, ctx, text)
        return LicenseSearch(query=query.where(License.id == lic.id) if lic is not None
                             else query.where(false()), exact=lic, matched="key")
    if _LICENSE_ID.match(text):
        return LicenseSearch(query=query.where(License.id == text), exact=None, matched="id")
    if "@" in text:
        index = ctx.vault.email_index(text)
        users = select(EndUser.id).where(EndUser.email_index == index)
        through = select(Activation.license_id).where(Activation.end_user_id.in_(users))
        return LicenseSearch(query=query.where(or_(License.buyer_id.in_(users),
                                                   License.id.in_(through))),
                             exact=None, matched="email")
    prefix = _like_prefix(text)
    refs = or_(func.lower(License.customer_ref).like(prefix, escape="\\"),
               func.lower(License.order_ref).like(prefix, escape="\\"))
    hint = _HINT.match(text)
    if hint:
        return LicenseSearch(query=query.where(or_(License.key_last4 == hint.group(1).upper(),
                                                   refs)),
                             exact=None, matched="hint")
    return LicenseSearch(query=query.where(refs), exact=None, matched="ref")
