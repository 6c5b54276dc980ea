"""Regression tests named after known token attacks, against ``software_dna.wire.paseto``.

Each test builds the attacker's token and checks it is refused with the opaque
:class:`InvalidToken` (never another exception, never acceptance).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from software_dna.wire import paseto
from software_dna.wire.errors import InvalidToken
from software_dna.wire.paseto import (
    MAX_TOKEN_LENGTH,
    PublicKey,
    SecretKey,
    pae,
    sign,
    untrusted_footer,
    untrusted_message,
    verify,
)

KEY = SecretKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64))))
PUBLIC = KEY.public_key
MESSAGE = b'{"sub":"lic_1","features":["pro"]}'
FOOTER = json.dumps({"kid": PUBLIC.pid}, separators=(",", ":")).encode()
ASSERTION = b'{"product":"acme"}'
TOKEN = sign(KEY, MESSAGE, footer=FOOTER, implicit_assertion=ASSERTION)
HEADER = b"v4.public."


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def refused(token: object, *, key: PublicKey = PUBLIC, assertion: bytes = ASSERTION) -> bool:
    """True when verify() refuses the token with InvalidToken (and nothing else)."""
    try:
        verify(key, token, implicit_assertion=assertion)  # type: ignore[arg-type]
    except InvalidToken:
        return True
    return False


def payload_of(token: str) -> bytes:
    return unb64(token.split(".")[2])


def test_control_the_untouched_token_verifies() -> None:
    assert not refused(TOKEN)


# --- algorithm confusion ---------------------------------------------------------------


def _jwt(header: dict[str, str], claims: bytes, signature: bytes) -> str:
    head = b64(json.dumps(header).encode())
    return f"{head}.{b64(claims)}.{b64(signature)}"


def test_alg_none_jwt() -> None:
    token = _jwt({"alg": "none", "typ": "JWT"}, MESSAGE, b"")
    assert token.endswith(".")
    assert refused(token)
    assert refused("v4.public." + token)


@pytest.mark.parametrize(
    "secret",
    [PUBLIC.raw, PUBLIC.to_paserk().encode(), PUBLIC.raw.hex().encode()],
    ids=["raw", "paserk", "hex"],
)
def test_hs256_jwt_keyed_with_the_public_key(secret: bytes) -> None:
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{head}.{b64(MESSAGE)}".encode()
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    assert refused(f"{head}.{b64(MESSAGE)}.{b64(mac)}")


@pytest.mark.parametrize("secret", [PUBLIC.raw, PUBLIC.to_paserk().encode()], ids=["raw", "paserk"])
def test_hmac_keyed_with_the_public_key_in_v4_public_form(secret: bytes) -> None:
    """A 64-byte HMAC-SHA512 'signature' over the right PAE, keyed with the public key."""
    m2 = pae([HEADER, MESSAGE, FOOTER, ASSERTION])
    mac = hmac.new(secret, m2, hashlib.sha512).digest()
    assert refused(f"v4.public.{b64(MESSAGE + mac)}.{b64(FOOTER)}")


def test_footer_cannot_choose_the_algorithm() -> None:
    """An ``alg`` in the footer is just bytes: the unsigned token is still refused."""
    footer = b'{"alg":"none","kid":"' + PUBLIC.pid.encode() + b'"}'
    assert refused(f"v4.public.{b64(MESSAGE + bytes(64))}.{b64(footer)}")
    assert untrusted_footer(f"v4.public.{b64(MESSAGE + bytes(64))}.{b64(footer)}") == footer


# --- other versions and purposes -------------------------------------------------------


def test_v4_local_token() -> None:
    local_payload = TOKEN[len("v4.public.") :]
    assert refused("v4.local." + local_payload)
    vector = "v4.local.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAQAr68PS4AXe7If_ZgesdkUMvSwscFlAl1pk5HC0e8kApeaqMfGo_7OpBnwJOAbY9V7WU6abu74MmcUE8YWAiaArVI8XJ5hOb_4v9RmDkneN0S92dx0OW4pgy7omxgf3S8c3LlQg"  # noqa: E501 - official vector 4-E-1
    assert refused(vector)
    assert refused(vector, assertion=b"")


@pytest.mark.parametrize(
    "header",
    [
        "v1.public.",
        "v2.public.",
        "v3.public.",
        "v5.public.",
        "V4.public.",
        "v4.PUBLIC.",
        "v4.public",
        "v4public.",
        "v4..public.",
        "k4.public.",
        "v4.secret.",
        ".v4.public.",
    ],
)
def test_other_versions_and_headers(header: str) -> None:
    assert refused(header + TOKEN[len("v4.public.") :])


def test_v2_public_token_with_the_same_ed25519_key() -> None:
    """v2.public is Ed25519 too, over PAE([h, m, f]): a cross-version replay must fail."""
    v2_header = b"v2.public."
    signature = Ed25519PrivateKey.from_private_bytes(KEY.to_bytes()[:32]).sign(
        pae([v2_header, MESSAGE, FOOTER])
    )
    body = f"{b64(MESSAGE + signature)}.{b64(FOOTER)}"
    assert refused("v2.public." + body)
    assert refused("v4.public." + body)
    assert refused("v4.public." + body, assertion=b"")


# --- encoding malleability -------------------------------------------------------------


@pytest.mark.parametrize("padding", ["=", "==", "==="])
def test_padding(padding: str) -> None:
    _, _, payload, footer = TOKEN.split(".")
    assert refused(f"v4.public.{payload}{padding}.{footer}")
    assert refused(f"v4.public.{payload}.{footer}{padding}")
    assert refused(TOKEN + padding)


@pytest.mark.parametrize("space", [" ", "\n", "\r\n", "\t", "\x0b", "\x0c", "\u00a0", "\u2028"])
def test_whitespace(space: str) -> None:
    assert refused(TOKEN + space)
    assert refused(space + TOKEN)
    assert refused(TOKEN[:30] + space + TOKEN[30:])
    assert refused(TOKEN.replace(".", "." + space, 3))


@pytest.mark.parametrize(
    "lookalike", ["\uff21", "\u212a", "\u0661", "\U0001d400", "\u00e9"], ids=ascii
)
def test_non_ascii_lookalikes(lookalike: str) -> None:
    assert refused(TOKEN[:20] + lookalike + TOKEN[21:])
    assert refused(TOKEN[:20] + lookalike + TOKEN[20:])


@pytest.mark.parametrize("char", ["+", "/"])
def test_standard_base64_alphabet(char: str) -> None:
    """'+' and '/' (RFC 4648 section 4) are not base64url, even where they decode the same bits."""
    swapped = TOKEN.replace("-", "+").replace("_", "/") if char == "+" else TOKEN.replace("_", "/")
    if swapped == TOKEN:  # pragma: no cover - no '-'/'_' in this token
        swapped = TOKEN[:20] + char + TOKEN[21:]
    assert refused(swapped)


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _with_unused_bits_set(text: str, bits: int) -> str:
    value = _ALPHABET.index(text[-1])
    assert value & ((1 << bits) - 1) == 0
    return text[:-1] + _ALPHABET[value | ((1 << bits) - 1)]


@pytest.mark.parametrize(("message_len", "footer_len"), [(0, 1), (1, 2), (2, 4), (3, 5)], ids=str)
def test_non_canonical_trailing_bits(message_len: int, footer_len: int) -> None:
    """Unused low bits of the last base64 character must be zero (PASETO "Base64 Decoding")."""
    footer = b"f" * footer_len
    token = sign(KEY, b"m" * message_len, footer=footer, implicit_assertion=ASSERTION)
    assert not refused(token)
    _, _, payload, foot = token.split(".")
    cases = []
    for text in (payload, foot):
        bits = {0: 0, 2: 4, 3: 2}[len(text) % 4]
        if bits:
            lax = _with_unused_bits_set(text, bits)
            assert unb64(lax) == unb64(text)  # a lenient decoder sees the same bytes
            cases.append(token.replace("." + text, "." + lax))
    assert cases
    for case in cases:
        assert case != token
        assert refused(case)
        with pytest.raises(InvalidToken):
            untrusted_footer(case)


@pytest.mark.parametrize(
    "shape",
    ["{t}.", "{t}.AAAA", "{t}..", "{p}..{f}", "{p}.", "{t}.{f}", ".{t}", "{p}.{f}.{f}"],
)
def test_extra_or_empty_segment(shape: str) -> None:
    _, _, payload, footer = TOKEN.split(".")
    body = shape.format(t=f"{payload}.{footer}", p=payload, f=footer)
    assert refused("v4.public." + body)


def test_empty_footer_segment_is_not_a_second_spelling() -> None:
    token = sign(KEY, MESSAGE, implicit_assertion=ASSERTION)
    assert not refused(token)
    for suffix in (".", "..", "..AAAA", ".AAAA.", "...", ". "):
        assert refused(token + suffix), suffix
        with pytest.raises(InvalidToken):
            untrusted_message(token + suffix)


# --- signature malleability and size ----------------------------------------------------

L = 2**252 + 27742317777372353535851937790883648493


@pytest.mark.parametrize("multiple", range(1, 16))
def test_s_plus_l_signature(multiple: int) -> None:
    """S + k*L gives the same [S]B; RFC 8032 and PASETO require S < L, so it is refused."""
    payload = payload_of(TOKEN)
    message, signature = payload[:-64], payload[-64:]
    s = int.from_bytes(signature[32:], "little")
    assert s < L
    if s + multiple * L >= 2**256:
        pytest.skip("S + k*L does not fit in 32 bytes")
    forged = signature[:32] + (s + multiple * L).to_bytes(32, "little")
    assert refused(f"v4.public.{b64(message + forged)}.{b64(FOOTER)}")


def test_s_plus_l_is_the_same_point() -> None:
    """Sanity check of the premise with plain integer arithmetic: [L]B is the identity."""
    assert _mul(L, _BASE) == _IDENTITY


@pytest.mark.parametrize("extra", [b"\x00", b"\xff", bytes(32)], ids=["zero", "ff", "32-zero"])
def test_65_byte_signature(extra: bytes) -> None:
    payload = payload_of(TOKEN)
    assert refused(f"v4.public.{b64(payload + extra)}.{b64(FOOTER)}")
    assert refused(f"v4.public.{b64(payload[:-64] + extra + payload[-64:])}.{b64(FOOTER)}")


@pytest.mark.parametrize("length", [0, 1, 32, 63])
def test_short_signature_and_payload(length: int) -> None:
    payload = payload_of(TOKEN)
    assert refused(f"v4.public.{b64(payload[-64:][:length])}.{b64(FOOTER)}")
    assert refused(f"v4.public.{b64(payload[:-64] + payload[-64:][:length])}.{b64(FOOTER)}")
    with pytest.raises(InvalidToken):
        untrusted_message(f"v4.public.{b64(payload[-64:][:length])}")


def test_oversized_token_is_refused_before_decoding() -> None:
    """A genuinely signed token longer than MAX_TOKEN_LENGTH is refused all the same."""
    message = b"x" * MAX_TOKEN_LENGTH
    raw = Ed25519PrivateKey.from_private_bytes(KEY.to_bytes()[:32])
    signature = raw.sign(pae([HEADER, message, b"", b""]))
    token = "v4.public." + b64(message + signature)
    assert len(token) > MAX_TOKEN_LENGTH
    assert refused(token, assertion=b"")
    with pytest.raises(InvalidToken):
        untrusted_message(token)


# --- weak public keys -------------------------------------------------------------------
# Plain edwards25519 arithmetic (affine, a = -1), to derive the small-order points
# independently of the list in paseto.py.

P = 2**255 - 19
D = -121665 * pow(121666, -1, P) % P
_IDENTITY = (0, 1)
Point = tuple[int, int]


def _add(a: Point, b: Point) -> Point:
    (x1, y1), (x2, y2) = a, b
    t = D * x1 * x2 * y1 * y2 % P
    return (
        (x1 * y2 + x2 * y1) * pow(1 + t, -1, P) % P,
        (y1 * y2 + x1 * x2) * pow(1 - t, -1, P) % P,
    )


def _mul(n: int, point: Point) -> Point:
    result = _IDENTITY
    while n:
        if n & 1:
            result = _add(result, point)
        point = _add(point, point)
        n >>= 1
    return result


def _point_with_y(y: int) -> Point | None:
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    return (x, y) if (x * x - x2) % P == 0 else None


def _base_point() -> Point:
    """B of RFC 8032: y = 4/5, x even."""
    point = _point_with_y(4 * pow(5, -1, P) % P)
    assert point is not None
    x, y = point
    return (x, y) if x % 2 == 0 else (P - x, y)


_BASE = _base_point()


def _order(point: Point) -> int:
    return next(n for n in (1, 2, 4, 8) if _mul(n, point) == _IDENTITY)


def _torsion_points() -> set[Point]:
    """The 8 points of order dividing 8, from an order-8 point found as L * (random point)."""
    y = 2
    while True:
        point = _point_with_y(y)
        y += 1
        if point is not None:
            torsion = _mul(L, point)
            if _order(torsion) == 8:
                return {_mul(k, torsion) for k in range(8)}


def _small_order_encodings() -> list[bytes]:
    """Every 32-byte string a lenient decoder maps to a small-order point (14 of them)."""
    encodings = set()
    for x, y in _torsion_points():
        ys = [y] + ([y + P] if y + P < 2**255 else [])  # non-canonical y >= p
        signs = [x & 1] + ([1] if x == 0 else [])  # "negative zero" x
        encodings |= {(yy | s << 255).to_bytes(32, "little") for yy in ys for s in signs}
    return sorted(encodings)


SMALL_ORDER = _small_order_encodings()


def test_small_order_list_is_complete() -> None:
    assert len(_torsion_points()) == 8
    assert len(SMALL_ORDER) == 14
    assert bytes(32) in SMALL_ORDER and b"\x01" + bytes(31) in SMALL_ORDER
    assert set(SMALL_ORDER) == paseto._SMALL_ORDER


@pytest.mark.parametrize("encoding", SMALL_ORDER, ids=lambda e: e.hex()[:8] + ".." + e.hex()[-4:])
def test_small_order_public_keys(encoding: bytes) -> None:
    """With a small-order key, R = identity, S = 0 verifies for 1 message in at most 8.

    OpenSSL (through cryptography) accepts such keys and signatures; PublicKey
    accepts the bytes (PASERK k4.public must serialize any 32 bytes, its vectors
    include the all-zero key) but verify() refuses every token for such a key.
    """
    key = PublicKey.from_bytes(encoding)
    raw = Ed25519PublicKey.from_public_bytes(encoding)
    forged_signature = b"\x01" + bytes(63)
    forged = None
    for attempt in range(200):
        message = b'{"sub":"forged","n":%d}' % attempt
        try:
            raw.verify(forged_signature, pae([HEADER, message, FOOTER, ASSERTION]))
        except InvalidSignature:
            continue
        forged = f"v4.public.{b64(message + forged_signature)}.{b64(FOOTER)}"
        break
    assert forged is not None, "the raw library refused every forgery: premise changed"
    assert refused(forged, key=key)
    assert refused(TOKEN, key=key)


def test_all_zero_public_key() -> None:
    key = PublicKey.from_paserk("k4.public.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
    assert key.raw == bytes(32)
    assert refused(f"v4.public.{b64(MESSAGE + bytes(64))}.{b64(FOOTER)}", key=key)
    identity_signature = b"\x01" + bytes(63)
    assert refused(f"v4.public.{b64(MESSAGE + identity_signature)}.{b64(FOOTER)}", key=key)


# --- binding: footer, implicit assertion, key -------------------------------------------


def test_footer_implicit_assertion_swap() -> None:
    token = sign(KEY, MESSAGE, footer=b"A", implicit_assertion=b"B")
    payload = token.split(".")[2]
    assert not refused(token, assertion=b"B")
    assert refused(f"v4.public.{payload}.{b64(b'B')}", assertion=b"A")
    assert refused(f"v4.public.{payload}", assertion=b"A")
    assert refused(f"v4.public.{payload}", assertion=b"B")
    assert refused(token, assertion=b"A")
    # The implicit assertion moved into the footer (and vice versa).
    plain = sign(KEY, MESSAGE, implicit_assertion=ASSERTION)
    assert refused(f"{plain}.{b64(ASSERTION)}", assertion=b"")
    footed = sign(KEY, MESSAGE, footer=ASSERTION)
    assert refused(footed.rsplit(".", 1)[0], assertion=ASSERTION)


def test_wrong_product_assertion() -> None:
    assert refused(TOKEN, assertion=b'{"product":"other"}')
    assert refused(TOKEN, assertion=b"")


def test_token_signed_by_a_different_key() -> None:
    other = SecretKey.generate()
    forged = sign(other, MESSAGE, footer=FOOTER, implicit_assertion=ASSERTION)
    assert untrusted_footer(forged) == FOOTER  # the kid claims our key...
    assert refused(forged)  # ...but only our key's signature counts
    assert refused(TOKEN, key=other.public_key)


def test_signature_transplant() -> None:
    """The signature of one token glued onto another message or footer."""
    other = sign(KEY, b'{"sub":"lic_2"}', footer=FOOTER, implicit_assertion=ASSERTION)
    signature = payload_of(other)[-64:]
    assert refused(f"v4.public.{b64(MESSAGE + signature)}.{b64(FOOTER)}")
    assert refused(f"v4.public.{b64(payload_of(TOKEN))}.{b64(FOOTER + b' ')}")
