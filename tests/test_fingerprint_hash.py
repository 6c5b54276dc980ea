"""The component hash (scrypt, its cost) and the caches that make it run once per machine.

Warm collections are checked by counting calls through the hashing seam
(``software_dna.fingerprint._hashing._scrypt``), never by timing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from software_dna import fingerprint as fp
from software_dna.fingerprint import _diskcache, _hashing
from tests.fingerprint_fakes import (
    MAC,
    MID,
    TEST_COST,
    FakeMachine,
    make_fake,
    spec_hash,
    spec_legacy_hash,
)

P = "acme-editor"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    fp._reset_caches()
    yield
    fp._reset_caches()


@pytest.fixture
def fake(tmp_path_factory: pytest.TempPathFactory,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeMachine]:
    root = tmp_path_factory.mktemp("root")  # tmp_path stays the (empty) cache folder
    with fp.scrypt_cost_for_tests(TEST_COST):
        yield make_fake(root, monkeypatch)


class Counter:
    """Counts scrypt calls through the seam (and still computes them)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = _hashing._scrypt

        def counted(password: bytes, salt: bytes, n: int) -> bytes:
            self.calls += 1
            return real(password, salt, n)

        monkeypatch.setattr(_hashing, "_scrypt", counted)


@pytest.fixture
def scrypt(monkeypatch: pytest.MonkeyPatch) -> Counter:
    return Counter(monkeypatch)


def cache_file(directory: Path) -> Path:
    """The one cache file in ``directory``."""
    (found,) = directory.glob(_diskcache.FILE_PATTERN)
    return found


