"""Tests for software_dna.fingerprint: collection, normalisation, the Fingerprint value.

Real-machine tests read this machine; the others run against a fake
file-system root (tests/fingerprint_fakes.py) and refuse any subprocess or
socket. Hashing and the disk cache: tests/test_fingerprint_hash.py; macOS and
Windows byte parsing: tests/test_fingerprint_os.py; the SDK's verification:
tests/test_fingerprint_verify.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import pickle
import platform
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import machineid
import pytest

from software_dna import fingerprint as fp
from software_dna.errors import FingerprintUnavailable, LicenseError
from software_dna.fingerprint import _darwin, _windows
from software_dna.fingerprint._common import MissingError, placeholder_reason
from software_dna.wire import identity
from tests.fingerprint_fakes import (
    CPU,
    CPU_VALUE,
    MAC,
    MID,
    TEST_COST,
    FakeMachine,
    Spawns,
    make_fake,
    spec_hash,
    spec_legacy_hash,
)
from tests.identity_cases import h

B64URL_43 = re.compile(r"^[A-Za-z0-9_-]{43}$")
LINUX_ONLY = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")
P = "acme-editor"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    fp._reset_caches()
    yield
    fp._reset_caches()


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMachine]:
    with fp.scrypt_cost_for_tests(TEST_COST):
        yield make_fake(tmp_path, monkeypatch)


def raw_values() -> dict[str, str]:
    return fp._gather().values


def hashes(result: fp.Fingerprint) -> list[str]:
    """Every hash a fingerprint holds (MAC tuples flattened)."""
    out: list[str] = []
    for value in result.components.values():
        if isinstance(value, tuple):
            out.extend(value)
        elif value is not None:
            out.append(value)
    return out


# --------------------------------------------------------------------------- real machine


def test_real_collect_is_cached_and_stable() -> None:
    first = fp.collect(P)
    assert fp.collect(P) is first
    again = fp.collect(P, refresh=True)
    assert again is not first
    assert again == first
    assert hash(again) == hash(first)
    assert fp.collect(P) is again


def test_real_collect_shape() -> None:
    result = fp.collect(P)
    assert result.algorithm == fp.ALGORITHM == identity.ALGORITHM == 2
    assert set(identity.REQUIRED) <= set(result.components) <= set(fp.COMPONENTS)
    assert identity.parse_components(result.to_wire()["components"]) == dict(result.components)
    for value in hashes(result):
        assert B64URL_43.match(value)
        assert len(base64.urlsafe_b64decode(value + "=")) == 32
    for name, item in result.components.items():
        assert (item is None) == (name in result.missing)
    assert 0.0 < result.quality <= 1.0


def test_real_collect_differs_between_products() -> None:
    a = fp.collect(P)
    b = fp.collect("acme-viewer")
    assert set(a.components) == set(b.components)
    assert set(hashes(a)).isdisjoint(hashes(b))
    assert a.legacy is not None and b.legacy is not None and a.legacy.id != b.legacy.id


def test_real_collect_never_exposes_raw_values() -> None:
    result = fp.collect(P)
    exposed = (repr(result) + str(result) + json.dumps(result.to_wire())
               + repr(result.missing)).lower()
    raw = fp._gather()
    checked = 0
    for value in [*raw.values.values(), *raw.macs]:
        for candidate in {value, value.replace(":", ""), value.replace(":", "-"),
                          value.replace("-", "")}:
            # A short value (a two-letter host name) can turn up inside base64 by
            # chance; only values long enough to be meaningful are checked.
            if len(candidate) >= 6:
                checked += 1
                assert candidate.lower() not in exposed
    assert checked > 0


def test_to_wire_is_algorithm_and_components_only() -> None:
    result = fp.collect(P)
    wire = result.to_wire()
    assert set(wire) == {"algorithm", "components"}
    assert wire["algorithm"] == 2
    assert wire["components"] == identity.to_json(result.components)
    json.dumps(wire)
    components = wire["components"]
    assert isinstance(components, dict)
    components["machine_id"] = "changed"
    assert result.components.get("machine_id") != "changed"


def test_host_name_is_never_sent() -> None:
    """The host name is no component: neither it nor any hash of it is in to_wire()."""
    result = fp.collect(P)
    wire = json.dumps(result.to_wire())
    assert "hostname" not in wire
    hostname = fp._gather().values.get("hostname")
    if hostname is None:
        pytest.skip("this machine has no usable host name")
    assert spec_legacy_hash(P, "hostname", hostname) not in wire
    assert spec_hash(P, "hostname", hostname, fp.PRODUCTION_COST) not in wire


@LINUX_ONLY
def test_machine_id_is_py_machineid_raw_id() -> None:
    if not (Path("/etc/machine-id").exists() or Path("/var/lib/dbus/machine-id").exists()):
        pytest.skip("no machine-id file here; py-machineid would shell out")
    expected = machineid.id().lower()
    if placeholder_reason(expected) is not None:
        pytest.skip("this machine has a placeholder id")
    assert raw_values()["machine_id"] == expected


@LINUX_ONLY
def test_no_subprocess_and_no_network_on_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    baseline = fp.collect(P, refresh=True)
    fp._reset_caches()
    spawns = Spawns(monkeypatch)
    result = fp.collect(P)
    secret = fp.machine_secret(P)
    assert spawns.calls == []
    assert result == baseline
    assert len(secret) == 32


def test_cached_call_is_fast() -> None:
    fp.collect(P)
    cached = []
    for _ in range(50):
        start = time.perf_counter()
        fp.collect(P)
        cached.append(time.perf_counter() - start)
    assert sorted(cached)[len(cached) // 2] < 0.001


def test_concurrent_first_calls_collect_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real_gather = fp._gather

    def slow_gather() -> Any:
        calls.append(1)
        time.sleep(0.02)
        return real_gather()

    monkeypatch.setattr(fp, "_gather", slow_gather)
    barrier = threading.Barrier(16)
    results: list[fp.Fingerprint] = []

    def worker() -> None:
        barrier.wait()
        results.append(fp.collect(P))

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


# --------------------------------------------------------------------------- the value

FULL = {"machine_id": h("m"), "os_arch": h("o"), "cpu": h("c"), "mac": [h("a"), h("b")]}


def test_fingerprint_is_immutable() -> None:
    result = fp.Fingerprint.from_components(FULL)
    for name in ("algorithm", "components", "missing", "quality", "legacy"):
        with pytest.raises(FrozenInstanceError):
            setattr(result, name, None)
        with pytest.raises(FrozenInstanceError):
            delattr(result, name)
    with pytest.raises(TypeError):
        result.components["mac"] = "x"  # type: ignore[index]
    with pytest.raises(TypeError):
        result.missing["mac"] = "x"  # type: ignore[index]
    assert isinstance(result.components["mac"], tuple)  # no list to append to


def test_from_components_copies_and_normalizes() -> None:
    components: dict[str, Any] = {**FULL, "mac": [h("b"), h("a"), h("b")], "cpu": None}
    missing = {"cpu": "no /proc/cpuinfo"}
    result = fp.Fingerprint.from_components(components, missing=missing)
    components["machine_id"] = h("changed")
    missing.clear()
    assert result.components["machine_id"] == h("m")
    assert result.components["mac"] == tuple(sorted((h("a"), h("b"))))
    assert result.missing == {"cpu": "no /proc/cpuinfo"}
    assert result.quality == pytest.approx(0.85)
    assert result.legacy is None
    # a None without a reason is still listed as missing
    assert fp.Fingerprint.from_components({**FULL, "os_arch": None}).missing == {
        "os_arch": "unavailable"}


def test_equality_hash_copy_and_pickle() -> None:
    legacy = fp.LegacyFingerprint("fp1.machine_id." + h("x"), {"machine_id": h("x")})
    a = fp.Fingerprint.from_components(FULL, legacy=legacy)
    b = fp.Fingerprint.from_components(dict(FULL), legacy=legacy)
    assert a == b and hash(a) == hash(b)
    assert a != fp.Fingerprint.from_components(FULL)
    assert pickle.loads(pickle.dumps(a)) == a
    assert copy.deepcopy(a) == a
    assert pickle.loads(pickle.dumps(legacy)) == legacy


@pytest.mark.parametrize("components", [
    {**FULL, "hostname": h("x")},                       # no longer a component
    {k: v for k, v in FULL.items() if k != "cpu"},      # required name absent
    {**FULL, "machine_id": "short"},                    # malformed hash
    {**FULL, "mac": []},                                # empty MAC list
    {**FULL, "mac": [h(str(i)) for i in range(17)]},    # too many MACs
    {**FULL, "machine_id": None, "mac": None},          # nothing identifying
    "not a mapping",
])
def test_from_components_refuses_what_the_server_refuses(components: Any) -> None:
    with pytest.raises(ValueError) as info:
        fp.Fingerprint.from_components(components)
    assert isinstance(info.value, identity.InvalidFingerprint)


def test_from_components_refuses_bad_missing_and_legacy() -> None:
    with pytest.raises(ValueError):
        fp.Fingerprint.from_components(FULL, missing={"hostname": "x"})
    with pytest.raises(ValueError):
        fp.Fingerprint.from_components(FULL, missing={"cpu": 3})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        fp.Fingerprint.from_components(FULL, legacy={"id": "x"})  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fp.LegacyFingerprint("fp2.machine_id." + h("x"), {"machine_id": h("x")})
    with pytest.raises(ValueError):
        fp.LegacyFingerprint("fp1.machine_id." + h("x"), {"smbios_uuid": h("x")})


# --------------------------------------------------------------------------- fake machines


def test_fake_machine_components_are_the_specified_hashes(fake: FakeMachine) -> None:
    result = fp.collect(P)
    assert result.missing == {}
    assert result.quality == 1.0
    assert dict(result.components) == {
        "machine_id": spec_hash(P, "machine_id", MID),
        "os_arch": spec_hash(P, "os_arch", f"linux/{platform.machine().lower()}"),
        "cpu": spec_hash(P, "cpu", CPU_VALUE),
        "mac": (spec_hash(P, "mac", MAC),),
    }
    assert "smbios_uuid" not in result.components  # Windows only


def test_legacy_form_is_unchanged_from_0_1(fake: FakeMachine) -> None:
    """Algorithm 1's values (0.1's expected values): one HMAC per component, host name in."""
    legacy = fp.collect(P).legacy
    assert legacy is not None
    expected = {
        "machine_id": spec_legacy_hash(P, "machine_id", MID),
        "os_arch": spec_legacy_hash(P, "os_arch", f"linux/{platform.machine().lower()}"),
        "mac": spec_legacy_hash(P, "mac", MAC),
        "hostname": spec_legacy_hash(P, "hostname", "build-01"),
        "cpu": spec_legacy_hash(P, "cpu", CPU_VALUE),
    }
    assert dict(legacy.components) == expected
    assert legacy.id == f"fp1.machine_id.{expected['machine_id']}"
    assert legacy.to_wire() == {"id": legacy.id, "algorithm": 1, "components": expected}
    # a known answer computed with the 0.1 module, so that a change to both the code
    # and the helper shows
    assert spec_legacy_hash("acme-editor", "hostname", "build-01") == (
        "EpHlKF9Zr8w3Z2c3fi2kkKV2uWRw6_UCXQm02YoXg64")


def test_legacy_form_keeps_0_1_mac_rules(fake: FakeMachine) -> None:
    """0.1 joined the addresses into one value and used USB ones only without a built-in card."""
    fake.nic("wlp0s20f3", "00:1B:21:AA:BB:CC")
    fake.nic("enx001122334455", "00:11:22:33:44:55", bus="usb")
    result = fp.collect(P)
    assert result.legacy is not None
    assert result.legacy.components["mac"] == spec_legacy_hash(
        P, "mac", f"00:1b:21:aa:bb:cc,{MAC}")
    assert result.components["mac"] == tuple(sorted(
        spec_hash(P, "mac", m) for m in ("00:1b:21:aa:bb:cc", MAC, "00:11:22:33:44:55")))


def test_host_name_changes_only_the_legacy_form(fake: FakeMachine) -> None:
    fake.hostname("Sensitive-Host-Name-7731")
    first = fp.collect(P)
    fake.hostname("renamed")
    second = fp.collect(P, refresh=True)
    assert first.components == second.components
    assert first.legacy != second.legacy
    wire = json.dumps(first.to_wire()).lower()
    assert "sensitive-host-name-7731" not in wire
    assert spec_legacy_hash(P, "hostname", "sensitive-host-name-7731") not in wire


def test_sensitive_values_never_exposed(fake: FakeMachine) -> None:
    fake.hostname("Sensitive-Host-Name-7731")
    result = fp.collect(P)
    secret = fp.machine_secret(P)
    exposed = (repr(result) + json.dumps(result.to_wire()) + repr(result.missing)).lower()
    for raw in (MID, MAC, MAC.replace(":", ""), "sensitive-host-name-7731", "i7-8650u"):
        assert raw not in exposed
    assert secret.hex() not in exposed


@pytest.mark.parametrize(
    "placeholder",
    [
        "", "\n", "   \t\n", "uninitialized\n", "00000000000000000000000000000000\n",
        "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "ffffffffffffffffffffffffffffffff\n", "FEFEFEFE-FEFE-FEFE-FEFE-FEFEFEFEFEFE",
        "03000200-0400-0500-0006-000700080009", "b08dfa6083e7567a1921a715000001fb\n",
        "Not Settable", "To be filled by O.E.M.", "Default string", "abc123",
    ],
)
def test_placeholder_machine_ids_refused(fake: FakeMachine, placeholder: str) -> None:
    fake.machine_id(placeholder)
    result = fp.collect(P)
    assert result.components["machine_id"] is None
    assert result.to_wire()["components"]["machine_id"] is None  # type: ignore[index]
    reason = result.missing["machine_id"]
    assert "/etc/machine-id" in reason
    assert "/var/lib/dbus/machine-id" in reason
    if placeholder.strip():
        assert placeholder.strip().lower() not in reason.lower()
    assert result.quality == pytest.approx(0.55)
    assert result.legacy is not None and result.legacy.id.startswith("fp1.mac.")


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
    result = fp.collect(P)
    assert "could not be read" in result.missing["machine_id"]


def test_container_without_machine_id_or_card_is_unavailable(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A container with no host machine id and only a veth: nothing identifies it.

    The host name (a container id) no longer counts; the message says what to do.
    """
    (fake.root / "etc/machine-id").unlink()
    (fake.root / ".dockerenv").write_text("")
    # Docker gives the container one veth end named eth0: no bus device behind it.
    fake.nic("eth0", "02:42:ac:11:00:02", physical=False)
    fake.remove_nic("enp0s31f6")
    fake.hostname("3f9c2a1b7d4e")
    library_calls: list[int] = []

    def library() -> str:
        library_calls.append(1)  # would shell out in a container
        return "0123456789abcdef0123456789abcdef"

    monkeypatch.setattr(fp, "_machineid_library", library)
    with pytest.raises(FingerprintUnavailable) as info:
        fp.collect(P)
    message = str(info.value)
    assert isinstance(info.value, LicenseError)
    assert library_calls == []
    assert "mount the host's /etc/machine-id" in message
    assert "container" in message
    assert "3f9c2a1b7d4e" not in message
    # the local store's key still rests on the host name, as in 0.1
    assert len(fp.machine_secret(P)) == 32


