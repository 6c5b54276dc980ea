"""Activations: the end-user flows (activate, validate, deactivate, settings,
erasure request) and the vendor's list / remove.

Activation secrets are derived, not stored: ``secret = "sas_" +
b64url(HMAC(master-derived key, activation id))``; the database keeps only
its SHA-256, compared in constant time.  An idempotent retry can therefore
hand back the same secret.

Seats: the license row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL;
on SQLite every transaction is ``BEGIN IMMEDIATE``) before the seats in use
are counted, so concurrent activations never exceed the seats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.crypto import DecryptionError, verify_password
from software_dna.server.models import Activation, EndUser, License, LicenseSettings
from software_dna.server.service import leases, ratelimit, seats
from software_dna.server.service._common import (
    Context,
    ServiceError,
    audit,
    conflict,
    invalid,
    new_id,
    not_found,
    precise_now,
    utcnow,
)
from software_dna.server.service.endusers import attach_end_user, erase
from software_dna.server.service.licenses import find_license_by_key
from software_dna.server.service.tokens import issue_for, receipt_for

__all__ = [
    "MAX_SETTINGS_BYTES",
    "ActivationRequest",
    "Activated",
    "Erased",
    "FingerprintData",
    "Receipted",
    "SettingsDoc",
    "Validated",
    "activate",
    "authenticate",
    "authentication_failed",
    "deactivate",
    "get_activation",
    "get_settings",
    "list_activations",
    "put_settings",
    "read_settings",
    "refuse_with_receipt",
    "remove_activation",
    "request_erasure",
    "validate",
]

MAX_SETTINGS_BYTES = 32 * 1024
# A well-formed hash that no secret has: compared against when the activation is unknown,
# so that unknown and wrong answers take the same time.
_DUMMY_HASH = "0" * 64


@dataclass(frozen=True)
class FingerprintData:
    """A machine fingerprint as sent by the SDK (component values are keyed hashes)."""

    id: str
    components: Mapping[str, str]
    algorithm: int = 1


@dataclass(frozen=True)
class ActivationRequest:
    """The body of ``POST /v1/activations``, already validated for shape."""

    product: str
    license_key: str
    fingerprint: FingerprintData
    nonce: str
    idempotency_key: str
    password: str | None = None
    email: str | None = None
    registration: Mapping[str, str] | None = None
    consent: bool = False
    client: Mapping[str, str | None] = field(default_factory=dict)
    #: An air-gapped activation request (service/offline.py): "offline" tokens.
    offline: bool = False
    #: ``(activation id, secret)`` of this machine's trial / evaluation / test
    #: activation that this one replaces (service/trials.py: :func:`replace_activation`).
    replaces: tuple[str, str] | None = None
    #: Random id of this OS account's installation (user seats; service/seats.py).
    installation_id: str | None = None


@dataclass(frozen=True)
class Activated:
    """Result of :func:`activate`; ``created`` is False for a replay (HTTP 200 vs 201)."""

    activation_id: str
    activation_secret: str
    token: str
    nonce: str
    server_time: datetime
    created: bool


@dataclass(frozen=True)
class Validated:
    """Result of :func:`validate`."""

    token: str
    nonce: str
    server_time: datetime
    rebound: bool


@dataclass(frozen=True)
class Receipted:
    """Result of :func:`deactivate`."""

    receipt: str | None
    nonce: str
    server_time: datetime


@dataclass(frozen=True)
class Erased:
    """Result of :func:`request_erasure`: a fresh limited token and a receipt."""

    token: str
    receipt: str | None
    nonce: str
    server_time: datetime


@dataclass(frozen=True)
class SettingsDoc:
    """A license's settings document."""

    settings: dict[str, Any]
    updated_at: datetime | None
    server_time: datetime


# --------------------------------------------------------------------------- helpers


def _unknown_key() -> ServiceError:
    return ServiceError(404, "unknown_license_key",
                        "This license key does not exist for this product. Check the key.")


def _unauthorized() -> ServiceError:
    return ServiceError(401, "unauthorized", "Missing or wrong activation secret.")


def _status_refusal(lic: License, now: datetime) -> tuple[int, str, str] | None:
    from software_dna.server.service.renewals import subscription_refusal

    cancelled = subscription_refusal(lic)
    if cancelled is not None:
        return cancelled
    if lic.status == "revoked":
        return 403, "license_revoked", "This license was revoked by the vendor."
    if lic.status == "suspended":
        return 403, "license_suspended", (
            "This license is suspended by the vendor. Contact the vendor to resume it."
        )
    if lic.expires_at is not None and now >= lic.expires_at:
        from software_dna.server.service.renewals import expired_message

        return 403, "license_expired", expired_message(lic.kind)
    return None


