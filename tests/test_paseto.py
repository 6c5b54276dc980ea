"""PASETO v4.public and PASERK k4 conformance and strictness tests for ``software_dna.wire.paseto``.

Official vectors: ``tests/vectors/paseto`` (paseto-standard/test-vectors, ISC).
Attack-named regression tests live in ``test_paseto_advisory.py``.
"""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from software_dna import errors
from software_dna.wire.errors import InvalidToken
from software_dna.wire.paseto import (
    MAX_TOKEN_LENGTH,
    InvalidKey,
    PublicKey,
    SecretKey,
    VerifiedToken,
    pae,
    sign,
    untrusted_footer,
    untrusted_message,
    verify,
)

VECTORS = Path(__file__).parent / "vectors" / "paseto"


def _load(name: str) -> list[dict[str, Any]]:
    document = json.loads((VECTORS / f"{name}.json").read_text("utf-8"))
    tests: list[dict[str, Any]] = document["tests"]
    return tests


V4_ALL = _load("v4")
# The vectors about v4.public: those carrying an Ed25519 key pair (4-S-*, and 4-F-1, a
# v4.local token offered with a public key) and any v4.public token (4-F-2, a token to
# be checked with a v4.local symmetric key). The rest are v4.local / v3.local vectors.
V4_PUBLIC = [t for t in V4_ALL if "public-key" in t or t["token"].startswith("v4.public.")]
V4_OTHER = [t for t in V4_ALL if t not in V4_PUBLIC]
PASERK = {kind: _load(kind) for kind in ("k4.public", "k4.secret", "k4.pid", "k4.sid")}
PASERK_ALL = [(kind, t) for kind, tests in PASERK.items() for t in tests]


def _ids(tests: list[dict[str, Any]]) -> list[str]:
    return [t["name"] for t in tests]


def test_vector_counts() -> None:
    """A missing or truncated vector file must not let the conformance tests pass silently."""
    assert len(V4_ALL) == 17
    assert _ids(V4_PUBLIC) == ["4-S-1", "4-S-2", "4-S-3", "4-F-1", "4-F-2"]
    assert len(V4_OTHER) == 12
    assert all(not t["token"].startswith("v4.public.") for t in V4_OTHER)
    counts = {kind: len(tests) for kind, tests in PASERK.items()}
    assert counts == {"k4.public": 4, "k4.secret": 5, "k4.pid": 5, "k4.sid": 4}
    fails = {kind: sum(t["expect-fail"] for t in tests) for kind, tests in PASERK.items()}
    assert fails == {"k4.public": 1, "k4.secret": 2, "k4.pid": 2, "k4.sid": 1}


# --- PASETO v4 vectors ---------------------------------------------------------------


def _vector_key(t: dict[str, Any]) -> PublicKey:
    return PublicKey.from_bytes(bytes.fromhex(t.get("public-key") or t["key"]))


@pytest.mark.parametrize("vector", V4_PUBLIC, ids=_ids(V4_PUBLIC))
def test_v4_public_vector(vector: dict[str, Any]) -> None:
    key = _vector_key(vector)
    token = vector["token"]
    assertion = vector["implicit-assertion"].encode()
    if vector["expect-fail"]:
        with pytest.raises(InvalidToken):
            verify(key, token, implicit_assertion=assertion)
        return
    result = verify(key, token, implicit_assertion=assertion)
    assert result == VerifiedToken(vector["payload"].encode(), vector["footer"].encode())
    assert untrusted_footer(token) == vector["footer"].encode()
    assert untrusted_message(token) == vector["payload"].encode()
    # Ed25519 is deterministic: signing with the vector's secret key reproduces the token.
    secret = SecretKey.from_bytes(bytes.fromhex(vector["secret-key"]))
    assert secret.to_bytes()[:32] == bytes.fromhex(vector["secret-key-seed"])
    assert secret.public_key == key
    again = sign(
        secret,
        vector["payload"].encode(),
        footer=vector["footer"].encode(),
        implicit_assertion=assertion,
    )
    assert again == token
    # The implicit assertion is part of the signature.
    with pytest.raises(InvalidToken):
        verify(key, token, implicit_assertion=assertion + b"x")


