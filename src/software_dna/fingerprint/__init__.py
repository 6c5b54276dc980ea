"""Privacy-preserving machine fingerprint (algorithm 2).

A fingerprint is a handful of *components*: the machine id, on Windows the
firmware (SMBIOS) UUID as well, the MAC addresses of the physical network
interfaces (one hash per address), the OS and architecture, and the CPU
model. Raw values never leave this package: each is reduced to a slow,
per-product scrypt hash (:mod:`software_dna.fingerprint._hashing`), so two
vendors see unrelated values for one machine and a hash costs more than a
core-day to reverse even for a MAC address (``bench/fingerprint_cost.py``).
The host name is no component any more: it is read only to compute the
algorithm-1 form (:attr:`Fingerprint.legacy`) that migrates 0.1 activations,
and :func:`machine_secret`.

Collection never raises for one unreadable source: the component is sent as
``null`` and listed in :attr:`Fingerprint.missing` with a human reason. Only
when no identifying component (machine id, SMBIOS UUID, MAC address) can be
read does :func:`collect` raise
:class:`~software_dna.errors.FingerprintUnavailable`.

Sources, all read in-process (no subprocess, no PATH, no network):

- Linux: ``/var/lib/dbus/machine-id`` or ``/etc/machine-id``,
  ``/sys/class/net``, ``/proc/cpuinfo`` (:mod:`._linux`);
- macOS: ``gethostuuid``, ``getifaddrs``, ``sysctlbyname`` via ctypes (:mod:`._darwin`);
- Windows: the registry's MachineGuid, ``GetSystemFirmwareTable('RSMB')``,
  ``GetAdaptersAddresses`` (:mod:`._windows`);
- the BSDs: ``/etc/hostid`` (py-machineid as the last resort) and getifaddrs.

See ``docs/fingerprint.md`` for the full description.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from software_dna.errors import FingerprintUnavailable, Message
from software_dna.fingerprint import _linux, _machinekey
from software_dna.fingerprint._common import (
    MissingError,
    normalize_id,
    normalize_text,
    placeholder_reason,
    read_text,
)
from software_dna.fingerprint._hashing import (
    PRODUCTION_COST,
    component_hash,
    cost,
    legacy_hash,
    scrypt_cost_for_tests,
)
from software_dna.fingerprint._machinekey import MachineKey
from software_dna.fingerprint._model import ALGORITHM, Fingerprint, LegacyFingerprint
from software_dna.i18n import N_
from software_dna.wire import identity

__all__ = [
    "ALGORITHM",
    "COMPONENTS",
    "PRODUCTION_COST",
    "Fingerprint",
    "LegacyFingerprint",
    "Machine",
    "MachineKey",
    "THIS_MACHINE",
    "collect",
    "machine_secret",
    "scrypt_cost_for_tests",
]

#: Every component algorithm 2 knows, in a fixed order (``smbios_uuid``: Windows only).
COMPONENTS: tuple[str, ...] = identity.NAMES

#: Algorithm-1 components (0.1), in their order; computed only for :attr:`Fingerprint.legacy`.
LEGACY_COMPONENTS: tuple[str, ...] = ("machine_id", "os_arch", "mac", "hostname", "cpu")
#: Algorithm 1's identifying components, strongest first: its id and
#: :func:`machine_secret` use the first one available.
_LEGACY_STABLE: tuple[str, ...] = ("machine_id", "mac", "hostname")

_SECRET_LABEL = b"software_dna/machine-secret/v1"

_HUMAN_NAMES: Mapping[str, str] = {
    "machine_id": "machine id",
    "smbios_uuid": "firmware (SMBIOS) UUID",
    "os_arch": "OS and architecture",
    "mac": "network card addresses",
    "cpu": "CPU model",
    "hostname": "host name",
}

# Swappable for tests: the file-system root the Linux and BSD readers look under.
_ROOT: Path = Path("/")


class _Raw(NamedTuple):
    """One reading of this machine: normalized raw values that must not outlive the caller.

    ``values``: machine_id, smbios_uuid, os_arch, cpu, hostname (those read);
    ``macs``: algorithm 2's addresses, fixed cards first; ``legacy_mac``:
    algorithm 1's ``mac`` value (Linux only); ``missing``: name -> reason.
    """

    values: dict[str, str]
    macs: list[str]
    legacy_mac: str | None
    missing: dict[str, str]


# --------------------------------------------------------------------------- public API


class Machine:
    """The machine the SDK runs on, as the SDK reads it: its fingerprint and its machine key.

    :data:`THIS_MACHINE` is the real one (every reader of this package).
    :class:`software_dna.testing.SimulatedMachine` subclasses it with values
    a test chooses. Each instance caches what it computed (thread-safe):
    fingerprints per product and scrypt cost, unlocked machine keys per
    product and keyring.

    Attributes:
        environ: the environment variables of the OS account (the real
            machine: :data:`os.environ`, read live).
        home: the account's home folder.
        platform: :data:`sys.platform` (``"linux"``, ``"darwin"``, ``"win32"`` ...).
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._fingerprints: dict[tuple[str, int], Fingerprint] = {}
        self._secrets: dict[str, bytes] = {}
        self._keys: dict[tuple[str, tuple[Path, ...]], MachineKey] = {}
        self._raw: _Raw | None = None

    @property
    def environ(self) -> Mapping[str, str]:
        """The account's environment variables."""
        return os.environ

    @property
    def home(self) -> Path:
        """The account's home folder (``HOME``; ``Path.home()`` when unset)."""
        home = os.environ.get("HOME")
        return Path(home) if home else Path.home()

    @property
    def platform(self) -> str:
        """:data:`sys.platform` of this machine."""
        return sys.platform

    def scrypt_cost(self) -> int:
        """The scrypt cost this machine's hashes use (:func:`cost`)."""
        return cost()

    def read(self) -> _Raw:
        """One reading of every component (normalized raw values; never raises)."""
        return _gather()

    def forget(self) -> None:
        """Drop every cached fingerprint, secret and key: the next call reads the machine again."""
        with self._lock:
            self._fingerprints.clear()
            self._secrets.clear()
            self._keys.clear()
            self._raw = None

    def _reading(self, *, refresh: bool = False) -> _Raw:
        """:meth:`read`, once per process (the lock held): the fingerprint and the key share it."""
        if self._raw is None or refresh:
            self._raw = self.read()
        return self._raw

    def fingerprint(self, product: str, *, refresh: bool = False,
                    cache_dir: str | os.PathLike[str] | None = None) -> Fingerprint:
        """This machine's fingerprint for ``product``: see :func:`collect` (same arguments)."""
        _check_product(product)
        n = self.scrypt_cost()
        key = (product, n)
        if not refresh:
            cached = self._fingerprints.get(key)
            if cached is not None:
                return cached
        with self._lock:
            if not refresh:
                cached = self._fingerprints.get(key)
                if cached is not None:
                    return cached
            raw = self._reading(refresh=refresh)
            secret = self._secret_from(product, raw) if raw.values.get("machine_id") else None
            try:
                fingerprint = _build(product, raw, n, None if secret is None else cache_dir,
                                     secret)
            except FingerprintUnavailable:
                self._raw = None  # not cached: the next call reads the machine again
                raise
            self._fingerprints[key] = fingerprint
            return fingerprint

    def legacy_secret(self, product: str) -> bytes:
        """The 0.1 store key material: see :func:`machine_secret`."""
        _check_product(product)
        cached = self._secrets.get(product)
        if cached is not None:
            return cached
        with self._lock:
            cached = self._secrets.get(product)
            if cached is not None:
                return cached
            return self._secret_from(product, self._reading())

    def machine_key(self, product: str, keyrings: Sequence[Path], *, create: bool,
                    start_over: bool = False) -> MachineKey | None:
        """This machine's key for ``product``, unlocked from its keyring (docs/fingerprint.md).

        Args:
            product: the product id.
            keyrings: where the keyring may be, preferred first (the first
                writable one gets a new keyring).
            create: make a keyring with a new random key when none exists.
            start_over: move aside a keyring this machine cannot open and
                make a new key (a new activation), instead of raising.

        Returns:
            The :class:`MachineKey`; None when there is no keyring and
            ``create`` is false.

        Raises:
            StoreFromAnotherMachine: the keyring was made on another machine,
                or more components changed at once than the identity rules
                tolerate (nothing is changed on disk).
            StoreError: the keyring cannot be read or written.
            FingerprintUnavailable: no identifying component can be read.
        """
        _check_product(product)
        where = tuple(Path(p) for p in keyrings)
        cached = self._keys.get((product, where))
        if cached is not None and not start_over:
            return cached
        with self._lock:
            cached = self._keys.get((product, where))
            if cached is not None and not start_over:
                return cached
            raw = self._reading()
            if not raw.values.get("machine_id") and not raw.values.get("smbios_uuid") \
                    and not raw.macs:
                self._raw = None  # not cached: the next call reads the machine again
                raise _unavailable_error(raw)
            reading = _key_reading(raw)
            unreadable = sorted(name for name, value in reading.items() if value is None)
            if len(unreadable) > identity.MAX_TOLERANCE:
                self._raw = None
                # Such a machine is not the same machine as itself by the identity
                # rules (every unreadable component counts as changed).
                details = "; ".join(f"{_HUMAN_NAMES[n]}: {raw.missing.get(n, 'unavailable')}"
                                    for n in unreadable)
                raise FingerprintUnavailable(Message(
                    N_("This machine cannot be identified: too many of its components cannot "
                       "be read (%(details)s). Run the app with the rights to read them."),
                    details=details))
            key = _machinekey.unlock(where, product, reading, self.scrypt_cost(),
                                     create=create, start_over=start_over)
            if key is not None:
                self._keys[product, where] = key
            return key

    def _secret_from(self, product: str, raw: _Raw) -> bytes:
        secret = _secret_from(product, raw)
        self._secrets[product] = secret
        return secret


