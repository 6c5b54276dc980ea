"""Privacy-preserving machine fingerprint.

A fingerprint is a handful of *components* (machine id, OS and architecture,
MAC addresses of physical network interfaces, host name, CPU model). Raw
values never leave this module: each component is reduced to

    HMAC-SHA256(key=product_key, msg=b"<component name>\\0" + normalized value)

with ``product_key = HMAC-SHA256(key=b"software_dna/fingerprint/v1",
msg=product id as UTF-8)``, and encoded as unpadded base64url (43 characters).
Two vendors therefore see unrelated values for the same machine.

Collection never raises for a single unreadable source: the component is
listed in :attr:`Fingerprint.missing` with a human reason and
:attr:`Fingerprint.quality` drops. Only when no *stable* component is left
(machine id, MAC addresses, host name) does :func:`collect` raise
:class:`~software_dna.errors.FingerprintUnavailable`.

On Linux collection reads a few files under ``/etc``, ``/var/lib/dbus``,
``/sys/class/net`` and ``/proc`` and never starts a subprocess or touches the
network. See ``docs/fingerprint.md`` for the full description.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

from software_dna.errors import FingerprintUnavailable
from software_dna.wire.frozen import Frozen

__all__ = ["ALGORITHM", "COMPONENTS", "Fingerprint", "collect", "machine_secret", "match"]

#: Version of the collection + normalization + hashing rules. Any change that
#: alters a component's value for an unchanged machine needs a new number.
ALGORITHM: int = 1

#: Every component this algorithm knows, in a fixed order.
COMPONENTS: tuple[str, ...] = ("machine_id", "os_arch", "mac", "hostname", "cpu")

#: Components that identify one machine (rather than a class of machines), strongest first.
#: The fingerprint id and :func:`machine_secret` use the first one available.
_STABLE: tuple[str, ...] = ("machine_id", "mac", "hostname")

#: Contribution of each component to :attr:`Fingerprint.quality` (sums to 1).
_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"machine_id": 0.45, "mac": 0.20, "hostname": 0.15, "cpu": 0.10, "os_arch": 0.10}
)

_COMPONENT_LABEL = b"software_dna/fingerprint/v1"
_SECRET_LABEL = b"software_dna/machine-secret/v1"

_HUMAN_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "machine_id": "machine id",
        "os_arch": "OS and architecture",
        "mac": "MAC addresses",
        "hostname": "host name",
        "cpu": "CPU model",
    }
)

# Swappable for tests: the file-system root the Linux readers look under.
_ROOT: Path = Path("/")

_MAX_READ = 64 * 1024  # bytes; no legitimate source file here is larger


class _MissingError(Exception):
    """A component is unavailable; ``str(exc)`` is the human reason.

    The reason never contains a raw identifier.
    """


# --------------------------------------------------------------------------- public API


class Fingerprint(Frozen):
    """The fingerprint of this machine for one product.

    Attributes:
        id: ``"fp<algorithm>.<source>.<hash>"``: ``hash`` is the component
            hash of ``source``, the strongest stable component available.
        algorithm: the collection algorithm (:data:`ALGORITHM`).
        source: the component the id is derived from (``"machine_id"``,
            ``"mac"`` or ``"hostname"``).
        components: read-only mapping component name -> 43-character
            unpadded base64url HMAC-SHA256 value (present components only).
        missing: read-only mapping component name -> human reason why the
            component is unavailable.
        quality: 0.0 to 1.0, the summed weights of the present components
            (machine id 0.45, MAC 0.20, host name 0.15, CPU 0.10, OS 0.10).

    Only :meth:`to_wire` is ever sent anywhere; ``missing`` and ``quality``
    stay local. Built with these keyword (or, in this order, positional)
    arguments; the two mappings are copied. Immutable (assigning an attribute
    raises :class:`dataclasses.FrozenInstanceError`), compared by every
    attribute, hashable.
    """

    __slots__ = ("algorithm", "components", "id", "missing", "quality", "source")

    def __init__(  # noqa: PLR0917 - positional, as when it was a dataclass
        self, id: str, algorithm: int, source: str,
        components: Mapping[str, str], missing: Mapping[str, str], quality: float,
    ) -> None:
        self._open()
        self.id: Final[str] = id
        self.algorithm: Final[int] = algorithm
        self.source: Final[str] = source
        # Copied into read-only views so that neither the caller's dicts nor
        # anyone holding the Fingerprint can change it afterwards.
        self.components: Final[Mapping[str, str]] = MappingProxyType(dict(components))
        self.missing: Final[Mapping[str, str]] = MappingProxyType(dict(missing))
        self.quality: Final[float] = quality
        self._seal()

    def _values(self) -> tuple[object, ...]:
        return (self.id, self.algorithm, self.source, self.components, self.missing,
                self.quality)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Fingerprint)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(
            (
                self.id,
                self.algorithm,
                self.source,
                tuple(sorted(self.components.items())),
                tuple(sorted(self.missing.items())),
                self.quality,
            )
        )

    def __repr__(self) -> str:
        return (f"{type(self).__qualname__}(id={self.id!r}, algorithm={self.algorithm!r}, "
                f"source={self.source!r}, components={self.components!r}, "
                f"missing={self.missing!r}, quality={self.quality!r})")

    def __reduce__(self) -> tuple[object, ...]:
        return (Fingerprint, (self.id, self.algorithm, self.source, dict(self.components),
                              dict(self.missing), self.quality))

    def to_wire(self) -> dict[str, object]:
        """Return the JSON-ready form sent to the license server.

        Returns:
            ``{"id": str, "algorithm": int, "components": dict[str, str]}``
            -- a fresh dict, safe to modify.
        """
        return {"id": self.id, "algorithm": self.algorithm, "components": dict(self.components)}


_lock = threading.Lock()
_cache: dict[str, Fingerprint] = {}
_secrets: dict[str, bytes] = {}


def collect(product: str, *, refresh: bool = False) -> Fingerprint:
    """Collect (or return the cached) fingerprint of this machine for ``product``.

    The result is cached per process and per product; the cache is
    thread-safe and a cached call takes microseconds. The first call reads a
    few small files (a few milliseconds on Linux), with no subprocess and no
    network on Linux.

    Args:
        product: the product id (non-empty str); it keys every component hash.
        refresh: collect again and replace the cached value.

    Returns:
        The :class:`Fingerprint`.

    Raises:
        TypeError: ``product`` is not a str.
        ValueError: ``product`` is empty.
        FingerprintUnavailable: no stable component (machine id, MAC address,
            host name) could be read. Not cached: the next call tries again.
    """
    _check_product(product)
    if not refresh:
        cached = _cache.get(product)
        if cached is not None:
            return cached
    with _lock:
        if not refresh:
            cached = _cache.get(product)
            if cached is not None:
                return cached
        values, missing = _gather()
        fingerprint = _build(product, values, missing)
        _cache[product] = fingerprint
        return fingerprint


def match(stored: Mapping[str, str], current: Mapping[str, str], tolerance: int) -> bool:
    """Decide whether ``current`` components belong to the machine of ``stored``.

    k-of-n matching: each component of ``stored`` counts as *different* when
    ``current`` lacks it or holds another value. The machine matches when at
    most ``tolerance`` stored components are different **and** at least one
    is equal. Components present only in ``current`` are ignored, so the
    relation is symmetric only between mappings with the same names.

    Args:
        stored: component name -> hash, as bound to the activation.
        current: component name -> hash, as collected now.
        tolerance: how many stored components may differ (int >= 0).

    Returns:
        True when the machine matches. An empty ``stored`` never matches.

    Raises:
        TypeError: ``tolerance`` is not an int (bool is refused too).
        ValueError: ``tolerance`` is negative.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        raise TypeError(f"tolerance must be an int, not {type(tolerance).__name__}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    equal = 0
    different = 0
    for name, value in stored.items():
        if _same_hash(value, current.get(name)):
            equal += 1
        else:
            different += 1
    return equal >= 1 and different <= tolerance


def machine_secret(product: str) -> bytes:
    """Return 32 bytes of machine-bound key material for the local store.

    Derived from the raw value of the strongest stable component (the
    machine id; else the MAC addresses; else the host name) under a label
    different from the component hashes::

        HMAC-SHA256(key=HMAC-SHA256(b"software_dna/machine-secret/v1", product),
                    msg=b"<component name>\\0" + normalized value)

    so it equals no component hash and cannot be computed from anything the
    SDK sends. It is never sent anywhere. Cached per process and product.

    Args:
        product: the product id (non-empty str).

    Returns:
        32 bytes.

    Raises:
        TypeError: ``product`` is not a str.
        ValueError: ``product`` is empty.
        FingerprintUnavailable: no stable component could be read.
    """
    _check_product(product)
    cached = _secrets.get(product)
    if cached is not None:
        return cached
    with _lock:
        cached = _secrets.get(product)
        if cached is not None:
            return cached
        values, missing = _gather()
        source = _strongest(values, missing)
        key = hmac.new(_SECRET_LABEL, product.encode("utf-8"), hashlib.sha256).digest()
        secret = hmac.new(key, _message(source, values[source]), hashlib.sha256).digest()
        _secrets[product] = secret
        return secret


# --------------------------------------------------------------------------- hashing


def _check_product(product: object) -> None:
    if not isinstance(product, str):
        raise TypeError(f"product must be a str, not {type(product).__name__}")
    if not product:
        raise ValueError("product must be a non-empty string")


def _product_key(product: str) -> bytes:
    return hmac.new(_COMPONENT_LABEL, product.encode("utf-8"), hashlib.sha256).digest()


def _message(name: str, value: str) -> bytes:
    return name.encode("ascii") + b"\0" + value.encode("utf-8")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _component_hash(product: str, name: str, value: str) -> str:
    """Hash one normalized component value for ``product`` (base64url, 43 chars)."""
    digest = hmac.new(_product_key(product), _message(name, value), hashlib.sha256).digest()
    return _b64(digest)


def _same_hash(a: object, b: object) -> bool:
    if not isinstance(a, str) or not isinstance(b, str) or not a or not b:
        return False
    return hmac.compare_digest(
        a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass")
    )


def _strongest(values: Mapping[str, str], missing: Mapping[str, str]) -> str:
    for name in _STABLE:
        if name in values:
            return name
    details = "; ".join(f"{_HUMAN_NAMES[n]}: {missing.get(n, 'unavailable')}" for n in _STABLE)
    raise FingerprintUnavailable(
        "This machine cannot be identified: none of its machine id, network card "
        f"addresses or host name could be read ({details}). In a container, mount the "
        "host's /etc/machine-id read-only or give the container a fixed host name."
    )


def _build(product: str, values: Mapping[str, str], missing: Mapping[str, str]) -> Fingerprint:
    source = _strongest(values, missing)
    components = {
        name: _component_hash(product, name, values[name]) for name in COMPONENTS if name in values
    }
    quality = round(sum(_WEIGHTS[name] for name in components), 4)
    return Fingerprint(
        id=f"fp{ALGORITHM}.{source}.{components[source]}",
        algorithm=ALGORITHM,
        source=source,
        components=components,
        missing={name: missing[name] for name in COMPONENTS if name in missing},
        quality=quality,
    )


# --------------------------------------------------------------------------- collection


# Where os.uname() gives exactly what the platform module reports (platform.uname()
# is os.uname() there, with no renaming), so start-up need not import platform.
_UNAME_PLATFORMS = ("linux", "darwin")


def _system() -> str:
    """The OS name as :func:`platform.system` gives it (``"Linux"``, ``"Darwin"`` ...)."""
    if sys.platform in _UNAME_PLATFORMS:
        return os.uname().sysname
    import platform  # Windows, BSD, ...: not on Linux's or macOS's start-up path

    return platform.system()


def _machine() -> str:
    """The architecture as :func:`platform.machine` gives it (``"x86_64"``, ``"arm64"`` ...)."""
    if sys.platform in _UNAME_PLATFORMS:
        return os.uname().machine
    import platform  # lazy: not on Linux's or macOS's start-up path

    return platform.machine()


def _processor() -> str:
    """:func:`platform.processor` (used only where no better CPU source exists)."""
    import platform  # lazy: not on Linux's or macOS's start-up path

    return platform.processor()


def _hostname() -> str:
    """The host name as :func:`socket.gethostname` gives it.

    On Linux and macOS that is the ``nodename`` of uname(2) (glibc, musl and
    macOS implement gethostname(3) with it), read without importing ``socket``.
    """
    if sys.platform in _UNAME_PLATFORMS:
        return os.uname().nodename
    import socket  # lazy: Linux and macOS read uname instead

    return socket.gethostname()


def _gather() -> tuple[dict[str, str], dict[str, str]]:
    """Run every reader; return (normalized raw values, reasons for missing ones).

    Never raises: an exception from a reader marks that component missing.
    The raw values must not outlive the caller.
    """
    readers: dict[str, Callable[[], str]] = {
        "machine_id": _read_machine_id,
        "os_arch": _read_os_arch,
        "mac": _read_macs,
        "hostname": _read_hostname,
        "cpu": _read_cpu,
    }
    values: dict[str, str] = {}
    missing: dict[str, str] = {}
    for name, reader in readers.items():
        try:
            value = reader()
            if not isinstance(value, str) or not value:
                raise _MissingError("empty value")
            value.encode("utf-8")  # refuse lone surrogates before hashing
        except _MissingError as exc:
            missing[name] = str(exc) or "unavailable"
        except OSError as exc:
            missing[name] = f"could not be read ({_os_error(exc)})"
        except UnicodeError:
            missing[name] = "could not be decoded as text"
        except Exception as exc:  # collection must never crash the app
            missing[name] = f"could not be read ({type(exc).__name__})"
        else:
            values[name] = value
    return values, missing


def _os_error(exc: OSError) -> str:
    what = exc.strerror or type(exc).__name__
    return f"{what}: {exc.filename}" if exc.filename else what


def _read_text(path: Path) -> str:
    """Read a small text file (UTF-8, at most 64 KiB). Raises OSError / UnicodeError."""
    with path.open("rb") as handle:
        return handle.read(_MAX_READ).decode("utf-8")


def _display(path: Path) -> str:
    """A path as the user knows it (relative to :data:`_ROOT`)."""
    try:
        return "/" + path.relative_to(_ROOT).as_posix()
    except ValueError:
        return str(path)


# --- machine id

#: Values known to be shared by many machines (compared after normalization).
#: Firmware placeholders come from SMBIOS/DMI product UUIDs (py-machineid uses
#: them on Windows and macOS fallbacks and on BSD); the hex one is the shared
#: id that Whonix/Kicksecure install on purpose; "uninitialized" is what
#: systemd writes into images before the first boot.
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


def _normalize_id(raw: str) -> str:
    """Drop whitespace and control characters (like py-machineid), lower-case."""
    return _STRIP.sub("", raw).lower()


_PLACEHOLDERS: frozenset[str] = frozenset(_normalize_id(p) for p in _PLACEHOLDERS_RAW)


def _placeholder_reason(value: str) -> str | None:
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


def _read_machine_id() -> str:
    """The normalized raw machine id. Raises _MissingError with a reason."""
    system = _system()
    if system == "Linux":
        return _linux_machine_id(_ROOT)
    return _other_machine_id(system)


def _linux_machine_id(root: Path) -> str:
    """Read the systemd/D-Bus machine id, in py-machineid's order, without a subprocess.

    py-machineid reads ``/var/lib/dbus/machine-id`` then ``/etc/machine-id``
    (normally the same file); only when both are absent does it shell out to
    derive a Docker container id, which changes with every new container and
    so is deliberately not used here.
    """
    reasons: list[str] = []
    for relative in ("var/lib/dbus/machine-id", "etc/machine-id"):
        path = root / relative
        try:
            value = _normalize_id(_read_text(path))
        except FileNotFoundError:
            reasons.append(f"no {_display(path)}")
            continue
        except OSError as exc:
            reasons.append(f"{_display(path)} could not be read ({exc.strerror or exc})")
            continue
        except UnicodeError:
            reasons.append(f"{_display(path)} is not text")
            continue
        problem = _placeholder_reason(value)
        if problem is None:
            return value
        reasons.append(f"{_display(path)} {problem}")
    reason = "; ".join(reasons)
    if _in_container(root):
        reason += (
            " (this looks like a container: mount the host's /etc/machine-id read-only "
            "to keep the activation when the container is re-created)"
        )
    raise _MissingError(reason)


def _in_container(root: Path) -> bool:
    return (root / ".dockerenv").exists() or (root / "run/.containerenv").exists()


def _other_machine_id(system: str) -> str:
    """Machine id on Windows, macOS and the BSDs."""
    if system.endswith("BSD"):
        try:
            value = _normalize_id(_read_text(_ROOT / "etc/hostid"))
        except (OSError, UnicodeError):
            value = ""
        if value and _placeholder_reason(value) is None:
            return value
    if sys.platform == "win32":
        value = _normalize_id(_windows_machine_guid())
        if value and _placeholder_reason(value) is None:
            return value
    value = _normalize_id(_machineid_library())
    problem = _placeholder_reason(value)
    if problem is not None:
        raise _MissingError(f"the machine id {problem}")
    return value


def _windows_machine_guid() -> str:
    """MachineGuid from the registry, read in-process ("" when unavailable)."""
    if sys.platform == "win32":
        import winreg  # Windows only

        try:
            with winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE,
                r"SOFTWARE\Microsoft\Cryptography",
                0,
                winreg.KEY_READ | winreg.KEY_WOW64_64KEY,
            ) as key:
                value, _kind = winreg.QueryValueEx(key, "MachineGuid")
        except OSError:
            return ""
        return value if isinstance(value, str) else ""
    return ""


