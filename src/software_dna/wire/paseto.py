"""PASETO ``v4.public`` tokens and PASERK ``k4`` keys, on top of ``cryptography``'s Ed25519.

Specifications implemented (paseto-standard/paseto-spec and paseto-standard/paserk):

* PASETO "Version 4", sections "Sign" and "Verify" (``v4.public``: Ed25519);
* PASETO "Common Implementation Details": "Base64 Encoding" (strict decoding) and
  "Authentication Padding" (PAE);
* PASERK types ``public`` and ``secret`` ("Versions 2 and 4": raw Ed25519 bytes),
  ``pid`` and ``sid`` (operation "ID", "Versions 2 and 4": BLAKE2b-264).

Only ``v4.public`` exists here: the header ``v4.public.`` fixes the algorithm and
nothing inside a token can choose another one. Parsing is strict (canonical
unpadded base64url only, no empty footer segment, bounded length), and every
format or signature failure raises the same opaque :class:`InvalidToken`.
See ``docs/tokens.md`` ("PASETO layer") for the rules and their reasons.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from software_dna.wire.errors import InvalidToken
from software_dna.wire.frozen import Frozen

__all__ = [
    "MAX_TOKEN_LENGTH",
    "InvalidKey",
    "InvalidToken",
    "PublicKey",
    "SecretKey",
    "VerifiedToken",
    "pae",
    "sign",
    "untrusted_footer",
    "untrusted_message",
    "verify",
]

#: Longest token (in characters) that is parsed at all; longer ones are refused
#: before any decoding, and :func:`sign` refuses to produce them.
MAX_TOKEN_LENGTH = 64 * 1024

_HEADER = "v4.public."
_HEADER_BYTES = _HEADER.encode("ascii")
_SIG_LEN = 64
_PUBLIC_LEN = 32
_SECRET_LEN = 64
_PASERK_PUBLIC = "k4.public."
_PASERK_SECRET = "k4.secret."  # noqa: S105 - a PASERK type prefix, not a secret
_PASERK_PID = "k4.pid."
_PASERK_SID = "k4.sid."
_MAX_PASERK_LENGTH = 256
_LE64_MASK = (1 << 63) - 1
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _small_order_encodings() -> frozenset[bytes]:
    """Every 32-byte encoding of a point of order 1, 2, 4 or 8 on edwards25519.

    A small-order public key ``A`` makes ``k*A`` take at most 8 values, so a
    signature ``(R = S*B, S)`` verifies for a fraction of all messages (all of
    them for the identity) without any secret: OpenSSL's Ed25519 accepts such
    keys, so they are refused here. The y coordinates of the 8 torsion points
    are 1 (identity), p-1 (order 2), 0 (order 4) and +-Y8 (order 8); ``p`` and
    ``p+1`` are the non-canonical encodings of 0 and 1; each with either x sign bit.
    """
    p = 2**255 - 19
    y8 = int.from_bytes(
        bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),
        "little",
    )
    ys = (0, 1, p - 1, y8, p - y8, p, p + 1)
    return frozenset((y | sign << 255).to_bytes(32, "little") for y in ys for sign in (0, 1))


_SMALL_ORDER = _small_order_encodings()


class InvalidKey(ValueError):
    """Bad key bytes, or a malformed PASERK string or one of the wrong version or type."""


def _b64encode(data: bytes) -> str:
    """Unpadded base64url (RFC 4648 section 5), as PASETO "Base64 Encoding" requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict unpadded base64url decoding; ``None`` unless ``text`` is the canonical encoding.

    Refuses padding, characters outside the base64url alphabet, impossible lengths
    and non-zero unused trailing bits (PASETO "Common", "Base64 Decoding").
    """
    if len(text) % 4 == 1 or _B64URL.fullmatch(text) is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):  # pragma: no cover - excluded by the checks above
        return None
    # Re-encoding must give the same text back: this refuses non-zero trailing bits.
    return raw if _b64encode(raw) == text else None


def _le64(n: int) -> bytes:
    return (n & _LE64_MASK).to_bytes(8, "little")


def pae(pieces: Sequence[bytes]) -> bytes:
    """Pre-Authentication Encoding of ``pieces`` (PASETO "Common", "PAE Definition").

    ``LE64(len(pieces)) || LE64(len(p0)) || p0 || LE64(len(p1)) || p1 ...`` where
    LE64 is the 8-byte little-endian length with the most significant bit cleared.

    Args:
        pieces: a sequence (list, tuple) of ``bytes``/``bytearray``/``memoryview``.

    Raises:
        TypeError: ``pieces`` is itself a bytes-like object or string, or one
            piece is not bytes-like.
    """
    if isinstance(pieces, (str, bytes, bytearray, memoryview)):
        raise TypeError("pae() expects a sequence of byte strings")
    out = [_le64(len(pieces))]
    for piece in pieces:
        if not isinstance(piece, (bytes, bytearray, memoryview)):
            raise TypeError("pae() pieces must be bytes")
        data = bytes(piece)
        out.append(_le64(len(data)))
        out.append(data)
    return b"".join(out)


def _coerce_bytes(value: object, what: str) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidKey(f"{what} must be bytes")


def _paserk_decode(text: object, prefix: str, size: int) -> bytes:
    kind = prefix.rstrip(".")
    if not isinstance(text, str) or len(text) > _MAX_PASERK_LENGTH or not text.startswith(prefix):
        raise InvalidKey(f"not a {kind} PASERK")
    raw = _b64decode(text[len(prefix) :])
    if raw is None or len(raw) != size:
        raise InvalidKey(f"malformed {kind} PASERK")
    return raw


def _paserk_id(prefix: str, paserk: str) -> str:
    """PASERK operation "ID", versions 2 and 4: ``h || b64url(BLAKE2b-264(h || paserk))``."""
    h = prefix.encode("ascii")
    digest = hashlib.blake2b(h + paserk.encode("ascii"), digest_size=33).digest()
    return prefix + _b64encode(digest)


class PublicKey(Frozen):
    """An Ed25519 public key (32 raw bytes) that verifies ``v4.public`` tokens.

    Any 32 bytes are accepted, as PASERK ``k4.public`` requires (its official
    vectors include the all-zero key), but a key that is the encoding of a
    small-order point (the all-zero key is one) never verifies anything:
    :func:`verify` raises :class:`InvalidToken` for it. The ``cryptography``
    key object is loaded once, here, and reused by every :func:`verify`.

    Immutable (assigning an attribute raises
    :class:`dataclasses.FrozenInstanceError`); equal and hashed by ``raw``.

    Args:
        raw: the 32 key bytes (``bytes``, ``bytearray`` or ``memoryview``).

    Attributes:
        raw: the 32 key bytes (``bytes``).
        pid: its PASERK ``k4.pid`` id (PASERK type "pid", operation "ID").

    Raises:
        InvalidKey: ``raw`` is not 32 bytes.
    """

    __slots__ = ("_verifier", "pid", "raw")

    def __init__(self, raw: bytes) -> None:
        data = _coerce_bytes(raw, "an Ed25519 public key")
        if len(data) != _PUBLIC_LEN:
            raise InvalidKey("an Ed25519 public key is 32 bytes")
        self._open()
        self.raw: Final[bytes] = data
        self.pid: Final[str] = _paserk_id(_PASERK_PID, _PASERK_PUBLIC + _b64encode(data))
        self._verifier: Final[Ed25519PublicKey | None] = (
            None if data in _SMALL_ORDER else Ed25519PublicKey.from_public_bytes(data))
        self._seal()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, PublicKey)
        return self.raw == other.raw

    def __hash__(self) -> int:
        return hash((self.raw,))

    @classmethod
    def from_bytes(cls, raw: bytes) -> PublicKey:
        """Load a raw 32-byte Ed25519 public key. Raises :class:`InvalidKey` otherwise."""
        return cls(raw)

    @classmethod
    def from_paserk(cls, text: str) -> PublicKey:
        """Parse a PASERK ``k4.public.<base64url(32 bytes)>`` (PASERK type "public", v4).

        Raises:
            InvalidKey: not a str, another version or type, or malformed data.
        """
        return cls(_paserk_decode(text, _PASERK_PUBLIC, _PUBLIC_LEN))

    def to_paserk(self) -> str:
        """This key as PASERK ``k4.public.<base64url(raw)>`` (PASERK type "public")."""
        return _PASERK_PUBLIC + _b64encode(self.raw)

    def __repr__(self) -> str:
        return f"PublicKey({self.to_paserk()!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.raw,))


class SecretKey:
    """An Ed25519 secret key that signs ``v4.public`` tokens.

    Build one with :meth:`generate`, :meth:`from_bytes` or :meth:`from_paserk`
    (or wrap a ``cryptography`` ``Ed25519PrivateKey``). Its ``repr`` shows only
    the public key id; equality is a constant-time comparison of the key bytes.
    """

    __slots__ = ("_key", "_public", "_sid")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKey("expected an Ed25519 private key")
        self._key = key
        self._public = PublicKey(key.public_key().public_bytes_raw())
        self._sid: str | None = None

    @classmethod
    def generate(cls) -> SecretKey:
        """A new random key (from the OS CSPRNG, through OpenSSL)."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SecretKey:
        """Load 64 bytes ``seed || public key``, the PASERK ``k4.secret`` data format.

        Raises:
            InvalidKey: not 64 bytes, or the public half is not the seed's public key.
        """
        data = _coerce_bytes(raw, "an Ed25519 secret key")
        if len(data) != _SECRET_LEN:
            raise InvalidKey("an Ed25519 secret key is 64 bytes (seed || public key)")
        key = cls(Ed25519PrivateKey.from_private_bytes(data[:32]))
        if not hmac.compare_digest(key._public.raw, data[32:]):
            raise InvalidKey("the public half of the secret key does not match its seed")
        return key

    @classmethod
    def from_paserk(cls, text: str) -> SecretKey:
        """Parse a PASERK ``k4.secret.<base64url(64 bytes)>`` (PASERK type "secret", v4).

        Raises:
            InvalidKey: not a str, another version or type, malformed data, or the
                public half does not match the seed.
        """
        return cls.from_bytes(_paserk_decode(text, _PASERK_SECRET, _SECRET_LEN))

    def to_bytes(self) -> bytes:
        """The 64 bytes ``seed || public key`` (keep them secret)."""
        return self._key.private_bytes_raw() + self._public.raw

    def to_paserk(self) -> str:
        """This key as PASERK ``k4.secret.<base64url(seed || public)>`` (keep it secret)."""
        return _PASERK_SECRET + _b64encode(self.to_bytes())

    @property
    def public_key(self) -> PublicKey:
        """The matching :class:`PublicKey`."""
        return self._public

    @property
    def sid(self) -> str:
        """PASERK ``k4.sid`` id of this key (PASERK type "sid", operation "ID"), cached."""
        if self._sid is None:
            self._sid = _paserk_id(_PASERK_SID, self.to_paserk())
        return self._sid

    def __repr__(self) -> str:
        return f"<SecretKey for {self._public.pid}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self._public)