def _refuse(session: Session, ctx: Context, activation: Activation,
            refusal: tuple[int, str, str], *, nonce: str, now: datetime) -> ServiceError:
    status, code, message = refusal
    receipt = receipt_for(session, ctx, product_id=activation.license.product_id,
                          activation_id=activation.id, result=code, nonce=nonce, now=now)
    return ServiceError(status, code, message, receipt=receipt)


def refuse_with_receipt(session: Session, ctx: Context, activation: Activation,
                        refusal: tuple[int, str, str], *, nonce: str,
                        now: datetime) -> ServiceError:
    """The ServiceError for ``refusal`` ``(status, code, message)``, with a signed receipt."""
    return _refuse(session, ctx, activation, refusal, nonce=nonce, now=now)


def _removed(session: Session, ctx: Context, activation: Activation, nonce: str,
             now: datetime) -> ServiceError:
    if activation.deactivated_by == "rollover":  # service/seats.py: moved by roll-over
        return _refuse(session, ctx, activation, (
            410, "activation_moved",
            "This license was moved to another computer (roll-over). Activate it again "
            "with your license key to use it here.",
        ), nonce=nonce, now=now)
    return _refuse(session, ctx, activation, (
        410, "activation_removed",
        "This activation was removed. Activate again with your license key.",
    ), nonce=nonce, now=now)


def authenticate(session: Session, ctx: Context, activation_id: str, secret: str | None,
                 *, lock: bool = False) -> Activation:
    """The activation ``activation_id`` if ``secret`` is its secret (constant-time check).

    ``lock``: the row is then locked (``FOR UPDATE``) for the rest of the
    transaction -- only after the secret checked out, so a request with a
    wrong secret never holds a lock on someone's activation.

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown activation, missing or wrong
        secret: the same answer for all three).
    """
    query = select(Activation).where(Activation.id == activation_id)
    activation = session.scalars(query).one_or_none()
    if authentication_failed(ctx, activation.secret_hash if activation is not None else None,
                             secret):
        raise _unauthorized()
    assert activation is not None
    if lock:
        locked = session.scalars(
            query.with_for_update(of=Activation).execution_options(populate_existing=True)
        ).one_or_none()
        if locked is None:  # removed meanwhile
            raise _unauthorized()
        activation = locked
    return activation


def authentication_failed(ctx: Context, stored_hash: str | None, secret: str | None) -> bool:
    """True unless ``secret`` matches ``stored_hash`` (None: no such activation).

    The comparison is constant-time and is made whether or not the activation
    exists, so an unknown activation, a missing secret and a wrong one take
    the same time and get the same answer.
    """
    expected = stored_hash if stored_hash is not None else _DUMMY_HASH
    given = ctx.vault.secret_hash(secret or "")
    return not ctx.vault.same(given, expected) or stored_hash is None or not secret


def _same_components(a: Mapping[str, Any], b: Mapping[str, str]) -> bool:
    return dict(a) == dict(b)


# --------------------------------------------------------------------------- activate


