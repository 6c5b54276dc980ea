"""License tokens: the claims inside a PASETO ``v4.public`` token, and `License`.

This module is the license layer on top of :mod:`software_dna.paseto`:

- :func:`issue_token` (server side) turns a license's facts into a signed token;
- :func:`verify_token` (client side) checks a token against a set of trusted
  keys and a product, and returns a :class:`License` built only from the
  verified payload.

Format (see docs/tokens.md):

- footer: ``{"kid":"k4.pid.…"}`` — the PASERK id of the signing key;
- implicit assertion: :func:`implicit_assertion` of the product id, so a token
  signed for one product never verifies for another;
- payload: a JSON object with the PASETO registered claims ``iss``, ``sub``
  (license id), ``aud`` (product), ``iat``, ``nbf``, ``exp``, ``jti`` and the
  license's own claims (``activation_id``, ``fingerprint_id``,
  ``fingerprint``, ``tolerance``, ``mode``, ``features``, ``protection``,
  ``license_expires_at``, ``refresh_by``, ``nonce``, and ``email`` /
  ``registration`` only when present).

Times are RFC 3339 (https://www.rfc-editor.org/rfc/rfc3339) strings with an
explicit offset; they become timezone-aware UTC datetimes. A time without an
offset is refused.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, Final

from ._frozen import Frozen
from ._json import loads_object
from .errors import InvalidToken, WrongProduct
from .paseto import PublicKey, SecretKey, sign, untrusted_footer, untrusted_message, verify

__all__ = [
    "CLOCK_SKEW",
    "Kind",
    "License",
    "Mode",
    "Protection",
    "SeatMode",
    "format_rfc3339",
    "implicit_assertion",
    "issue_token",
    "loads_strict",
    "parse_rfc3339",
    "sign_receipt",
    "verify_receipt",
    "verify_token",
]

#: How far the client's clock may be off from the server's before times are
#: held against it (``nbf`` in the future, ``exp`` in the past, the clock set
#: back). Five minutes, as is usual for signed tokens.
CLOCK_SKEW = timedelta(minutes=5)

#: Largest JSON nesting / size accepted in a payload or footer.
_MAX_JSON_BYTES = 32 * 1024

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ]"
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?P<frac>\.\d{1,9})?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


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


# ---------------------------------------------------------------- times

def parse_rfc3339(value: object) -> datetime:
    """Parse an RFC 3339 date-time with an explicit offset into aware UTC.

    Args:
        value: a ``str`` such as ``"2026-11-29T12:00:00Z"`` or
            ``"2026-11-29T17:30:00.5+05:30"`` (RFC 3339 section 5.6).

    Returns:
        A timezone-aware :class:`datetime` in UTC.

    Raises:
        ValueError: not a string, no offset (a naive time), an impossible
            date, or any other departure from RFC 3339. A leap second
            (``:60``) is read as the last instant of that minute.
    """
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("time must be an RFC 3339 string")
    found = _RFC3339.fullmatch(value)
    if found is None:
        raise ValueError(f"not an RFC 3339 time with an offset: {value!r}")
    second = int(found["s"])
    leap = second == 60
    frac = found["frac"] or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        year, month, day = (int(p) for p in found["date"].split("-"))
        tz_text = found["tz"]
        if tz_text in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = -1 if tz_text[0] == "-" else 1
            hours, minutes = int(tz_text[1:3]), int(tz_text[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("offset out of range")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        moment = datetime(
            year, month, day, int(found["h"]), int(found["m"]),
            59 if leap else second, 999999 if leap else micro, tzinfo=tz,
        )
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid time: {value!r}") from exc
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError(f"time out of range: {value!r}") from exc


def format_rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC, e.g. ``2026-11-29T12:00:00Z``.

    Microseconds are kept when non-zero. Raises ``ValueError`` for a naive datetime.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: give a timezone-aware time")
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


# ---------------------------------------------------------------- JSON

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


# ---------------------------------------------------------------- License

#: License's attributes, in constructor order; the last three are neither
#: compared nor shown in its repr.
_FIELDS: tuple[str, ...] = (
    "license_id", "activation_id", "product", "fingerprint_id", "mode", "features",
    "protection", "issued_at", "not_before", "expires_at", "license_expires_at",
    "refresh_by", "token_id", "issuer", "email", "registration", "offline_grace_ends_at",
    "kind", "subscription", "days_left", "subscription_ends_at", "seat_mode",
    "lease_expires_at", "fingerprint", "tolerance", "nonce",
)
_COMPARED: tuple[str, ...] = _FIELDS[:-3]


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
        fingerprint: component name -> hash the activation is bound to.
        tolerance: how many of those components may differ.
        nonce: the client nonce the token answers.

    Built with keyword (or, in this order, positional) arguments; immutable
    (assigning an attribute raises :class:`dataclasses.FrozenInstanceError`).
    Two licenses are equal when every attribute but ``fingerprint``,
    ``tolerance`` and ``nonce`` (which the repr leaves out too) is equal; a
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
        fingerprint: Mapping[str, str] | None = None,
        tolerance: int = 0,
        nonce: str = "",
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
        self.fingerprint: Final[Mapping[str, str]] = {} if fingerprint is None else fingerprint
        self.tolerance: Final[int] = tolerance
        self.nonce: Final[str] = nonce
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
        fingerprint=_str_map(claims.get("fingerprint"), "fingerprint"),
        tolerance=tolerance,
        nonce=_claim_str(claims, "nonce"),
        kind=Kind(claims.get("kind", "full")),
        subscription=subscription,
        seat_mode=SeatMode(claims.get("seat_mode", "machine")),
        lease_expires_at=_claim_time(claims, "lease_expires_at", optional=True),
    )


# ---------------------------------------------------------------- issue / verify

def issue_token(
    key: SecretKey,
    *,
    issuer: str,
    license_id: str,
    activation_id: str,
    product: str,
    fingerprint_id: str,
    fingerprint: Mapping[str, str],
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
) -> str:
    """Sign a license token (server side).

    Args:
        key: the product's active signing key; its ``k4.pid`` goes in the footer.
        issuer: ``iss``, the server's name.
        license_id, activation_id, product, fingerprint_id: identifiers.
        fingerprint: component name → component hash the activation is bound to.
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
    return _sign_claims(key, product, claims)


def _sign_claims(key: SecretKey, product: str, claims: Mapping[str, Any]) -> str:
    """Sign ``claims`` as a ``v4.public`` token for ``product`` with the kid footer."""
    return sign(key, _dumps(claims), footer=_footer(key.public_key.pid),
                implicit_assertion=implicit_assertion(product))


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
        raise WrongProduct(f"This license is for another product, not {product!r}.")
    return claims


def _raise_if_other_product(token: str, key: PublicKey, product: str) -> None:
    """Tell a token for another product (validly signed) from a forged one."""
    try:
        other = loads_strict(untrusted_message(token)).get("aud")
    except (ValueError, InvalidToken):
        return
    if not isinstance(other, str) or other == product:
        return
    try:
        verify(key, token, implicit_assertion=implicit_assertion(other))
    except InvalidToken:
        return
    raise WrongProduct(
        f"This license is for the product {other!r}, not {product!r}. "
        "Use the license key you received for this product."
    )


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
    claims = _verified_claims(token, keys, product)
    if claims.get("purpose") is not None:
        raise InvalidToken()
    try:
        return _license_from_claims(claims)
    except (ValueError, TypeError) as exc:
        raise InvalidToken() from exc


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