def collect(product: str, *, refresh: bool = False,
            cache_dir: str | os.PathLike[str] | None = None) -> Fingerprint:
    """Collect (or return the cached) fingerprint of this machine for ``product``.

    The result is cached per process, product and scrypt cost (thread-safe;
    a cached call takes microseconds). A cold call reads a few files (Linux)
    or OS tables and computes one scrypt hash per component value (about
    50 ms each at the production cost). With ``cache_dir`` the hashes are
    also kept on disk (``fingerprint-v2-*.json``, see
    :mod:`software_dna.fingerprint._diskcache`), so that a new process on
    the same machine computes none: only changed or new values are hashed.
    The disk cache is used only when the machine id is readable (its
    entries are keyed with a secret derived from it).

    Args:
        product: the product id (non-empty str); it salts every component hash.
        refresh: read the machine again and replace the per-process value.
        cache_dir: an existing directory for the on-disk cache (the SDK's
            store directory), or None for no disk cache.

    Returns:
        The :class:`Fingerprint`.

    Raises:
        TypeError: ``product`` is not a str.
        ValueError: ``product`` is empty.
        FingerprintUnavailable: no identifying component (machine id,
            SMBIOS UUID, MAC address) could be read. Not cached: the next
            call tries again.
    """
    return THIS_MACHINE.fingerprint(product, refresh=refresh, cache_dir=cache_dir)


