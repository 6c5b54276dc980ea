"""The machine key (fingerprint/_keyring.py): it opens exactly for the machines compare() accepts.

The keyring wraps one random key so that any reading the identity rules call
"the same machine" recovers it, and no other. The property tests drive random
drift sequences against :func:`software_dna.wire.identity.compare`; the
scenario tests run the SDK's store on simulated machines.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from software_dna import StoreFromAnotherMachine
from software_dna.client.locations import Env
from software_dna.client.state import ClientState
from software_dna.client.verifier import TokenVerifier
from software_dna.fingerprint import _keyring
from software_dna.fingerprint._keyring import open_keyring, wrap_keyring
from software_dna.testing import SimulatedMachine
from software_dna.wire.identity import MAX_TOLERANCE, compare

PRODUCT = "acme-editor"
N = 2  # the scrypt cost of these tests: the rules, not the cost, are under test

Reading = dict[str, "str | tuple[str, ...] | None"]


def same(a: Reading, b: Reading) -> bool:
    """The identity rule, on raw values standing in for hashes (compare() only tests equality)."""
    return compare(a, b, MAX_TOLERANCE).same


values = st.text(alphabet="0123456789abcdef", min_size=2, max_size=3)
macs = st.lists(values, min_size=0, max_size=3, unique=True).map(
    lambda m: tuple(sorted(m)) or None)


@st.composite
def readings(draw: st.DrawFn) -> Reading:
    reading: Reading = {
        "machine_id": draw(st.none() | values),
        "os_arch": draw(st.sampled_from(["linux/x86_64", "darwin/arm64", None])),
        "cpu": draw(st.none() | values),
        "mac": draw(macs),
    }
    if draw(st.booleans()):
        reading["smbios_uuid"] = draw(st.none() | values)
    # A machine with no identifying value cannot be identified (FingerprintUnavailable).
    assume(any(reading.get(name) for name in ("machine_id", "smbios_uuid", "mac")))
    # Nor one with more unreadable components than the tolerance (Machine.machine_key refuses).
    assume(sum(value is None for value in reading.values()) <= MAX_TOLERANCE)
    return reading


@st.composite
def steps(draw: st.DrawFn, start: Reading) -> Reading:
    """One drift step from ``start``: some components change, appear or vanish."""
    after = dict(start)
    for name in draw(st.lists(st.sampled_from([*sorted(start), "smbios_uuid"]),
                              max_size=3, unique=True)):
        choice = draw(st.integers(0, 3))
        if name == "mac":
            current = list(after.get("mac") or ())
            if choice == 0 and current:  # a card goes
                current.pop(draw(st.integers(0, len(current) - 1)))
            elif choice == 1:  # a card comes
                current.append(draw(values))
            else:
                current = draw(st.lists(values, max_size=2))
            after["mac"] = tuple(sorted(set(current))) or None
        elif name == "smbios_uuid" and choice == 0:
            after.pop("smbios_uuid", None)
        else:
            after[name] = None if choice == 1 else draw(values)
    return after


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_drift_within_the_rules_always_opens_and_beyond_never(data: st.DataObject) -> None:
    """Invariant: after any sequence of steps, the key opens iff compare() says "same machine"
    to the reading it was last wrapped for -- and then it is the same key."""
    key = os.urandom(32)
    wrapped_for = data.draw(readings())
    keyring = wrap_keyring(key, PRODUCT, wrapped_for, N)
    for _ in range(data.draw(st.integers(1, 6))):
        now = data.draw(steps(wrapped_for))
        opened = open_keyring(keyring, PRODUCT, now, N)
        if not same(wrapped_for, now):
            assert opened is None, (wrapped_for, now)
            return
        assert opened is not None and opened.key == key, (wrapped_for, now)
        assert opened.stale == (now != wrapped_for)
        if opened.stale:  # what the SDK does after accepted drift
            keyring = wrap_keyring(opened.key, PRODUCT, now, N, opened.secrets)
            wrapped_for = now


def linux(**changes: object) -> Reading:
    base: Reading = {"machine_id": "4c1d9e0f7a2b4c6d", "os_arch": "linux/x86_64",
                     "cpu": "intel i7", "mac": ("a4:bb:6d:12:34:56",)}
    base.update(changes)  # type: ignore[arg-type]
    return base


def test_drift_spread_over_weeks_keeps_the_key() -> None:
    """Each week one more component changes; re-wrapping after each keeps the key."""
    key = os.urandom(32)
    reading = linux()
    keyring = wrap_keyring(key, PRODUCT, reading, N)
    for change in ({"mac": ("a4:bb:6d:00:00:01",)}, {"machine_id": "regenerated-at-boot-1"},
                   {"cpu": "intel i9"}, {"mac": ("a4:bb:6d:00:00:02",)},
                   {"machine_id": "regenerated-at-boot-2"}):
        reading = {**reading, **change}
        opened = open_keyring(keyring, PRODUCT, reading, N)
        assert opened is not None and opened.key == key and opened.stale
        keyring = wrap_keyring(opened.key, PRODUCT, reading, N, opened.secrets)
    final = open_keyring(keyring, PRODUCT, reading, N)
    assert final is not None and final.key == key and not final.stale


def test_two_components_at_once_do_not_open() -> None:
    keyring = wrap_keyring(os.urandom(32), PRODUCT, linux(), N)
    assert open_keyring(keyring, PRODUCT, linux(machine_id="other", cpu="amd"), N) is None
    assert open_keyring(keyring, PRODUCT, linux(machine_id="other", mac=None), N) is None


def test_os_and_cpu_alone_never_open() -> None:
    """The shared components never carry a match (as in compare())."""
    keyring = wrap_keyring(os.urandom(32), PRODUCT, linux(mac=None), N)
    assert open_keyring(keyring, PRODUCT, linux(mac=None, machine_id=None), N) is None


def test_a_dock_coming_and_going_opens_without_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick wrap: non-MAC values unchanged -> no scrypt to open (only the new card's)."""
    key = os.urandom(32)
    keyring = wrap_keyring(key, PRODUCT, linux(), N)
    calls: list[str] = []
    real = _keyring.local_secret
    monkeypatch.setattr(_keyring, "local_secret",
                        lambda *a: calls.append(a[1]) or real(*a))  # type: ignore[func-returns-value]
    docked = linux(mac=("a4:bb:6d:12:34:56", "00:0e:c6:aa:bb:cc"))
    opened = open_keyring(keyring, PRODUCT, docked, N)
    assert opened is not None and opened.key == key and calls == []
    wrap_keyring(opened.key, PRODUCT, docked, N, opened.secrets)
    assert calls == ["mac"]  # only the dock's address is new