def _machineid_library() -> str:
    """py-machineid's raw id (may run a subprocess on macOS, Windows, BSD; never used on Linux)."""
    import machineid  # lazy: may run a subprocess; never used on Linux

    try:
        value = machineid.id()
    except RuntimeError as exc:  # machineid.MachineIdNotFound
        raise _MissingError("py-machineid found no machine id on this system") from exc
    if not isinstance(value, str):
        raise _MissingError("py-machineid found no machine id on this system")
    return value


# --- OS and architecture


def _read_os_arch() -> str:
    """``"<os>/<architecture>"`` lower-cased, e.g. ``"linux/x86_64"``; no version numbers."""
    system = _system().strip().lower()
    machine = _machine().strip().lower()
    if not system or not machine:
        raise _MissingError("the OS or architecture is not reported by Python")
    return f"{system}/{machine}"


# --- MAC addresses

#: Interface name prefixes that are always virtual (containers, VMs, VPNs, bridges).
_VIRTUAL_PREFIXES: tuple[str, ...] = (
    "lo",
    "docker",
    "veth",
    "br-",
    "virbr",
    "vnet",
    "vboxnet",
    "vmnet",
    "tun",
    "tap",
    "utun",
    "wg",
    "zt",
    "tailscale",
    "ifb",
    "dummy",
)

