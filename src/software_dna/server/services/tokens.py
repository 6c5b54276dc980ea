"""Signing license tokens and receipts for activations.

What a token says is :class:`~software_dna.server.domain.tokens.TokenFacts`;
this module reads the rows behind it (the signing key, the end user's
personal data while it is held) and signs.

Which key signs (:func:`signing_key_for`): the SDK sends the ``k4.pid`` ids
of the keys its app trusts (``trusted_keys``). The server signs with the
product's active key when the app trusts it, else with the newest of the
product's other usable (``trusted``, never ``retired``) keys the app
trusts, else refuses with 409 ``untrusted_signing_key`` naming the active
key -- before anything is written, so an app built with another product's
public key (or trusting only retired keys) takes no seat and burns no
trial. The choice is among keys the server holds as usable: the list sent
can only narrow it, never bring back a retired key. A request without the
list (older SDKs) is signed with the active key, as before.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.crypto import DecryptionError
from software_dna.server.domain.refusals import Refusal
from software_dna.server.domain.seats import FLOATING
from software_dna.server.domain.tokens import TokenFacts
from software_dna.server.models import Activation, EndUser, SigningKey
from software_dna.server.services.bindings import clamp_tolerance, current
from software_dna.server.services.common import Context
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.keys import active_signing_key
from software_dna.server.services.leases import lease_terms
from software_dna.wire.claims import (
    Kind,
    Mode,
    Protection,
    SeatMode,
    issue_token,
    secret_digest,
    sign_receipt,
)
from software_dna.wire.codes import Code
from software_dna.wire.identity import LEGACY_ALGORITHM, to_json
from software_dna.wire.paseto import SecretKey

__all__ = [
    "decrypt_end_user",
    "decrypt_personal_data",
    "issue_for",
    "receipt_for",
    "refusal_error",
    "sign_token",
    "signing_key_for",
    "untrusted_key_error",
]


def untrusted_key_error(product_id: str, active_kid: str | None) -> ServiceError:
    """409 ``untrusted_signing_key``: the app trusts none of the product's usable keys."""
    current = (f"The product's current signing key is {active_kid}: ship its public key "
               "(software-dna keys export) in an update of the app."
               if active_kid is not None else "The vendor must generate a signing key.")
    return ServiceError(
        Code.UNTRUSTED_SIGNING_KEY,
        f"This app does not trust any signing key of the product {product_id!r}, so no "
        f"license it could verify can be issued. {current}",
        details={"kid": active_kid} if active_kid is not None else None)


def signing_key_for(session: Session, ctx: Context, product_id: str,
                    trusted: Collection[str] | None) -> SecretKey:
    """The key that signs for an app trusting ``trusted`` (``k4.pid`` ids; None: any).

    The active key when the app trusts it (or says nothing); else the newest
    ``trusted``-status key it trusts. Retired keys never sign.

    Raises:
        ServiceError: 409 ``untrusted_signing_key`` (none of the usable keys is
        trusted by the app); 503 ``no_signing_key`` (no active key, list absent).
    """
    if trusted is None:
        return active_signing_key(session, ctx, product_id)
    rows = session.execute(
        select(SigningKey.kid, SigningKey.status).where(
            SigningKey.product_id == product_id, SigningKey.status.in_(("active", "trusted")))
        .order_by(SigningKey.created_at.desc(), SigningKey.kid)
    ).all()
    active = next((kid for kid, status in rows if status == "active"), None)
    wanted = set(trusted)
    if active is not None and active in wanted:
        return active_signing_key(session, ctx, product_id)
    kid = next((kid for kid, _ in rows if kid in wanted), None)
    if kid is None:
        if active is None and not rows:
            return active_signing_key(session, ctx, product_id)  # 503 no_signing_key
        raise untrusted_key_error(product_id, active)
    cached = ctx.vault.cached_signing_key(kid)
    if cached is not None:
        return cached
    sealed = session.scalars(
        select(SigningKey.secret_ciphertext).where(SigningKey.kid == kid)).one()
    return ctx.vault.signing_key(kid, sealed)


def decrypt_end_user(ctx: Context, end_user: EndUser) -> tuple[str | None, dict[str, str] | None]:
    """The end user's ``(email, registration)`` in clear (None where not held)."""
    return decrypt_personal_data(ctx, end_user.id, end_user.email_ciphertext,
                                 end_user.registration_ciphertext)


def decrypt_personal_data(
    ctx: Context, end_user_id: str, email_ciphertext: bytes | None,
    registration_ciphertext: bytes | None,
) -> tuple[str | None, dict[str, str] | None]:
    """:func:`decrypt_end_user` from the end user's id and ciphertexts (a Core row)."""
    email: str | None = None
    registration: dict[str, str] | None = None
    try:
        if email_ciphertext is not None:
            email = ctx.vault.decrypt_field(
                email_ciphertext, aad=f"end_user:{end_user_id}:email"
            ).decode("utf-8")
        if registration_ciphertext is not None:
            loaded: Any = json.loads(
                ctx.vault.decrypt_field(
                    registration_ciphertext, aad=f"end_user:{end_user_id}:registration"
                )
            )
            registration = {str(k): str(v) for k, v in dict(loaded).items()}
    except (DecryptionError, ValueError, TypeError):
        # Wrong master key or damaged row: never let it break licensing.
        return None, None
    return email, registration


