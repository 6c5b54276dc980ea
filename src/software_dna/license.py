"""`License`: a verified license, built only from the payload of a verified token.

:func:`verify_token` is the SDK's boundary to the wire layer
(:mod:`software_dna.wire.claims`): it verifies a token against a set of
trusted keys and a product, reads its claims one by one into a
:class:`License`, and turns the format layer's errors into the SDK's
:class:`~software_dna.errors.InvalidToken` and
:class:`~software_dna.errors.WrongProduct`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

from software_dna.errors import InvalidToken, Message, WrongProduct
from software_dna.i18n import N_
from software_dna.wire import errors as wire_errors
from software_dna.wire import identity
from software_dna.wire.claims import Kind, Mode, Protection, SeatMode, verify_token_claims
from software_dna.wire.frozen import Frozen
from software_dna.wire.paseto import PublicKey
from software_dna.wire.times import parse_rfc3339

__all__ = ["License", "in_warning_period", "sdk_error", "verify_token", "with_days_left"]


#: License's attributes, in constructor order; the last five are neither
#: compared nor shown in its repr.
_FIELDS: tuple[str, ...] = (
    "license_id", "activation_id", "product", "fingerprint_id", "mode", "features",
    "protection", "issued_at", "not_before", "expires_at", "license_expires_at",
    "refresh_by", "token_id", "issuer", "email", "registration", "offline_grace_ends_at",
    "kind", "subscription", "days_left", "subscription_ends_at", "seat_mode",
    "lease_expires_at", "fingerprint", "tolerance", "nonce", "fingerprint_algorithm",
    "secret_digest",
)
_COMPARED: tuple[str, ...] = _FIELDS[:-5]


class License(Frozen):
    """A verified license, built only from a token whose signature checked out.

    Attributes:
        license_id: the license (``sub``).
        activation_id: this machine's activation.
        product: the product id (``aud``).
        fingerprint_id: the machine fingerprint id the activation is bound to.
        mode: :attr:`Mode.FULL`, or :attr:`Mode.LIMITED` after erasure.
        features: the entitlements in this mode.
        protection: the product's :class:`Protection` level.
        issued_at: ``iat``, aware UTC.
        not_before: ``nbf``, aware UTC.
        expires_at: ``exp``, the end of this token (aware UTC), or ``None``
            for an offline-only perpetual license.
        license_expires_at: the end of the license itself, ``None`` if perpetual.
        refresh_by: when the client should validate online (``None``: never).
        token_id: ``jti``.
        issuer: ``iss``.
        email: the end user's email, only when given and not erased.
        registration: the registration details, only when given and not erased.
        offline_grace_ends_at: set by the client when the refresh is overdue
            and the server could not be reached: the license works offline
            until then (aware UTC). ``None`` otherwise.
        kind: :class:`Kind` -- full, trial, evaluation or test (claim ``kind``).
        subscription: True for a subscription (claim ``subscription``): the
            vendor may cancel it, which the app learns at its next refresh.
        days_left: whole days (24 h) from the time of the check until
            :attr:`license_expires_at`, never negative (0 on the last day);
            ``None`` for a perpetual license. Set by the client, which knows
            the clock.
        subscription_ends_at: set by the client when the vendor cancelled the
            subscription: the app keeps working until then (the warning
            period, aware UTC), then stops. ``None`` otherwise.
        seat_mode: :class:`SeatMode` -- what a seat is (claim ``seat_mode``).
        lease_expires_at: for a floating license, the end of this machine's
            lease (aware UTC); ``None`` when no lease is held. The client
            refuses a floating license after it, online or not.
        fingerprint: the component set the activation is bound to, read-only.
            Algorithm 2: name -> hash, a tuple of hashes (``mac``) or None
            (unavailable), in :func:`software_dna.wire.identity.parse_components`'
            normal form. Algorithm 1 (0.1 tokens): name -> hash.
        tolerance: how many of those components may differ.
        nonce: the client nonce the token answers.
        fingerprint_algorithm: the algorithm of :attr:`fingerprint` (claim
            ``fingerprint_algorithm``; 1 when absent, as in 0.1 tokens).
        secret_digest: base64url SHA-256 of the activation secret handed out
            with this token (claim ``secret_digest``), or ``None`` (a token that
            hands out no secret, or from a server before secret rotation).

    Built with keyword (or, in this order, positional) arguments; immutable
    (assigning an attribute raises :class:`dataclasses.FrozenInstanceError`).
    Two licenses are equal when every attribute but ``fingerprint``,
    ``tolerance``, ``nonce``, ``fingerprint_algorithm`` and ``secret_digest``
    (which the repr leaves out too) is equal; a
    license without ``registration`` is hashable.
    """

    __slots__ = _FIELDS

    def __init__(  # noqa: PLR0917 - positional, as when it was a dataclass
        self,
        license_id: str,
        activation_id: str,
        product: str,
        fingerprint_id: str,
        mode: Mode,
        features: frozenset[str],
        protection: Protection,
        issued_at: datetime,
        not_before: datetime,
        expires_at: datetime | None,
        license_expires_at: datetime | None,
        refresh_by: datetime | None,
        token_id: str,
        issuer: str,
        email: str | None = None,
        registration: Mapping[str, str] | None = None,
        offline_grace_ends_at: datetime | None = None,
        kind: Kind = Kind.FULL,
        subscription: bool = False,
        days_left: int | None = None,
        subscription_ends_at: datetime | None = None,
        seat_mode: SeatMode = SeatMode.MACHINE,
        lease_expires_at: datetime | None = None,
        fingerprint: identity.ComponentSet | None = None,
        tolerance: int = 0,
        nonce: str = "",
        fingerprint_algorithm: int = identity.LEGACY_ALGORITHM,
        secret_digest: str | None = None,
    ) -> None:
        self._open()
        self.license_id: Final[str] = license_id
        self.activation_id: Final[str] = activation_id
        self.product: Final[str] = product
        self.fingerprint_id: Final[str] = fingerprint_id
        self.mode: Final[Mode] = mode
        self.features: Final[frozenset[str]] = features
        self.protection: Final[Protection] = protection
        self.issued_at: Final[datetime] = issued_at
        self.not_before: Final[datetime] = not_before
        self.expires_at: Final[datetime | None] = expires_at
        self.license_expires_at: Final[datetime | None] = license_expires_at
        self.refresh_by: Final[datetime | None] = refresh_by
        self.token_id: Final[str] = token_id
        self.issuer: Final[str] = issuer
        self.email: Final[str | None] = email
        self.registration: Final[Mapping[str, str] | None] = registration
        self.offline_grace_ends_at: Final[datetime | None] = offline_grace_ends_at
        self.kind: Final[Kind] = kind
        self.subscription: Final[bool] = subscription
        self.days_left: Final[int | None] = days_left
        self.subscription_ends_at: Final[datetime | None] = subscription_ends_at
        self.seat_mode: Final[SeatMode] = seat_mode
        self.lease_expires_at: Final[datetime | None] = lease_expires_at
        self.fingerprint: Final[identity.ComponentSet] = (
            MappingProxyType({}) if fingerprint is None else fingerprint)
        self.tolerance: Final[int] = tolerance
        self.nonce: Final[str] = nonce
        self.fingerprint_algorithm: Final[int] = fingerprint_algorithm
        self.secret_digest: Final[str | None] = secret_digest
        self._seal()

    def __reduce__(self) -> tuple[Any, ...]:
        return (License, tuple(getattr(self, name) for name in _FIELDS))

    def _compared(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _COMPARED)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, License)
        return self._compared() == other._compared()

    def __hash__(self) -> int:
        return hash(self._compared())

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in _COMPARED)
        return f"{type(self).__qualname__}({shown})"

    def _replace(self, **changes: Any) -> License:
        """A copy with ``changes`` (attribute name -> value), as ``dataclasses.replace`` made.

        Raises:
            TypeError: an unknown attribute name.
        """
        values = {name: getattr(self, name) for name in _FIELDS}
        values.update(changes)
        return License(**values)

    def has_feature(self, name: str) -> bool:
        """True when the license grants the feature ``name`` in its current mode."""
        return name in self.features

    @property
    def is_floating(self) -> bool:
        """True for a floating (concurrent) license: it needs a checked-out lease."""
        return self.seat_mode is SeatMode.FLOATING

    @property
    def is_limited(self) -> bool:
        """True in limited mode (the end user's personal data was erased)."""
        return self.mode is Mode.LIMITED

    def with_grace(self, ends_at: datetime | None) -> License:
        """A copy with :attr:`offline_grace_ends_at` set (used by the client)."""
        return self._replace(offline_grace_ends_at=ends_at)

    def whole_days_left(self, now: datetime) -> int | None:
        """Whole days (24 h) from ``now`` (aware) to :attr:`license_expires_at`.

        Never negative; ``None`` for a perpetual license.
        """
        if self.license_expires_at is None:
            return None
        return max(0, (self.license_expires_at - now) // timedelta(days=1))


def _claim_str(claims: Mapping[str, Any], name: str, *, max_len: int = 256) -> str:
    value = claims.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ValueError(f"claim {name!r} must be a non-empty string")
    return value


def _claim_time(claims: Mapping[str, Any], name: str, *, optional: bool) -> datetime | None:
    value = claims.get(name)
    if value is None:
        if optional:
            return None
        raise ValueError(f"claim {name!r} is required")
    return parse_rfc3339(value)


def _str_map(value: object, name: str) -> Mapping[str, str]:
    if not isinstance(value, dict) or len(value) > 32 or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"claim {name!r} must be an object of strings")
    return MappingProxyType(dict(value))


def _fingerprint_claims(claims: Mapping[str, Any]) -> tuple[int, identity.ComponentSet]:
    """(algorithm, bound component set) of a token: algorithm 2 when the claim
    ``fingerprint_algorithm`` says so, else a 0.1 algorithm-1 map.

    Raises:
        ValueError: an unknown algorithm or a malformed set
            (:class:`~software_dna.wire.identity.InvalidFingerprint`).
    """
    algorithm = claims.get("fingerprint_algorithm", identity.LEGACY_ALGORITHM)
    value = claims.get("fingerprint")
    if algorithm == identity.ALGORITHM and type(algorithm) is int:
        return algorithm, MappingProxyType(identity.parse_components(value))
    if algorithm == identity.LEGACY_ALGORITHM and type(algorithm) is int:
        return algorithm, MappingProxyType(identity.parse_legacy_components(value))
    raise ValueError("claim 'fingerprint_algorithm' must be 1 or 2")


def _license_from_claims(claims: Mapping[str, Any]) -> License:
    features = claims.get("features", [])
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise ValueError("claim 'features' must be a list of strings")
    tolerance = claims.get("tolerance", 0)
    if not isinstance(tolerance, int) or isinstance(tolerance, bool) or not 0 <= tolerance < 64:
        raise ValueError("claim 'tolerance' must be a small non-negative integer")
    email = claims.get("email")
    if email is not None and not isinstance(email, str):
        raise ValueError("claim 'email' must be a string")
    registration = claims.get("registration")
    subscription = claims.get("subscription", False)
    if not isinstance(subscription, bool):
        raise ValueError("claim 'subscription' must be a boolean")
    issued_at = _claim_time(claims, "iat", optional=False)
    assert issued_at is not None
    not_before = _claim_time(claims, "nbf", optional=True) or issued_at
    algorithm, fingerprint = _fingerprint_claims(claims)
    digest = claims.get("secret_digest")
    if digest is not None and not isinstance(digest, str):
        raise ValueError("claim 'secret_digest' must be a string")
    return License(
        license_id=_claim_str(claims, "sub"),
        activation_id=_claim_str(claims, "activation_id"),
        product=_claim_str(claims, "aud"),
        fingerprint_id=_claim_str(claims, "fingerprint_id"),
        mode=Mode(claims.get("mode")),
        features=frozenset(features),
        protection=Protection(claims.get("protection")),
        issued_at=issued_at,
        not_before=not_before,
        expires_at=_claim_time(claims, "exp", optional=True),
        license_expires_at=_claim_time(claims, "license_expires_at", optional=True),
        refresh_by=_claim_time(claims, "refresh_by", optional=True),
        token_id=_claim_str(claims, "jti"),
        issuer=_claim_str(claims, "iss"),
        email=email,
        registration=None if registration is None else _str_map(registration, "registration"),
        fingerprint=fingerprint,
        fingerprint_algorithm=algorithm,
        tolerance=tolerance,
        nonce=_claim_str(claims, "nonce"),
        kind=Kind(claims.get("kind", "full")),
        subscription=subscription,
        seat_mode=SeatMode(claims.get("seat_mode", "machine")),
        lease_expires_at=_claim_time(claims, "lease_expires_at", optional=True),
        secret_digest=digest,
    )



def with_days_left(lic: License, days: int) -> License:
    """A copy of ``lic`` with :attr:`License.days_left` set (whole days, >= 0)."""
    return lic._replace(days_left=days)


def in_warning_period(lic: License, until: datetime) -> License:
    """A copy of ``lic`` in a cancelled subscription's warning period, which ends at ``until``.

    :attr:`License.subscription_ends_at` is ``until``; no offline grace is shown.
    """
    return lic._replace(subscription_ends_at=until, offline_grace_ends_at=None)


def sdk_error(exc: wire_errors.InvalidToken) -> InvalidToken | WrongProduct:
    """The SDK's exception for a token the wire layer refused (wording for the end user)."""
    if isinstance(exc, wire_errors.WrongProduct):
        if exc.other is None:
            return WrongProduct(Message(
                N_("This license is for another product, not %(ours)s."),
                ours=repr(exc.product)))
        return WrongProduct(Message(
            N_("This license is for the product %(theirs)s, not %(ours)s. Use the license key "
               "you received for this product."),
            theirs=repr(exc.other), ours=repr(exc.product)))
    return InvalidToken()


def verify_token(token: object, keys: Mapping[str, PublicKey], product: str) -> License:
    """Verify a license token and return the :class:`License` it carries.

    Only the signature, the kid and the product are checked here; time
    (``nbf``/``exp``) and machine checks belong to the client, which knows the
    clock and the fingerprint.

    Args:
        token: the ``v4.public.…`` string.
        keys: trusted keys by PASERK ``k4.pid`` (the footer's ``kid`` picks one).
        product: the product id the token must be bound to.

    Raises:
        InvalidToken: any format, unknown kid, signature or claim failure.
        WrongProduct: the token is validly signed but for another product.
    """
    try:
        claims = verify_token_claims(token, keys, product)
    except wire_errors.InvalidToken as exc:
        raise sdk_error(exc) from None
    try:
        return _license_from_claims(claims)
    except (ValueError, TypeError) as exc:
        raise InvalidToken() from exc