def test_keyring_holds_no_raw_value() -> None:
    reading = linux()
    text = wrap_keyring(os.urandom(32), PRODUCT, reading, N).decode()
    for value in ("4c1d9e0f7a2b4c6d", "a4:bb:6d:12:34:56", "intel i7", "linux/x86_64"):
        assert value not in text
    doc = json.loads(text)
    assert doc["names"] == ["cpu", "mac", "machine_id", "os_arch"]


def test_keyring_of_another_product_does_not_open() -> None:
    keyring = wrap_keyring(os.urandom(32), PRODUCT, linux(), N)
    assert open_keyring(keyring, "acme-viewer", linux(), N) is None


@pytest.mark.parametrize("garbage", [b"", b"{}", b"[]", b"\0" * 64, b'{"version": 1}',
                                     b'{"version":1,"n":3,"names":[],"present":[],"wraps":[]}',
                                     b"{" * 100_000])
def test_garbage_is_not_a_keyring(garbage: bytes) -> None:
    assert open_keyring(garbage, PRODUCT, linux(), N) is None


def test_edited_wrap_does_not_open(tmp_path: Path) -> None:
    doc = json.loads(wrap_keyring(os.urandom(32), PRODUCT, linux(), N))
    doc["quick"] = None
    for wrap in doc["wraps"]:
        wrap["box"] = wrap["box"][:-2] + ("AA" if wrap["box"][-2:] != "AA" else "BB")
    assert open_keyring(json.dumps(doc).encode(), PRODUCT, linux(), N) is None


# --------------------------------------------------------------------------- the store on it


def _components(machine: SimulatedMachine) -> dict[str, object]:
    """The machine's component set as the server sees it (hashes)."""
    return dict(machine.fingerprint(PRODUCT).components)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from(["machine_id", "mac", "cpu", "os_arch"]),
                         min_size=1, max_size=2, unique=True), min_size=1, max_size=5))
def test_store_opens_after_drift_within_the_rules_and_never_beyond(
        tmp_path_factory: pytest.TempPathFactory, plan: list[list[str]]) -> None:
    """The local store, written once, is read after every drift step (a new process each time):
    it opens exactly when compare() calls the machine the same as at the last opening."""
    machine = SimulatedMachine(tmp_path_factory.mktemp("machine"))
    state = _state(machine)
    state.update(lambda d: d.__setitem__("note", "kept"))
    before = _components(machine)
    for names in plan:
        machine.drift(*names)
        now = _components(machine)
        state = _state(machine)  # a new process
        if compare(before, now, MAX_TOLERANCE).same:  # type: ignore[arg-type]
            assert state.read().get("note") == "kept"
            before = now
        else:
            with pytest.raises(StoreFromAnotherMachine):
                state.read()
            return


def _state(machine: SimulatedMachine) -> ClientState:
    verifier = TokenVerifier(PRODUCT, {}, machine.fingerprint)
    store = machine.home / "data" / "acme-editor.license"
    return ClientState(verifier, store, lambda: datetime.now(timezone.utc), machine=machine,
                       env=Env(machine.environ, machine.home, machine.platform))
