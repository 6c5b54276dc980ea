"""macOS and Windows readers against byte fixtures: only the OS calls themselves are mocked.

The parsing of ``struct sockaddr_dl``, of a getifaddrs list, of the SMBIOS
table and of a GetAdaptersAddresses list runs here on real bytes laid out
as the OS lays them out (ctypes structures in this process's memory).
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import struct
from typing import Any

import pytest

from software_dna import fingerprint as fp
from software_dna.fingerprint import _darwin, _windows
from software_dna.fingerprint._common import MissingError

from .fingerprint_fakes import Spawns

# --------------------------------------------------------------------------- macOS / BSD


def sockaddr_dl(name: str, mac: bytes, *, if_type: int = _darwin.IFT_ETHER,
                family: int = _darwin.AF_LINK, index: int = 4) -> bytes:
    """A ``struct sockaddr_dl`` as getifaddrs returns it (sdl_data padded to 12 bytes)."""
    data = name.encode() + mac
    data += b"\0" * max(0, 12 - len(data))
    header = struct.pack("<BBHBBBB", 8 + len(data), family, index, if_type, len(name),
                         len(mac), 0)
    return header + data


EN0 = bytes.fromhex("3c22fb123456")


def test_sockaddr_dl_parsed() -> None:
    assert _darwin.parse_sockaddr_dl(sockaddr_dl("en0", EN0)) == (_darwin.IFT_ETHER, "en0", EN0)
    long_name = sockaddr_dl("bridge100", EN0)  # name + address longer than 12 bytes
    assert _darwin.parse_sockaddr_dl(long_name) == (_darwin.IFT_ETHER, "bridge100", EN0)
    no_address = sockaddr_dl("utun0", b"", if_type=0xFF)
    assert _darwin.parse_sockaddr_dl(no_address) == (0xFF, "utun0", b"")


@pytest.mark.parametrize("data", [
    b"",
    b"\x14\x12\x04\x00\x06",                                     # shorter than the header
    sockaddr_dl("en0", EN0, family=2),                          # AF_INET, not AF_LINK
    sockaddr_dl("en0", EN0)[:12],                                # address cut off
    bytes([8]) + sockaddr_dl("en0", EN0)[1:],                    # sdl_len says no data
    struct.pack("<BBHBBBB", 200, 18, 1, 6, 60, 60, 0) + b"x" * 20,  # lengths past the end
])
def test_malformed_sockaddr_dl_refused(data: bytes) -> None:
    assert _darwin.parse_sockaddr_dl(data) is None


def test_select_macs_keeps_physical_ethernet_and_wifi() -> None:
    entries = [
        ("lo0", _darwin.IFF_LOOPBACK, sockaddr_dl("lo0", b"", if_type=0x18)),
        ("en10", 0, sockaddr_dl("en10", bytes.fromhex("a0cec8000010"))),       # USB dock
        ("en0", 0, sockaddr_dl("en0", EN0)),                                     # built-in
        ("en1", 0, sockaddr_dl("en1", bytes.fromhex("3c22fb000001"))),
        ("en0", 0, sockaddr_dl("en0", EN0)),                                     # listed twice
        ("bridge0", 0, sockaddr_dl("bridge0", bytes.fromhex("36c8b1000001"))),
        ("awdl0", 0, sockaddr_dl("awdl0", bytes.fromhex("1a2b3c000001"))),
        ("llw0", 0, sockaddr_dl("llw0", bytes.fromhex("1a2b3c000002"))),
        ("utun3", 0, sockaddr_dl("utun3", b"", if_type=0xFF)),
        ("anpi0", 0, sockaddr_dl("anpi0", bytes.fromhex("1a2b3c000003"))),
        ("ap1", 0, sockaddr_dl("ap1", bytes.fromhex("3e22fb123456"))),
        ("vmenet0", 0, sockaddr_dl("vmenet0", bytes.fromhex("00163e000001"))),
        ("en2", 0, sockaddr_dl("en2", bytes.fromhex("6a0000000001"))),   # private Wi-Fi address
        ("en3", 0, sockaddr_dl("en3", bytes.fromhex("010000000001"))),   # multicast
        ("en4", 0, sockaddr_dl("en4", bytes(6))),                          # zeros
        ("en5", 0, sockaddr_dl("en5", bytes.fromhex("00163e000002"), if_type=0x17)),  # PPP type
        ("en6", 0, b"\x01\x12"),                                          # garbage
        ("wlan0", 0, sockaddr_dl("wlan0", bytes.fromhex("001b21000003"),
                                 if_type=_darwin.IFT_IEEE80211)),          # BSD Wi-Fi
    ]
    assert _darwin.select_macs(entries) == [
        "3c:22:fb:12:34:56", "3c:22:fb:00:00:01", "a0:ce:c8:00:00:10", "00:1b:21:00:00:03"]


class IfAddrList:
    """A getifaddrs list built in memory with the real ``struct ifaddrs`` layout."""

    def __init__(self, entries: list[tuple[str, int, bytes | None]]) -> None:
        self.keep: list[Any] = []
        self.nodes = [_darwin.IfAddr() for _ in entries]
        for node, following, (name, flags, address) in zip(
                self.nodes, [*self.nodes[1:], None], entries, strict=True):
            node.ifa_name = name.encode()
            node.ifa_flags = flags
            if address is not None:
                buffer = ctypes.create_string_buffer(address, max(len(address), 16))
                self.keep.append(buffer)
                node.ifa_addr = ctypes.cast(buffer, type(node.ifa_addr))
            if following is not None:
                node.ifa_next = ctypes.pointer(following)
        self.head = ctypes.pointer(self.nodes[0])


def inet(address: bytes) -> bytes:
    return bytes([16, 2]) + address + bytes(14 - len(address))


def test_walk_ifaddrs_reads_only_link_entries() -> None:
    chain = IfAddrList([
        ("lo0", _darwin.IFF_LOOPBACK, sockaddr_dl("lo0", b"", if_type=0x18)),
        ("en0", 0, inet(b"\x00\x00\xc0\xa8\x01\x02")),   # AF_INET of en0
        ("en0", 0x8863, sockaddr_dl("en0", EN0)),
        ("gif0", 0, None),                                 # no address at all
    ])
    found = _darwin.walk_ifaddrs(chain.head)
    assert [(name, flags) for name, flags, _raw in found] == [
        ("lo0", _darwin.IFF_LOOPBACK), ("en0", 0x8863)]
    assert _darwin.parse_sockaddr_dl(found[1][2]) == (_darwin.IFT_ETHER, "en0", EN0)
    assert _darwin.walk_ifaddrs(ctypes.POINTER(_darwin.IfAddr)()) == []


class FakeLibc:
    """libc's getifaddrs/freeifaddrs/gethostuuid, the calls that cannot run here."""

    def __init__(self, chain: IfAddrList | None = None, uuid: bytes | None = None) -> None:
        self.chain = chain
        self.uuid = uuid
        self.freed: list[Any] = []

    def getifaddrs(self, out: Any) -> int:
        if self.chain is None:
            return -1
        out._obj.contents = self.chain.nodes[0]
        return 0

    def freeifaddrs(self, head: Any) -> None:
        self.freed.append(head)

    def gethostuuid(self, buffer: Any, _wait: Any) -> int:
        if self.uuid is None:
            return -1
        ctypes.memmove(buffer, self.uuid, 16)
        return 0