def test_no_network_card(fake: FakeMachine) -> None:
    fake.remove_nic("enp0s31f6")
    result = fp.collect(P)
    assert result.components["mac"] is None
    assert "no physical network interface" in result.missing["mac"]
    assert result.quality == pytest.approx(0.75)
    assert result.legacy is not None and "mac" not in result.legacy.components


def test_no_sysfs(fake: FakeMachine) -> None:
    fake.remove_nic("enp0s31f6")
    fake.remove_nic("lo")
    (fake.root / "sys/class/net").rmdir()
    result = fp.collect(P)
    assert "/sys/class/net is not available" in result.missing["mac"]


def test_virtual_and_unstable_interfaces_excluded(fake: FakeMachine) -> None:
    assert fp._linux.macs(fake.root) == ([MAC], [])
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
    assert fp._linux.macs(fake.root) == ([MAC], [])
    assert fp.collect(P).components["mac"] == (spec_hash(P, "mac", MAC),)


def test_vm_style_locally_administered_mac_kept(fake: FakeMachine) -> None:
    fake.nic("eth0", "52:54:00:12:34:56", assign="0")  # QEMU/KVM NIC
    fake.nic("ens5", "02:1f:00:00:00:09")  # cloud NIC, kernel does not say
    assert fp._linux.macs(fake.root) == (["02:1f:00:00:00:09", "52:54:00:12:34:56", MAC], [])


