"""Attacks on license tokens, through the whole offline check (store -> check()).

tests/test_paseto_advisory.py attacks the PASETO layer alone; here every
crafted token is put in the end user's store and ``LicenseClient.check()``
must refuse it with a LicenseError (never a license, never another exception).
The mutation run checks the property that matters: no input makes check()
return a license unless it is exactly a token signed by a trusted key for this
product and machine.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from software_dna import (
    ClockTampered,
    InvalidToken,
    License,
    LicenseError,
    LicenseExpired,
    WrongMachine,
    WrongProduct,
)
from software_dna.license import verify_token
from software_dna.wire.claims import Mode, sign_receipt
from software_dna.wire.paseto import PublicKey, SecretKey
from tests.security._family import Scale, Tally
from tests.security._tokenlab import OTHER_PRODUCT, PRODUCT, Lab, b64, days, mutants, unb64


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    bench = Lab(tmp_path)
    yield bench
    bench.close()


def refused(result: License | LicenseError, kind: type[LicenseError] = InvalidToken) -> bool:
    return isinstance(result, kind)


def test_control_the_genuine_token_is_accepted(lab: Lab) -> None:
    result = lab.check_stored(lab.valid)
    assert isinstance(result, License) and result.features == {"pro"}


# --------------------------------------------------------------------------- algorithm confusion


def _jwt(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    head = b64(json.dumps(header).encode())
    body = b64(json.dumps(claims).encode())
    signature = b"" if secret is None else hmac.new(
        secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(signature)}"


def _public_key_forms(key: SecretKey) -> dict[str, bytes]:
    public = key.public_key
    raw = public.raw
    crypto = Ed25519PublicKey.from_public_bytes(raw)
    return {
        "raw": raw,
        "pem": crypto.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo),
        "openssh": crypto.public_bytes(serialization.Encoding.OpenSSH,
                                       serialization.PublicFormat.OpenSSH),
        "base64": base64.b64encode(raw),
        "paserk": public.to_paserk().encode(),
    }


def test_jwt_alg_none(lab: Lab) -> None:
    token = _jwt({"alg": "none", "typ": "JWT"}, lab.genuine_claims(), None)
    assert refused(lab.check_stored(token))


@pytest.mark.parametrize("form", ["raw", "pem", "openssh", "base64", "paserk"])
def test_jwt_hs256_keyed_with_the_public_key(lab: Lab, form: str) -> None:
    secret = _public_key_forms(lab.key)[form]
    token = _jwt({"alg": "HS256", "typ": "JWT", "kid": lab.key.public_key.pid},
                 lab.genuine_claims(features=["pro", "everything"]), secret)
    assert refused(lab.check_stored(token))


@pytest.mark.parametrize("form", ["raw", "pem", "openssh", "base64", "paserk"])
def test_v4_public_shaped_hmac_keyed_with_the_public_key(lab: Lab, form: str) -> None:
    secret = _public_key_forms(lab.key)[form]
    message = json.dumps(lab.genuine_claims()).encode()
    mac = hmac.new(secret, b"v4.public." + message, hashlib.sha512).digest()
    footer = lab.valid.split(".")[3]
    assert refused(lab.check_stored(f"v4.public.{b64(message + mac)}.{footer}"))


@pytest.mark.parametrize("header", ["v4.local.", "v2.public.", "v3.public.", "v1.local."])
def test_other_paseto_versions_and_purposes(lab: Lab, header: str) -> None:
    assert refused(lab.check_stored(header + lab.valid[len("v4.public."):]))


def test_footer_names_a_trusted_kid_but_another_key_signed(lab: Lab) -> None:
    token = lab.sign_claims(lab.genuine_claims(features=["pro", "everything"]),
                            key=SecretKey.generate())
    assert refused(lab.check_stored(token))


# --------------------------------------------------------------------------- encodings


@pytest.mark.parametrize("junk", ["=", "==", " ", "\n", "\t", "\x00", "\u200b", "é", "+", "/"])
def test_padding_whitespace_and_junk_characters(lab: Lab, junk: str) -> None:
    for position in (len("v4.public."), len(lab.valid) // 2, len(lab.valid)):
        mutant = lab.valid[:position] + junk + lab.valid[position:]
        assert refused(lab.check_stored(mutant)), (junk, position)


def test_changed_unused_bits(lab: Lab) -> None:
    # Find a genuine token whose last payload character has spare bits, then set them.
    for size in range(1, 4):  # the payload's length decides whether bits are left over
        token = lab.token(features=("p" * size,))
        segment = token.split(".")[2]
        if len(segment) % 4 in (2, 3):
            break
    assert len(segment) % 4 in (2, 3)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(segment[-1])
    spare = 0b001111 if len(segment) % 4 == 2 else 0b000011
    variant = alphabet[last ^ spare]
    assert unb64(segment[:-1] + variant) == unb64(segment)  # lenient decoders agree ...
    assert refused(lab.check_stored(token.replace(segment, segment[:-1] + variant)))  # ... we don't


def test_duplicate_json_keys_signed_by_the_trusted_key(lab: Lab) -> None:
    claims = json.dumps(lab.genuine_claims())
    doubled = claims[:-1] + ', "features": ["pro", "everything"]}'
    assert refused(lab.check_stored(lab.sign_claims({}, raw=doubled.encode())))
    footer = b'{"kid":"%s","kid":"%s"}' % ((lab.key.public_key.pid.encode(),) * 2)
    assert refused(lab.check_stored(lab.sign_claims(lab.genuine_claims(), footer=footer)))


def test_s_plus_l_signature(lab: Lab) -> None:
    order = 2**252 + 27742317777372353535851937790883648493
    raw = unb64(lab.valid.split(".")[2])
    s = int.from_bytes(raw[-32:], "little") + order
    if s >= 2**256:
        pytest.skip("S + L does not fit 32 bytes for this signature")
    parts = lab.valid.split(".")
    parts[2] = b64(raw[:-32] + s.to_bytes(32, "little"))
    assert refused(lab.check_stored(".".join(parts)))


def test_65_byte_signature(lab: Lab) -> None:
    parts = lab.valid.split(".")
    parts[2] = b64(unb64(parts[2]) + b"\x00")
    assert refused(lab.check_stored(".".join(parts)))


@pytest.mark.parametrize("encoding", [bytes(32), b"\x01" + bytes(31),
                                      bytes(31) + b"\x80", b"\xec" + b"\xff" * 30 + b"\x7f"])
def test_small_order_and_all_zero_public_keys(tmp_path: Path, encoding: bytes) -> None:
    """A trusted key of small order would let anyone sign: R = identity, S = 0."""
    weak = PublicKey.from_bytes(encoding)
    lab = Lab(tmp_path)
    try:
        client = lab.make_client(public_keys=[weak.to_paserk()])
        claims = lab.genuine_claims(features=["everything"])
        message = json.dumps(claims).encode()
        footer = json.dumps({"kid": weak.pid}, separators=(",", ":")).encode()
        identity = b"\x01" + bytes(31)
        forged = f"v4.public.{b64(message + identity + bytes(32))}.{b64(footer)}"
        client._state.store.write({"token": forged})
        with pytest.raises(InvalidToken):
            client.check()
    finally:
        lab.close()


# --------------------------------------------------------------------------- binding


def test_token_for_another_product(lab: Lab) -> None:
    assert refused(lab.check_stored(lab.token(product=OTHER_PRODUCT)), WrongProduct)


def test_token_for_another_machine(lab: Lab) -> None:
    other = {name: ["B" * 43] if name == "mac" else "B" * 43 for name in lab.fp.components}
    assert refused(lab.check_stored(lab.token(components=other)), WrongMachine)


def test_receipt_in_place_of_a_license(lab: Lab) -> None:
    receipt = sign_receipt(lab.key, product=PRODUCT, activation_id="act_1", result="ok",
                           nonce="n" * 16, server_time=datetime.now(timezone.utc))
    assert refused(lab.check_stored(receipt))


# --------------------------------------------------------------------------- time

TIME_ZONES = ["UTC", "Asia/Kolkata", "America/Los_Angeles", "Pacific/Kiritimati"]


@pytest.fixture(params=TIME_ZONES)
def local_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is Unix-only")
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def _times() -> list[tuple[str, str, type[LicenseError] | None]]:
    """(exp text, description, expected error or None for valid)."""
    now = datetime.now(timezone.utc)
    future, past = now + days(3), now - days(3)
    return [
        (future.strftime("%Y-%m-%dT%H:%M:%SZ"), "future, Z", None),
        (future.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
         "future, +05:30", None),
        (future.astimezone(timezone(timedelta(hours=-10))).isoformat(), "future, -10:00", None),
        (future.strftime("%Y-%m-%dT%H:%M:%S"), "future, naive", InvalidToken),
        (past.strftime("%Y-%m-%dT%H:%M:%SZ"), "past, Z", LicenseExpired),
        (past.astimezone(timezone(timedelta(hours=14))).isoformat(), "past, +14:00",
         LicenseExpired),
        (past.strftime("%Y-%m-%dT%H:%M:%S"), "past, naive", InvalidToken),
        ("9999-12-31T23:59:59Z", "far future", None),
        ("9999-12-31T23:59:59-23:59", "beyond year 9999 in UTC", InvalidToken),
        ("0001-01-01T00:00:00+23:59", "before year 1 in UTC", InvalidToken),
        ("1970-01-01T00:00:00Z", "epoch", LicenseExpired),
        (future.strftime("%Y-%m-%dT23:59:60Z"), "leap second, future", None),
        ("2016-12-31T23:59:60Z", "leap second, past", LicenseExpired),
        (future.strftime("%Y-%m-%dT%H:%M:%S.123456789Z"), "nanoseconds", None),
        (future.strftime("%Y-%m-%dT%H:%M:%S+24:00"), "offset out of range", InvalidToken),
        ("2030-02-30T00:00:00Z", "impossible date", InvalidToken),
        (str(int(future.timestamp())), "unix number as text", InvalidToken),
    ]


@pytest.mark.parametrize("index", range(len(_times())))
def test_expiry_times_in_every_time_zone(lab: Lab, local_tz: str, index: int) -> None:
    text, what, expected = _times()[index]
    now = datetime.now(timezone.utc)
    for claim in ("exp", "license_expires_at"):
        claims = lab.genuine_claims(iat=(now - days(1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    nbf=(now - days(1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                                    refresh_by=None, **{claim: text})
        result = lab.check_stored(lab.sign_claims(claims))
        if expected is None:
            assert isinstance(result, License), (what, claim, result)
        else:
            assert isinstance(result, expected), (what, claim, result)


def test_exp_as_a_number_or_object(lab: Lab) -> None:
    for value in (1e300, -1, 2**70, {"$date": 1}, ["2030-01-01T00:00:00Z"], True):
        assert refused(lab.check_stored(lab.sign_claims(lab.genuine_claims(exp=value))))


def test_nbf_far_in_the_future_is_a_clock_problem(lab: Lab) -> None:
    claims = lab.genuine_claims(nbf=(datetime.now(timezone.utc) + days(2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"))
    assert refused(lab.check_stored(lab.sign_claims(claims)), ClockTampered)


# --------------------------------------------------------------------------- properties


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=400), st.binary(max_size=200), st.integers(), st.none(),
                 st.lists(st.text(max_size=5), max_size=3),
                 st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)))
def test_any_value_verifies_only_as_a_license_error(value: object) -> None:
    keys = {LAB_KEY.public_key.pid: LAB_KEY.public_key}
    with pytest.raises(LicenseError):
        verify_token(value, keys, PRODUCT)


LAB_KEY = SecretKey.generate()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["sub", "aud", "iat", "nbf", "exp", "mode", "features",
                                        "fingerprint", "tolerance", "protection", "jti",
                                        "license_expires_at", "refresh_by", "activation_id"]),
                       st.one_of(st.none(), st.integers(), st.text(max_size=30), st.booleans(),
                                 st.lists(st.integers(), max_size=2)), max_size=4))
def test_signed_claims_of_any_shape_never_crash_check(lab: Lab, changes: dict[str, Any]) -> None:
    """Even the trusted key signing nonsense claims gives a License or a LicenseError."""
    claims = lab.genuine_claims()
    claims.update(changes)
    result = lab.check_stored(lab.sign_claims(claims))
    if isinstance(result, License):
        assert result.product == PRODUCT and result.mode in (Mode.FULL, Mode.LIMITED)


# --------------------------------------------------------------------------- the family


def family(scale: Scale) -> Tally:
    """Mutated tokens (>= 100,000 in the long run) and crafted attacks, through verify + check.

    Every mutant goes through ``verify_token`` (only the byte-identical
    genuine tokens may verify); every 50th (every one in the short run) also
    through the store and ``check()``.
    """
    tally = Tally("token attacks")
    lab = Lab()
    try:
        keys = {lab.key.public_key.pid: lab.key.public_key}
        other = lab.token()
        count = scale.pick(600, 100_000)
        every = scale.pick(1, 50)
        seed = int.from_bytes(os.urandom(4), "little")
        for i, (how, mutant) in enumerate(mutants(lab.valid, other, count, seed)):
            what = how
            identical = mutant in (lab.valid, other)  # the only genuine tokens
            try:
                verify_token(mutant, keys, PRODUCT)
                ok = identical
            except LicenseError:
                ok = not identical
            except Exception as exc:  # the property: nothing but LicenseError
                ok = False
                what += f" raised {type(exc).__name__}"
            if ok and i % every == 0:
                result = lab.check_stored(mutant)
                ok = isinstance(result, License) == identical
            tally.check(ok, f"seed {seed} case {i}: {what}: {mutant[:60]!r}")
    finally:
        lab.close()
    return tally


def test_family_short_run() -> None:
    family(Scale.SHORT).assert_clean()
