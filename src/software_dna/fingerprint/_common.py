"""What every OS reader shares: the "unavailable" error, normalisation, placeholders.

Readers return *normalized raw values* (str) or raise :class:`MissingError`
with a human reason. A reason never holds a raw identifier: only paths,
OS error messages and fixed wording.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = [
    "MAX_READ",
    "MissingError",
    "format_mac",
    "normalize_id",
    "normalize_text",
    "placeholder_reason",
    "read_text",
    "usable_mac",
]

MAX_READ = 64 * 1024  # bytes; no legitimate source file here is larger


class MissingError(Exception):
    """A component is unavailable; ``str(exc)`` is the human reason (no raw identifier)."""


def read_text(path: Path) -> str:
    """Read a small text file (UTF-8, at most 64 KiB).

    Raises:
        OSError: the file cannot be opened or read.
        UnicodeError: it is not UTF-8.
    """
    with path.open("rb") as handle:
        return handle.read(MAX_READ).decode("utf-8")


# --- machine ids

#: Values known to be shared by many machines (compared after normalization).
#: Firmware placeholders come from SMBIOS/DMI product UUIDs; the hex one is
#: the shared id that Whonix/Kicksecure install on purpose; "uninitialized"
#: is what systemd writes into images before the first boot.
_PLACEHOLDERS_RAW: tuple[str, ...] = (
    "03000200-0400-0500-0006-000700080009",
    "b08dfa6083e7567a1921a715000001fb",
    "uninitialized",
    "Not Settable",
    "Not Specified",
    "Not Available",
    "To be filled by O.E.M.",
    "Default string",
    "None",
    "Null",
    "Unknown",
)

_STRIP = re.compile(r"[\x00-\x20\x7f-\x9f\s]+")
_SEPARATORS = re.compile(r"[-{}:.]")


def normalize_id(raw: str) -> str:
    """Drop whitespace and control characters (like py-machineid), lower-case."""
    return _STRIP.sub("", raw).lower()


_PLACEHOLDERS: frozenset[str] = frozenset(normalize_id(p) for p in _PLACEHOLDERS_RAW)


def placeholder_reason(value: str) -> str | None:
    """Why ``value`` (normalized) cannot identify a machine, or None when it can."""
    if not value:
        return "is empty"
    if value in _PLACEHOLDERS:
        return "holds a well-known placeholder shared by many machines"
    compact = _SEPARATORS.sub("", value)
    if len(compact) < 8:
        return "is too short to identify a machine"
    # all zeros, all F, FEFEFEFE..., 0101...: a byte or nibble repeated
    if compact == compact[0] * len(compact) or compact == compact[:2] * (len(compact) // 2):
        return "holds a placeholder (one value repeated)"
    return None


def normalize_text(text: str) -> str:
    """Whitespace collapsed to single spaces, lower-cased (CPU model names)."""
    return " ".join(text.split()).lower()


# --- MAC addresses


def format_mac(mac: bytes) -> str:
    """``aa:bb:cc:dd:ee:ff`` (lower-case): the normalized form every OS reader returns."""
    return ":".join(f"{b:02x}" for b in mac)


def usable_mac(mac: bytes, *, random_ok: bool) -> bool:
    """True for a unicast, non-placeholder 6-byte address.

    Args:
        mac: the raw address.
        random_ok: keep a *locally administered* address (bit 1 of the first
            octet). Linux knows whether the driver or user space assigned it
            and passes True for driver-assigned ones (VMs); macOS and Windows
            cannot tell, so they pass False: such an address there is a
            private (randomised) Wi-Fi or a software adapter's address.
    """
    if len(mac) != 6 or mac in (b"\x00" * 6, b"\xff" * 6):
        return False
    if mac[0] & 0x01:  # multicast / group address
        return False
    return random_ok or not mac[0] & 0x02