_ARPHRD_ETHER = "1"  # /sys/class/net/<if>/type for Ethernet and Wi-Fi
_ADDR_RANDOM = "1"  # addr_assign_type: NET_ADDR_RANDOM
_ADDR_SET = "3"  # addr_assign_type: NET_ADDR_SET (changed from user space)


def _parse_mac(text: str) -> bytes | None:
    parts = text.strip().lower().split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        return None
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        return None


def _usable_mac(mac: bytes, assign_type: str | None) -> bool:
    if mac in (b"\x00" * 6, b"\xff" * 6):
        return False
    if mac[0] & 0x01:  # multicast / group address
        return False
    if assign_type == _ADDR_RANDOM:
        return False
    # Locally administered (bit 1 of the first octet) *and* set from user
    # space: MAC randomisation (NetworkManager, systemd-networkd, macchanger).
    # Locally administered addresses assigned by the driver are kept: that is
    # how hypervisors and clouds give VMs their stable NIC addresses.
    return not (mac[0] & 0x02 and assign_type == _ADDR_SET)


def _read_optional(path: Path) -> str | None:
    try:
        return _read_text(path).strip()
    except (OSError, UnicodeError):
        return None


def _read_macs() -> str:
    """Sorted, comma-separated MAC addresses of the physical interfaces (Linux only)."""
    system = _system()
    if system != "Linux":
        raise _MissingError(
            f"network card addresses are read on Linux only in fingerprint algorithm "
            f"{ALGORITHM} (no reader without a subprocess on {system or 'this OS'})"
        )
    return _linux_macs(_ROOT)