def activate(session: Session, ctx: Context, request: ActivationRequest, *,
             client_address: str | None = None) -> Activated:
    """Activate a license on a machine; commits.

    Order of checks: consent, rate limit per client address, the key (and its
    product), rate limit per license, license status, password, idempotent
    replay, seats.  A retry with the same ``idempotency_key`` (same license,
    same fingerprint id) returns the same activation and secret with a fresh
    token.  An activation of the same license on the same machine (same
    fingerprint id) that still holds a seat is reused the same way, so a
    reinstall does not take a second seat.

    Raises:
        ServiceError: 400 ``consent_required``; 429 ``rate_limited``; 404
        ``unknown_license_key``; 403 ``license_revoked`` / ``license_suspended`` /
        ``license_expired`` / ``wrong_password`` / ``password_reset_required``;
        409 ``no_seats_left`` / ``conflict`` (idempotency key reused for another
        machine); 410 ``activation_removed`` (replay of a deactivated one); 503
        ``no_signing_key``.
    """
    settings = ctx.settings
    if (request.email is not None or request.registration is not None) and not request.consent:
        raise ServiceError(400, "consent_required",
                           "Email or registration details need the end user's consent.")
    if client_address:
        ratelimit.hit(session, "addr:" + ctx.vault.address_key(client_address),
                      limit=settings.rate_limit_address_attempts,
                      window=settings.rate_limit_window)
    found = find_license_by_key(session, ctx, request.license_key)
    if found is None or found.product_id != request.product:
        session.rollback()
        raise _unknown_key()
    license_id = found.id
    ratelimit.hit(session, "lic:" + license_id, limit=settings.rate_limit_attempts,
                  window=settings.rate_limit_window)
    now = utcnow()
    # Lock the license row: seat counting and idempotency below are race-free.
    lic = session.scalars(
        select(License).where(License.id == license_id)
        .with_for_update(of=License).execution_options(populate_existing=True)
    ).one()
    product = lic.product
    refusal = _status_refusal(lic, now)
    if refusal is not None:
        raise ServiceError(*refusal)
    if lic.password_hash is not None:
        if request.password is None or not verify_password(request.password, lic.password_hash):
            audit(session, "sdk", "activation.wrong_password", at=now, product_id=product.id,
                  license_id=lic.id)
            session.commit()
            raise ServiceError(403, "wrong_password", "The activation password is wrong.")
    elif lic.password_erased or product.password_required:
        raise ServiceError(
            403, "password_reset_required",
            "This license needs a new activation password from the vendor.",
        )
    if request.offline:  # air-gapped: only licenses that can do without the server
        from software_dna.server.service.offline import offline_refusal

        offline_refused = offline_refusal(lic)
        if offline_refused is not None:
            raise ServiceError(*offline_refused)

    activation = session.scalars(
        select(Activation).where(
            Activation.license_id == lic.id,
            Activation.idempotency_key == request.idempotency_key,
        )
    ).one_or_none()
    created = False
    if activation is not None:
        if activation.fingerprint_id != request.fingerprint.id:
            raise conflict("This idempotency key was used for another machine.")
        if activation.deactivated_at is not None:
            raise _removed(session, ctx, activation, request.nonce, now)
    else:  # this machine (user seats: this OS account) already holds a seat?
        activation = seats.find_reusable(session, lic, request.fingerprint.id,
                                         request.installation_id)
    address_hash = ctx.vault.address_key(client_address) if client_address else None
    if activation is None:
        # A free seat (roll-over / floating lease), then the lock-out: service/seats.py.
        seats.make_room(session, lic, address_hash=address_hash, now=now)
        activation_id = new_id("act")
        client = request.client
        activation = Activation(
            id=activation_id,
            license_id=lic.id,
            secret_hash=ctx.vault.secret_hash(ctx.vault.activation_secret(activation_id)),
            fingerprint_id=request.fingerprint.id,
            fingerprint=dict(request.fingerprint.components),
            idempotency_key=request.idempotency_key,
            end_user_id=None,
            erased=False,  # no personal data of this activation was erased (yet)
            sdk_version=client.get("sdk_version"),
            client_os=client.get("os"),
            client_python=client.get("python"),
            created_at=now,
            last_seen_at=precise_now(),
            deactivated_at=None,
            deactivated_by=None,
            installation_id=request.installation_id,
        )
        session.add(activation)
        created = True
    else:
        activation.last_seen_at = precise_now()  # roll-over moves the least recently seen
        if not _same_components(activation.fingerprint, request.fingerprint.components):
            activation.fingerprint = dict(request.fingerprint.components)
    activation.license = lic
    activation.offline = request.offline
    end_user = attach_end_user(session, ctx, activation, email=request.email,
                               registration=request.registration, now=now)
    session.flush()
    from software_dna.server.service import renewals, trials

    renewals.start_term(lic, now)  # "N days after the first activation" starts here
    if request.replaces is not None:  # trial to paid: release the trial, keep the settings
        trials.replace_activation(session, ctx, request.replaces, activation, now=now)
    # Lock-out ledger; a floating license checks a lease out (service/seats.py).
    seats.after_activation(session, lic, activation, created=created,
                           address_hash=address_hash, now=now)
    token = issue_for(session, ctx, activation, nonce=request.nonce, now=now)
    audit(session, "sdk", "activation.create" if created else "activation.replay", at=now,
          product_id=product.id, license_id=lic.id, activation_id=activation.id,
          end_user_id=end_user.id if end_user is not None else None,
          detail={"personal_data": end_user is not None, "offline": request.offline})
    session.commit()
    return Activated(
        activation_id=activation.id,
        activation_secret=ctx.vault.activation_secret(activation.id),
        token=token,
        nonce=request.nonce,
        server_time=now,
        created=created,
    )


