"""The on-disk cache of component hashes, so that scrypt runs once per machine.

One JSON file per product (and scrypt cost) in the directory the caller
gives, ``fingerprint-v2-<16 characters of HMAC(key, "file")>.json``::

    {"version": 2, "entries": {tag: hash + "." + seal, ...}}

``tag = base64url(HMAC-SHA256(key, name + "\\0" + raw value))`` and
``seal = base64url(HMAC-SHA256(key, "seal\\0" + tag + hash))`` with ``key``
derived from :func:`~software_dna.fingerprint.machine_secret` (from the
machine id: 128 random bits the file does not hold) and the scrypt cost.
The seal makes an entry count only for the tag it was written for: moving
another machine's hashes under this machine's tags (to pass for it) needs
the key, which takes the SDK's own derivation, as patching it would.
Someone holding only the file must guess the key before a tag tells them
anything, so a MAC address is no cheaper to recover from the file than from
its scrypt hash. The caller uses the cache only when that key rests on the
machine id (a key derived from a MAC address or a host name could be
guessed).

The file is written atomically (:func:`software_dna.files.write_atomically`: a new temporary
file, mode 0600, fsync, then ``os.replace``), holds at
most :data:`MAX_ENTRIES` entries (the oldest are dropped), and a corrupt or
foreign file is ignored and rewritten. Every I/O error is swallowed: the
cache only saves time.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from pathlib import Path

from software_dna.files import read_limited, write_atomically
from software_dna.fingerprint._hashing import b64

__all__ = ["FILE_PATTERN", "MAX_ENTRIES", "DiskCache"]

#: The cache files' names (glob pattern).
FILE_PATTERN = "fingerprint-v2-*.json"
#: Entries kept per file: a machine's components (a few MACs come and go).
MAX_ENTRIES = 64
_MAX_BYTES = 128 * 1024
_TAG = re.compile(r"[A-Za-z0-9_-]{43}")
_ENTRY = re.compile(r"([A-Za-z0-9_-]{43})\.([A-Za-z0-9_-]{43})")
_LABEL = b"software_dna/fingerprint-cache/v2\0"


class DiskCache:
    """Component hashes of one product at one scrypt cost, in ``directory``.

    Args:
        directory: an existing directory the process may write to.
        secret: :func:`machine_secret` of the product (32 bytes).
        n: the scrypt cost the hashes were computed with.
    """

    def __init__(self, directory: Path, secret: bytes, n: int) -> None:
        self._key = hmac.new(secret, _LABEL + str(n).encode("ascii"), hashlib.sha256).digest()
        name = b64(hmac.new(self._key, b"file", hashlib.sha256).digest())[:16]
        self.path = Path(directory) / f"fingerprint-v2-{name}.json"

    def tag(self, name: str, value: str) -> str:
        """The entry key of one raw value (reveals nothing without the machine secret)."""
        message = name.encode("ascii") + b"\0" + value.encode("utf-8")
        return b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def _seal(self, tag: str, value: str) -> str:
        message = b"seal\0" + tag.encode("ascii") + value.encode("ascii")
        return b64(hmac.new(self._key, message, hashlib.sha256).digest())

    def load(self) -> dict[str, str]:
        """tag -> hash of every well-formed, correctly sealed entry; ``{}`` when the
        file is absent or corrupt."""
        try:
            raw = read_limited(self.path, _MAX_BYTES)  # never blocks on a FIFO
        except OSError:
            return {}
        if raw is None or len(raw) > _MAX_BYTES:
            return {}
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeError):
            return {}
        entries = doc.get("entries") if isinstance(doc, dict) and doc.get("version") == 2 else None
        if not isinstance(entries, dict):
            return {}
        found: dict[str, str] = {}
        for tag, entry in entries.items():
            match = _ENTRY.fullmatch(entry) if isinstance(entry, str) else None
            if (match is not None and isinstance(tag, str) and _TAG.fullmatch(tag)
                    and hmac.compare_digest(match.group(2), self._seal(tag, match.group(1)))):
                found[tag] = match.group(1)
        return found

    def save(self, existing: Mapping[str, str], new: Mapping[str, str]) -> None:
        """Write ``existing`` plus ``new`` (tag -> hash; newest last, at most
        :data:`MAX_ENTRIES`). Entries of other products and costs
        were never loaded: each has a file of its own."""
        merged = {k: v for k, v in existing.items() if k not in new}
        merged.update(new)
        kept = {tag: f"{value}.{self._seal(tag, value)}"
                for tag, value in list(merged.items())[-MAX_ENTRIES:]}
        data = json.dumps({"version": 2, "entries": kept}, separators=(",", ":")).encode()
        with contextlib.suppress(OSError):  # the cache only saves time
            write_atomically(self.path, data)
