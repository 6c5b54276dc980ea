"""The machine key: a random key per product that this machine recovers after honest drift.

The store's key, the rollback witness's key and the user-seat installation
id all derive from one random 32-byte *machine key* ``K``. ``K`` is kept in a
small *keyring* file, wrapped so that exactly the readings the identity rules
call "the same machine" (:func:`software_dna.wire.identity.compare` at
:data:`~software_dna.wire.identity.MAX_TOLERANCE`) recover it:

* Each raw component value ``v`` of component ``c`` gives a *local secret*
  ``W(c, v) = scrypt(b"software_dna/machine-key/v1\\0" + c + b"\\0" + v,
  salt=b"software_dna/product/v2\\0" + product, n, r=8, p=1, dklen=32)``.
  It is not the component hash the SDK sends (another label), so nothing the
  server or a proxy sees opens the keyring, and it is as slow to guess as
  the component hash (a MAC address costs days of CPU per manufacturer prefix).
* ``K`` is wrapped (AES-256-GCM) once for every *choice* ``S`` of present
  components that leaves out at most ``MAX_TOLERANCE`` of the reading's
  components and holds an identifying one (machine id, SMBIOS UUID or a MAC
  address); a choice holding ``mac`` is wrapped once per address. The
  wrapping key of ``S`` is HKDF over the local secrets of its values.
  Recovering ``K`` therefore needs every value of some ``S``: all components
  but one, an identifying one among them -- the rule the server applies.
  This is a k-of-n threshold (k = n - 1) written as the list of its
  k-subsets: at most six choices, so no secret-sharing arithmetic is needed.
* Opening a wrap also requires the *current* reading to add no component
  unknown to the keyring beyond the tolerance (a component that appears
  counts as drift, as in the comparison).
* A *quick* wrap under an HMAC of the reading's non-MAC values (only when
  all are readable and one of them is a hardware id, 128 random bits the
  keyring does not hold) opens ``K`` at every ordinary start without scrypt.
  All non-MAC values equal means at most ``mac`` differs: the same machine.
* After every opening whose reading differs from the wrapped one, the
  keyring is wrapped again for the current reading, so drift spread over
  weeks never adds up to a lost store. The local secrets of known values
  are kept in the keyring sealed under ``K`` (``secrets``), so re-wrapping
  after a network card came or went hashes only the new address.

File (JSON, at most :data:`MAX_SIZE` bytes)::

    {"version": 1, "n": <scrypt cost>, "names": [component names, sorted],
     "present": [names with a value], "quick": <box> | null,
     "wraps": [{"names": [...], "box": <box>}, ...],
     "reading": <base64url HMAC(K_reading, canonical reading)>,
     "secrets": <box of {tag: base64url W}>}

``box`` = unpadded base64url of ``nonce (12) || AES-256-GCM ciphertext``;
every box's associated data is the keyring label, the product and the box's
role, so no box can be moved to another role or product.

This is a deterrent against copying the store to another machine, as the
single-identifier key before it was: someone with this machine's values (a
debugger on it) recovers ``K``. See ``docs/security.md``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from itertools import combinations
from typing import Any, TypeAlias, TypeGuard

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from software_dna.wire.identity import HARDWARE_IDS, IDENTIFYING, MAX_TOLERANCE

__all__ = [
    "FORMAT",
    "KEY_SIZE",
    "MAX_SIZE",
    "Reading",
    "Unwrapped",
    "open_keyring",
    "wrap_keyring",
]

#: The keyring format this module writes and reads.
FORMAT = 1
#: Bytes in a machine key.
KEY_SIZE = 32
#: Largest keyring read, in bytes (16 MAC addresses on Windows need about 14 KiB).
MAX_SIZE = 64 * 1024

#: One reading's raw values: name -> value, a sorted tuple of MAC addresses, or None.
Reading: TypeAlias = Mapping[str, "str | tuple[str, ...] | None"]

_SECRET_LABEL = b"software_dna/machine-key/v1\0"
_SALT_LABEL = b"software_dna/product/v2\0"
_QUICK_LABEL = b"software_dna/machine-key/quick/v1\0"
_BOX_LABEL = b"software_dna machine key v1\0"
_NONCE = 12
# scrypt at r=8 needs 128 * r * n bytes: 2**15 is 32 MiB, inside the 64 MiB allowed.
_MIN_COST, _MAX_COST = 2, 2**15


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: object) -> bytes | None:
    if not isinstance(text, str) or len(text) > MAX_SIZE:
        return None
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except ValueError:
        return None


def _hkdf(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_BOX_LABEL, info=info).derive(key)


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> str:
    nonce = os.urandom(_NONCE)
    return _b64(nonce + AESGCM(key).encrypt(nonce, plaintext, aad))


def _unseal(key: bytes, box: object, aad: bytes) -> bytes | None:
    raw = _unb64(box)
    if raw is None or len(raw) < _NONCE + 16:
        return None
    try:
        return AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], aad)
    except InvalidTag:
        return None


def _values(reading: Reading, name: str) -> tuple[str, ...]:
    """The raw values of one component: one for most, one per address for ``mac``."""
    item = reading.get(name)
    if item is None:
        return ()
    return item if isinstance(item, tuple) else (item,)


def local_secret(product: str, name: str, value: str, n: int) -> bytes:
    """``W(name, value)``: the slow per-product secret of one raw value (32 bytes)."""
    password = _SECRET_LABEL + name.encode("ascii") + b"\0" + value.encode("utf-8")
    return hashlib.scrypt(password, salt=_SALT_LABEL + product.encode("utf-8"), n=n, r=8, p=1,
                          maxmem=64 * 1024 * 1024, dklen=32)


def _canonical(reading: Reading, names: Iterable[str]) -> bytes:
    picked = {name: list(v) if isinstance(v := reading.get(name), tuple) else v
              for name in sorted(names)}
    return json.dumps(picked, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _quick_key(product: str, reading: Reading) -> bytes | None:
    """HMAC of the non-MAC values, or None when one is unreadable or none is a hardware id."""
    names = [name for name in reading if name != "mac"]
    if any(reading[name] is None for name in names) or not HARDWARE_IDS & set(names):
        return None
    return hmac.new(_QUICK_LABEL + product.encode("utf-8"), _canonical(reading, names),
                    hashlib.sha256).digest()


def _choices(names: Iterable[str], present: Iterable[str]) -> Iterator[tuple[str, ...]]:
    """Every choice of present components a wrap is made for (see the module docstring)."""
    names, present = sorted(names), sorted(present)
    for size in range(max(len(names) - MAX_TOLERANCE, 1), len(present) + 1):
        for choice in combinations(present, size):
            if IDENTIFYING & set(choice):
                yield choice


def _wrap_key(product: str, choice: tuple[str, ...], secrets: Mapping[str, bytes]) -> bytes:
    """HKDF over the local secrets of one value per component of ``choice``."""
    material = b"".join(name.encode("ascii") + b"\0" + secrets[name] for name in choice)
    info = b"wrap\0" + product.encode("utf-8") + b"\0" + ",".join(choice).encode("ascii")
    return _hkdf(material, info)


def _assignments(choice: tuple[str, ...], reading: Reading,
                 secret_of: Mapping[tuple[str, str], bytes]) -> Iterator[dict[str, bytes]]:
    """Each way of picking one value per component of ``choice`` (only ``mac`` has several)."""
    base = {name: secret_of[name, _values(reading, name)[0]] for name in choice if name != "mac"}
    if "mac" not in choice:
        yield base
        return
    for address in _values(reading, "mac"):
        yield {**base, "mac": secret_of["mac", address]}


def _aad(product: str, role: str) -> bytes:
    return _BOX_LABEL + product.encode("utf-8") + b"\0" + role.encode("ascii")


class Unwrapped:
    """What opening a keyring gave: the key and whether the keyring must be wrapped again.

    Attributes:
        key: the machine key (32 bytes).
        secrets: local secrets already known, ``(name, value) -> W`` (reused
            when wrapping again: only new values cost a scrypt).
        stale: the reading differs from the one the keyring was wrapped
            for (or the keyring was written at another scrypt cost).
    """

    __slots__ = ("key", "secrets", "stale")

    def __init__(self, key: bytes, secrets: dict[tuple[str, str], bytes], stale: bool) -> None:
        self.key = key
        self.secrets = secrets
        self.stale = stale


def _reading_tag(key: bytes, product: str, reading: Reading) -> str:
    mac_key = _hkdf(key, b"reading\0" + product.encode("utf-8"))
    return _b64(hmac.new(mac_key, _canonical(reading, reading), hashlib.sha256).digest())


def _secret_tag(key: bytes, name: str, value: str) -> str:
    return _b64(hmac.new(key, name.encode("ascii") + b"\0" + value.encode("utf-8"),
                         hashlib.sha256).digest())


def _known_secrets(key: bytes, product: str, doc: Mapping[str, Any],
                   reading: Reading) -> dict[tuple[str, str], bytes]:
    """The sealed local secrets of the current reading's values that the keyring holds."""
    box_key = _hkdf(key, b"secrets\0" + product.encode("utf-8"))
    plain = _unseal(box_key, doc.get("secrets"), _aad(product, "secrets"))
    try:
        table = json.loads(plain) if plain is not None else {}
    except ValueError:
        table = {}
    if not isinstance(table, dict):
        return {}
    tag_key = _hkdf(key, b"tags\0" + product.encode("utf-8"))
    found: dict[tuple[str, str], bytes] = {}
    for name in reading:
        for value in _values(reading, name):
            secret = _unb64(table.get(_secret_tag(tag_key, name, value)))
            if secret is not None and len(secret) == 32:
                found[name, value] = secret
    return found