def test_macos_macs_through_getifaddrs() -> None:
    chain = IfAddrList([("en0", 0, sockaddr_dl("en0", EN0)),
                        ("awdl0", 0, sockaddr_dl("awdl0", bytes.fromhex("1a2b3c000001")))])
    libc = FakeLibc(chain)
    assert _darwin.macs(libc) == ["3c:22:fb:12:34:56"]
    assert len(libc.freed) == 1  # the list is always freed
    with pytest.raises(MissingError, match="getifaddrs failed"):
        _darwin.macs(FakeLibc())


def test_macos_machine_id_through_gethostuuid() -> None:
    raw = bytes.fromhex("17A28A73BEA94D4BAF5B03A5AAE9B92C")
    # the form ioreg prints IOPlatformUUID in (and py-machineid returned), lower-cased
    assert _darwin.machine_id(FakeLibc(uuid=raw)) == "17a28a73-bea9-4d4b-af5b-03a5aae9b92c"
    with pytest.raises(MissingError, match="gethostuuid failed"):
        _darwin.machine_id(FakeLibc())


# --------------------------------------------------------------------------- Windows SMBIOS

DELL_RAW_UUID = bytes.fromhex("44454c4c420010368052b4c04f4a4d32")


def structure(kind: int, formatted: bytes, strings: list[bytes]) -> bytes:
    """One SMBIOS structure: type, length, handle, the formatted fields, then the strings."""
    head = struct.pack("<BBH", kind, 4 + len(formatted), 0x0100 + kind) + formatted
    tail = b"".join(s + b"\0" for s in strings) + b"\0" if strings else b"\0\0"
    return head + tail


