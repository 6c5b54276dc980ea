"""macOS (and BSD) readers, in-process through libc with ctypes: no ioreg, no PATH.

- machine id: ``gethostuuid(3)``, the platform UUID (``IOPlatformUUID``,
  the value ``ioreg`` and py-machineid print);
- MAC addresses: ``getifaddrs(3)``, the ``AF_LINK`` entries
  (``struct sockaddr_dl``) of Ethernet and Wi-Fi interfaces;
- CPU: ``sysctlbyname("machdep.cpu.brand_string")``.

The byte parsing (:func:`parse_sockaddr_dl`, :func:`select_macs`) and the
walk of the ``ifaddrs`` list are pure and run anywhere, so tests feed them
byte fixtures; only the libc calls are macOS's own.
"""

from __future__ import annotations

import ctypes
import re
import struct
from collections.abc import Iterable
from typing import Any

from software_dna.fingerprint._common import MissingError, format_mac, usable_mac

__all__ = [
    "IfAddr",
    "cpu",
    "machine_id",
    "macs",
    "parse_sockaddr_dl",
    "select_macs",
    "walk_ifaddrs",
]

AF_LINK = 18  # <sys/socket.h> on macOS and the BSDs
IFF_LOOPBACK = 0x8
IFT_ETHER = 0x06  # Ethernet; macOS reports Wi-Fi as Ethernet too
IFT_IEEE80211 = 0x47  # Wi-Fi on the BSDs
_ETHERNET_TYPES = frozenset({IFT_ETHER, IFT_IEEE80211})

#: Interface name prefixes that are virtual on macOS and the BSDs: loopback,
#: bridges, tunnels, Apple Wireless Direct Link, low-latency WLAN, the
#: Apple-silicon "anpi" interconnect, access point, Thunderbolt/peer-to-peer,
#: VM and container networks, PPP, VLANs.
_VIRTUAL_PREFIXES: tuple[str, ...] = (
    "lo", "bridge", "utun", "awdl", "llw", "anpi", "ap", "p2p", "gif", "stf", "ipsec",
    "feth", "vmenet", "vmnet", "vnic", "vboxnet", "tun", "tap", "ppp", "vlan", "docker",
    "veth", "wg", "zt", "tailscale", "epair", "pflog", "pfsync", "enc", "lagg", "carp",
)


class _SockAddr(ctypes.Structure):
    _fields_ = (("sa_len", ctypes.c_uint8), ("sa_family", ctypes.c_uint8),
                ("sa_data", ctypes.c_char * 14))


class IfAddr(ctypes.Structure):
    """``struct ifaddrs`` (<ifaddrs.h>): the fields read here, in their order."""


IfAddr._fields_ = (
    ("ifa_next", ctypes.POINTER(IfAddr)),
    ("ifa_name", ctypes.c_char_p),
    ("ifa_flags", ctypes.c_uint),
    ("ifa_addr", ctypes.POINTER(_SockAddr)),
    ("ifa_netmask", ctypes.c_void_p),
    ("ifa_dstaddr", ctypes.c_void_p),
    ("ifa_data", ctypes.c_void_p),
)

_SDL_HEADER = struct.Struct("<BBHBBBB")  # len, family, index (host order), type, nlen, alen, slen


def parse_sockaddr_dl(data: bytes) -> tuple[int, str, bytes] | None:
    """Read a ``struct sockaddr_dl`` (<net/if_dl.h>).

    Layout: ``sdl_len``, ``sdl_family``, ``sdl_index`` (2 bytes),
    ``sdl_type``, ``sdl_nlen``, ``sdl_alen``, ``sdl_slen``, then
    ``sdl_data``: the interface name (``nlen`` bytes) followed by the link
    address (``alen`` bytes).

    Returns:
        ``(interface type, name, link address)``, or None when ``data`` is
        not a well-formed AF_LINK address (short, wrong family, lengths
        pointing past the end).
    """
    if len(data) < _SDL_HEADER.size:
        return None
    sdl_len, family, _index, if_type, nlen, alen, _slen = _SDL_HEADER.unpack_from(data)
    end = _SDL_HEADER.size + nlen + alen
    if family != AF_LINK or end > min(len(data), max(sdl_len, _SDL_HEADER.size)):
        return None
    payload = data[_SDL_HEADER.size:end]
    name = payload[:nlen].decode("ascii", "replace")
    return if_type, name, bytes(payload[nlen:])