def cold(product: str = P, **kwargs: object) -> fp.Fingerprint:
    """A collection in a new process: nothing in the per-process cache."""
    fp._reset_caches()
    return fp.collect(product, **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the hash


def test_component_hash_is_the_specified_scrypt_at_production_cost() -> None:
    """The spec vector, computed independently with hashlib.scrypt (n=2**14, r=8, p=1)."""
    assert fp.PRODUCTION_COST == _hashing.cost() == 2**14
    got = _hashing.component_hash(P, "mac", MAC, _hashing.cost())
    assert got == spec_hash(P, "mac", MAC, n=2**14)
    assert got == "sUCXbw0YIT5b_SyFNgfvQ1MD4uamXgPYC6z-5D3YiaI"  # known answer (docs)


def test_collect_uses_the_production_cost_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_fake(tmp_path, monkeypatch)
    result = fp.collect(P)
    assert result.components["machine_id"] == spec_hash(P, "machine_id", MID, n=2**14)
    assert result.components["mac"] == (spec_hash(P, "mac", MAC, n=2**14),)


def test_hash_depends_on_product_name_and_value() -> None:
    n = TEST_COST
    base = _hashing.component_hash(P, "machine_id", MID, n)
    assert _hashing.component_hash("acme-viewer", "machine_id", MID, n) != base
    assert _hashing.component_hash(P, "smbios_uuid", MID, n) != base
    assert _hashing.component_hash(P, "machine_id", MID + "0", n) != base
    # the separator keeps name and value apart: ("mac", "\0x") is not ("mac\0", "x")
    assert _hashing.component_hash(P, "cpu", "a", n) != _hashing.component_hash(P, "cp", "u\0a", n)
    assert base != spec_legacy_hash(P, "machine_id", MID)


@pytest.mark.parametrize("n", [0, 1, 3, 2**14 + 1, 2**21, True, "16", 16.0])
def test_cost_override_refuses_bad_values(n: object) -> None:
    with pytest.raises(ValueError), fp.scrypt_cost_for_tests(n):  # type: ignore[arg-type]
        pass
    assert _hashing.cost() == fp.PRODUCTION_COST


def test_cost_override_is_scoped() -> None:
    with fp.scrypt_cost_for_tests(32):
        assert _hashing.cost() == 32
        with pytest.raises(RuntimeError), fp.scrypt_cost_for_tests(64):
            raise RuntimeError("restored even on error")
        assert _hashing.cost() == 32
    assert _hashing.cost() == fp.PRODUCTION_COST


def test_per_process_cache_is_keyed_by_cost(fake: FakeMachine, scrypt: Counter) -> None:
    low = fp.collect(P)
    assert scrypt.calls == 4  # machine id, OS, CPU, one MAC
    with fp.scrypt_cost_for_tests(32):
        other = fp.collect(P)
    assert other != low and scrypt.calls == 8
    assert fp.collect(P) is low and scrypt.calls == 8


# --------------------------------------------------------------------------- disk cache


def test_warm_collect_computes_no_scrypt(fake: FakeMachine, scrypt: Counter,
                                         tmp_path: Path) -> None:
    first = cold(cache_dir=tmp_path)
    assert scrypt.calls == 4
    assert cache_file(tmp_path).is_file()
    second = cold(cache_dir=tmp_path)
    assert scrypt.calls == 4  # none more
    assert second == first


def test_only_changed_values_are_hashed_again(fake: FakeMachine, scrypt: Counter,
                                              tmp_path: Path) -> None:
    cold(cache_dir=tmp_path)
    fake.nic("wlp0s20f3", "00:1b:21:aa:bb:cc")
    result = cold(cache_dir=tmp_path)
    assert scrypt.calls == 5
    assert result.components["mac"] == tuple(sorted(
        (spec_hash(P, "mac", MAC), spec_hash(P, "mac", "00:1b:21:aa:bb:cc"))))


def test_cache_is_keyed_by_cost_and_product(fake: FakeMachine, scrypt: Counter,
                                            tmp_path: Path) -> None:
    cold(cache_dir=tmp_path)
    with fp.scrypt_cost_for_tests(32):
        cold(cache_dir=tmp_path)
    assert scrypt.calls == 8
    cold("acme-viewer", cache_dir=tmp_path)
    assert scrypt.calls == 12
    cold(cache_dir=tmp_path)
    cold("acme-viewer", cache_dir=tmp_path)
    with fp.scrypt_cost_for_tests(32):
        cold(cache_dir=tmp_path)
    assert scrypt.calls == 12  # all three kept, one file each
    assert len(list(tmp_path.glob(_diskcache.FILE_PATTERN))) == 3


@pytest.mark.parametrize("content", [
    b"\x00\xffnot json",
    b"[]",
    b'{"version": 1, "entries": {}}',
    b'{"version": 2, "entries": []}',
    b'{"version": 2}',
    json.dumps({"version": 2, "entries": {"x" * 43: "short", "y": "z" * 43}}).encode(),
    b" " * (200 * 1024),
])
def test_corrupt_file_is_ignored_and_rewritten(fake: FakeMachine, scrypt: Counter,
                                               tmp_path: Path, content: bytes) -> None:
    expected = cold(cache_dir=tmp_path)
    calls = scrypt.calls
    path = cache_file(tmp_path)
    path.write_bytes(content)
    assert cold(cache_dir=tmp_path) == expected
    assert scrypt.calls == 2 * calls
    doc = json.loads(path.read_bytes())
    assert doc["version"] == 2 and len(doc["entries"]) == 4
    cold(cache_dir=tmp_path)
    assert scrypt.calls == 2 * calls


def test_moved_or_planted_entries_are_not_used(fake: FakeMachine, scrypt: Counter,
                                               tmp_path: Path) -> None:
    """An entry counts only sealed for its own tag under this machine's key: another
    machine's hashes moved under this machine's tags, or values planted under
    guessable keys, are recomputed."""
    expected = cold(cache_dir=tmp_path)
    path = cache_file(tmp_path)
    doc = json.loads(path.read_bytes())
    tags = list(doc["entries"])
    values = list(doc["entries"].values())
    rotated = dict(zip(tags, values[1:] + values[:1], strict=True))  # hashes swapped around
    forged = {tag: "A" * 43 + value[43:] for tag, value in doc["entries"].items()}
    planted = {spec_legacy_hash(P, "machine_id", MID): "B" * 43 + "." + "C" * 43}
    for entries in (rotated, forged, planted):
        path.write_text(json.dumps({"version": 2, "entries": entries}))
        before = scrypt.calls
        assert cold(cache_dir=tmp_path) == expected
        assert scrypt.calls == before + 4


def test_file_reveals_no_raw_value_and_no_cheap_hash(fake: FakeMachine, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    cold(cache_dir=tmp_path)
    text = cache_file(tmp_path).read_text().lower()
    for raw in (MID, MAC, MAC.replace(":", ""), "build-01", "i7-8650u"):
        assert raw not in text
    # a tag is keyed with the machine secret: without the machine id (128 random
    # bits, not in the file) the MAC's tag cannot be computed, so recovering the
    # MAC from the file costs the scrypt search. Two machines with the same MAC
    # and different ids have unrelated tags.
    tags_a = set(json.loads(text)["entries"])
    other = tmp_path / "other"
    other.mkdir()
    fake.machine_id("0123456789abcdef0123456789abcdef")
    cold(cache_dir=other)
    tags_b = set(json.loads(cache_file(other).read_text())["entries"])
    assert tags_a.isdisjoint(tags_b)
    for name, value in (("mac", MAC), ("machine_id", MID)):
        assert spec_legacy_hash(P, name, value) not in tags_a


def test_no_disk_cache_without_a_machine_id(fake: FakeMachine, scrypt: Counter,
                                            tmp_path: Path) -> None:
    """Without the machine id the key would rest on a MAC or a host name, which can be guessed."""
    (fake.root / "etc/machine-id").unlink()
    cold(cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_file_is_bounded(tmp_path: Path) -> None:
    cache = _diskcache.DiskCache(tmp_path, b"s" * 32, TEST_COST)
    old = {f"{i:043d}": "C" * 43 for i in range(_diskcache.MAX_ENTRIES + 50)}
    new = {f"{i:043d}".replace("0", "n"): "D" * 43 for i in range(4)}
    cache.save(old, new)
    entries = cache.load()
    assert len(entries) == _diskcache.MAX_ENTRIES
    assert new.items() <= entries.items()  # the newest are kept
    assert len(cache.path.read_bytes()) < 64 * 1024


def test_write_is_atomic(fake: FakeMachine, tmp_path: Path,
                         monkeypatch: pytest.MonkeyPatch) -> None:
    cold(cache_dir=tmp_path)
    path = cache_file(tmp_path)
    path.write_bytes(b"previous")

    def failing_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    result = cold(cache_dir=tmp_path)
    assert result.components["machine_id"] == spec_hash(P, "machine_id", MID)
    assert path.read_bytes() == b"previous"  # never half-written
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


def test_unusable_directory_only_costs_time(fake: FakeMachine, scrypt: Counter,
                                            tmp_path: Path) -> None:
    missing = tmp_path / "not-created-yet"
    first = cold(cache_dir=missing)
    second = cold(cache_dir=missing)
    assert first == second and scrypt.calls == 8
    assert not missing.exists()
