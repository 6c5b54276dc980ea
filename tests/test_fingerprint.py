"""Tests for software_dna.fingerprint.

Real collection runs on this machine; everything a test machine cannot be
(a container without /etc/machine-id, a box without a network card, another
OS) is fed to the same readers through a fake file-system root.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import machineid
import pytest
from hypothesis import given
from hypothesis import strategies as st

from software_dna import fingerprint as fp
from software_dna.errors import FingerprintUnavailable, LicenseError

B64URL_43 = re.compile(r"^[A-Za-z0-9_-]{43}$")
LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    fp._reset_caches()
    yield
    fp._reset_caches()


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

    def nic(
        self,
        name: str,
        mac: str,
        *,
        physical: bool = True,
        bridge: bool = False,
        assign: str = "0",
        type_: str = "1",
        bus: str = "pci",
    ) -> None:
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


MID = "4c1d9e0f7a2b4c6d8e0f1a2b3c4d5e6f"
MAC = "a4:bb:6d:12:34:56"
CPU = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8650U\n"


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeMachine:
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


def raw_values() -> dict[str, str]:
    values, _missing = fp._gather()
    return values


# --------------------------------------------------------------------------- real machine


def test_real_collect_is_cached_and_stable() -> None:
    first = fp.collect("acme-editor")
    assert fp.collect("acme-editor") is first
    again = fp.collect("acme-editor", refresh=True)
    assert again is not first
    assert again == first
    assert hash(again) == hash(first)
    assert fp.collect("acme-editor") is again


def test_real_collect_shape() -> None:
    result = fp.collect("acme-editor")
    assert result.algorithm == fp.ALGORITHM == 1
    assert result.source in ("machine_id", "mac", "hostname")
    assert result.id == f"fp1.{result.source}.{result.components[result.source]}"
    assert set(result.components) <= set(fp.COMPONENTS)
    assert set(result.components).isdisjoint(result.missing)
    assert set(result.components) | set(result.missing) == set(fp.COMPONENTS)
    for value in result.components.values():
        assert B64URL_43.match(value)
        assert len(base64.urlsafe_b64decode(value + "=")) == 32
    assert 0.0 < result.quality <= 1.0
    assert list(result.components) == [c for c in fp.COMPONENTS if c in result.components]


def test_real_collect_differs_between_products() -> None:
    a = fp.collect("acme-editor")
    b = fp.collect("acme-viewer")
    assert a.id != b.id
    assert set(a.components) == set(b.components)
    for name in a.components:
        assert a.components[name] != b.components[name]


def test_real_collect_never_exposes_raw_values() -> None:
    result = fp.collect("acme-editor")
    exposed = repr(result) + str(result) + json.dumps(result.to_wire()) + repr(result.missing)
    exposed_lower = exposed.lower()
    checked = 0
    for value in raw_values().values():
        candidates = {
            value,
            value.replace(":", ""),
            value.replace(":", "-"),
            value.replace("-", ""),
        }
        for candidate in candidates:
            # A short value (a two-letter host name) can turn up inside base64 by
            # chance; only values long enough to be meaningful are checked.
            if len(candidate) >= 6:
                checked += 1
                assert candidate.lower() not in exposed_lower
    assert checked > 0


def test_to_wire_has_exactly_id_algorithm_components() -> None:
    result = fp.collect("acme-editor")
    wire = result.to_wire()
    assert set(wire) == {"id", "algorithm", "components"}
    assert wire["id"] == result.id
    assert wire["algorithm"] == 1
    assert wire["components"] == dict(result.components)
    json.dumps(wire)
    assert isinstance(wire["components"], dict)
    wire["components"]["machine_id"] = "changed"
    assert result.components.get("machine_id") != "changed"


def test_fingerprint_is_immutable() -> None:
    result = fp.collect("acme-editor")
    with pytest.raises(FrozenInstanceError):
        result.id = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.components["mac"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        result.missing["mac"] = "x"  # type: ignore[index]


def test_constructor_copies_mappings() -> None:
    components = {"hostname": "h" * 43}
    missing = {"mac": "none"}
    result = fp.Fingerprint("fp1.hostname." + "h" * 43, 1, "hostname", components, missing, 0.15)
    components["hostname"] = "changed"
    missing.clear()
    assert result.components == {"hostname": "h" * 43}
    assert result.missing == {"mac": "none"}


@LINUX_ONLY
def test_machine_id_is_py_machineid_raw_id() -> None:
    if not (Path("/etc/machine-id").exists() or Path("/var/lib/dbus/machine-id").exists()):
        pytest.skip("no machine-id file here; py-machineid would shell out")

    expected = machineid.id().lower()
    if fp._placeholder_reason(expected) is not None:
        pytest.skip("this machine has a placeholder id")
    assert raw_values()["machine_id"] == expected


@LINUX_ONLY
def test_no_subprocess_and_no_network_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = fp.collect("acme-editor", refresh=True)
    fp._reset_caches()
    spawns = Spawns(monkeypatch)
    result = fp.collect("acme-editor")
    secret = fp.machine_secret("acme-editor")
    assert spawns.calls == []
    assert result == baseline
    assert len(secret) == 32


@LINUX_ONLY
def test_first_call_fast_cached_call_faster() -> None:
    timings = []
    for _ in range(3):
        fp._reset_caches()
        start = time.perf_counter()
        fp.collect("acme-editor")
        timings.append(time.perf_counter() - start)
    assert min(timings) < 0.010
    cached = []
    for _ in range(50):
        start = time.perf_counter()
        fp.collect("acme-editor")
        cached.append(time.perf_counter() - start)
    assert min(cached) < 0.001
    assert sorted(cached)[len(cached) // 2] < 0.001


def test_concurrent_first_calls_collect_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_gather = fp._gather

    def slow_gather() -> tuple[dict[str, str], dict[str, str]]:
        calls.append(1)
        time.sleep(0.02)
        return real_gather()

    monkeypatch.setattr(fp, "_gather", slow_gather)
    barrier = threading.Barrier(16)
    results: list[fp.Fingerprint] = []

    def worker() -> None:
        barrier.wait()
        results.append(fp.collect("acme-editor"))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 16
    assert all(r is results[0] for r in results)
    assert len(calls) == 1


@pytest.mark.parametrize("product", ["", 0, None, b"acme"])
def test_bad_product_refused(product: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        fp.collect(product)
    with pytest.raises((TypeError, ValueError)):
        fp.machine_secret(product)


# --------------------------------------------------------------------------- fake machines


def test_fake_machine_full_quality(fake: FakeMachine) -> None:
    result = fp.collect("acme-editor")
    assert result.missing == {}
    assert result.quality == 1.0
    assert result.source == "machine_id"
    assert result.components["machine_id"] == fp._component_hash("acme-editor", "machine_id", MID)
    assert result.components["mac"] == fp._component_hash("acme-editor", "mac", MAC)
    assert result.components["hostname"] == fp._component_hash(
        "acme-editor", "hostname", "build-01"
    )
    assert result.components["cpu"] == fp._component_hash(
        "acme-editor", "cpu", "intel(r) core(tm) i7-8650u"
    )


def test_component_hash_is_the_documented_hmac() -> None:
    key = hmac.new(b"software_dna/fingerprint/v1", b"acme-editor", hashlib.sha256).digest()
    digest = hmac.new(key, b"hostname\0build-01", hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert fp._component_hash("acme-editor", "hostname", "build-01") == expected


def test_sensitive_values_never_exposed(fake: FakeMachine) -> None:
    fake.hostname("Sensitive-Host-Name-7731")
    result = fp.collect("acme-editor")
    secret = fp.machine_secret("acme-editor")
    exposed = (repr(result) + json.dumps(result.to_wire()) + repr(result.missing)).lower()
    for raw in (MID, MAC, MAC.replace(":", ""), "sensitive-host-name-7731", "i7-8650u"):
        assert raw not in exposed
    assert secret.hex() not in exposed


@pytest.mark.parametrize(
    "placeholder",
    [
        "",
        "\n",
        "   \t\n",
        "uninitialized\n",
        "00000000000000000000000000000000\n",
        "00000000-0000-0000-0000-000000000000",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "ffffffffffffffffffffffffffffffff\n",
        "FEFEFEFE-FEFE-FEFE-FEFE-FEFEFEFEFEFE",
        "03000200-0400-0500-0006-000700080009",
        "b08dfa6083e7567a1921a715000001fb\n",
        "Not Settable",
        "To be filled by O.E.M.",
        "Default string",
        "abc123",
    ],
)
def test_placeholder_machine_ids_refused(fake: FakeMachine, placeholder: str) -> None:
    fake.machine_id(placeholder)
    result = fp.collect("acme-editor")
    assert "machine_id" not in result.components
    reason = result.missing["machine_id"]
    assert "/etc/machine-id" in reason
    assert "/var/lib/dbus/machine-id" in reason
    if placeholder.strip():
        assert placeholder.strip().lower() not in reason.lower()
    assert result.source == "mac"
    assert result.quality == pytest.approx(0.55)


def test_dbus_machine_id_read_first_like_py_machineid(fake: FakeMachine) -> None:
    other = "0123456789abcdef0123456789abcdef"
    fake.machine_id(other, "var/lib/dbus/machine-id")
    assert raw_values()["machine_id"] == other


def test_placeholder_in_one_file_falls_back_to_the_other(fake: FakeMachine) -> None:
    fake.machine_id("00000000000000000000000000000000\n", "var/lib/dbus/machine-id")
    assert raw_values()["machine_id"] == MID


def test_machine_id_whitespace_and_case_normalized(fake: FakeMachine) -> None:
    fake.machine_id("  " + MID.upper() + "\r\n")
    assert raw_values()["machine_id"] == MID


def test_unreadable_machine_id_is_missing_with_reason(fake: FakeMachine) -> None:
    (fake.root / "etc/machine-id").unlink()
    (fake.root / "etc/machine-id").mkdir()  # reading a directory fails with OSError
    result = fp.collect("acme-editor")
    assert "could not be read" in result.missing["machine_id"]


def test_container_without_machine_id_degrades(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    (fake.root / "etc/machine-id").unlink()
    (fake.root / ".dockerenv").write_text("")
    # Docker gives the container one veth end named eth0: no bus device behind it.
    fake.nic("eth0", "02:42:ac:11:00:02", physical=False)
    _remove_nic(fake, "enp0s31f6")
    fake.hostname("3f9c2a1b7d4e")

    library_calls: list[int] = []

    def library() -> str:
        library_calls.append(1)  # would shell out in a container
        return "0123456789abcdef0123456789abcdef"

    monkeypatch.setattr(fp, "_machineid_library", library)
    full = fp.collect("acme-editor")
    assert library_calls == []
    assert full.source == "hostname"
    assert "machine_id" in full.missing and "mac" in full.missing
    assert "container" in full.missing["machine_id"]
    assert "/etc/machine-id" in full.missing["machine_id"]
    assert "physical network interface" in full.missing["mac"]
    assert full.quality == pytest.approx(0.35)
    assert full.quality < 1.0
    assert full.id.startswith("fp1.hostname.")


def _remove_nic(fake: FakeMachine, name: str) -> None:
    iface = fake.root / "sys/class/net" / name
    for child in iface.iterdir():
        if child.is_symlink() or child.is_file():
            child.unlink()
        else:
            child.rmdir()
    iface.rmdir()


def test_no_network_card(fake: FakeMachine) -> None:
    _remove_nic(fake, "enp0s31f6")
    result = fp.collect("acme-editor")
    assert "mac" not in result.components
    assert "no physical network interface" in result.missing["mac"]
    assert result.source == "machine_id"
    assert result.quality == pytest.approx(0.8)


def test_no_sysfs(fake: FakeMachine) -> None:
    _remove_nic(fake, "enp0s31f6")
    _remove_nic(fake, "lo")
    (fake.root / "sys/class/net").rmdir()
    result = fp.collect("acme-editor")
    assert "/sys/class/net is not available" in result.missing["mac"]


def test_virtual_and_unstable_interfaces_excluded(fake: FakeMachine) -> None:
    expected = fp._linux_macs(fake.root)
    assert expected == MAC
    fake.nic("docker0", "02:42:8a:00:00:01", physical=False)
    fake.nic("veth1a2b3c", "3a:11:22:33:44:55", physical=False)
    fake.nic("br-0123abcd", "02:42:00:00:00:02", physical=False)
    fake.nic("virbr0", "52:54:00:00:00:03", physical=False)
    fake.nic("wg0", "00:00:00:00:00:00", physical=False)
    fake.nic("tun0", "00:00:00:00:00:00", physical=False)
    fake.nic("tailscale0", "00:00:00:00:00:00", physical=False)
    # virtual devices even if something exposes a device link for them
    fake.nic("docker1", "02:42:8a:00:00:04")
    fake.nic("tap3", "fe:54:00:00:00:05")
    fake.nic("zt7", "ae:11:22:33:44:56")
    fake.nic("utun2", "ae:11:22:33:44:57")
    # physical-looking, but a bridge
    fake.nic("br0", "00:1b:21:00:00:06", bridge=True)
    # unusable addresses on physical devices
    fake.nic("eno1", "00:00:00:00:00:00")
    fake.nic("eno2", "ff:ff:ff:ff:ff:ff")
    fake.nic("eno3", "01:00:5e:00:00:01")  # multicast bit
    fake.nic("eno4", "not a mac")
    fake.nic("wlp2s0", "00:21:6a:00:00:07", assign="1")  # kernel-random
    fake.nic("wlp3s0", "da:a1:19:00:00:08", assign="3")  # randomised from user space
    fake.nic("ib0", "80:00:00:48:fe:80:00:00:00:00:00:00:00:00:00:00:00:00:00:01", type_="32")
    assert fp._linux_macs(fake.root) == MAC
    before = fp.collect("acme-editor")
    assert before.components["mac"] == fp._component_hash("acme-editor", "mac", MAC)


def test_vm_style_locally_administered_mac_kept(fake: FakeMachine) -> None:
    fake.nic("eth0", "52:54:00:12:34:56", assign="0")  # QEMU/KVM NIC
    fake.nic("ens5", "02:1f:00:00:00:09")  # cloud NIC, kernel does not say
    assert fp._linux_macs(fake.root) == f"02:1f:00:00:00:09,52:54:00:12:34:56,{MAC}"


def test_multiple_physical_macs_sorted_and_lowercased(fake: FakeMachine) -> None:
    fake.nic("wlp0s20f3", "00:1B:21:AA:BB:CC")
    assert fp._linux_macs(fake.root) == f"00:1b:21:aa:bb:cc,{MAC}"


def test_usb_adapter_used_only_without_builtin_card(fake: FakeMachine) -> None:
    fake.nic("enx001122334455", "00:11:22:33:44:55", bus="usb")
    assert fp._linux_macs(fake.root) == MAC
    _remove_nic(fake, "enp0s31f6")
    assert fp._linux_macs(fake.root) == "00:11:22:33:44:55"


def test_hostname_normalized(fake: FakeMachine) -> None:
    fake.hostname("  Build-01.Corp.Example.\n")
    assert fp._read_hostname() == "build-01"
    fake.hostname("10.0.12.7")
    assert fp._read_hostname() == "10.0.12.7"


@pytest.mark.parametrize("name", ["", "localhost", "LOCALHOST.localdomain", "(none)"])
def test_generic_or_empty_hostname_missing(fake: FakeMachine, name: str) -> None:
    fake.hostname(name)
    result = fp.collect("acme-editor")
    assert "hostname" not in result.components
    assert result.missing["hostname"]


def test_hostname_error_is_missing(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> str:
        raise OSError(99, "boom")

    monkeypatch.setattr(fp, "_hostname", broken)
    result = fp.collect("acme-editor")
    assert result.missing["hostname"] == "could not be read (boom)"


def test_nothing_stable_left_raises(fake: FakeMachine) -> None:
    (fake.root / "etc/machine-id").unlink()
    _remove_nic(fake, "enp0s31f6")
    fake.hostname("localhost")
    with pytest.raises(FingerprintUnavailable) as info:
        fp.collect("acme-editor")
    message = str(info.value)
    assert "machine id" in message and "host name" in message
    assert "/etc/machine-id" in message
    assert isinstance(info.value, LicenseError)
    with pytest.raises(FingerprintUnavailable):
        fp.machine_secret("acme-editor")
    # not cached: once something stable is back, collection works
    fake.hostname("build-02")
    assert fp.collect("acme-editor").source == "hostname"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CPU, "intel(r) core(tm) i7-8650u"),
        ("processor : 0\nHardware : BCM2835\nRevision : a02082\n", "bcm2835"),
        (
            "system type : MT7621\nprocessor : 0\ncpu model : MIPS 1004Kc V2.15\n",
            "mips 1004kc v2.15",
        ),
        ("Processor : ARMv7 Processor rev 4 (v7l)\nprocessor : 0\n", "armv7 processor rev 4 (v7l)"),
        (
            "processor : 0\ncpu : POWER9 (raw), altivec supported\n",
            "power9 (raw), altivec supported",
        ),
        (
            "processor : 0\nBogoMIPS : 50.00\nCPU implementer : 0x41\nCPU part : 0xd0c\n",
            "arm implementer 0x41 part 0xd0c",
        ),
    ],
)
def test_cpu_variants(fake: FakeMachine, text: str, expected: str) -> None:
    fake.cpuinfo(text)
    assert raw_values()["cpu"] == expected


def test_cpu_missing(fake: FakeMachine) -> None:
    fake.cpuinfo("processor : 0\nprocessor : 1\n")
    result = fp.collect("acme-editor")
    assert "names no CPU model" in result.missing["cpu"]
    (fake.root / "proc/cpuinfo").unlink()
    result = fp.collect("acme-editor", refresh=True)
    assert result.missing["cpu"] == "no /proc/cpuinfo"
    assert result.quality == pytest.approx(0.9)


def test_cpuinfo_not_text(fake: FakeMachine) -> None:
    (fake.root / "proc/cpuinfo").write_bytes(b"model name : \xff\xfe\n")
    result = fp.collect("acme-editor")
    assert result.missing["cpu"] == "could not be decoded as text"


@pytest.mark.parametrize("error", [OSError(5, "I/O error"), RuntimeError("x"), UnicodeError("x")])
def test_any_reader_error_marks_component_missing(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def broken() -> str:
        raise error

    monkeypatch.setattr(fp, "_read_cpu", broken)
    monkeypatch.setattr(fp, "_read_os_arch", broken)
    result = fp.collect("acme-editor")
    assert set(result.missing) == {"cpu", "os_arch"}
    assert all(result.missing.values())


def test_reader_returning_empty_is_missing(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fp, "_read_os_arch", lambda: "")
    monkeypatch.setattr(fp, "_read_cpu", lambda: "bad \udcff")
    result = fp.collect("acme-editor")
    assert result.missing["os_arch"] == "empty value"
    assert result.missing["cpu"] == "could not be decoded as text"


def test_system_sources_match_platform_and_socket() -> None:
    """The readers give what platform and socket report (fingerprints must not change).

    On Linux and macOS they read os.uname() instead, so that start-up imports
    neither module.
    """
    assert fp._system() == platform.system()
    assert fp._machine() == platform.machine()
    assert fp._processor() == platform.processor()
    assert fp._hostname() == socket.gethostname()


def test_os_arch_has_no_version(fake: FakeMachine) -> None:
    value = raw_values()["os_arch"]
    assert value == f"linux/{platform.machine().lower()}"
    assert platform.release().lower() not in value


def test_other_os_uses_py_machineid(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "Darwin")
    monkeypatch.setattr(fp, "_machineid_library", lambda: "17A28A73-BEA9-4D4B-AF5B-03A5AAE9B92C\n")
    monkeypatch.setattr(platform, "processor", lambda: "Apple M2")
    values, missing = fp._gather()
    assert values["machine_id"] == "17a28a73-bea9-4d4b-af5b-03a5aae9b92c"
    assert values["os_arch"].startswith("darwin/")
    assert values["cpu"] == "apple m2"
    assert "Linux only" in missing["mac"]
    result = fp.collect("acme-editor")
    assert result.quality == pytest.approx(0.8)


def test_other_os_machineid_failure(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    def not_found() -> str:
        raise machineid.MachineIdNotFound("failed")

    monkeypatch.setattr(fp, "_system", lambda: "Windows")
    monkeypatch.setattr(machineid, "id", not_found)
    monkeypatch.setattr(platform, "processor", lambda: "")
    _values, missing = fp._gather()
    assert missing["machine_id"] == "py-machineid found no machine id on this system"
    assert "cpu" in missing

    monkeypatch.setattr(machineid, "id", lambda: "03000200-0400-0500-0006-000700080009")
    _values, missing = fp._gather()
    assert "placeholder" in missing["machine_id"]


def test_bsd_hostid(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "FreeBSD")
    monkeypatch.setattr(platform, "processor", lambda: "amd64")
    fake.write("etc/hostid", "8B3F2D10-5C6A-11EE-8C99-0242AC120002\n")
    assert raw_values()["machine_id"] == "8b3f2d10-5c6a-11ee-8c99-0242ac120002"


# --------------------------------------------------------------------------- machine_secret


def test_machine_secret_stable_and_per_product() -> None:
    a = fp.machine_secret("acme-editor")
    assert isinstance(a, bytes) and len(a) == 32
    assert fp.machine_secret("acme-editor") == a
    fp._reset_caches()
    assert fp.machine_secret("acme-editor") == a
    assert fp.machine_secret("acme-viewer") != a


def test_machine_secret_is_no_component_hash() -> None:
    secret = fp.machine_secret("acme-editor")
    for product in ("acme-editor", "acme-viewer"):
        result = fp.collect(product)
        for value in result.components.values():
            assert base64.urlsafe_b64decode(value + "=") != secret
    assert secret != fp._product_key("acme-editor")


def test_machine_secret_follows_machine(fake: FakeMachine) -> None:
    first = fp.machine_secret("acme-editor")
    fp._reset_caches()
    fake.machine_id("0123456789abcdef0123456789abcdef")
    assert fp.machine_secret("acme-editor") != first


def test_machine_secret_ignores_weak_drift(fake: FakeMachine) -> None:
    first = fp.machine_secret("acme-editor")
    fp._reset_caches()
    fake.hostname("renamed")
    fake.nic("wlp0s20f3", "00:1b:21:aa:bb:cc")
    assert fp.machine_secret("acme-editor") == first


def test_machine_secret_falls_back_to_mac(fake: FakeMachine) -> None:
    with_id = fp.machine_secret("acme-editor")
    fp._reset_caches()
    (fake.root / "etc/machine-id").unlink()
    without_id = fp.machine_secret("acme-editor")
    assert len(without_id) == 32 and without_id != with_id
    fp._reset_caches()
    assert fp.machine_secret("acme-editor") == without_id


# --------------------------------------------------------------------------- match()

STORED = {
    "machine_id": "A" * 43,
    "os_arch": "B" * 43,
    "mac": "C" * 43,
    "hostname": "D" * 43,
    "cpu": "E" * 43,
}


def test_match_identical() -> None:
    assert fp.match(STORED, dict(STORED), 0)
    assert fp.match(STORED, dict(STORED), 1)


def test_match_one_changed_within_tolerance() -> None:
    current = {**STORED, "mac": "X" * 43}
    assert fp.match(STORED, current, 1)
    assert not fp.match(STORED, current, 0)


def test_match_one_missing_counts_as_changed() -> None:
    current = {k: v for k, v in STORED.items() if k != "hostname"}
    assert fp.match(STORED, current, 1)
    assert not fp.match(STORED, current, 0)


def test_match_two_changed_refused_with_tolerance_one() -> None:
    current = {**STORED, "mac": "X" * 43, "hostname": "Y" * 43}
    assert not fp.match(STORED, current, 1)
    assert fp.match(STORED, current, 2)


def test_match_empty_or_all_missing_current_refused() -> None:
    assert not fp.match(STORED, {}, 10)
    assert not fp.match(STORED, {k: "Z" * 43 for k in STORED}, 10)
    assert not fp.match({}, STORED, 10)
    assert not fp.match({"mac": ""}, {"mac": ""}, 10)


def test_match_extra_current_components_ignored() -> None:
    stored = {"machine_id": "A" * 43, "hostname": "D" * 43}
    assert fp.match(stored, STORED, 0)
    assert not fp.match(STORED, stored, 0)  # asymmetric when the names differ


def test_match_bad_tolerance() -> None:
    with pytest.raises(ValueError):
        fp.match(STORED, STORED, -1)
    with pytest.raises(TypeError):
        fp.match(STORED, STORED, True)
    with pytest.raises(TypeError):
        fp.match(STORED, STORED, 1.0)  # type: ignore[arg-type]


def test_match_real_fingerprints(fake: FakeMachine) -> None:
    before = fp.collect("acme-editor")
    fake.hostname("renamed-laptop")
    after_rename = fp.collect("acme-editor", refresh=True)
    assert fp.match(before.components, after_rename.components, 1)
    fake.nic("wlp0s20f3", "00:1b:21:aa:bb:cc")
    after_two = fp.collect("acme-editor", refresh=True)
    assert not fp.match(before.components, after_two.components, 1)
    assert fp.match(before.components, after_two.components, 2)
    other_product = fp.collect("acme-viewer")
    assert not fp.match(before.components, other_product.components, 4)


names = st.sampled_from(fp.COMPONENTS)
hashes = st.sampled_from(["A" * 43, "B" * 43, "C" * 43])
component_maps = st.dictionaries(names, hashes, max_size=len(fp.COMPONENTS))


@given(
    st.lists(st.tuples(hashes, hashes), min_size=0, max_size=5),
    st.integers(min_value=0, max_value=6),
)
def test_match_symmetric_over_same_names(pairs: list[tuple[str, str]], tolerance: int) -> None:
    a = {fp.COMPONENTS[i]: x for i, (x, _y) in enumerate(pairs)}
    b = {fp.COMPONENTS[i]: y for i, (_x, y) in enumerate(pairs)}
    assert fp.match(a, b, tolerance) == fp.match(b, a, tolerance)


@given(component_maps, component_maps, st.integers(min_value=0, max_value=6))
def test_match_monotonic_in_tolerance(
    stored: dict[str, str], current: dict[str, str], tolerance: int
) -> None:
    if fp.match(stored, current, tolerance):
        assert fp.match(stored, current, tolerance + 1)
    if not fp.match(stored, current, tolerance + 1):
        assert not fp.match(stored, current, tolerance)


@given(component_maps, component_maps, st.integers(min_value=0, max_value=6))
def test_match_definition(stored: dict[str, str], current: dict[str, str], tolerance: int) -> None:
    equal = sum(1 for k, v in stored.items() if current.get(k) == v)
    different = len(stored) - equal
    assert fp.match(stored, current, tolerance) == (equal >= 1 and different <= tolerance)
    if stored:
        assert fp.match(stored, stored, 0)