def machine_secret(product: str) -> bytes:
    """Return the 32 bytes of key material 0.1 and 0.2 stores were encrypted with.

    Read only to open such a store (and its witness) once, before they are
    written again under the machine key (:meth:`Machine.machine_key`), and
    to key the fingerprint's disk cache. Derived from the raw value of the
    strongest algorithm-1 component (the machine id; else the MAC addresses
    (Linux); else the host name) under a label different from the
    component hashes::

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
        FingerprintUnavailable: none of machine id, MAC addresses, host name
            could be read.
    """
    return THIS_MACHINE.legacy_secret(product)


# --------------------------------------------------------------------------- building


def _check_product(product: object) -> None:
    if not isinstance(product, str):
        raise TypeError(f"product must be a str, not {type(product).__name__}")
    if not product:
        raise ValueError("product must be a non-empty string")


def _legacy_values(raw: _Raw) -> dict[str, str]:
    """Algorithm 1's raw values (host name included, MACs as one joined string)."""
    values: dict[str, str] = {
        name: raw.values[name] for name in ("machine_id", "os_arch", "hostname", "cpu")
        if name in raw.values}
    if raw.legacy_mac:
        values["mac"] = raw.legacy_mac
    return values


def _legacy_source(values: Mapping[str, str]) -> str | None:
    return next((name for name in _LEGACY_STABLE if name in values), None)