class VerifiedToken(Frozen):
    """The authenticated content of a verified token: its ``message`` and ``footer`` bytes.

    Immutable, equal and hashed by both, like a frozen dataclass.
    """

    __slots__ = ("footer", "message")

    def __init__(self, message: bytes, footer: bytes) -> None:
        self._open()
        self.message: Final[bytes] = message
        self.footer: Final[bytes] = footer
        self._seal()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, VerifiedToken)
        return (self.message, self.footer) == (other.message, other.footer)

    def __hash__(self) -> int:
        return hash((self.message, self.footer))

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(message={self.message!r}, footer={self.footer!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (VerifiedToken, (self.message, self.footer))


def _parse(token: object) -> tuple[bytes, bytes, bytes]:
    """Strictly split a ``v4.public`` token into ``(message, signature, footer)``.

    Raises:
        InvalidToken: on any deviation from ``v4.public.<payload>[.<footer>]``.
    """
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        raise InvalidToken
    if not token.startswith(_HEADER):
        raise InvalidToken
    segments = token[len(_HEADER) :].split(".")
    footer = b""
    if len(segments) == 2:
        # A present footer segment is never empty: sign() omits it (and its dot)
        # for an empty footer, so "v4.public.<payload>." is a second spelling.
        decoded_footer = _b64decode(segments[1]) if segments[1] else None
        if decoded_footer is None:
            raise InvalidToken
        footer = decoded_footer
    elif len(segments) != 1:
        raise InvalidToken
    payload = _b64decode(segments[0])
    if payload is None or len(payload) < _SIG_LEN:
        raise InvalidToken
    return payload[:-_SIG_LEN], payload[-_SIG_LEN:], footer


def _check_bytes(value: object, name: str) -> bytes:
    if not isinstance(value, bytes):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    return value


def sign(
    key: SecretKey, message: bytes, *, footer: bytes = b"", implicit_assertion: bytes = b""
) -> str:
    """Sign ``message`` into a ``v4.public`` token (PASETO "Version 4", "Sign").

    The signature is Ed25519 over ``PAE(["v4.public.", message, footer,
    implicit_assertion])``; the token is ``v4.public.<b64url(message || sig)>``
    followed by ``.<b64url(footer)>`` when the footer is not empty. The implicit
    assertion is signed but not carried: :func:`verify` must be given the same one.

    Raises:
        TypeError: ``key`` is not a :class:`SecretKey` or an argument is not bytes.
        ValueError: the token would be longer than :data:`MAX_TOKEN_LENGTH`.
    """
    if not isinstance(key, SecretKey):
        raise TypeError("key must be a SecretKey")
    message = _check_bytes(message, "message")
    footer = _check_bytes(footer, "footer")
    implicit_assertion = _check_bytes(implicit_assertion, "implicit_assertion")
    signature = key._key.sign(pae((_HEADER_BYTES, message, footer, implicit_assertion)))
    token = _HEADER + _b64encode(message + signature)
    if footer:
        token += "." + _b64encode(footer)
    if len(token) > MAX_TOKEN_LENGTH:
        raise ValueError(f"the token would be longer than {MAX_TOKEN_LENGTH} characters")
    return token


def verify(key: PublicKey, token: str, *, implicit_assertion: bytes = b"") -> VerifiedToken:
    """Verify a ``v4.public`` token and return its message and footer (PASETO v4 "Verify").

    Args:
        key: the signer's public key (choose it by the footer's kid beforehand,
            see :func:`untrusted_footer`).
        token: the token text; anything but a strictly well-formed ``v4.public``
            token str (other versions or purposes, JWTs, bytes, None ...) is refused.
        implicit_assertion: the bytes the token was signed with (not carried in it).

    Raises:
        InvalidToken: bad format, bad signature, wrong implicit assertion, or a
            small-order ``key`` (always the same opaque error).
        TypeError: ``key`` is not a :class:`PublicKey` or ``implicit_assertion``
            is not bytes (programming errors, not token errors).
    """
    if not isinstance(key, PublicKey):
        raise TypeError("key must be a PublicKey")
    implicit_assertion = _check_bytes(implicit_assertion, "implicit_assertion")
    message, signature, footer = _parse(token)
    verifier = key._verifier
    if verifier is None:
        raise InvalidToken
    try:
        verifier.verify(signature, pae((_HEADER_BYTES, message, footer, implicit_assertion)))
    except InvalidSignature:
        raise InvalidToken from None
    return VerifiedToken(message=message, footer=footer)


def untrusted_footer(token: str) -> bytes:
    """The footer of a ``v4.public`` token, strictly parsed but NOT authenticated.

    Only for choosing the verification key (the footer's ``kid``); trust nothing
    in it until :func:`verify` succeeds. ``b""`` when the token has no footer.

    Raises:
        InvalidToken: the token is not a well-formed ``v4.public`` token.
    """
    return _parse(token)[2]


def untrusted_message(token: str) -> bytes:
    """The message of a ``v4.public`` token, strictly parsed but NOT authenticated.

    Only for error reporting; never act on it.

    Raises:
        InvalidToken: the token is not a well-formed ``v4.public`` token.
    """
    return _parse(token)[0]