def sign_token(ctx: Context, key: SecretKey, facts: TokenFacts, *, nonce: str, now: datetime,
               refresh_by: datetime | None, expires: datetime | None,
               email: str | None = None, registration: dict[str, str] | None = None,
               lease_end: datetime | None = None, secret: str | None = None) -> str:
    """The signed token for ``facts`` (times from :meth:`TokenFacts.times`, leases applied).

    ``secret``: the activation secret the answer hands out (claim ``secret_digest``).
    """
    return issue_token(
        key,
        issuer=ctx.settings.issuer,
        license_id=facts.license_id,
        activation_id=facts.activation_id,
        product=facts.product_id,
        fingerprint_id=facts.fingerprint_id,
        fingerprint=to_json(facts.fingerprint),
        fingerprint_algorithm=facts.fingerprint_algorithm,
        tolerance=facts.tolerance,
        mode=Mode.LIMITED if facts.limited else Mode.FULL,
        features=facts.features,
        protection=Protection(facts.protection),
        issued_at=now,
        refresh_by=refresh_by,
        expires_at=expires,
        license_expires_at=facts.license_expires_at,
        nonce=nonce,
        email=email,
        registration=registration,
        kind=Kind(facts.kind),
        subscription=facts.subscription,
        seat_mode=SeatMode(facts.seat_mode),
        lease_expires_at=lease_end,
        secret_digest=None if secret is None else secret_digest(secret),
    )


def issue_for(session: Session, ctx: Context, activation: Activation, *, nonce: str,
              now: datetime, secret: str | None = None,
              trusted: Collection[str] | None = None, key: SecretKey | None = None) -> str:
    """A fresh license token for ``activation`` answering ``nonce``.

    ``secret``: the activation secret the answer hands out, if it hands one
    out (its digest is signed in the token: the SDK checks the secret against it).
    ``key``: the signing key chosen beforehand; else :func:`signing_key_for`
    ``trusted`` (the ids of the keys the app trusts, None: any).

    Raises:
        ServiceError: 503 ``no_signing_key``; 409 ``untrusted_signing_key``.
    """
    lic = activation.license
    product = lic.product
    if key is None:
        key = signing_key_for(session, ctx, product.id, trusted)
    email: str | None = None
    registration: dict[str, str] | None = None
    if activation.end_user_id is not None and not activation.erased:
        end_user = session.get(EndUser, activation.end_user_id)
        if end_user is not None and end_user.erased_at is None:
            email, registration = decrypt_end_user(ctx, end_user)
    bound = current(session, ctx, activation)
    facts = TokenFacts.derive(
        license_id=lic.id, activation_id=activation.id, product_id=product.id,
        fingerprint_id=activation.fingerprint_id,
        fingerprint={} if bound is None else bound.components,
        fingerprint_algorithm=LEGACY_ALGORITHM if bound is None else bound.algorithm,
        tolerance=clamp_tolerance(product.fingerprint_tolerance), license_erased=lic.erased,
        activation_erased=activation.erased, features=lic.features,
        limited_features=product.limited_features, product_protection=product.protection,
        activation_offline=activation.offline, refresh_interval=product.refresh_interval,
        offline_grace_period=product.offline_grace_period, license_expires_at=lic.expires_at,
        kind=lic.kind, subscription=lic.subscription, seat_mode=lic.seat_mode,
        air_gapped_token_days=(None if product.air_gapped_perpetual
                               else product.air_gapped_token_days),
    )
    refresh_by, expires = facts.times(now)
    lease_end: datetime | None = None
    if lic.seat_mode == FLOATING:  # the token never outlives the lease
        lease_end, refresh_by, expires = lease_terms(session, activation, now=now,
                                                     refresh_by=refresh_by, expires=expires)
    return sign_token(ctx, key, facts, nonce=nonce, now=now, refresh_by=refresh_by,
                      expires=expires, email=email, registration=registration,
                      lease_end=lease_end, secret=secret)


def receipt_for(
    session: Session, ctx: Context, *, product_id: str, activation_id: str, result: str,
    nonce: str, now: datetime, trusted: Collection[str] | None = None,
) -> str | None:
    """A signed receipt, or None when no key can sign it for the app (refusals still go out).

    ``trusted``: the ids of the keys the app trusts (None: any), as :func:`signing_key_for`.
    """
    try:
        key = signing_key_for(session, ctx, product_id, trusted)
    except ServiceError:
        return None
    return sign_receipt(key, product=product_id, activation_id=activation_id, result=result,
                        nonce=nonce, server_time=now)


def refusal_error(session: Session, ctx: Context, activation: Activation, refusal: Refusal, *,
                  nonce: str, now: datetime,
                  trusted: Collection[str] | None = None) -> ServiceError:
    """The :class:`ServiceError` for ``refusal`` of ``activation``, with a signed receipt.

    The receipt's ``result`` is the refusal's code, so the SDK can store a
    refusal it can prove came from the server. ``trusted``: as :func:`receipt_for`.
    """
    receipt = receipt_for(session, ctx, product_id=activation.license.product_id,
                          activation_id=activation.id, result=refusal.code.value, nonce=nonce,
                          now=now, trusted=trusted)
    return ServiceError(refusal.code, refusal.message, receipt=receipt)