def _secret_from(product: str, raw: _Raw) -> bytes:
    """:func:`machine_secret` from one reading."""
    values = _legacy_values(raw)
    source = _legacy_source(values)
    if source is None:
        details = "; ".join(f"{_HUMAN_NAMES[n]}: {raw.missing.get(n, 'unavailable')}"
                            for n in _LEGACY_STABLE)
        raise FingerprintUnavailable(Message(
            N_("This machine cannot be identified: none of its machine id, network card "
               "addresses or host name could be read (%(details)s). In a container, mount the "
               "host's /etc/machine-id read-only."), details=details))
    key = hmac.new(_SECRET_LABEL, product.encode("utf-8"), hashlib.sha256).digest()
    message = source.encode("ascii") + b"\0" + values[source].encode("utf-8")
    return hmac.new(key, message, hashlib.sha256).digest()


def _legacy(product: str, raw: _Raw) -> LegacyFingerprint | None:
    """The algorithm-1 fingerprint with 0.1's rules (cheap HMACs), or None without a source."""
    values = _legacy_values(raw)
    source = _legacy_source(values)
    if source is None:
        return None
    components = {name: legacy_hash(product, name, values[name])
                  for name in LEGACY_COMPONENTS if name in values}
    return LegacyFingerprint(f"fp1.{source}.{components[source]}", components)


def _unavailable_error(raw: _Raw) -> FingerprintUnavailable:
    names = ("machine_id", "smbios_uuid", "mac") if "smbios_uuid" in raw.missing else (
        "machine_id", "mac")
    details = "; ".join(f"{_HUMAN_NAMES[n]}: {raw.missing.get(n, 'unavailable')}"
                        for n in names)
    return FingerprintUnavailable(Message(
        N_("This machine cannot be identified: neither its machine id nor the address of a "
           "physical network card could be read (%(details)s). In a container, mount the "
           "host's /etc/machine-id read-only (docker run -v "
           "/etc/machine-id:/etc/machine-id:ro); elsewhere make sure the machine id is "
           "readable by this user."), details=details))


def _build(product: str, raw: _Raw, n: int, cache_dir: str | os.PathLike[str] | None,
           secret: bytes | None) -> Fingerprint:
    """Hash ``raw`` into a :class:`Fingerprint` (through the disk cache when given)."""
    if not raw.values.get("machine_id") and not raw.values.get("smbios_uuid") and not raw.macs:
        raise _unavailable_error(raw)
    wanted: list[tuple[str, str]] = [
        (name, raw.values[name]) for name in COMPONENTS
        if name != "mac" and name in raw.values]
    wanted.extend(("mac", mac) for mac in raw.macs)
    disk = None
    known: dict[str, str] = {}
    if cache_dir is not None and secret is not None:
        from software_dna.fingerprint._diskcache import DiskCache  # lazy: json

        disk = DiskCache(Path(cache_dir), secret, n)
        known = disk.load()
    hashes: dict[tuple[str, str], str] = {}
    fresh: dict[str, str] = {}
    for name, value in wanted:
        tag = disk.tag(name, value) if disk is not None else ""
        found = known.get(tag) if disk is not None else None
        if found is None:
            found = component_hash(product, name, value, n)
            if disk is not None:
                fresh[tag] = found
        hashes[name, value] = found
    if disk is not None and fresh:
        disk.save(known, fresh)
    components: dict[str, object] = {}
    for name in identity.REQUIRED:
        if name == "mac":
            components[name] = [hashes["mac", m] for m in raw.macs] or None
        else:
            components[name] = hashes.get((name, raw.values.get(name, "")))
    if "smbios_uuid" in raw.values or "smbios_uuid" in raw.missing:
        components["smbios_uuid"] = hashes.get(("smbios_uuid", raw.values.get("smbios_uuid", "")))
    missing = {name: raw.missing[name] for name in COMPONENTS if name in raw.missing}
    return Fingerprint(components, missing, _legacy(product, raw))


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
    """The host name as :func:`socket.gethostname` gives it (algorithm 1 only).

    On Linux and macOS that is the ``nodename`` of uname(2), read without
    importing ``socket``.
    """
    if sys.platform in _UNAME_PLATFORMS:
        return os.uname().nodename
    import socket  # lazy: Linux and macOS read uname instead

    return socket.gethostname()


