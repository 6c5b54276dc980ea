"""Token policy: what goes into a license token and a receipt.

- ``opportunistic``: ``refresh_by`` = now + the product's ``refresh_interval``
  and ``exp`` = ``refresh_by`` + ``offline_grace_period``: the app refreshes
  when it can and works offline through the grace period;
- ``mandatory``: the server must be reached within ``refresh_interval``:
  ``exp`` = now + ``refresh_interval``, and the ``offline_grace_period`` is the
  warning period before it, so ``refresh_by`` = ``exp`` - that period (the app
  warns from then on, with ``License.offline_grace_ends_at`` set);
- ``offline``: no ``refresh_by``; ``exp`` is the license's expiry, or none;
- every time is capped at the license's own expiry;
- mode ``limited`` with the product's ``limited_features`` once the license or
  the activation was erased, else ``full`` with the license's features;
- ``email`` / ``registration`` only while the end user's data is held.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from software_dna.server.crypto import DecryptionError
from software_dna.server.models import Activation, EndUser
from software_dna.server.service._common import Context
from software_dna.server.service.keys import active_signing_key

if TYPE_CHECKING:
    from software_dna.wire.paseto import SecretKey

__all__ = [
    "TokenFacts",
    "decrypt_end_user",
    "decrypt_personal_data",
    "issue_for",
    "receipt_for",
    "sign_token",
    "token_times",
]


def token_times(
    *,
    protection: str,
    refresh_interval: int,
    offline_grace_period: int,
    license_expires_at: datetime | None,
    now: datetime,
) -> tuple[datetime | None, datetime | None]:
    """``(refresh_by, exp)`` of a token issued at ``now`` (see the module docstring)."""
    if protection == "offline":
        return None, license_expires_at
    if protection == "mandatory":
        expires = now + timedelta(seconds=refresh_interval)
        refresh_by = expires - timedelta(seconds=min(offline_grace_period, refresh_interval))
    else:
        refresh_by = now + timedelta(seconds=refresh_interval)
        expires = refresh_by + timedelta(seconds=offline_grace_period)
    if license_expires_at is not None:
        expires = min(expires, license_expires_at)
        refresh_by = min(refresh_by, license_expires_at)
    return refresh_by, expires


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


@dataclass(frozen=True)
class TokenFacts:
    """What a license token says about an activation, its license and its product.

    Built from ORM objects by :func:`issue_for` and from one Core row by the
    validation hot path (service/hotpath.py), so that both sign the same claims.
    """

    license_id: str
    activation_id: str
    product_id: str
    fingerprint_id: str
    fingerprint: Mapping[str, Any]
    tolerance: int
    #: The license or the activation was erased: mode ``limited``.
    limited: bool
    #: The license's features (the product's ``limited_features`` when limited).
    features: list[str]
    #: The product's protection, or ``offline`` for an air-gapped activation.
    protection: str
    refresh_interval: int
    offline_grace_period: int
    license_expires_at: datetime | None
    kind: str
    subscription: bool
    seat_mode: str

    @classmethod
    def derive(cls, *, license_id: str, activation_id: str, product_id: str,
               fingerprint_id: str, fingerprint: Mapping[str, Any], tolerance: int,
               license_erased: bool, activation_erased: bool, features: list[str],
               limited_features: list[str], product_protection: str,
               activation_offline: bool, refresh_interval: int, offline_grace_period: int,
               license_expires_at: datetime | None, kind: str, subscription: bool,
               seat_mode: str) -> TokenFacts:
        """The facts from the stored columns: the rules for limited mode and protection.

        Limited mode when the license or the activation was erased (then the
        product's ``limited_features``); protection ``offline`` for an
        air-gapped activation, which never reaches the server again.
        """
        limited = bool(license_erased or activation_erased)
        return cls(
            license_id=license_id, activation_id=activation_id, product_id=product_id,
            fingerprint_id=fingerprint_id, fingerprint=fingerprint, tolerance=tolerance,
            limited=limited, features=limited_features if limited else features,
            protection="offline" if activation_offline else product_protection,
            refresh_interval=refresh_interval, offline_grace_period=offline_grace_period,
            license_expires_at=license_expires_at, kind=kind, subscription=bool(subscription),
            seat_mode=seat_mode,
        )

    def times(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """``(refresh_by, exp)`` of a token issued at ``now`` (leases not applied)."""
        return token_times(protection=self.protection, refresh_interval=self.refresh_interval,
                           offline_grace_period=self.offline_grace_period,
                           license_expires_at=self.license_expires_at, now=now)


def sign_token(ctx: Context, key: SecretKey, facts: TokenFacts, *, nonce: str, now: datetime,
               refresh_by: datetime | None, expires: datetime | None,
               email: str | None = None, registration: dict[str, str] | None = None,
               lease_end: datetime | None = None) -> str:
    """The signed token for ``facts`` (times from :meth:`TokenFacts.times`, leases applied)."""
    from software_dna.wire.claims import Kind, Mode, Protection, SeatMode, issue_token

    return issue_token(
        key,
        issuer=ctx.settings.issuer,
        license_id=facts.license_id,
        activation_id=facts.activation_id,
        product=facts.product_id,
        fingerprint_id=facts.fingerprint_id,
        fingerprint={str(k): str(v) for k, v in facts.fingerprint.items()},
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
    )


def issue_for(session: Session, ctx: Context, activation: Activation, *, nonce: str,
              now: datetime) -> str:
    """A fresh license token for ``activation`` answering ``nonce``.

    Raises:
        ServiceError: 503 ``no_signing_key``.
    """
    lic = activation.license
    product = lic.product
    key = active_signing_key(session, ctx, product.id)
    email: str | None = None
    registration: dict[str, str] | None = None
    if activation.end_user_id is not None and not activation.erased:
        end_user = session.get(EndUser, activation.end_user_id)
        if end_user is not None and end_user.erased_at is None:
            email, registration = decrypt_end_user(ctx, end_user)
    facts = TokenFacts.derive(
        license_id=lic.id, activation_id=activation.id, product_id=product.id,
        fingerprint_id=activation.fingerprint_id, fingerprint=activation.fingerprint,
        tolerance=product.fingerprint_tolerance, license_erased=lic.erased,
        activation_erased=activation.erased, features=lic.features,
        limited_features=product.limited_features, product_protection=product.protection,
        activation_offline=activation.offline, refresh_interval=product.refresh_interval,
        offline_grace_period=product.offline_grace_period, license_expires_at=lic.expires_at,
        kind=lic.kind, subscription=lic.subscription, seat_mode=lic.seat_mode,
    )
    refresh_by, expires = facts.times(now)
    lease_end: datetime | None = None
    if lic.seat_mode == "floating":  # the token never outlives the lease (service/leases.py)
        from software_dna.server.service.leases import lease_terms

        lease_end, refresh_by, expires = lease_terms(session, activation, now=now,
                                                     refresh_by=refresh_by, expires=expires)
    return sign_token(ctx, key, facts, nonce=nonce, now=now, refresh_by=refresh_by,
                      expires=expires, email=email, registration=registration,
                      lease_end=lease_end)


def receipt_for(
    session: Session, ctx: Context, *, product_id: str, activation_id: str, result: str,
    nonce: str, now: datetime,
) -> str | None:
    """A signed receipt, or None when the product has no active key (refusals still go out)."""
    from software_dna.server.service._common import ServiceError
    from software_dna.wire.claims import sign_receipt

    try:
        key = active_signing_key(session, ctx, product_id)
    except ServiceError:
        return None
    return sign_receipt(key, product=product_id, activation_id=activation_id, result=result,
                        nonce=nonce, server_time=now)