def _parse(raw: bytes) -> dict[str, Any] | None:
    """The keyring document, or None when it is not one this module can use."""
    if len(raw) > MAX_SIZE:
        return None
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != FORMAT:
        return None
    n, names, present, wraps = doc.get("n"), doc.get("names"), doc.get("present"), doc.get("wraps")
    if (isinstance(n, bool) or not isinstance(n, int) or not _MIN_COST <= n <= _MAX_COST
            or n & (n - 1) or not _names(names) or not _names(present)
            or not set(present or ()) <= set(names or ()) or not isinstance(wraps, list)
            or not all(isinstance(w, dict) and _names(w.get("names")) for w in wraps)):
        return None
    return doc


def _names(value: object) -> TypeGuard[list[str]]:
    """A list of component names (short ASCII strings), as the keyring stores them."""
    return isinstance(value, list) and len(value) <= 16 and all(
        isinstance(x, str) and x.isascii() and 0 < len(x) <= 32 for x in value)


def open_keyring(raw: bytes, product: str, reading: Reading, n: int) -> Unwrapped | None:
    """Recover the machine key from a keyring file's bytes with the current reading.

    Args:
        raw: the keyring file's contents.
        product: the product id.
        reading: this machine's raw values now (every component name it
            reads; ``None`` for an unreadable one; ``mac`` a sorted tuple).
        n: the scrypt cost in force (a keyring written at another cost is
            opened at its own and reported stale).

    Returns:
        :class:`Unwrapped`, or None when this reading is not the machine the
        keyring was made for (or the file is not a keyring).
    """
    doc = _parse(raw)
    if doc is None:
        return None
    quick = _quick_key(product, reading)
    key = _unseal(quick, doc.get("quick"), _aad(product, "quick")) if quick is not None else None
    secrets: dict[tuple[str, str], bytes] = {}
    if key is None or len(key) != KEY_SIZE:
        opened = _open_slowly(doc, product, reading)
        if opened is None:
            return None
        key, secrets = opened
    known = _known_secrets(key, product, doc, reading)
    known.update(secrets)
    tag = _reading_tag(key, product, reading)
    stale = doc.get("n") != n or not hmac.compare_digest(str(doc.get("reading")), tag)
    return Unwrapped(key, known, stale)