def _is_bsd(system: str) -> bool:
    return system.endswith("BSD") or system == "DragonFly"


def _gather() -> _Raw:
    """Run every reader once. Never raises: a failing reader marks its component missing."""
    system = _system()
    values: dict[str, str] = {}
    missing: dict[str, str] = {}
    readers: dict[str, Callable[[], str]] = {
        "machine_id": lambda: _read_machine_id(system),
        "os_arch": _read_os_arch,
        "cpu": lambda: _read_cpu(system),
        "hostname": _read_hostname,
    }
    if system == "Windows":
        readers["smbios_uuid"] = _read_smbios_uuid
    for name, reader in readers.items():
        reason = _guarded(reader, values, name)
        if reason is not None:
            missing[name] = reason
    macs: list[str] = []
    legacy_mac: str | None = None
    try:
        macs, legacy_mac = _read_macs(system)
    except MissingError as exc:
        missing["mac"] = str(exc) or "unavailable"
    except Exception as exc:  # collection must never crash the app
        missing["mac"] = f"could not be read ({type(exc).__name__})"
    else:
        if not macs:
            missing["mac"] = (
                "no physical network interface with a stable MAC address (virtual, bridge, "
                "VPN, container and randomised interfaces are ignored)")
    return _Raw(values, macs, legacy_mac, missing)


def _guarded(reader: Callable[[], str], values: dict[str, str], name: str) -> str | None:
    """Run ``reader``; store its value, or return the human reason it failed."""
    try:
        value = reader()
        if not isinstance(value, str) or not value:
            raise MissingError("empty value")
        value.encode("utf-8")  # refuse lone surrogates before hashing
    except MissingError as exc:
        return str(exc) or "unavailable"
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        return f"could not be read ({what}: {exc.filename})" if exc.filename else (
            f"could not be read ({what})")
    except UnicodeError:
        return "could not be decoded as text"
    except Exception as exc:  # collection must never crash the app
        return f"could not be read ({type(exc).__name__})"
    values[name] = value
    return None


# --- machine id and SMBIOS UUID


def _read_machine_id(system: str) -> str:
    """The normalized machine id of this OS. Raises MissingError with a reason."""
    if system == "Linux":
        return _linux.machine_id(_ROOT)
    if system == "Darwin":
        from software_dna.fingerprint import _darwin  # lazy: ctypes, macOS only

        value = normalize_id(_darwin.machine_id())
    elif system == "Windows":
        from software_dna.fingerprint import _windows  # lazy: ctypes, Windows only

        value = normalize_id(_windows.machine_guid())
    elif _is_bsd(system):
        value = _bsd_machine_id()
    else:
        raise MissingError(f"no machine id reader for {system or 'this OS'}")
    problem = placeholder_reason(value)
    if problem is not None:
        raise MissingError(f"the machine id {problem}")
    return value


def _bsd_machine_id() -> str:
    """``/etc/hostid``; py-machineid (which may run a subprocess) only as the last resort."""
    try:
        value = normalize_id(read_text(_ROOT / "etc/hostid"))
    except (OSError, UnicodeError):
        value = ""
    if value and placeholder_reason(value) is None:
        return value
    return normalize_id(_machineid_library())


