"""Fake machines for the fingerprint tests: a file-system root, a refusing process table.

The Linux readers read files under :data:`software_dna.fingerprint._ROOT`;
:class:`FakeMachine` builds such a root in a temporary directory. The scrypt
cost of the fake machines is low (tests/test_fingerprint_hash.py checks the
production cost against the specification).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from software_dna import fingerprint as fp

MID = "4c1d9e0f7a2b4c6d8e0f1a2b3c4d5e6f"
MAC = "a4:bb:6d:12:34:56"
CPU = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8650U\n"
CPU_VALUE = "intel(r) core(tm) i7-8650u"
#: The scrypt cost of the fake machines (production: 2**14).
TEST_COST = 16


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def spec_hash(product: str, name: str, value: str, n: int = TEST_COST) -> str:
    """The algorithm-2 component hash, computed here from the specification."""
    return b64(hashlib.scrypt(
        b"software_dna/component/v2\0" + name.encode() + b"\0" + value.encode(),
        salt=b"software_dna/product/v2\0" + product.encode(),
        n=n, r=8, p=1, dklen=32, maxmem=64 * 1024 * 1024))


def spec_legacy_hash(product: str, name: str, value: str) -> str:
    """The 0.1 (algorithm-1) component hash, computed here from its specification."""
    key = hmac.new(b"software_dna/fingerprint/v1", product.encode(), hashlib.sha256).digest()
    return b64(hmac.new(key, name.encode() + b"\0" + value.encode(), hashlib.sha256).digest())


class Spawns:
    """Records (and refuses) every attempt to start a process or open a socket."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[str] = []

        def refuse(what: str) -> Any:
            def _refused(*args: object, **kwargs: object) -> Any:
                self.calls.append(what)
                raise AssertionError(f"{what} called during fingerprint collection")

            return _refused

        monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
        for name in ("system", "fork", "posix_spawn", "posix_spawnp", "execv", "execve"):
            if hasattr(os, name):
                monkeypatch.setattr(os, name, refuse(f"os.{name}"))
        monkeypatch.setattr(socket, "socket", refuse("socket.socket"))
        monkeypatch.setattr(socket, "getaddrinfo", refuse("socket.getaddrinfo"))
        monkeypatch.setattr(socket, "create_connection", refuse("socket.create_connection"))


class FakeMachine:
    """A fake file-system root with /etc, /var/lib/dbus, /sys/class/net and /proc."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.monkeypatch = monkeypatch
        (root / "sys/class/net").mkdir(parents=True)
        (root / "proc").mkdir()
        self.hostname("Build-01.corp.example")

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def machine_id(self, value: str, relative: str = "etc/machine-id") -> None:
        self.write(relative, value)

    def hostname(self, name: str) -> None:
        self.monkeypatch.setattr(fp, "_hostname", lambda: name)

    def cpuinfo(self, text: str) -> None:
        self.write("proc/cpuinfo", text)

    def nic(self, name: str, mac: str, *, physical: bool = True, bridge: bool = False,
            assign: str = "0", type_: str = "1", bus: str = "pci") -> None:
        iface = self.root / "sys/class/net" / name
        iface.mkdir()
        (iface / "address").write_text(mac + "\n")
        (iface / "addr_assign_type").write_text(assign + "\n")
        (iface / "type").write_text(type_ + "\n")
        if physical:
            device = self.root / "sys/devices" / name
            (self.root / "sys/bus" / bus).mkdir(parents=True, exist_ok=True)
            device.mkdir(parents=True)
            os.symlink(self.root / "sys/bus" / bus, device / "subsystem")
            os.symlink(device, iface / "device")
        if bridge:
            (iface / "bridge").mkdir()

    def remove_nic(self, name: str) -> None:
        iface = self.root / "sys/class/net" / name
        for child in iface.iterdir():
            if child.is_symlink() or child.is_file():
                child.unlink()
            else:
                child.rmdir()
        iface.rmdir()


def make_fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMachine:
    """A complete, healthy fake Linux machine; tests remove what they need to."""
    monkeypatch.setattr(fp, "_ROOT", tmp_path)
    monkeypatch.setattr(fp, "_system", lambda: "Linux")
    Spawns(monkeypatch)
    machine = FakeMachine(tmp_path, monkeypatch)
    machine.machine_id(MID + "\n")
    machine.nic("lo", "00:00:00:00:00:00", physical=False, type_="772")
    machine.nic("enp0s31f6", MAC)
    machine.cpuinfo(CPU)
    return machine
