"""License token and receipt claims: what the server signs and the SDK verifies.

Format (see docs/tokens.md):

- footer: ``{"kid":"k4.pid.…"}`` — the PASERK id of the signing key;
- implicit assertion: :func:`implicit_assertion` of the product id, so a token
  signed for one product never verifies for another;
- payload: a JSON object with the PASETO registered claims ``iss``, ``sub``
  (license id), ``aud`` (product), ``iat``, ``nbf``, ``exp``, ``jti`` and the
  license's own claims (``activation_id``, ``fingerprint_id``,
  ``fingerprint``, ``tolerance``, ``mode``, ``features``, ``protection``,
  ``license_expires_at``, ``refresh_by``, ``nonce``, and ``email`` /
  ``registration`` / ``secret_digest`` only when present).

:func:`issue_token` and :func:`sign_receipt` are the server's side;
:func:`verify_token_claims` and :func:`verify_receipt` check a token against
a set of trusted keys and a product and return its verified payload (the SDK
builds its :class:`~software_dna.license.License` from that). Failures raise
:class:`~software_dna.wire.errors.InvalidToken` or
:class:`~software_dna.wire.errors.WrongProduct`.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from software_dna.wire.errors import InvalidToken, WrongProduct
from software_dna.wire.paseto import (
    PublicKey,
    SecretKey,
    sign,
    untrusted_footer,
    untrusted_message,
    verify,
)
from software_dna.wire.strict_json import loads_object
from software_dna.wire.times import format_rfc3339

__all__ = [
    "DEACTIVATED",
    "ERASED",
    "Kind",
    "Mode",
    "Protection",
    "SeatMode",
    "implicit_assertion",
    "issue_token",
    "loads_strict",
    "secret_digest",
    "sign_receipt",
    "verify_receipt",
    "verify_token_claims",
]

def secret_digest(secret: str) -> str:
    """The ``secret_digest`` claim of a token handing out ``secret``.

    base64url (no padding) of SHA-256 of the secret's UTF-8 bytes: the SDK
    stores an activation secret from an answer only when the signed token of
    that answer carries its digest.
    """
    digest = hashlib.sha256(secret.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


#: Largest JSON size accepted in a payload or footer.
_MAX_JSON_BYTES = 32 * 1024


class Mode(str, enum.Enum):
    """The license's mode: ``full``, or ``limited`` after personal data was erased."""

    FULL = "full"
    LIMITED = "limited"


class Kind(str, enum.Enum):
    """What the license is (the token's ``kind`` claim; ``full`` when absent).

    - ``FULL``: a license the end user bought (perpetual, timed or a subscription);
    - ``TRIAL``: started by the app with :meth:`LicenseClient.start_trial`,
      once per machine;
    - ``EVALUATION``: an evaluation key from the vendor (1-60 days);
    - ``TEST``: a short-lived test code for the vendor's own testing.
    """

    FULL = "full"
    TRIAL = "trial"
    EVALUATION = "evaluation"
    TEST = "test"


class SeatMode(str, enum.Enum):
    """What one seat of the license is (the token's ``seat_mode``; ``machine`` when absent).

    - ``MACHINE``: a computer; ``USER``: a person (each activation its own
      seat, with its own personal data); ``FLOATING``: a concurrent lease,
      checked out with :meth:`LicenseClient.checkout` (see docs/seats.md).
    """

    MACHINE = "machine"
    USER = "user"
    FLOATING = "floating"


class Protection(str, enum.Enum):
    """How strictly the product requires the server to be reached.

    - ``OFFLINE``: never contacts the server after activation;
    - ``OPPORTUNISTIC``: refreshes when it can; the offline grace period
      covers the time the server cannot be reached;
    - ``MANDATORY``: must reach the server within the refresh interval; the
      (shorter) grace is a warning period before the app stops.
    """

    OFFLINE = "offline"
    OPPORTUNISTIC = "opportunistic"
    MANDATORY = "mandatory"


def loads_strict(data: bytes | str) -> dict[str, Any]:
    """Parse a JSON object strictly: duplicate keys, NaN/Infinity and non-objects refused.

    Raises:
        ValueError: on any of those, on invalid UTF-8, or over 32 KiB.
    """
    return loads_object(data, max_size=_MAX_JSON_BYTES)