@pytest.mark.parametrize("vector", V4_OTHER, ids=_ids(V4_OTHER))
def test_v4_non_public_vector_is_refused(vector: dict[str, Any]) -> None:
    """v4.local (and v3.local) vectors are out of scope: their tokens are never accepted."""
    key = _vector_key(V4_PUBLIC[0])
    for function in (untrusted_footer, untrusted_message):
        with pytest.raises(InvalidToken):
            function(vector["token"])
    with pytest.raises(InvalidToken):
        verify(key, vector["token"], implicit_assertion=vector["implicit-assertion"].encode())


# --- PASERK vectors ----------------------------------------------------------------


def _paserk_load(kind: str, raw: bytes) -> str:
    """Load raw key bytes as the vector's kind and serialize them the vector's way."""
    if kind == "k4.public":
        return PublicKey.from_bytes(raw).to_paserk()
    if kind == "k4.pid":
        return PublicKey.from_bytes(raw).pid
    if kind == "k4.secret":
        return SecretKey.from_bytes(raw).to_paserk()
    return SecretKey.from_bytes(raw).sid


@pytest.mark.parametrize(("kind", "vector"), PASERK_ALL, ids=[t["name"] for _, t in PASERK_ALL])
def test_paserk_vector(kind: str, vector: dict[str, Any]) -> None:
    raw = bytes.fromhex(vector["key"])
    if vector["expect-fail"]:
        with pytest.raises(InvalidKey):
            _paserk_load(kind, raw)
        return
    assert _paserk_load(kind, raw) == vector["paserk"]
    if kind == "k4.public":
        assert PublicKey.from_paserk(vector["paserk"]).raw == raw
    elif kind == "k4.secret":
        key = SecretKey.from_paserk(vector["paserk"])
        assert key.to_bytes() == raw
        assert key.public_key.raw == bytes.fromhex(vector["public-key"])
        assert key.to_bytes()[:32] == bytes.fromhex(vector["secret-key-seed"])
    elif kind == "k4.sid":
        assert SecretKey.from_bytes(raw).to_bytes()[:32] == bytes.fromhex(vector["seed"])


@pytest.mark.parametrize(
    ("kind", "vector"),
    [(k, t) for k, t in PASERK_ALL if t["expect-fail"] and k in ("k4.public", "k4.secret")],
    ids=lambda v: v["name"] if isinstance(v, dict) else str(v),
)
def test_paserk_wrong_version_string_is_refused(kind: str, vector: dict[str, Any]) -> None:
    """The expect-fail keys, wrapped in a PASERK string of another version, are refused."""
    raw = bytes.fromhex(vector["key"])
    purpose = kind.split(".")[1]
    for version in ("k1", "k2", "k3", "k4"):
        text = f"{version}.{purpose}." + base64.urlsafe_b64encode(raw).decode().rstrip("=")
        with pytest.raises(InvalidKey):
            (PublicKey if purpose == "public" else SecretKey).from_paserk(text)


# --- PAE (PASETO "Common", "PAE Definition") ------------------------------------------


def test_pae_spec_examples() -> None:
    assert pae([]) == b"\x00" * 8
    assert pae([b""]) == b"\x01" + b"\x00" * 15
    assert pae([b"test"]) == b"\x01" + b"\x00" * 7 + b"\x04" + b"\x00" * 7 + b"test"
    lenient = (bytearray(b"a"), memoryview(b"bc"))
    assert pae(lenient) == pae([b"a", b"bc"])  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["test", b"test", bytearray(b"test"), ["test"], [1], [None]])
def test_pae_refuses_non_sequences_of_bytes(bad: Any) -> None:
    with pytest.raises(TypeError):
        pae(bad)