def _linux_macs(root: Path) -> str:
    net = root / "sys/class/net"
    try:
        names = sorted(os.listdir(net))
    except OSError as exc:
        raise _MissingError(f"{_display(net)} is not available ({exc.strerror or exc})") from exc
    fixed: set[str] = set()
    removable: set[str] = set()
    for name in names:
        if name.startswith(_VIRTUAL_PREFIXES):
            continue
        iface = net / name
        try:
            if not (iface / "device").exists():  # no bus device behind it: virtual
                continue
            if (iface / "bridge").exists():
                continue
            if _read_optional(iface / "type") not in (None, _ARPHRD_ETHER):
                continue
            mac = _parse_mac(_read_text(iface / "address"))
            if mac is None or not _usable_mac(mac, _read_optional(iface / "addr_assign_type")):
                continue
            subsystem = iface / "device" / "subsystem"
            bus = os.path.basename(os.readlink(subsystem)) if subsystem.is_symlink() else ""
        except (OSError, UnicodeError):
            continue
        text = ":".join(f"{b:02x}" for b in mac)
        (removable if bus == "usb" else fixed).add(text)
    # USB adapters (docks, dongles) come and go: use them only when they are all there is.
    chosen = fixed or removable
    if not chosen:
        raise _MissingError(
            "no physical network interface with a stable MAC address "
            "(virtual, bridge, VPN, container and randomised interfaces are ignored)"
        )
    return ",".join(sorted(chosen))