# --------------------------------------------------------------------------- validate


def validate(session: Session, ctx: Context, activation_id: str, secret: str | None, *,
             fingerprint: FingerprintData, nonce: str, lease: str = "renew") -> Validated:
    """Check an activation and answer with a fresh token; commits.

    When the fingerprint drifted but still matches within the product's
    tolerance (:func:`software_dna.fingerprint.match`), the activation is
    re-bound to the new components and ``rebound`` is True.  For a floating
    license ``lease`` says what happens to the activation's lease
    (service/leases.py): ``"renew"`` a live one (the heartbeat), ``"take"``
    one (check-out) or ``"release"`` it (check-in).

    Raises:
        ServiceError: 401 ``unauthorized``; 410 ``activation_removed`` /
        ``activation_moved``; 403 ``license_revoked`` / ``license_suspended`` /
        ``license_expired`` (with a receipt) / ``wrong_machine``; 409
        ``no_seats_left`` (``lease="take"``, every floating seat leased); 503
        ``no_signing_key``.
    """
    from software_dna.fingerprint import match

    activation = authenticate(session, ctx, activation_id, secret)
    now = utcnow()
    if activation.deactivated_at is not None:
        raise _removed(session, ctx, activation, nonce, now)
    lic = activation.license
    refusal = _status_refusal(lic, now)
    if refusal is not None:
        raise _refuse(session, ctx, activation, refusal, nonce=nonce, now=now)
    rebound = False
    components = dict(fingerprint.components)
    if fingerprint.id != activation.fingerprint_id or not _same_components(
        activation.fingerprint, components
    ):
        stored = {str(k): str(v) for k, v in activation.fingerprint.items()}
        if not match(stored, components, lic.product.fingerprint_tolerance):
            raise ServiceError(403, "wrong_machine",
                               "This activation belongs to another computer.")
        activation.fingerprint_id = fingerprint.id
        activation.fingerprint = components
        rebound = True
        audit(session, "sdk", "activation.rebind", at=now, product_id=lic.product_id,
              license_id=lic.id, activation_id=activation.id)
    activation.last_seen_at = precise_now()  # roll-over moves the least recently seen
    if lic.seat_mode == leases.FLOATING:
        leases.on_validate(session, lic, activation, lease, now)
    token = issue_for(session, ctx, activation, nonce=nonce, now=now)
    session.commit()
    return Validated(token=token, nonce=nonce, server_time=now, rebound=rebound)


def deactivate(session: Session, ctx: Context, activation_id: str, secret: str | None,
               nonce: str) -> Receipted:
    """The end user frees the seat; commits. Answers with a ``deactivated`` receipt.

    Raises:
        ServiceError: 401 ``unauthorized``; 410 ``activation_removed`` (already gone).
    """
    activation = authenticate(session, ctx, activation_id, secret, lock=True)
    now = utcnow()
    if activation.deactivated_at is not None:
        raise _removed(session, ctx, activation, nonce, now)
    activation.deactivated_at = now
    activation.deactivated_by = "end_user"
    audit(session, "sdk", "activation.deactivate", at=now,
          product_id=activation.license.product_id, license_id=activation.license_id,
          activation_id=activation.id)
    receipt = receipt_for(session, ctx, product_id=activation.license.product_id,
                          activation_id=activation.id, result="deactivated", nonce=nonce,
                          now=now)
    session.commit()
    return Receipted(receipt=receipt, nonce=nonce, server_time=now)


# --------------------------------------------------------------------------- settings


def read_settings(session: Session, ctx: Context,
                  license_id: str) -> tuple[dict[str, Any], datetime | None]:
    """The settings document of a license and when it changed (``{}``, None when unset)."""
    row = session.get(LicenseSettings, license_id)
    if row is None:
        return {}, None
    try:
        document = json.loads(ctx.vault.decrypt_field(row.ciphertext, aad=f"settings:{license_id}"))
    except (DecryptionError, ValueError):
        return {}, row.updated_at
    return (document if isinstance(document, dict) else {}), row.updated_at


def _live(session: Session, ctx: Context, activation_id: str, secret: str | None) -> Activation:
    activation = authenticate(session, ctx, activation_id, secret)
    if activation.deactivated_at is not None:
        raise ServiceError(410, "activation_removed", "This activation was removed.")
    return activation