def _machineid_library() -> str:
    """py-machineid's raw id (BSD last resort; never used on Linux, macOS or Windows)."""
    import machineid  # lazy: may run a subprocess

    try:
        value = machineid.id()
    except RuntimeError as exc:  # machineid.MachineIdNotFound
        raise MissingError("py-machineid found no machine id on this system") from exc
    if not isinstance(value, str):
        raise MissingError("py-machineid found no machine id on this system")
    return value


def _read_smbios_uuid() -> str:
    from software_dna.fingerprint import _windows  # lazy: ctypes, Windows only

    return _windows.smbios_uuid()


# --- OS and architecture, CPU, host name


def _read_os_arch() -> str:
    """``"<os>/<architecture>"`` lower-cased, e.g. ``"linux/x86_64"``; no version numbers."""
    system = _system().strip().lower()
    machine = _machine().strip().lower()
    if not system or not machine:
        raise MissingError("the OS or architecture is not reported by Python")
    return f"{system}/{machine}"


def _read_cpu(system: str) -> str:
    """The CPU model, whitespace-collapsed and lower-cased."""
    if system == "Linux":
        value = _linux.cpu(_ROOT)
    elif system == "Windows":
        from software_dna.fingerprint import _windows  # lazy: Windows only

        value = _windows.cpu() or _processor()
    elif system == "Darwin":
        from software_dna.fingerprint import _darwin  # lazy: macOS only

        value = _darwin.cpu() or _processor()
    else:
        value = _processor()
    value = normalize_text(value)
    if not value:
        raise MissingError("the CPU model is not reported on this system")
    return value


_IPV4 = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){3}")
_GENERIC_HOSTNAMES = frozenset({"localhost", "localhost6", "(none)", "localdomain"})


def _read_hostname() -> str:
    """The host name's first label, lower-cased (algorithm 1 and :func:`machine_secret` only).

    The domain part is dropped because DHCP and macOS change it with the network.
    """
    name = _hostname().strip().lower().rstrip(".")
    # A host named by its IPv4 address keeps the whole address.
    value = name if _IPV4.fullmatch(name) else name.split(".", 1)[0]
    if not value:
        raise MissingError("the host name is empty")
    if value in _GENERIC_HOSTNAMES:
        raise MissingError("the host name is a generic default that does not identify a machine")
    return value


# --- MAC addresses


def _read_macs(system: str) -> tuple[list[str], str | None]:
    """(algorithm 2's addresses, fixed first, at most MAX_MACS; algorithm 1's joined value).

    Algorithm 1 read addresses on Linux only and used USB ones only when no
    built-in card existed; algorithm 2 compares address sets, so both kinds
    are sent (a dock coming and going is not drift).
    """
    if system == "Linux":
        fixed, removable = _linux.macs(_ROOT)
        chosen = fixed or removable
        return (fixed + removable)[:identity.MAX_MACS], ",".join(chosen) if chosen else None
    if system == "Darwin" or _is_bsd(system):
        from software_dna.fingerprint import _darwin  # lazy: ctypes

        return _darwin.macs()[:identity.MAX_MACS], None
    if system == "Windows":
        from software_dna.fingerprint import _windows  # lazy: ctypes

        return _windows.macs()[:identity.MAX_MACS], None
    raise MissingError(f"no network card reader for {system or 'this OS'}")


def _key_reading(raw: _Raw) -> dict[str, str | tuple[str, ...] | None]:
    """The raw values the machine key is wrapped under: the component names of
    :func:`_build`'s set, each with its value or None (``mac``: sorted addresses)."""
    names = [*identity.REQUIRED]
    if "smbios_uuid" in raw.values or "smbios_uuid" in raw.missing:
        names.append("smbios_uuid")
    reading: dict[str, str | tuple[str, ...] | None] = {
        name: raw.values.get(name) for name in names if name != "mac"}
    reading["mac"] = tuple(sorted(set(raw.macs))) or None
    return reading


#: The machine this process runs on.
THIS_MACHINE = Machine()


def _reset_caches() -> None:
    """Forget every cached fingerprint, secret and key of this machine (tests only)."""
    THIS_MACHINE.forget()