def test_one_hash_per_address(fake: FakeMachine) -> None:
    fake.nic("wlp0s20f3", "00:1B:21:AA:BB:CC")
    assert fp._linux.macs(fake.root) == (["00:1b:21:aa:bb:cc", MAC], [])
    mac = fp.collect(P).components["mac"]
    assert mac == tuple(sorted((spec_hash(P, "mac", MAC),
                                spec_hash(P, "mac", "00:1b:21:aa:bb:cc"))))


def test_usb_adapters_sent_after_fixed_ones(fake: FakeMachine) -> None:
    fake.nic("enx001122334455", "00:11:22:33:44:55", bus="usb")
    assert fp._linux.macs(fake.root) == ([MAC], ["00:11:22:33:44:55"])
    assert fp._gather().macs == [MAC, "00:11:22:33:44:55"]
    fake.remove_nic("enp0s31f6")
    assert fp._gather().macs == ["00:11:22:33:44:55"]
    legacy = fp.collect(P).legacy
    assert legacy is not None
    assert legacy.components["mac"] == spec_legacy_hash(P, "mac", "00:11:22:33:44:55")


def test_at_most_max_macs_fixed_first(fake: FakeMachine) -> None:
    for i in range(20):
        fake.nic(f"enx{i:02d}", f"00:11:22:33:44:{i:02x}", bus="usb")
    for i in range(20):
        fake.nic(f"eno{i + 10}", f"00:1b:21:00:00:{i:02x}")
    raw = fp._gather()
    assert len(raw.macs) == identity.MAX_MACS
    assert all(m.startswith("00:1b:21") for m in raw.macs)  # fixed cards first
    assert len(fp.collect(P).components["mac"] or ()) == identity.MAX_MACS


