"""Component hashes: the slow per-product scrypt of algorithm 2, the HMAC of algorithm 1.

Algorithm 2 (``docs/fingerprint.md``, the identity contract)::

    scrypt(password=b"software_dna/component/v2\\0" + name + b"\\0" + value,
           salt=b"software_dna/product/v2\\0" + product,
           n=2**14, r=8, p=1, dklen=32)            -> unpadded base64url

The cost makes a MAC address, a small space (2**24 addresses behind one
manufacturer prefix), expensive to recover from its hash
(``bench/fingerprint_cost.py`` prints the figure). :func:`scrypt_cost_for_tests`
is the only way to change ``n``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "PRODUCTION_COST",
    "component_hash",
    "cost",
    "legacy_hash",
    "scrypt_cost_for_tests",
]

#: scrypt's CPU/memory cost ``n`` in production (16 MiB of memory per hash with r=8).
PRODUCTION_COST = 2**14
_R = 8
_P = 1
_MAXMEM = 64 * 1024 * 1024  # bytes; 128 * r * n = 16 MiB at the production cost

_PASSWORD_LABEL = b"software_dna/component/v2\0"
_SALT_LABEL = b"software_dna/product/v2\0"
_LEGACY_LABEL = b"software_dna/fingerprint/v1"

_cost = [PRODUCTION_COST]  # a cell: only scrypt_cost_for_tests changes it
_cost_lock = threading.Lock()


def b64(raw: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def cost() -> int:
    """The scrypt ``n`` in force (:data:`PRODUCTION_COST` outside tests)."""
    return _cost[0]


@contextmanager
def scrypt_cost_for_tests(n: int) -> Iterator[None]:
    """Hash with scrypt cost ``n`` inside the ``with`` block (tests and benchmarks only).

    Fingerprints computed at another cost match no real activation; the
    per-process and on-disk caches key entries by the cost, so nothing
    computed inside the block is served outside it. Not thread-safe against
    concurrent uses of this context manager (one test at a time sets it).

    Args:
        n: a power of two, 2 to 2**20.

    Raises:
        ValueError: ``n`` is not such a power of two.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 2 or n > 2**20 or n & (n - 1):
        raise ValueError("the scrypt cost must be a power of two from 2 to 2**20")
    with _cost_lock:
        previous, _cost[0] = _cost[0], n
    try:
        yield
    finally:
        with _cost_lock:
            _cost[0] = previous


def _scrypt(password: bytes, salt: bytes, n: int) -> bytes:
    """One scrypt call (the seam tests count calls through)."""
    return hashlib.scrypt(password, salt=salt, n=n, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)


def component_hash(product: str, name: str, value: str, n: int) -> str:
    """The algorithm-2 hash of one normalized component value (43 characters).

    Args:
        product: the product id (its UTF-8 bytes salt the hash).
        name: the component name (``machine_id``, ``mac``, ...).
        value: the normalized raw value (one MAC address for ``mac``).
        n: the scrypt cost (:func:`cost`).
    """
    password = _PASSWORD_LABEL + name.encode("ascii") + b"\0" + value.encode("utf-8")
    return b64(_scrypt(password, _SALT_LABEL + product.encode("utf-8"), n))


def legacy_hash(product: str, name: str, value: str) -> str:
    """The algorithm-1 hash (0.1 SDKs): HMAC-SHA256 under a per-product key, 43 characters."""
    key = hmac.new(_LEGACY_LABEL, product.encode("utf-8"), hashlib.sha256).digest()
    message = name.encode("ascii") + b"\0" + value.encode("utf-8")
    return b64(hmac.new(key, message, hashlib.sha256).digest())