# --- host name

_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_GENERIC_HOSTNAMES = frozenset({"localhost", "localhost6", "(none)", "localdomain"})


def _read_hostname() -> str:
    """The host name's first label, lower-cased (``"Build-01.corp.example"`` -> ``"build-01"``).

    The domain part is dropped because DHCP and macOS change it with the network.
    """
    name = _hostname().strip().lower().rstrip(".")
    # A host named by its IPv4 address keeps the whole address.
    value = name if _IPV4.fullmatch(name) else name.split(".", 1)[0]
    if not value:
        raise _MissingError("the host name is empty")
    if value in _GENERIC_HOSTNAMES:
        raise _MissingError("the host name is a generic default that does not identify a machine")
    return value


# --- CPU model

#: /proc/cpuinfo keys naming the CPU model, by preference (x86; old ARM; MIPS; ARM; PowerPC).
_CPUINFO_KEYS: tuple[str, ...] = ("model name", "Hardware", "cpu model", "Processor", "cpu")


def _normalize_text(text: str) -> str:
    return " ".join(text.split()).lower()


def _read_cpu() -> str:
    """The CPU model, whitespace-collapsed and lower-cased."""
    system = _system()
    if system == "Linux":
        value = _linux_cpu(_ROOT)
    elif system == "Windows":
        value = _windows_cpu() or _processor()
    elif system == "Darwin":
        value = _darwin_cpu() or _processor()
    else:
        value = _processor()
    value = _normalize_text(value)
    if not value:
        raise _MissingError("the CPU model is not reported on this system")
    return value