# --- keys ------------------------------------------------------------------------------

SEED = bytes(range(32))
KEY = SecretKey(Ed25519PrivateKey.from_private_bytes(SEED))
OTHER_KEY = SecretKey.generate()


def test_key_round_trips() -> None:
    assert SecretKey.from_bytes(KEY.to_bytes()) == KEY
    assert SecretKey.from_paserk(KEY.to_paserk()) == KEY
    assert KEY != OTHER_KEY
    assert len(KEY.to_bytes()) == 64
    public = KEY.public_key
    assert PublicKey.from_paserk(public.to_paserk()) == public
    assert PublicKey.from_bytes(bytearray(public.raw)) == public  # type: ignore[arg-type]
    assert hash(PublicKey.from_bytes(public.raw)) == hash(public)
    assert pickle.loads(pickle.dumps(public)) == public
    assert public.pid.startswith("k4.pid.") and len(public.pid) == 7 + 44
    assert public.pid is public.pid  # cached
    assert KEY.sid.startswith("k4.sid.") and len(KEY.sid) == 7 + 44
    assert KEY.sid is KEY.sid
    assert public.pid != OTHER_KEY.public_key.pid


def test_secret_key_repr_reveals_no_key_material() -> None:
    text = repr(KEY) + str(KEY)
    secret = KEY.to_bytes()
    for leak in (secret.hex(), secret[:32].hex(), KEY.to_paserk()[10:], repr(secret[:32])):
        assert leak not in text
    assert KEY.public_key.pid in text


def test_secret_key_public_half_must_match() -> None:
    raw = bytearray(KEY.to_bytes())
    raw[40] ^= 1
    with pytest.raises(InvalidKey):
        SecretKey.from_bytes(bytes(raw))
    text = "k4.secret." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(InvalidKey):
        SecretKey.from_paserk(text)


@pytest.mark.parametrize("bad", [b"", b"\x01" * 31, b"\x01" * 33, "0" * 32, None, 5])
def test_public_key_bad_bytes(bad: Any) -> None:
    with pytest.raises(InvalidKey):
        PublicKey.from_bytes(bad)


@pytest.mark.parametrize("bad", [b"", b"\x01" * 32, b"\x01" * 63, b"\x01" * 65, "x" * 64, None])
def test_secret_key_bad_bytes(bad: Any) -> None:
    with pytest.raises(InvalidKey):
        SecretKey.from_bytes(bad)


B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def flip_unused_bit(text: str) -> str:
    """Set the lowest unused trailing bit of unpadded base64url ``text`` (len % 4 in 2, 3).

    Lenient decoders ignore these bits, so the result decodes to the same bytes.
    """
    assert len(text) % 4 in (2, 3)
    last = B64URL_ALPHABET[B64URL_ALPHABET.index(text[-1]) ^ 1]
    changed = text[:-1] + last
    padded = "=" * (-len(text) % 4)
    assert base64.urlsafe_b64decode(changed + padded) == base64.urlsafe_b64decode(text + padded)
    return changed


def _bad_paserks(good: str) -> list[Any]:
    prefix, _, data = good.rpartition(".")
    return [
        "",
        None,
        good.encode(),
        prefix + ".",
        prefix + "." + data[:-1],
        prefix + "." + data + "A",
        prefix + "." + data + "=",
        " " + good,
        good + "\n",
        good.upper(),
        good.replace("k4.", "k3.", 1),
        good.replace("k4.", "k2.", 1),
        prefix + "." + data.replace(data[5], "+" if data[5] != "+" else "/"),
        prefix + ".." + data,
        good + "." + data,
        prefix + "." + flip_unused_bit(data),  # same key bytes, non-canonical text
    ]


@pytest.mark.parametrize("index", range(len(_bad_paserks(KEY.public_key.to_paserk()))))
def test_public_paserk_strict(index: int) -> None:
    good = KEY.public_key.to_paserk()
    bad = _bad_paserks(good)[index]
    if bad == good:  # pragma: no cover - the character swap was a no-op
        return
    with pytest.raises(InvalidKey):
        PublicKey.from_paserk(bad)