def system_information(uuid: bytes) -> bytes:
    # manufacturer, product, version, serial (string numbers), UUID, wake-up, SKU, family
    return structure(1, bytes([1, 2, 3, 4]) + uuid + bytes([6, 5, 6]),
                     [b"Dell Inc.", b"Latitude 7420", b"1.0", b"4JDM2Q3", b"SKU", b"Latitude"])


def rsmb(*structures: bytes, version: tuple[int, int] = (3, 4)) -> bytes:
    """A RawSMBIOSData blob: header, the structures, the end-of-table structure."""
    table = b"".join(structures) + structure(127, b"", [])
    return struct.pack("<BBBBI", 0, version[0], version[1], 0, len(table)) + table


BIOS = structure(0, bytes(range(1, 21)), [b"Dell Inc.", b"1.14.1", b"00000000-0000"])


def test_smbios_uuid_little_endian_fields_from_2_6() -> None:
    blob = rsmb(BIOS, system_information(DELL_RAW_UUID))
    assert _windows.parse_smbios_uuid(blob) == "4c4c4544-0042-3610-8052-b4c04f4a4d32"


def test_smbios_uuid_big_endian_before_2_6() -> None:
    blob = rsmb(BIOS, system_information(DELL_RAW_UUID), version=(2, 4))
    assert _windows.parse_smbios_uuid(blob) == "44454c4c-4200-1036-8052-b4c04f4a4d32"


@pytest.mark.parametrize("uuid", [
    bytes(16),
    b"\xff" * 16,
    bytes.fromhex("00020003000400050006000700080009"),  # 03000200-0400-0500-0006-000700080009
])
def test_placeholder_smbios_uuid_refused(uuid: bytes) -> None:
    with pytest.raises(MissingError) as info:
        _windows.parse_smbios_uuid(rsmb(BIOS, system_information(uuid)))
    assert "placeholder" in str(info.value)
    assert uuid.hex() not in str(info.value)


@pytest.mark.parametrize("blob", [
    b"",
    rsmb(BIOS),                                                       # no type 1
    rsmb(BIOS, structure(1, bytes([1, 2, 3, 4]), [b"Old"])),          # SMBIOS 2.0: no UUID
    rsmb(BIOS, system_information(DELL_RAW_UUID))[:40],               # truncated
    rsmb(structure(0, b"\x01", [b"x"])[:-2] + b"x" * 10),             # unterminated strings
    struct.pack("<BBBBI", 0, 3, 0, 0, 4) + bytes([1, 2, 0, 0]),       # length below 4
])
def test_smbios_without_a_usable_uuid(blob: bytes) -> None:
    with pytest.raises(MissingError):
        _windows.parse_smbios_uuid(blob)


class FakeKernel32:
    """GetSystemFirmwareTable: the size query, then the copy (the call that cannot run here)."""

    def __init__(self, blob: bytes) -> None:
        self.blob = blob
        self.signatures: list[int] = []

    def GetSystemFirmwareTable(self, signature: int, _id: int, buffer: Any, size: int) -> int:
        self.signatures.append(signature)
        if buffer is None:
            return len(self.blob)
        ctypes.memmove(buffer, self.blob, min(size, len(self.blob)))
        return len(self.blob)


def test_smbios_uuid_through_get_system_firmware_table() -> None:
    kernel32 = FakeKernel32(rsmb(BIOS, system_information(DELL_RAW_UUID)))
    assert _windows.smbios_uuid(kernel32) == "4c4c4544-0042-3610-8052-b4c04f4a4d32"
    assert kernel32.signatures == [0x52534D42] * 2  # 'RSMB'
    with pytest.raises(MissingError, match="GetSystemFirmwareTable failed"):
        _windows.smbios_uuid(FakeKernel32(b""))


# --------------------------------------------------------------------------- Windows adapters