def test_hostname_normalized(fake: FakeMachine) -> None:
    fake.hostname("  Build-01.Corp.Example.\n")
    assert fp._read_hostname() == "build-01"
    fake.hostname("10.0.12.7")
    assert fp._read_hostname() == "10.0.12.7"


@pytest.mark.parametrize("name", ["", "localhost", "LOCALHOST.localdomain", "(none)"])
def test_generic_or_empty_hostname_missing_from_legacy(fake: FakeMachine, name: str) -> None:
    fake.hostname(name)
    result = fp.collect(P)
    assert result.legacy is not None and "hostname" not in result.legacy.components
    assert "hostname" not in result.missing  # not a component of algorithm 2


def test_nothing_identifying_left_raises(fake: FakeMachine) -> None:
    (fake.root / "etc/machine-id").unlink()
    fake.remove_nic("enp0s31f6")
    with pytest.raises(FingerprintUnavailable) as info:
        fp.collect(P)
    message = str(info.value)
    assert "machine id" in message and "network card" in message
    assert "/etc/machine-id" in message
    # not cached: once something identifying is back, collection works
    fake.nic("eno1", "00:1b:21:00:00:01")
    assert fp.collect(P).components["mac"] == (spec_hash(P, "mac", "00:1b:21:00:00:01"),)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (CPU, CPU_VALUE),
        ("processor : 0\nHardware : BCM2835\nRevision : a02082\n", "bcm2835"),
        ("system type : MT7621\nprocessor : 0\ncpu model : MIPS 1004Kc V2.15\n",
         "mips 1004kc v2.15"),
        ("Processor : ARMv7 Processor rev 4 (v7l)\nprocessor : 0\n", "armv7 processor rev 4 (v7l)"),
        ("processor : 0\ncpu : POWER9 (raw), altivec supported\n",
         "power9 (raw), altivec supported"),
        ("processor : 0\nBogoMIPS : 50.00\nCPU implementer : 0x41\nCPU part : 0xd0c\n",
         "arm implementer 0x41 part 0xd0c"),
    ],
)
def test_cpu_variants(fake: FakeMachine, text: str, expected: str) -> None:
    fake.cpuinfo(text)
    assert raw_values()["cpu"] == expected