@pytest.mark.parametrize("index", range(len(_bad_paserks(KEY.to_paserk()))))
def test_secret_paserk_strict(index: int) -> None:
    good = KEY.to_paserk()
    bad = _bad_paserks(good)[index]
    if bad == good:  # pragma: no cover
        return
    with pytest.raises(InvalidKey):
        SecretKey.from_paserk(bad)


def test_paserk_of_the_wrong_type_is_refused() -> None:
    public = KEY.public_key
    for text in (KEY.to_paserk(), public.pid, KEY.sid, "k4.local." + public.to_paserk()[10:]):
        with pytest.raises(InvalidKey):
            PublicKey.from_paserk(text)
    for text in (public.to_paserk(), public.pid, KEY.sid):
        with pytest.raises(InvalidKey):
            SecretKey.from_paserk(text)


def test_invalid_key_is_a_value_error_and_invalid_token_a_license_error() -> None:
    assert issubclass(InvalidKey, ValueError)
    assert issubclass(errors.InvalidToken, errors.LicenseError)


# --- sign / verify ---------------------------------------------------------------------

MESSAGE = b'{"sub":"lic_1","exp":"2030-01-01T00:00:00Z"}'
FOOTER = b'{"kid":"k4.pid.x"}'
ASSERTION = b'{"product":"p"}'
TOKEN = sign(KEY, MESSAGE, footer=FOOTER, implicit_assertion=ASSERTION)


def test_round_trip_and_untrusted_accessors() -> None:
    result = verify(KEY.public_key, TOKEN, implicit_assertion=ASSERTION)
    assert result == VerifiedToken(message=MESSAGE, footer=FOOTER)
    assert untrusted_footer(TOKEN) == FOOTER
    assert untrusted_message(TOKEN) == MESSAGE
    assert TOKEN.count(".") == 3 and TOKEN.startswith("v4.public.")


def test_empty_footer_and_message() -> None:
    token = sign(KEY, b"")
    assert token.count(".") == 2
    assert verify(KEY.public_key, token) == VerifiedToken(b"", b"")
    assert untrusted_footer(token) == b""


def test_wrong_key_assertion_or_missing_assertion_fails() -> None:
    with pytest.raises(InvalidToken):
        verify(OTHER_KEY.public_key, TOKEN, implicit_assertion=ASSERTION)
    with pytest.raises(InvalidToken):
        verify(KEY.public_key, TOKEN)
    with pytest.raises(InvalidToken):
        verify(KEY.public_key, TOKEN, implicit_assertion=b'{"product":"q"}')


def test_invalid_token_message_is_the_opaque_default() -> None:
    with pytest.raises(InvalidToken) as caught:
        verify(OTHER_KEY.public_key, TOKEN, implicit_assertion=ASSERTION)
    assert str(caught.value) == str(InvalidToken())
    assert caught.value.__cause__ is None


@pytest.mark.parametrize("bad", [TOKEN.encode(), None, 5, [TOKEN], bytearray(TOKEN.encode())])
def test_non_str_token_is_invalid_token(bad: Any) -> None:
    for function in (untrusted_footer, untrusted_message):
        with pytest.raises(InvalidToken):
            function(bad)
    with pytest.raises(InvalidToken):
        verify(KEY.public_key, bad, implicit_assertion=ASSERTION)