def walk_ifaddrs(head: Any) -> list[tuple[str, int, bytes]]:
    """``(name, flags, sockaddr bytes)`` of each ``AF_LINK`` entry of a getifaddrs list.

    Args:
        head: ``POINTER(IfAddr)`` to the first entry (may be NULL).
    """
    found: list[tuple[str, int, bytes]] = []
    node = head
    seen = 0
    while node and seen < 4096:  # a corrupt (cyclic) list cannot loop forever
        seen += 1
        entry = node.contents
        address = entry.ifa_addr
        if address and address.contents.sa_family == AF_LINK:
            length = max(address.contents.sa_len, _SDL_HEADER.size)
            raw = ctypes.string_at(ctypes.addressof(address.contents), length)
            found.append(((entry.ifa_name or b"").decode("ascii", "replace"),
                          entry.ifa_flags, raw))
        node = entry.ifa_next
    return found


def _natural(name: str) -> tuple[str, int]:
    match = re.fullmatch(r"(\D*)(\d*)", name)
    if match is None:
        return (name, 0)
    return (match.group(1), int(match.group(2) or 0))


def select_macs(entries: Iterable[tuple[str, int, bytes]]) -> list[str]:
    """The addresses of physical Ethernet/Wi-Fi interfaces, ``en0`` (built-in) first.

    Skips loopback, virtual interface names (:data:`_VIRTUAL_PREFIXES`),
    non-Ethernet types, and locally administered addresses (macOS private
    Wi-Fi addresses and software interfaces use them).
    """
    chosen: dict[str, str] = {}
    for name, flags, raw in sorted(entries, key=lambda e: _natural(e[0])):
        if flags & IFF_LOOPBACK or name.startswith(_VIRTUAL_PREFIXES):
            continue
        parsed = parse_sockaddr_dl(raw)
        if parsed is None:
            continue
        if_type, _name, mac = parsed
        if if_type not in _ETHERNET_TYPES or not usable_mac(mac, random_ok=False):
            continue
        chosen.setdefault(format_mac(mac), name)
    return list(chosen)


def _libc() -> Any:
    return ctypes.CDLL(None)


def macs(libc: Any = None) -> list[str]:
    """This machine's physical addresses through ``getifaddrs(3)``.

    Raises:
        MissingError: getifaddrs failed.
    """
    lib = libc if libc is not None else _libc()
    head = ctypes.POINTER(IfAddr)()
    if lib.getifaddrs(ctypes.byref(head)) != 0:
        raise MissingError("the network interfaces could not be listed (getifaddrs failed)")
    try:
        return select_macs(walk_ifaddrs(head))
    finally:
        lib.freeifaddrs(head)


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


def format_uuid(raw: bytes) -> str:
    """16 bytes in the canonical 8-4-4-4-12 lower-case form (big-endian, as macOS prints it)."""
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def machine_id(libc: Any = None) -> str:
    """The platform UUID from ``gethostuuid(3)`` (waiting at most 5 s), normalized.

    Raises:
        MissingError: the call failed.
    """
    lib = libc if libc is not None else _libc()
    buffer = ctypes.create_string_buffer(16)
    wait = _Timespec(5, 0)
    if lib.gethostuuid(buffer, ctypes.byref(wait)) != 0:
        raise MissingError("the platform UUID could not be read (gethostuuid failed)")
    return format_uuid(buffer.raw[:16])


def cpu(libc: Any = None) -> str:
    """``machdep.cpu.brand_string`` through sysctlbyname(3) (``""`` when unavailable)."""
    try:
        lib = libc if libc is not None else _libc()
        name = b"machdep.cpu.brand_string"
        size = ctypes.c_size_t(0)
        if lib.sysctlbyname(name, None, ctypes.byref(size), None, ctypes.c_size_t(0)):
            return ""
        buffer = ctypes.create_string_buffer(size.value)
        if lib.sysctlbyname(name, buffer, ctypes.byref(size), None, ctypes.c_size_t(0)):
            return ""
        return buffer.value.decode("utf-8", "replace")
    except (OSError, AttributeError):
        return ""
