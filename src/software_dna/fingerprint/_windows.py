"""Windows readers, in-process (registry, kernel32, iphlpapi through ctypes): no WMI, no PATH.

- machine id: ``MachineGuid`` under ``HKLM\\SOFTWARE\\Microsoft\\Cryptography``;
- ``smbios_uuid``: the SMBIOS type-1 (System Information) UUID from
  ``GetSystemFirmwareTable('RSMB')``;
- MAC addresses: ``GetAdaptersAddresses``, Ethernet and 802.11 adapters only;
- CPU: ``ProcessorNameString`` from the registry.

The parsing (:func:`parse_smbios_uuid`, :func:`walk_adapters`,
:func:`select_macs`) is pure and runs anywhere, so tests feed it byte
fixtures and ctypes-built adapter lists; only the OS calls are Windows's own.
"""

from __future__ import annotations

import ctypes
import struct
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple

from software_dna.fingerprint._common import (
    MissingError,
    format_mac,
    normalize_id,
    placeholder_reason,
    usable_mac,
)

__all__ = [
    "Adapter",
    "AdapterAddresses",
    "cpu",
    "machine_guid",
    "macs",
    "parse_smbios_uuid",
    "select_macs",
    "smbios_uuid",
    "walk_adapters",
]

if sys.platform == "win32":
    import winreg

# --------------------------------------------------------------------------- SMBIOS

_RSMB = int.from_bytes(b"RSMB", "big")  # the provider signature, as the DWORD Windows wants
_RAW_HEADER = struct.Struct("<BBBBI")  # Used20CallingMethod, major, minor, DmiRevision, Length
_SYSTEM_INFORMATION = 1
_END_OF_TABLE = 127


def parse_smbios_uuid(raw: bytes) -> str:
    """The UUID of the SMBIOS type-1 structure in a ``RawSMBIOSData`` blob.

    ``raw`` is what ``GetSystemFirmwareTable('RSMB', 0, ...)`` fills: a
    header (calling method, major, minor, DMI revision, table length) and
    the structure table. Each structure is a formatted area (type, length,
    handle, fields) followed by strings ending with two NUL bytes. The UUID
    sits at offset 8 of type 1 (16 bytes); from SMBIOS 2.6 on its first
    three fields are little-endian (as dmidecode and Windows print it).

    Returns:
        The lower-case ``8-4-4-4-12`` UUID.

    Raises:
        MissingError: no type-1 structure with a UUID, a truncated table,
            or a placeholder UUID (all zeros, all ``FF``, well-known ones).
    """
    if len(raw) < _RAW_HEADER.size:
        raise MissingError("the SMBIOS table is truncated")
    _method, major, minor, _rev, length = _RAW_HEADER.unpack_from(raw)
    table = raw[_RAW_HEADER.size:_RAW_HEADER.size + length]
    pos = 0
    while pos + 4 <= len(table):
        kind, size = table[pos], table[pos + 1]
        if size < 4 or pos + size > len(table):
            break
        if kind == _SYSTEM_INFORMATION and size >= 0x19:
            uuid = bytes(table[pos + 8:pos + 24])
            if (major, minor) >= (2, 6):
                uuid = (uuid[3::-1] + uuid[5:3:-1] + uuid[7:5:-1] + uuid[8:])
            text = normalize_id(uuid.hex())
            value = f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
            problem = placeholder_reason(value)
            if problem is not None:
                raise MissingError(f"the SMBIOS system UUID {problem}")
            return value
        if kind == _END_OF_TABLE:
            break
        end = table.find(b"\0\0", pos + size)  # the string set ends with two NULs
        if end < 0:
            break
        pos = end + 2
    raise MissingError("the SMBIOS table holds no system UUID")


