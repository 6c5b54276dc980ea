"""A bench for token attacks: a trusted key, a client on a temporary store, and mutators."""

from __future__ import annotations

import base64
import json
import random
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from software_dna import License, LicenseClient, LicenseError
from software_dna.fingerprint import Fingerprint, collect
from software_dna.wire.claims import implicit_assertion
from software_dna.wire.paseto import SecretKey, sign
from tests.tokens import make_token

PRODUCT = "sec-tokens"
OTHER_PRODUCT = "sec-other"


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    """Decode unpadded base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Lab:
    """One trusted key, this machine's fingerprint and a client on a private store.

    Args:
        folder: where the store lives (default: a new temporary folder).
        now: the client's fixed clock (aware UTC); default the real time.
    """

    def __init__(self, folder: Path | None = None, *, now: datetime | None = None) -> None:
        self.folder = folder or Path(tempfile.mkdtemp(prefix="sdna-tokenlab-"))
        self.key = SecretKey.generate()
        self.fp: Fingerprint = collect(PRODUCT)
        self.now = now
        self.client = self.make_client()
        self.valid = self.token()

    def make_client(self, **kwargs: Any) -> LicenseClient:
        """A client trusting only :attr:`key` (keyword arguments override)."""
        args: dict[str, Any] = {
            "product": PRODUCT, "public_keys": [self.key.public_key.to_paserk()],
            "store_path": self.folder, "clock": self.clock,
        }
        args.update(kwargs)
        return LicenseClient(**args)

    def clock(self) -> datetime:
        """The lab's time."""
        return self.now or datetime.now(timezone.utc)

    def token(self, **kwargs: Any) -> str:
        """A genuine token for this product and machine (tests.tokens.make_token)."""
        return make_token(self.key, kwargs.pop("product", PRODUCT), self.fp, **kwargs)

    def sign_claims(self, claims: Mapping[str, Any], *, key: SecretKey | None = None,
                    footer: bytes | None = None, product: str = PRODUCT,
                    raw: bytes | None = None) -> str:
        """Sign arbitrary claims (or ``raw`` payload bytes) with the trusted key (or ``key``)."""
        signer = key or self.key
        message = raw if raw is not None else json.dumps(claims).encode()
        kid_footer = footer if footer is not None else json.dumps(
            {"kid": self.key.public_key.pid}, separators=(",", ":")).encode()
        return sign(signer, message, footer=kid_footer,
                    implicit_assertion=implicit_assertion(product))

    def genuine_claims(self, **changes: Any) -> dict[str, Any]:
        """The claims of a genuine token, with ``changes`` applied (None deletes)."""
        claims: dict[str, Any] = json.loads(unb64(self.valid.split(".")[2])[:-64])
        for name, value in changes.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def check_stored(self, token: object) -> License | LicenseError:
        """Put ``token`` in the store as if an attacker wrote it, then ``check()``.

        Returns the license or the LicenseError; anything else propagates.
        """
        self.client._state.store.write({"token": token})
        try:
            return self.client.check()
        except LicenseError as exc:
            return exc

    def close(self) -> None:
        """Close the client."""
        self.client.close()


# --------------------------------------------------------------------------- mutators

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_JUNK = [" ", "\t", "\n", "=", "==", ".", "+", "/", "\x00", "é", "\u200b", "ａ", "%", "*", "\\"]


def _payload_bytes_flip(token: str, rng: random.Random) -> str:
    parts = token.split(".")
    try:
        raw = bytearray(unb64(parts[2]))
    except (IndexError, ValueError):
        return token + "A"
    if not raw:
        return token + "A"
    raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    parts[2] = b64(bytes(raw))
    return ".".join(parts)


def _footer_edit(token: str, rng: random.Random) -> str:
    parts = token.split(".")
    try:
        footer = unb64(parts[3]) if len(parts) > 3 else b""
    except ValueError:
        footer = b"{}"
    choice = rng.randrange(4)
    if choice == 0:
        footer = footer.replace(b"k4.pid.", b"k4.pid.A", 1)
    elif choice == 1:
        footer = b'{"kid":"' + footer[8:-2] + b'","alg":"none"}'
    elif choice == 2:
        footer = footer + b" "
    else:
        footer = b""
    parts = parts[:3] + ([b64(footer)] if footer else [])
    return ".".join(parts)


def _char_sub(token: str, rng: random.Random) -> str:
    i = rng.randrange(max(1, len(token)))
    return token[:i] + rng.choice(_ALPHABET + "".join(_JUNK)) + token[i + 1:]


def _insert(token: str, rng: random.Random) -> str:
    i = rng.randrange(len(token) + 1)
    return token[:i] + rng.choice(_JUNK + list(_ALPHABET)) + token[i:]


def _delete(token: str, rng: random.Random) -> str:
    i = rng.randrange(max(1, len(token)))
    return token[:i] + token[i + 1:]


def _truncate(token: str, rng: random.Random) -> str:
    return token[: rng.randrange(max(1, len(token)))]


def _header(token: str, rng: random.Random) -> str:
    heads = ["v4.local.", "v2.public.", "v3.public.", "v1.public.", "V4.public.", "v4.Public.",
             "v4.public..", "v4.", "v5.public.", "v4public.", ".v4.public."]
    return rng.choice(heads) + token[len("v4.public."):]


def _splice(token: str, rng: random.Random, other: str) -> str:
    a, b = token.split("."), other.split(".")
    if min(len(a), len(b)) < 3:
        return token + other
    i = rng.randrange(2, min(len(a), len(b)))
    a[i] = b[i]
    return ".".join(a)


def _unused_bits(token: str, rng: random.Random) -> str:
    parts = token.split(".")
    segment = parts[2] if len(parts) > 2 else ""
    if not segment or segment[-1] not in _ALPHABET:
        return token[::-1]
    last = _ALPHABET.index(segment[-1])
    used = {2: 0b110000, 3: 0b111100}.get(len(segment) % 4, 0b111111)
    spare = [c for i, c in enumerate(_ALPHABET) if i & used == last & used and i != last]
    if spare:
        parts[2] = segment[:-1] + rng.choice(spare)
    return ".".join(parts)


MUTATORS = {
    "payload bit flip": _payload_bytes_flip,
    "footer edit": _footer_edit,
    "character substituted": _char_sub,
    "character inserted": _insert,
    "character deleted": _delete,
    "truncated": _truncate,
    "header changed": _header,
    "changed unused bits": _unused_bits,
}


def mutants(token: str, other: str, count: int, seed: int) -> Iterator[tuple[str, str]]:
    """``count`` mutants of ``token``: ``(what was done, mutant)``; ``other`` is for splicing."""
    rng = random.Random(seed)
    names = [*MUTATORS, "spliced with another token", "stacked mutations"]
    for _ in range(count):
        name = rng.choice(names)
        if name == "spliced with another token":
            yield name, _splice(token, rng, other)
        elif name == "stacked mutations":
            mutant = token
            for _ in range(rng.randint(2, 5)):
                mutant = rng.choice(list(MUTATORS.values()))(mutant, rng) or token
            yield name, mutant
        else:
            yield name, MUTATORS[name](token, rng)


def days(n: float) -> timedelta:
    """``n`` days."""
    return timedelta(days=n)