def test_programming_errors_are_type_errors() -> None:
    with pytest.raises(TypeError):
        verify(KEY, TOKEN)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        verify(KEY.public_key, TOKEN, implicit_assertion="x")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(KEY.public_key, b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sign(KEY, "text")  # type: ignore[arg-type]


def test_length_limit() -> None:
    big = b"x" * (MAX_TOKEN_LENGTH * 3 // 4 - 100)
    assert len(sign(KEY, big)) <= MAX_TOKEN_LENGTH
    with pytest.raises(ValueError, match="longer"):
        sign(KEY, big + b"x" * 100)
    with pytest.raises(InvalidToken):
        verify(KEY.public_key, TOKEN + "A" * MAX_TOKEN_LENGTH, implicit_assertion=ASSERTION)


# --- every single-character change, truncation and extension is refused --------------

REPLACEMENTS = "AQgw_-.=+/ \n\x00é"


def _refused(token: str) -> bool:
    try:
        verify(KEY.public_key, token, implicit_assertion=ASSERTION)
    except InvalidToken:
        return True
    return False


@pytest.mark.parametrize("position", range(len(TOKEN)))
def test_every_single_character_change_is_refused(position: int) -> None:
    for char in REPLACEMENTS:
        if char != TOKEN[position]:
            mutated = TOKEN[:position] + char + TOKEN[position + 1 :]
            assert _refused(mutated), (position, char)
    # Insertion before this position and deletion of it, too.
    for char in REPLACEMENTS:
        assert _refused(TOKEN[:position] + char + TOKEN[position:]), (position, char)
    assert _refused(TOKEN[:position] + TOKEN[position + 1 :])


@pytest.mark.parametrize("length", range(len(TOKEN)))
def test_every_truncation_is_refused(length: int) -> None:
    assert _refused(TOKEN[:length])
    assert _refused(TOKEN[len(TOKEN) - length :])  # and every proper suffix


@pytest.mark.parametrize("suffix", [*REPLACEMENTS, "AA", "AAAA", ".", ".AAAA", "==", "\r\n"])
def test_every_extension_is_refused(suffix: str) -> None:
    assert _refused(TOKEN + suffix)
    assert _refused(suffix + TOKEN)


def _segments(token: str) -> tuple[bytes, bytes]:
    _, _, payload, footer = token.split(".")
    return (
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)),
        base64.urlsafe_b64decode(footer + "=" * (-len(footer) % 4)),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


PAYLOAD, FOOTER_BYTES = _segments(TOKEN)


@pytest.mark.parametrize("position", range(len(PAYLOAD) + len(FOOTER_BYTES)))
def test_every_decoded_byte_change_is_refused(position: int) -> None:
    """Flip bits in every byte of message || signature and of the footer, re-encoded canonically."""
    for mask in (0x01, 0x80, 0xFF):
        payload, footer = bytearray(PAYLOAD), bytearray(FOOTER_BYTES)
        if position < len(payload):
            payload[position] ^= mask
        else:
            footer[position - len(payload)] ^= mask
        assert _refused(f"v4.public.{_b64(bytes(payload))}.{_b64(bytes(footer))}")


# --- property test -----------------------------------------------------------------------

_CHANGES = "ABab09_-.= \n+/"


@settings(max_examples=150, deadline=None)
@given(
    message=st.binary(max_size=300),
    footer=st.binary(max_size=100),
    assertion=st.binary(max_size=100),
    data=st.data(),
)
def test_property_round_trip_and_mutation(
    message: bytes, footer: bytes, assertion: bytes, data: st.DataObject
) -> None:
    token = sign(KEY, message, footer=footer, implicit_assertion=assertion)
    assert verify(KEY.public_key, token, implicit_assertion=assertion) == VerifiedToken(
        message, footer
    )
    assert untrusted_footer(token) == footer
    assert untrusted_message(token) == message
    position = data.draw(st.integers(0, len(token) - 1), label="position")
    char = data.draw(st.sampled_from(_CHANGES).filter(lambda c: c != token[position]))
    mutated = token[:position] + char + token[position + 1 :]
    with pytest.raises(InvalidToken):
        verify(KEY.public_key, mutated, implicit_assertion=assertion)
    other = data.draw(st.binary(max_size=100).filter(lambda b: b != assertion), label="other")
    with pytest.raises(InvalidToken):
        verify(KEY.public_key, token, implicit_assertion=other)