def adapter(mac: str, *, if_type: int = _windows.IF_TYPE_ETHERNET_CSMACD, tunnel: int = 0,
            description: str = "Intel(R) Ethernet Connection (13) I219-LM",
            luid: int = 0) -> Any:
    entry = _windows.AdapterAddresses()
    entry.Luid = luid
    raw = bytes.fromhex(mac)
    entry.PhysicalAddress[:len(raw)] = list(raw)
    entry.PhysicalAddressLength = len(raw)
    entry.IfType = if_type
    entry.TunnelType = tunnel
    entry.Description = description
    return entry


def chain(*entries: Any) -> Any:
    for entry, following in itertools.pairwise(entries):
        entry.Next = ctypes.pointer(following)
    return entries


ADAPTERS = (
    adapter("a4bb6d123456"),
    adapter("00216a000007", if_type=_windows.IF_TYPE_IEEE80211,
            description="Intel(R) Wi-Fi 6 AX201 160MHz"),
    adapter("00155d000001", description="Hyper-V Virtual Ethernet Adapter"),
    adapter("0a0027000002", description="VirtualBox Host-Only Ethernet Adapter"),
    adapter("00ff1f000003", description="TAP-Windows Adapter V9"),
    adapter("f01898000004", description="Bluetooth Device (Personal Area Network)"),
    adapter("", if_type=24, description="Software Loopback Interface 1"),
    adapter("00000000000000e0", if_type=131, tunnel=11, description="Teredo Tunneling"),
    adapter("a4bb6d000005", tunnel=2),
    adapter("02004c4f4f50", description="Realtek USB GbE Family Controller"),  # local bit
    adapter("a4bb6d123456"),  # listed twice
    adapter("001b21000009", description="Realtek USB GbE Family Controller"),
)


def test_adapter_selection() -> None:
    found = _windows.walk_adapters(ctypes.pointer(chain(*ADAPTERS)[0]))
    assert len(found) == len(ADAPTERS)
    assert found[1] == _windows.Adapter(71, 0, bytes.fromhex("00216a000007"),
                                        "Intel(R) Wi-Fi 6 AX201 160MHz")
    assert _windows.select_macs(found) == [
        "a4:bb:6d:12:34:56", "00:21:6a:00:00:07", "00:1b:21:00:00:09"]


class FakeIphlpapi:
    """GetAdaptersAddresses ("buffer too small" first, then the list) and GetIfEntry2
    (the NDIS flags of the interfaces in ``hardware``: LUID -> HardwareInterface;
    other LUIDs fail, as for an interface that went away)."""

    def __init__(self, entries: tuple[Any, ...], result: int = 0,
                 hardware: dict[int, bool] | None = None) -> None:
        self.entries = chain(*entries)
        self.result = result
        self.calls = 0
        self.hardware = hardware or {}

    def GetIfEntry2(self, row: Any) -> int:
        entry = row._obj
        assert isinstance(entry, _windows.MibIfRow2)
        if entry.InterfaceLuid not in self.hardware:
            return 2  # ERROR_FILE_NOT_FOUND
        # set the flag byte the way Windows lays it out, next to other set bits
        entry.InterfaceAndOperStatusFlags = 0x04 | (
            0x01 if self.hardware[entry.InterfaceLuid] else 0x00)
        return 0

    def GetAdaptersAddresses(self, _family: int, _flags: int, _reserved: Any, buffer: Any,
                             size: Any) -> int:
        self.calls += 1
        needed = ctypes.sizeof(_windows.AdapterAddresses) * 64
        if size._obj.value < needed:
            size._obj.value = needed
            return 111  # ERROR_BUFFER_OVERFLOW
        if self.result:
            return self.result
        ctypes.memmove(buffer, ctypes.byref(self.entries[0]),
                       ctypes.sizeof(_windows.AdapterAddresses))
        return 0


def test_adapters_through_get_adapters_addresses() -> None:
    api = FakeIphlpapi(ADAPTERS)
    assert _windows.macs(api) == ["a4:bb:6d:12:34:56", "00:21:6a:00:00:07", "00:1b:21:00:00:09"]
    assert api.calls == 2
    with pytest.raises(MissingError, match="GetAdaptersAddresses failed"):
        _windows.macs(FakeIphlpapi(ADAPTERS, result=232))