def get_settings(session: Session, ctx: Context, activation_id: str,
                 secret: str | None) -> SettingsDoc:
    """The settings document of the activation's license.

    Raises:
        ServiceError: 401 ``unauthorized``, 410 ``activation_removed``.
    """
    activation = _live(session, ctx, activation_id, secret)
    document, updated_at = read_settings(session, ctx, activation.license_id)
    session.commit()
    return SettingsDoc(settings=document, updated_at=updated_at, server_time=utcnow())


def put_settings(session: Session, ctx: Context, activation_id: str, secret: str | None,
                 document: Mapping[str, Any]) -> SettingsDoc:
    """Replace the settings document of the activation's license (stored encrypted); commits.

    Raises:
        ServiceError: 401 ``unauthorized``, 410 ``activation_removed``, 413
        ``too_large`` (over 32 KiB as compact JSON).
    """
    activation = _live(session, ctx, activation_id, secret)
    try:
        encoded = json.dumps(dict(document), separators=(",", ":"), ensure_ascii=False,
                             sort_keys=True, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        raise invalid("The settings must be a plain JSON object.") from None
    if len(encoded) > MAX_SETTINGS_BYTES:
        raise ServiceError(413, "too_large", "The settings document is over 32 KiB.")
    now = utcnow()
    ciphertext = ctx.vault.encrypt_field(encoded, aad=f"settings:{activation.license_id}")
    row = session.get(LicenseSettings, activation.license_id)
    if row is None:
        session.add(LicenseSettings(license_id=activation.license_id, ciphertext=ciphertext,
                                    updated_at=now))
    else:
        row.ciphertext = ciphertext
        row.updated_at = now
    session.commit()
    return SettingsDoc(settings=json.loads(encoded), updated_at=now, server_time=now)


# --------------------------------------------------------------------------- erasure


def request_erasure(session: Session, ctx: Context, activation_id: str, secret: str | None,
                    nonce: str) -> Erased:
    """The end user asks for erasure (same effect as the vendor's); commits.

    Erases the activation's end user (if any personal data was given) and the
    license's personal data, then answers with a fresh ``limited`` token and
    an ``erased`` receipt.

    Raises:
        ServiceError: 401 ``unauthorized``, 410 ``activation_removed``, 503
        ``no_signing_key``.
    """
    activation = _live(session, ctx, activation_id, secret)
    end_user = (session.get(EndUser, activation.end_user_id)
                if activation.end_user_id is not None else None)
    erase(session, ctx, end_user=end_user, license_ids={activation.license_id}, actor="sdk",
          activation_id=activation.id)
    session.refresh(activation)
    session.refresh(activation.license)
    now = utcnow()
    token = issue_for(session, ctx, activation, nonce=nonce, now=now)
    receipt = receipt_for(session, ctx, product_id=activation.license.product_id,
                          activation_id=activation.id, result="erased", nonce=nonce, now=now)
    session.commit()
    return Erased(token=token, receipt=receipt, nonce=nonce, server_time=now)


# --------------------------------------------------------------------------- vendor side


def get_activation(session: Session, activation_id: str) -> Activation:
    """The activation ``activation_id``; raises 404 ``not_found``."""
    activation = session.get(Activation, activation_id)
    if activation is None:
        raise not_found("activation")
    return activation


def list_activations(session: Session, license_id: str, *,
                     include_removed: bool = True) -> list[Activation]:
    """Activations of a license, oldest first.

    Raises:
        ServiceError: 404 ``not_found`` (no such license).
    """
    if session.get(License, license_id) is None:
        raise not_found("license")
    query = select(Activation).where(Activation.license_id == license_id)
    if not include_removed:
        query = query.where(Activation.deactivated_at.is_(None))
    return list(session.scalars(query.order_by(Activation.created_at, Activation.id)))


def remove_activation(session: Session, activation_id: str, *,
                      actor: str = "admin") -> Activation:
    """The vendor removes an activation: its seat is free, its next validation gets 410.

    Commits.  Removing a removed activation succeeds and changes nothing.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    activation = get_activation(session, activation_id)
    if activation.deactivated_at is None:
        now = utcnow()
        activation.deactivated_at = now
        activation.deactivated_by = "vendor"
        audit(session, actor, "activation.remove", at=now,
              product_id=activation.license.product_id, license_id=activation.license_id,
              activation_id=activation.id)
        session.commit()
    return activation