def test_cpu_missing(fake: FakeMachine) -> None:
    fake.cpuinfo("processor : 0\nprocessor : 1\n")
    result = fp.collect(P)
    assert "names no CPU model" in result.missing["cpu"]
    assert result.components["cpu"] is None
    (fake.root / "proc/cpuinfo").unlink()
    result = fp.collect(P, refresh=True)
    assert result.missing["cpu"] == "no /proc/cpuinfo"
    assert result.quality == pytest.approx(0.85)


def test_cpuinfo_not_text(fake: FakeMachine) -> None:
    (fake.root / "proc/cpuinfo").write_bytes(b"model name : \xff\xfe\n")
    result = fp.collect(P)
    assert result.missing["cpu"] == "could not be decoded as text"


@pytest.mark.parametrize("error", [OSError(5, "I/O error"), RuntimeError("x"), UnicodeError("x")])
def test_any_reader_error_marks_component_missing(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def broken(*_args: object) -> str:
        raise error

    monkeypatch.setattr(fp, "_read_cpu", broken)
    monkeypatch.setattr(fp, "_read_os_arch", broken)
    result = fp.collect(P)
    assert set(result.missing) == {"cpu", "os_arch"}
    assert result.components["cpu"] is None and result.components["os_arch"] is None
    assert all(result.missing.values())


def test_reader_returning_empty_is_missing(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fp, "_read_os_arch", lambda: "")
    monkeypatch.setattr(fp, "_read_cpu", lambda _system: "bad \udcff")
    result = fp.collect(P)
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


# --------------------------------------------------------------------------- other OSes


def _no_machineid_library(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused() -> str:
        raise AssertionError("py-machineid must not be used here")

    monkeypatch.setattr(machineid, "id", refused)


def test_macos_reads_in_process(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS: gethostuuid, getifaddrs and sysctl (mocked: libc cannot run here); no py-machineid."""
    monkeypatch.setattr(fp, "_system", lambda: "Darwin")
    _no_machineid_library(monkeypatch)
    monkeypatch.setattr(_darwin, "machine_id", lambda: "17A28A73-BEA9-4D4B-AF5B-03A5AAE9B92C")
    monkeypatch.setattr(_darwin, "macs", lambda: ["3c:22:fb:00:00:01", "3c:22:fb:00:00:02"])
    monkeypatch.setattr(_darwin, "cpu", lambda: "Apple M2")
    raw = fp._gather()
    assert raw.values["machine_id"] == "17a28a73-bea9-4d4b-af5b-03a5aae9b92c"
    assert raw.values["os_arch"].startswith("darwin/")
    assert raw.values["cpu"] == "apple m2"
    assert raw.macs == ["3c:22:fb:00:00:01", "3c:22:fb:00:00:02"]
    result = fp.collect(P)
    assert result.quality == 1.0 and result.missing == {}
    assert len(result.components["mac"] or ()) == 2
    # 0.1 read no MAC on macOS: the legacy form has none either
    assert result.legacy is not None and "mac" not in result.legacy.components


def test_windows_reads_guid_and_smbios_uuid(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "Windows")
    _no_machineid_library(monkeypatch)
    guid = "{6F1C0A52-8C1E-4B9E-9D3A-3A1B2C3D4E5F}"
    uuid = "4c4c4544-0042-3610-8052-b4c04f4a4d32"
    monkeypatch.setattr(_windows, "machine_guid", lambda: guid)
    monkeypatch.setattr(_windows, "smbios_uuid", lambda: uuid)
    monkeypatch.setattr(_windows, "macs", lambda: ["00:1b:21:aa:bb:cc"])
    monkeypatch.setattr(_windows, "cpu", lambda: "Intel(R) Core(TM) i5")
    result = fp.collect(P)
    assert result.components["machine_id"] == spec_hash(P, "machine_id", guid.lower())
    assert result.components["smbios_uuid"] == spec_hash(P, "smbios_uuid", uuid)
    assert result.missing == {}


def test_windows_guid_unreadable_smbios_carries(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "Windows")
    _no_machineid_library(monkeypatch)
    monkeypatch.setattr(_windows, "machine_guid", lambda: "")
    monkeypatch.setattr(_windows, "smbios_uuid", lambda: "4c4c4544-0042-3610-8052-b4c04f4a4d32")

    def no_adapters() -> list[str]:
        raise MissingError("the network adapters could not be listed")

    monkeypatch.setattr(_windows, "macs", no_adapters)
    monkeypatch.setattr(_windows, "cpu", lambda: "")
    monkeypatch.setattr(platform, "processor", lambda: "")
    result = fp.collect(P)
    assert result.components["machine_id"] is None
    assert result.components["mac"] is None
    assert result.components["smbios_uuid"] is not None
    assert "placeholder" in result.missing["machine_id"] or "empty" in result.missing["machine_id"]
    assert result.missing["mac"] == "the network adapters could not be listed"
    assert result.quality == pytest.approx(0.6)


def test_windows_placeholder_smbios_uuid_sent_as_null(
    fake: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "Windows")
    monkeypatch.setattr(_windows, "machine_guid", lambda: "6f1c0a52-8c1e-4b9e-9d3a-3a1b2c3d4e5f")

    def placeholder() -> str:
        raise MissingError("the SMBIOS system UUID holds a placeholder (one value repeated)")

    monkeypatch.setattr(_windows, "smbios_uuid", placeholder)
    monkeypatch.setattr(_windows, "macs", lambda: ["00:1b:21:aa:bb:cc"])
    monkeypatch.setattr(_windows, "cpu", lambda: "x")
    result = fp.collect(P)
    assert "smbios_uuid" in result.components and result.components["smbios_uuid"] is None
    assert "placeholder" in result.missing["smbios_uuid"]
    assert result.to_wire()["components"]["smbios_uuid"] is None  # type: ignore[index]


def test_bsd_hostid(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "FreeBSD")
    monkeypatch.setattr(platform, "processor", lambda: "amd64")
    _no_machineid_library(monkeypatch)
    fake.write("etc/hostid", "8B3F2D10-5C6A-11EE-8C99-0242AC120002\n")
    assert raw_values()["machine_id"] == "8b3f2d10-5c6a-11ee-8c99-0242ac120002"


def test_bsd_falls_back_to_py_machineid(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "OpenBSD")
    monkeypatch.setattr(platform, "processor", lambda: "amd64")
    monkeypatch.setattr(machineid, "id", lambda: "0123456789ABCDEF0123456789abcdef\n")
    assert raw_values()["machine_id"] == "0123456789abcdef0123456789abcdef"

    def not_found() -> str:
        raise machineid.MachineIdNotFound("failed")

    monkeypatch.setattr(machineid, "id", not_found)
    assert fp._gather().missing["machine_id"] == "py-machineid found no machine id on this system"


def test_unknown_os_reads_no_machine_id(fake: FakeMachine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fp, "_system", lambda: "Haiku")
    _no_machineid_library(monkeypatch)
    monkeypatch.setattr(platform, "processor", lambda: "x86")
    raw = fp._gather()
    assert raw.missing["machine_id"] == "no machine id reader for Haiku"
    assert raw.missing["mac"] == "no network card reader for Haiku"


# --------------------------------------------------------------------------- machine_secret


def test_machine_secret_is_the_0_1_value(fake: FakeMachine) -> None:
    """The local store's key material must not change with algorithm 2."""
    key = hmac.new(b"software_dna/machine-secret/v1", P.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, b"machine_id\0" + MID.encode(), hashlib.sha256).digest()
    assert fp.machine_secret(P) == expected


def test_machine_secret_stable_and_per_product() -> None:
    a = fp.machine_secret(P)
    assert isinstance(a, bytes) and len(a) == 32
    assert fp.machine_secret(P) == a
    fp._reset_caches()
    assert fp.machine_secret(P) == a
    assert fp.machine_secret("acme-viewer") != a


def test_machine_secret_is_no_component_hash() -> None:
    secret = fp.machine_secret(P)
    result = fp.collect(P)
    for value in hashes(result):
        assert base64.urlsafe_b64decode(value + "=") != secret
    assert result.legacy is not None
    for value in result.legacy.components.values():
        assert base64.urlsafe_b64decode(value + "=") != secret


def test_machine_secret_follows_machine(fake: FakeMachine) -> None:
    first = fp.machine_secret(P)
    fp._reset_caches()
    fake.machine_id("0123456789abcdef0123456789abcdef")
    assert fp.machine_secret(P) != first


def test_machine_secret_ignores_weak_drift(fake: FakeMachine) -> None:
    first = fp.machine_secret(P)
    fp._reset_caches()
    fake.hostname("renamed")
    fake.nic("wlp0s20f3", "00:1b:21:aa:bb:cc")
    assert fp.machine_secret(P) == first


def test_machine_secret_falls_back_to_mac(fake: FakeMachine) -> None:
    with_id = fp.machine_secret(P)
    fp._reset_caches()
    (fake.root / "etc/machine-id").unlink()
    without_id = fp.machine_secret(P)
    assert len(without_id) == 32 and without_id != with_id
    fp._reset_caches()
    assert fp.machine_secret(P) == without_id


def test_machine_secret_unavailable(fake: FakeMachine) -> None:
    (fake.root / "etc/machine-id").unlink()
    fake.remove_nic("enp0s31f6")
    fake.hostname("localhost")
    with pytest.raises(FingerprintUnavailable):
        fp.machine_secret(P)