def _dumps(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode()


def implicit_assertion(product: str) -> bytes:
    """The PASETO implicit assertion that binds a token to ``product``.

    The compact UTF-8 JSON ``{"product":"<product>"}``; it is signed but never
    sent (PASETO v4, "implicit assertions").
    """
    return _dumps({"product": product})


def _footer(kid: str) -> bytes:
    return _dumps({"kid": kid})


def issue_token(
    key: SecretKey,
    *,
    issuer: str,
    license_id: str,
    activation_id: str,
    product: str,
    fingerprint_id: str,
    fingerprint: Mapping[str, Any],
    tolerance: int,
    mode: Mode,
    features: Iterable[str],
    protection: Protection,
    issued_at: datetime,
    refresh_by: datetime | None,
    expires_at: datetime | None,
    license_expires_at: datetime | None,
    nonce: str,
    email: str | None = None,
    registration: Mapping[str, str] | None = None,
    kind: Kind = Kind.FULL,
    subscription: bool = False,
    seat_mode: SeatMode = SeatMode.MACHINE,
    lease_expires_at: datetime | None = None,
    fingerprint_algorithm: int = 2,
    secret_digest: str | None = None,
) -> str:
    """Sign a license token (server side).

    Args:
        key: the product's active signing key; its ``k4.pid`` goes in the footer.
        issuer: ``iss``, the server's name.
        license_id, activation_id, product: identifiers.
        fingerprint_id: the activation's opaque server id (``fp_...``), never
            derived from components.
        fingerprint: the bound component set in JSON form
            (``identity.to_json``: name -> hash, ``mac`` a list, ``null``
            kept; algorithm 1: name -> hash).
        tolerance: how many components may differ (the product's setting).
        mode, features, protection: what the license grants and how it is kept fresh.
        issued_at: ``iat`` and ``nbf`` (aware).
        refresh_by: when the client must refresh online (``None``: offline only).
        expires_at: ``exp``, this token's hard end (``None``: no end).
        license_expires_at: the license's own end (``None``: perpetual).
        nonce: the client nonce this token answers.
        email, registration: personal data, only when the end user gave it.
        kind: the license's :class:`Kind` (claim ``kind``, always written).
        subscription: claim ``subscription: true``, written only when True.
        seat_mode: claim ``seat_mode``, written unless ``machine``.
        lease_expires_at: a floating license's lease end (claim
            ``lease_expires_at``, written for floating licenses only; null
            when no lease is held).
        fingerprint_algorithm: the bound set's algorithm (claim
            ``fingerprint_algorithm``; absent in older tokens = 1).
        secret_digest: base64url(SHA-256(activation secret)) of the secret
            this answer hands out (claim ``secret_digest``, written when given).

    Returns:
        The ``v4.public.…`` token.

    Raises:
        ValueError: a naive datetime.
    """
    import secrets  # lazy: the server's side; a client never issues tokens

    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": license_id,
        "aud": product,
        "iat": format_rfc3339(issued_at),
        "nbf": format_rfc3339(issued_at),
        "jti": secrets.token_urlsafe(16),
        "activation_id": activation_id,
        "fingerprint_id": fingerprint_id,
        "fingerprint": dict(fingerprint),
        "fingerprint_algorithm": int(fingerprint_algorithm),
        "tolerance": tolerance,
        "mode": Mode(mode).value,
        "features": sorted(set(features)),
        "protection": Protection(protection).value,
        "license_expires_at": None if license_expires_at is None
        else format_rfc3339(license_expires_at),
        "refresh_by": None if refresh_by is None else format_rfc3339(refresh_by),
        "nonce": nonce,
        "kind": Kind(kind).value,
    }
    if subscription:
        claims["subscription"] = True
    if SeatMode(seat_mode) is not SeatMode.MACHINE:
        claims["seat_mode"] = SeatMode(seat_mode).value
    if SeatMode(seat_mode) is SeatMode.FLOATING:
        claims["lease_expires_at"] = (None if lease_expires_at is None
                                      else format_rfc3339(lease_expires_at))
    if expires_at is not None:
        claims["exp"] = format_rfc3339(expires_at)
    if email is not None:
        claims["email"] = email
    if registration is not None:
        claims["registration"] = dict(registration)
    if secret_digest is not None:
        claims["secret_digest"] = secret_digest
    return _sign_claims(key, product, claims)


