"""Test helpers for apps that embed software_dna: simulated machines, a clock, a pytest plugin.

A vendor's tests need several machines -- two computers sharing a license,
a laptop whose network card changed, a cloned VM, a container -- on one
test runner. :class:`SimulatedMachine` is such a machine: component values
the test chooses and changes, and a home folder of its own where its
license store, rollback witness and machine key live. Give it to the
client, and only that way (nothing in the environment selects it)::

    from software_dna import LicenseClient
    from software_dna.testing import SimulatedMachine

    laptop = SimulatedMachine(tmp_path / "laptop")
    client = LicenseClient(product="acme-editor", public_keys=[KEY],
                           server_url=URL, machine=laptop)
    client.activate("ABCD-EFGH-JKLM-NPQR")
    laptop.drift("mac")            # a new network card: still the same machine
    LicenseClient(..., machine=laptop).check()

:class:`SimulatedClock` is the app's clock for ``LicenseClient(clock=...)``,
moved by hand. This package needs only the SDK (it imports neither pytest
nor the server); :mod:`software_dna.testing.plugin` is the pytest plugin
with the license server in-process and fixtures for machines, products and
clients (``pytest_plugins = ["software_dna.testing.plugin"]``).

See ``docs/testing.md``. Simulated fingerprints are hashed at a low scrypt
cost (:attr:`SimulatedMachine.cost`): they are compared only with each
other, never match a real machine's, and tests stay fast. Simulated
machines do not emulate another OS's readers (``platform`` changes only
the OS component, Windows' firmware UUID and where files are kept).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from software_dna.fingerprint import Machine
from software_dna.fingerprint import _Raw as Reading
from software_dna.fingerprint._common import normalize_id, normalize_text, placeholder_reason
from software_dna.testing._clock import SimulatedClock
from software_dna.wire.identity import MAX_MACS

__all__ = ["DRIFTABLE", "SimulatedClock", "SimulatedMachine"]

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_OS = {"linux": "linux", "darwin": "darwin", "win32": "windows"}
_UNREADABLE = "unreadable on this simulated machine"
#: Component names :meth:`SimulatedMachine.drift` knows.
DRIFTABLE = ("machine_id", "smbios_uuid", "mac", "cpu", "os_arch")


def _random_id() -> str:
    return uuid.uuid4().hex


def _random_mac() -> str:
    first = os.urandom(1)[0] & 0b1111_1100  # universally administered, unicast: a real card's
    return ":".join(f"{b:02x}" for b in bytes([first]) + os.urandom(5))


def _check_mac(value: str) -> str:
    mac = value.strip().lower().replace("-", ":")
    if not _MAC.fullmatch(mac):
        raise ValueError(f"not a MAC address (aa:bb:cc:dd:ee:ff): {value!r}")
    return mac


class SimulatedMachine(Machine):
    """A machine for tests: its component values, its drift, its own disk.

    Args:
        home: the folder that stands for this machine's home folder (its
            store, witness and machine key live under it); created if missing.
        platform: the :data:`sys.platform` it runs (``"linux"``, ``"darwin"``,
            ``"win32"``): the OS part of the fingerprint, Windows' extra
            firmware UUID, and where its files are kept follow it.
        machine_id, smbios_uuid: the identifiers (any text of at least 8
            characters; normalized as the real readers do); default: a
            random one (``smbios_uuid``: Windows only). ``None``: unreadable.
        macs: the physical network cards' addresses; default one random
            address; empty: no network card.
        cpu: the CPU model; ``None``: unreadable.
        os_arch: ``"<os>/<arch>"``; default from ``platform`` (x86_64).
        machine_id_at_boot: the machine id is regenerated at every
            :meth:`reboot` (WSL, read-only images).
        environ: extra environment variables of its account (e.g.
            ``XDG_DATA_HOME``); ``HOME`` is always ``home``.
        cost: the scrypt cost of its hashes (a power of two; low by default).

    Attributes:
        machine_id, smbios_uuid, cpu, os_arch (str or None), macs (list of
        str): the values it reads now; change them with :meth:`drift` or
        :meth:`set`, which also forget what the machine had computed.
    """

    def __init__(self, home: str | os.PathLike[str], *, platform: str = "linux",
                 machine_id: str | None = "", smbios_uuid: str | None = "",
                 macs: Iterable[str] | None = None, cpu: str | None = "Simulated CPU @ 3.00GHz",
                 os_arch: str | None = "", machine_id_at_boot: bool = False,
                 environ: Mapping[str, str] | None = None, cost: int = 16) -> None:
        super().__init__()
        self._home = Path(home).absolute()
        self._home.mkdir(parents=True, exist_ok=True)
        self._platform = platform
        self.cost = cost
        self.machine_id_at_boot = machine_id_at_boot
        self.machine_id: str | None = _random_id() if machine_id == "" else machine_id
        windows = platform == "win32"
        self.smbios_uuid: str | None = (_random_id() if windows else None) \
            if smbios_uuid == "" else smbios_uuid
        self.macs: list[str] = [_random_mac()] if macs is None else [_check_mac(m) for m in macs]
        self.cpu = cpu
        default_os = f"{_OS.get(platform, platform)}/x86_64"
        self.os_arch: str | None = default_os if os_arch == "" else os_arch
        self._environ: dict[str, str] = self._base_environ()
        self._environ.update(environ or {})
        self._state = threading.Lock()

    # ------------------------------------------------------------ the account

    def _base_environ(self) -> dict[str, str]:
        env = {"HOME": str(self._home)}
        if self._platform == "win32":
            env["USERPROFILE"] = str(self._home)
            env["LOCALAPPDATA"] = str(self._home / "AppData" / "Local")
            env["APPDATA"] = str(self._home / "AppData" / "Roaming")
        return env

    @property
    def environ(self) -> MutableMapping[str, str]:
        """Its account's environment variables (change them to move XDG folders)."""
        return self._environ

    @property
    def home(self) -> Path:
        """Its home folder."""
        return self._home

    @property
    def platform(self) -> str:
        """The :data:`sys.platform` it runs."""
        return self._platform

    def scrypt_cost(self) -> int:
        """:attr:`cost`."""
        return self.cost

    # ------------------------------------------------------------ reading

    def read(self) -> Reading:
        """What the SDK's readers would return on this machine now."""
        values: dict[str, str] = {}
        missing: dict[str, str] = {}
        ids = {"machine_id": self.machine_id}
        if self._platform == "win32" or self.smbios_uuid is not None:
            ids["smbios_uuid"] = self.smbios_uuid
        for name, raw in ids.items():
            value = normalize_id(raw) if raw else ""
            problem = placeholder_reason(value) if value else _UNREADABLE
            if problem is None:
                values[name] = value
            else:
                missing[name] = problem
        for name, raw in (("os_arch", self.os_arch), ("cpu", self.cpu)):
            text = normalize_text(raw) if raw else ""
            if text:
                values[name] = text
            else:
                missing[name] = _UNREADABLE
        macs = list(dict.fromkeys(self.macs))[:MAX_MACS]
        if not macs:
            missing["mac"] = "no physical network interface on this simulated machine"
        return Reading(values, macs, None, missing)

    # ------------------------------------------------------------ changing

    def set(self, **values: object) -> None:
        """Give components new values (``machine_id=``, ``macs=``, ``cpu=`` ...).

        Like replacing a part and restarting the app: what the machine had
        computed is forgotten.

        Raises:
            TypeError: an unknown component name.
            ValueError: a malformed MAC address.
        """
        for name, value in values.items():
            if name == "macs":
                assert isinstance(value, Iterable)
                self.macs = [_check_mac(m) for m in value]
            elif name in ("machine_id", "smbios_uuid", "cpu", "os_arch"):
                if value is not None and not isinstance(value, str):
                    raise TypeError(f"{name} must be a str or None")
                setattr(self, name, value)
            else:
                raise TypeError(f"unknown component {name!r}")
        self.forget()

    def drift(self, *names: str) -> None:
        """Give each named component a new random value (honest drift, or more).

        ``"mac"`` replaces every network card by a new one; ``"machine_id"``,
        ``"smbios_uuid"``, ``"cpu"``, ``"os_arch"`` get new values. One name
        is drift the identity rules tolerate; two at once is another machine.

        Raises:
            TypeError: an unknown name.
        """
        fresh: dict[str, object] = {}
        for name in names:
            if name == "mac":
                fresh["macs"] = [_random_mac() for _ in range(max(len(self.macs), 1))]
            elif name in ("machine_id", "smbios_uuid"):
                fresh[name] = _random_id()
            elif name == "cpu":
                fresh[name] = f"Simulated CPU {uuid.uuid4().hex[:8]}"
            elif name == "os_arch":
                system = _OS.get(self._platform, self._platform)
                fresh[name] = f"{system}/arm64-{os.urandom(2).hex()}"
            else:
                raise TypeError(f"unknown component {name!r}; one of {', '.join(DRIFTABLE)}")
        self.set(**fresh)

    def reboot(self) -> None:
        """Restart: a machine id regenerated at boot changes (``machine_id_at_boot``)."""
        if self.machine_id_at_boot:
            self.machine_id = _random_id()
        self.forget()

    # ------------------------------------------------------------ other machines

    def clone(self, home: str | os.PathLike[str]) -> SimulatedMachine:
        """A machine with identical component values (a cloned VM) and an empty disk at ``home``."""
        twin = SimulatedMachine(home, platform=self._platform, machine_id=self.machine_id,
                                smbios_uuid=self.smbios_uuid, macs=list(self.macs), cpu=self.cpu,
                                os_arch=self.os_arch, machine_id_at_boot=self.machine_id_at_boot,
                                cost=self.cost)
        extra = {k: v for k, v in self._environ.items() if k not in self._base_environ()}
        twin.environ.update(extra)
        return twin

    def copy_files_to(self, other: SimulatedMachine) -> None:
        """Copy everything under its home to ``other``'s (a backup restored elsewhere)."""
        shutil.copytree(self._home, other.home, dirs_exist_ok=True)

    @classmethod
    def container(cls, home: str | os.PathLike[str], *, host: SimulatedMachine | None = None,
                  **options: object) -> SimulatedMachine:
        """A container: no physical network card; the host's machine id when it is mounted.

        Args:
            home: the container's home folder.
            host: the host whose ``/etc/machine-id`` is mounted read-only;
                None: the container has no machine id (and cannot be identified).
            options: other :class:`SimulatedMachine` arguments.
        """
        machine_id = host.machine_id if host is not None else None
        return cls(home, machine_id=machine_id, macs=[], **options)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"SimulatedMachine({str(self._home)!r}, platform={self._platform!r})"