def test_mib_if_row2_layout_is_windows() -> None:
    """The flags byte sits where netioapi.h puts it (offset 1152 of a 1352-byte row)."""
    assert _windows.MibIfRow2.Alias.offset == 28
    assert _windows.MibIfRow2.PhysicalAddressLength.offset == 1056
    assert _windows.MibIfRow2.InterfaceAndOperStatusFlags.offset == 1152
    assert ctypes.sizeof(_windows.MibIfRow2) <= _windows._MIB_IF_ROW2_SIZE


def test_ndis_hardware_flag_decides_before_the_description() -> None:
    entries = (
        adapter("a4bb6d123456", luid=1),                                   # hardware
        adapter("00155d000001", luid=2,
                description="Microsoft Hyper-V Network Adapter"),          # a VM's own NIC
        adapter("001b21000002", luid=3, description="Intel(R) Ethernet"),  # software, says NDIS
        adapter("0a0027000003", luid=4,
                description="VirtualBox Host-Only Ethernet Adapter"),     # unknown: by words
        adapter("001b21000004", luid=5, description="Realtek PCIe GbE"),   # unknown: kept
    )
    api = FakeIphlpapi(entries, hardware={1: True, 2: True, 3: False})
    found = _windows.walk_adapters(ctypes.pointer(chain(*entries)[0]), api)
    assert [a.hardware for a in found] == [True, True, False, None, None]
    assert _windows.select_macs(found) == [
        "a4:bb:6d:12:34:56", "00:15:5d:00:00:01", "00:1b:21:00:00:04"]
    assert _windows.macs(FakeIphlpapi(entries, hardware={1: True, 2: True, 3: False})) == [
        "a4:bb:6d:12:34:56", "00:15:5d:00:00:01", "00:1b:21:00:00:04"]


# --------------------------------------------------------------------------- no PATH, no fallback


def test_macos_machine_id_needs_no_path_and_no_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """launchd and sandboxes start apps with a minimal PATH: the platform UUID still comes
    from gethostuuid(3) in-process (py-machineid ran ``ioreg`` through PATH)."""
    spawns = Spawns(monkeypatch)
    monkeypatch.setenv("PATH", "")
    raw = bytes.fromhex("17A28A73BEA94D4BAF5B03A5AAE9B92C")
    monkeypatch.setattr(_darwin, "_libc", lambda: FakeLibc(uuid=raw))
    assert fp._read_machine_id("Darwin") == "17a28a73-bea9-4d4b-af5b-03a5aae9b92c"
    assert spawns.calls == []


def test_macos_all_zero_platform_uuid_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Some virtual Macs report 00000000-...: not an identifier, so the machine id is missing."""
    monkeypatch.setattr(_darwin, "_libc", lambda: FakeLibc(uuid=bytes(16)))
    with pytest.raises(MissingError, match="placeholder"):
        fp._read_machine_id("Darwin")


class FakeWinreg:
    """winreg's calls, recording the access flags (the 64-bit view) asked for."""

    HKEY_LOCAL_MACHINE = 0x80000002
    KEY_READ = 0x20019
    KEY_WOW64_64KEY = 0x0100

    def __init__(self, values: dict[tuple[str, str], object]) -> None:
        self.values = values
        self.access: list[int] = []

    def OpenKey(self, root: int, path: str, reserved: int, access: int) -> Any:
        self.access.append(access)
        if not any(key == path for key, _ in self.values):
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return contextlib.nullcontext(path)

    def QueryValueEx(self, key: str, name: str) -> tuple[object, int]:
        if (key, name) not in self.values:
            raise FileNotFoundError(2, "The system cannot find the file specified")
        return self.values[key, name], 1


def test_windows_machine_guid_read_through_the_64_bit_view(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A 32-bit Python on 64-bit Windows sees a redirected registry unless it asks for the
    64-bit view; a failed read is an empty value (recorded missing), never replaced."""
    fake = FakeWinreg({(r"SOFTWARE\Microsoft\Cryptography", "MachineGuid"):
                       "1b2c3d4e-0000-4000-8000-112233445566"})
    monkeypatch.setattr("sys.platform", "win32")
    monkeypatch.setattr(_windows, "winreg", fake, raising=False)
    assert _windows.machine_guid() == "1b2c3d4e-0000-4000-8000-112233445566"
    assert fake.access and all(a & FakeWinreg.KEY_WOW64_64KEY for a in fake.access)
    monkeypatch.setattr(_windows, "winreg", FakeWinreg({}), raising=False)
    assert _windows.machine_guid() == ""