def smbios_uuid(kernel32: Any = None) -> str:
    """The firmware's system UUID through ``GetSystemFirmwareTable('RSMB')``.

    Raises:
        MissingError: the call failed or the table holds no usable UUID.
    """
    k32 = kernel32 if kernel32 is not None else ctypes.windll.kernel32  # type: ignore[attr-defined]
    size = k32.GetSystemFirmwareTable(_RSMB, 0, None, 0)
    if not size or size > 1 << 20:
        raise MissingError("the SMBIOS table could not be read (GetSystemFirmwareTable failed)")
    buffer = ctypes.create_string_buffer(size)
    got = k32.GetSystemFirmwareTable(_RSMB, 0, buffer, size)
    if not got or got > size:
        raise MissingError("the SMBIOS table could not be read (GetSystemFirmwareTable failed)")
    return parse_smbios_uuid(buffer.raw[:got])


# --------------------------------------------------------------------------- adapters

IF_TYPE_ETHERNET_CSMACD = 6
IF_TYPE_IEEE80211 = 71
TUNNEL_TYPE_NONE = 0
_ETHERNET_TYPES = frozenset({IF_TYPE_ETHERNET_CSMACD, IF_TYPE_IEEE80211})
#: Words in an adapter's description that mark a software adapter (hypervisors,
#: VPNs, Wi-Fi Direct, loopback, Bluetooth PAN): Windows gives them Ethernet types.
_SOFTWARE_WORDS: tuple[str, ...] = (
    "virtual", "hyper-v", "vmware", "virtualbox", "vbox", "tap-", "tap adapter", "wintun",
    "wireguard", "vpn", "loopback", "bluetooth", "wi-fi direct", "npcap", "tunnel",
    "miniport", "kernel debug", "zerotier", "tailscale", "docker", "wsl",
)


class _Guid(ctypes.Structure):
    _fields_ = (("data1", ctypes.c_uint32), ("data2", ctypes.c_uint16),
                ("data3", ctypes.c_uint16), ("data4", ctypes.c_uint8 * 8))


class _SocketAddress(ctypes.Structure):
    _fields_ = (("lpSockaddr", ctypes.c_void_p), ("iSockaddrLength", ctypes.c_int))


class AdapterAddresses(ctypes.Structure):
    """``IP_ADAPTER_ADDRESSES_LH`` (<iptypes.h>) up to ``TunnelType``, in its order."""


AdapterAddresses._fields_ = (
    ("Length", ctypes.c_uint32),
    ("IfIndex", ctypes.c_uint32),
    ("Next", ctypes.POINTER(AdapterAddresses)),
    ("AdapterName", ctypes.c_char_p),
    ("FirstUnicastAddress", ctypes.c_void_p),
    ("FirstAnycastAddress", ctypes.c_void_p),
    ("FirstMulticastAddress", ctypes.c_void_p),
    ("FirstDnsServerAddress", ctypes.c_void_p),
    ("DnsSuffix", ctypes.c_wchar_p),
    ("Description", ctypes.c_wchar_p),
    ("FriendlyName", ctypes.c_wchar_p),
    ("PhysicalAddress", ctypes.c_uint8 * 8),
    ("PhysicalAddressLength", ctypes.c_uint32),
    ("Flags", ctypes.c_uint32),
    ("Mtu", ctypes.c_uint32),
    ("IfType", ctypes.c_uint32),
    ("OperStatus", ctypes.c_int),
    ("Ipv6IfIndex", ctypes.c_uint32),
    ("ZoneIndices", ctypes.c_uint32 * 16),
    ("FirstPrefix", ctypes.c_void_p),
    ("TransmitLinkSpeed", ctypes.c_uint64),
    ("ReceiveLinkSpeed", ctypes.c_uint64),
    ("FirstWinsServerAddress", ctypes.c_void_p),
    ("FirstGatewayAddress", ctypes.c_void_p),
    ("Ipv4Metric", ctypes.c_uint32),
    ("Ipv6Metric", ctypes.c_uint32),
    ("Luid", ctypes.c_uint64),
    ("Dhcpv4Server", _SocketAddress),
    ("CompartmentId", ctypes.c_uint32),
    ("NetworkGuid", _Guid),
    ("ConnectionType", ctypes.c_int),
    ("TunnelType", ctypes.c_int),
)