def _open_slowly(doc: Mapping[str, Any], product: str,
                 reading: Reading) -> tuple[bytes, dict[tuple[str, str], bytes]] | None:
    """Try every wrap the current reading may open (one scrypt per current value)."""
    names, present = set(doc["names"]), set(doc["present"])
    union = names | set(reading)
    secret_of = {(name, value): local_secret(product, name, value, doc["n"])
                 for name in sorted(reading) for value in _values(reading, name)}
    for entry in doc["wraps"]:
        choice = entry.get("names") if isinstance(entry, dict) else None
        if (not isinstance(choice, list) or not choice or not set(choice) <= present
                or not all(_values(reading, name) for name in choice)):
            continue
        # The components outside the choice all count as differing (as in compare()).
        if len(union) - len(choice) > MAX_TOLERANCE:
            continue
        ordered = tuple(sorted(choice))
        for assignment in _assignments(ordered, reading, secret_of):
            wrap_key = _wrap_key(product, ordered, assignment)
            key = _unseal(wrap_key, entry.get("box"), _aad(product, "wrap"))
            if key is not None and len(key) == KEY_SIZE:
                return key, secret_of
    return None


def wrap_keyring(key: bytes, product: str, reading: Reading, n: int,
                 known: Mapping[tuple[str, str], bytes] | None = None) -> bytes:
    """The keyring file for ``key`` on a machine that reads ``reading``.

    Args:
        key: the machine key (32 bytes).
        product: the product id.
        reading: this machine's raw values (see :func:`open_keyring`).
        n: the scrypt cost to derive local secrets with.
        known: local secrets already computed at cost ``n`` (only missing
            ones are computed).

    Returns:
        The file's bytes (UTF-8 JSON).

    Raises:
        ValueError: ``key`` is not 32 bytes.
    """
    if len(key) != KEY_SIZE:
        raise ValueError("a machine key is 32 bytes")
    secrets = dict(known or {})
    for name in sorted(reading):
        for value in _values(reading, name):
            if (name, value) not in secrets:
                secrets[name, value] = local_secret(product, name, value, n)
    names = sorted(reading)
    present = sorted(name for name in names if _values(reading, name))
    wraps: list[dict[str, Any]] = []
    for choice in _choices(names, present):
        for assignment in _assignments(choice, reading, secrets):
            box = _seal(_wrap_key(product, choice, assignment), key, _aad(product, "wrap"))
            wraps.append({"names": list(choice), "box": box})
    quick = _quick_key(product, reading)
    tag_key = _hkdf(key, b"tags\0" + product.encode("utf-8"))
    table = {_secret_tag(tag_key, name, value): _b64(secret)
             for (name, value), secret in secrets.items() if value in _values(reading, name)}
    doc = {
        "version": FORMAT, "n": n, "names": names, "present": present,
        "quick": _seal(quick, key, _aad(product, "quick")) if quick is not None else None,
        "wraps": wraps,
        "reading": _reading_tag(key, product, reading),
        "secrets": _seal(_hkdf(key, b"secrets\0" + product.encode("utf-8")),
                         json.dumps(table, sort_keys=True).encode("ascii"),
                         _aad(product, "secrets")),
    }
    return json.dumps(doc, separators=(",", ":")).encode("ascii")