def _sign_claims(key: SecretKey, product: str, claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` as a ``v4.public`` token for ``product`` with the kid footer."""
    return sign(key, _dumps(claims), footer=_footer(key.public_key.pid),
                implicit_assertion=implicit_assertion(product))


#: A receipt's ``result`` for an activation the server deactivated (online or
#: from an air-gapped receipt); a refusal's receipt carries the refusal's code.
DEACTIVATED = "deactivated"
#: A receipt's ``result`` for an activation whose personal data was erased.
ERASED = "erased"


def sign_receipt(
    key: SecretKey, *, product: str, activation_id: str, result: str, nonce: str,
    server_time: datetime,
) -> str:
    """Sign a receipt: the server's signed word on a result that is not a token.

    Payload ``{"purpose":"receipt","aud","activation_id","result","nonce",
    "server_time"}``; same footer and implicit assertion as license tokens.
    """
    return _sign_claims(key, product, {
        "purpose": "receipt",
        "aud": product,
        "activation_id": activation_id,
        "result": result,
        "nonce": nonce,
        "server_time": format_rfc3339(server_time),
    })


def _verified_claims(
    token: object, keys: Mapping[str, PublicKey], product: str
) -> dict[str, Any]:
    """Verify a token's kid and signature for ``product``; return its claims.

    Raises InvalidToken for any format, kid or signature failure, and
    WrongProduct when the token verifies only for another product.
    """
    if not isinstance(token, str):
        raise InvalidToken()
    try:
        footer = loads_strict(untrusted_footer(token))
        kid = footer.get("kid")
        if set(footer) != {"kid"} or not isinstance(kid, str):
            raise InvalidToken()
        key = keys.get(kid)
        if key is None:
            raise InvalidToken()
    except InvalidToken:
        raise
    except ValueError as exc:
        raise InvalidToken() from exc
    try:
        verified = verify(key, token, implicit_assertion=implicit_assertion(product))
    except InvalidToken:
        _raise_if_other_product(token, key, product)
        raise
    try:
        claims = loads_strict(verified.message)
    except ValueError as exc:
        raise InvalidToken() from exc
    if claims.get("aud") != product:
        raise WrongProduct(product)
    return claims


def _raise_if_other_product(token: str, key: PublicKey, product: str) -> None:
    """Tell a token for another product (validly signed) from a forged one."""
    try:
        other = loads_strict(untrusted_message(token)).get("aud")
    except ValueError:  # InvalidToken included: a ValueError too
        return
    if not isinstance(other, str) or other == product:
        return
    try:
        verify(key, token, implicit_assertion=implicit_assertion(other))
    except InvalidToken:
        return
    raise WrongProduct(product, other)


def verify_token_claims(
    token: object, keys: Mapping[str, PublicKey], product: str
) -> dict[str, Any]:
    """Verify a license token and return its payload (not yet checked claim by claim).

    Only the signature, the kid and the product are checked here; time
    (``nbf``/``exp``) and machine checks belong to the client, which knows the
    clock and the fingerprint.

    Args:
        token: the ``v4.public.…`` string.
        keys: trusted keys by PASERK ``k4.pid`` (the footer's ``kid`` picks one).
        product: the product id the token must be bound to.

    Raises:
        InvalidToken: any format, unknown kid or signature failure, or a receipt.
        WrongProduct: the token is validly signed but for another product.
    """
    claims = _verified_claims(token, keys, product)
    if claims.get("purpose") is not None:
        raise InvalidToken()
    return claims


def verify_receipt(token: object, keys: Mapping[str, PublicKey], product: str) -> dict[str, Any]:
    """Verify a receipt (see :func:`sign_receipt`) and return its payload.

    Raises:
        InvalidToken: format, kid, signature or a payload that is not a receipt.
        WrongProduct: signed for another product.
    """
    claims = _verified_claims(token, keys, product)
    if claims.get("purpose") != "receipt" or not all(
        isinstance(claims.get(k), str) for k in ("result", "nonce", "server_time")
    ):
        raise InvalidToken()
    return claims