class Adapter(NamedTuple):
    """What :func:`select_macs` needs of one adapter."""

    if_type: int
    tunnel_type: int
    address: bytes
    description: str


def walk_adapters(head: Any) -> list[Adapter]:
    """The adapters of a ``GetAdaptersAddresses`` list (``POINTER(AdapterAddresses)``)."""
    found: list[Adapter] = []
    node = head
    seen = 0
    while node and seen < 4096:  # a corrupt (cyclic) list cannot loop forever
        seen += 1
        entry = node.contents
        length = min(entry.PhysicalAddressLength, 8)
        found.append(Adapter(entry.IfType, entry.TunnelType,
                             bytes(entry.PhysicalAddress[:length]), entry.Description or ""))
        node = entry.Next
    return found


def select_macs(adapters: Iterable[Adapter]) -> list[str]:
    """Addresses of physical Ethernet and Wi-Fi adapters, in the order Windows lists them.

    Skips other interface types (loopback, PPP, tunnels), tunnel adapters,
    software adapters recognisable by their description, and locally
    administered addresses (random hardware addresses, most software adapters).
    """
    chosen: list[str] = []
    for adapter in adapters:
        if adapter.if_type not in _ETHERNET_TYPES or adapter.tunnel_type != TUNNEL_TYPE_NONE:
            continue
        description = adapter.description.lower()
        if any(word in description for word in _SOFTWARE_WORDS):
            continue
        if not usable_mac(adapter.address, random_ok=False):
            continue
        text = format_mac(adapter.address)
        if text not in chosen:
            chosen.append(text)
    return chosen


_AF_UNSPEC = 0
_GAA_FLAG_SKIP_UNICAST = 0x1
_GAA_FLAG_SKIP_ANYCAST = 0x2
_GAA_FLAG_SKIP_MULTICAST = 0x4
_GAA_FLAG_SKIP_DNS_SERVER = 0x8
_GAA_FLAGS = (_GAA_FLAG_SKIP_UNICAST | _GAA_FLAG_SKIP_ANYCAST | _GAA_FLAG_SKIP_MULTICAST
              | _GAA_FLAG_SKIP_DNS_SERVER)
_ERROR_BUFFER_OVERFLOW = 111


def macs(iphlpapi: Any = None) -> list[str]:
    """This machine's physical adapter addresses through ``GetAdaptersAddresses``.

    Raises:
        MissingError: the call failed.
    """
    api = iphlpapi if iphlpapi is not None else ctypes.windll.iphlpapi  # type: ignore[attr-defined]
    size = ctypes.c_ulong(16 * 1024)
    for _attempt in range(3):  # the list may grow between the two calls
        buffer = ctypes.create_string_buffer(size.value)
        result = api.GetAdaptersAddresses(_AF_UNSPEC, _GAA_FLAGS, None, buffer,
                                          ctypes.byref(size))
        if result == 0:
            head = ctypes.cast(buffer, ctypes.POINTER(AdapterAddresses))
            return select_macs(walk_adapters(head))
        if result != _ERROR_BUFFER_OVERFLOW:
            break
    raise MissingError("the network adapters could not be listed (GetAdaptersAddresses failed)")


# --------------------------------------------------------------------------- registry


def _registry(path: str, value_name: str) -> str:
    if sys.platform == "win32":
        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path, 0,
                                winreg.KEY_READ | winreg.KEY_WOW64_64KEY) as key:
                value, _kind = winreg.QueryValueEx(key, value_name)
        except OSError:
            return ""
        return value if isinstance(value, str) else ""
    return ""


def machine_guid() -> str:
    """``MachineGuid`` from the registry, read in-process (``""`` when unavailable)."""
    return _registry(r"SOFTWARE\Microsoft\Cryptography", "MachineGuid")


def cpu() -> str:
    """``ProcessorNameString`` from the registry (``""`` when unavailable)."""
    return _registry(r"HARDWARE\DESCRIPTION\System\CentralProcessor\0", "ProcessorNameString")