def _linux_cpu(root: Path) -> str:
    path = root / "proc/cpuinfo"
    found: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                key = key.strip()
                value = value.strip()
                # x86's "processor" is the CPU index; only a name counts.
                if not value or value.isdigit() or key in found:
                    continue
                found[key] = value
                if key == "model name":  # x86: first block has it, stop early
                    break
    except FileNotFoundError as exc:
        raise _MissingError(f"no {_display(path)}") from exc
    for key in _CPUINFO_KEYS:
        if key in found:
            return found[key]
    implementer = found.get("CPU implementer")
    part = found.get("CPU part")
    if implementer and part:  # arm64: no model name, but a stable (vendor, part) pair
        return f"arm implementer {implementer} part {part}"
    raise _MissingError(f"{_display(path)} names no CPU model")


def _windows_cpu() -> str:
    """ProcessorNameString from the registry ("" when unavailable)."""
    if sys.platform == "win32":
        import winreg  # Windows only

        try:
            with winreg.OpenKey(
                winreg.HKEY_LOCAL_MACHINE, r"HARDWARE\DESCRIPTION\System\CentralProcessor\0"
            ) as key:
                value, _kind = winreg.QueryValueEx(key, "ProcessorNameString")
        except OSError:
            return ""
        return value if isinstance(value, str) else ""
    return ""


def _darwin_cpu() -> str:
    """``machdep.cpu.brand_string`` through sysctlbyname(3), in-process ("" when unavailable)."""
    if sys.platform == "darwin":
        import ctypes  # lazy: macOS only

        try:
            libc = ctypes.CDLL(None)
            name = b"machdep.cpu.brand_string"
            size = ctypes.c_size_t(0)
            if libc.sysctlbyname(name, None, ctypes.byref(size), None, ctypes.c_size_t(0)):
                return ""
            buffer = ctypes.create_string_buffer(size.value)
            if libc.sysctlbyname(name, buffer, ctypes.byref(size), None, ctypes.c_size_t(0)):
                return ""
            return buffer.value.decode("utf-8", "replace")
        except (OSError, AttributeError):
            return ""
    return ""


def _reset_caches() -> None:
    """Forget every cached fingerprint and secret (tests only)."""
    with _lock:
        _cache.clear()
        _secrets.clear()
