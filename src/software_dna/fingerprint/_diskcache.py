"""The on-disk cache of component hashes, so that scrypt runs once per machine.

One JSON file in the directory the caller gives::

    {"version": 2, "entries": {tag: hash, ...}}

``tag = base64url(HMAC-SHA256(key, name + "\\0" + raw value))`` with ``key``
derived from :func:`~software_dna.fingerprint.machine_secret` (from the
machine id: 128 random bits the file does not hold) and the scrypt cost.
Someone holding only the file must guess the key before a tag tells them
anything, so a MAC address is no cheaper to recover from the file than from
its scrypt hash. The caller uses the cache only when that key rests on the
machine id (a key derived from a MAC address or a host name could be
guessed).

The file is written atomically (temporary file + ``os.replace``), holds at
most :data:`MAX_ENTRIES` entries (the oldest are dropped), and a corrupt or
foreign file is ignored and rewritten. Every I/O error is swallowed: the
cache only saves time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from software_dna.fingerprint._hashing import b64

__all__ = ["FILE_NAME", "MAX_ENTRIES", "DiskCache"]

FILE_NAME = "fingerprint-v2.json"
#: Entries kept: a machine's components for a few products and costs.
MAX_ENTRIES = 256
_MAX_BYTES = 128 * 1024
_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")
_LABEL = b"software_dna/fingerprint-cache/v2\0"


class DiskCache:
    """Component hashes of one product at one scrypt cost, in ``directory``.

    Args:
        directory: an existing directory the process may write to.
        secret: :func:`machine_secret` of the product (32 bytes).
        n: the scrypt cost the hashes were computed with.
    """

    def __init__(self, directory: Path, secret: bytes, n: int) -> None:
        self.path = Path(directory) / FILE_NAME
        self._key = hmac.new(secret, _LABEL + str(n).encode("ascii"), hashlib.sha256).digest()

    def tag(self, name: str, value: str) -> str:
        """The entry key of one raw value (reveals nothing without the machine secret)."""
        message = name.encode("ascii") + b"\0" + value.encode("utf-8")
        return b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def load(self) -> dict[str, str]:
        """Every well-formed entry of the file; ``{}`` when it is absent or corrupt."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(_MAX_BYTES + 1)
        except OSError:
            return {}
        if len(raw) > _MAX_BYTES:
            return {}
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeError):
            return {}
        entries = doc.get("entries") if isinstance(doc, dict) and doc.get("version") == 2 else None
        if not isinstance(entries, dict):
            return {}
        return {k: v for k, v in entries.items()
                if isinstance(k, str) and isinstance(v, str)
                and _VALUE.fullmatch(k) and _VALUE.fullmatch(v)}

    def save(self, existing: Mapping[str, str], new: Mapping[str, str]) -> None:
        """Write ``existing`` plus ``new`` (newest last, at most :data:`MAX_ENTRIES`)."""
        merged = {k: v for k, v in existing.items() if k not in new}
        merged.update(new)
        kept = dict(list(merged.items())[-MAX_ENTRIES:])
        data = json.dumps({"version": 2, "entries": kept}, separators=(",", ":")).encode()
        try:
            fd, temp = tempfile.mkstemp(prefix=".fingerprint-", dir=self.path.parent)
        except OSError:
            return
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temp)
