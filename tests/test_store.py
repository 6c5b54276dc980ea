"""Tests for the encrypted local store (``software_dna.store``).

Real files in ``tmp_path`` and real processes throughout; only what cannot be
made real on a test machine (a full disk, a read-only folder when running as
root) is simulated by making one OS call fail.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import platformdirs
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import software_dna.files as files_module
import software_dna.store as store_module
from software_dna.errors import (
    FingerprintUnavailable,
    LicenseError,
    StoreCorrupted,
    StoreError,
    StoreFromAnotherMachine,
    WrongMachine,
)
from software_dna.store import (
    FORMAT_VERSION,
    MAGIC,
    MAX_FILE_SIZE,
    Store,
    default_store_dir,
    store_path_for,
    user_dir,
)

PRODUCT = "com.example.editor"
KEY = b"machine-bound key material for tests \x00\x01\x02"
OTHER_KEY = b"key material of some other machine"
SRC = str(Path(store_module.__file__).resolve().parents[1])
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
POSIX = os.name == "posix"
DOC: dict[str, Any] = {
    "token": "v4.public.eyJhIjoiYiJ9",
    "activation_id": "act_123",
    "clock_high_water": "2024-05-01T12:00:00Z",
    "settings": {"check_interval": 3600, "ratio": 0.5, "on": True, "none": None},
    "email": "Zoë <zoe@example.com> ✓",
    "list": [1, "two", [3]],
}


def make_store(
    directory: Path, product: str = PRODUCT, key: bytes = KEY, path: Path | None = None
) -> Store:
    return Store(path or store_path_for(product, directory), product=product, key_material=key)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return make_store(tmp_path / "data")


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    return env


def leftovers(directory: Path) -> list[str]:
    """Temporary files a write may have left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- basics


def test_round_trip(store: Store) -> None:
    store.write(DOC)
    assert store.read() == DOC
    store.write({"token": "replaced"})
    assert store.read() == {"token": "replaced"}
    assert Store(store.path, product=PRODUCT, key_material=KEY).read() == {"token": "replaced"}


def test_missing_file_reads_none_without_creating_anything(tmp_path: Path) -> None:
    store = make_store(tmp_path / "not" / "there")
    assert store.read() is None
    assert not (tmp_path / "not").exists()


def test_missing_folder_is_created_private(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b" / "store"
    store = make_store(directory)
    store.write(DOC)
    assert store.read() == DOC
    if POSIX:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert leftovers(directory) == []


def hkdf(material: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(material)


def key_id(material: bytes, product: str = PRODUCT) -> bytes:
    """The format-2 key id, computed from the documented rule."""
    return hkdf(material, b"software_dna local store v2 key derivation",
                b"software_dna store key id v2\0" + product.encode(), 8)


def test_file_layout(store: Store) -> None:
    store.write(DOC)
    raw = store.path.read_bytes()
    assert raw[:4] == MAGIC == b"SDNA"
    assert raw[4] == FORMAT_VERSION == 2
    assert raw[5:13] == key_id(KEY)
    plaintext = json.dumps(DOC, separators=(",", ":")).encode()
    assert len(raw) == 4 + 1 + 8 + 12 + len(plaintext) + 16
    assert b"act_123" not in raw and b"token" not in raw
    # The documented key and associated data (the whole header + product id) open it.
    key = hkdf(KEY, b"software_dna local store v2 key derivation",
               b"software_dna store v2\0" + PRODUCT.encode(), 32)
    assert AESGCM(key).decrypt(raw[13:25], raw[25:], raw[:13] + PRODUCT.encode()) == plaintext
    store.write(DOC)
    again = store.path.read_bytes()
    assert again[:13] == raw[:13], "the header is the same for every write"
    assert again[13:25] != raw[13:25], "every write uses a fresh nonce"


def test_key_id_differs_per_machine_key_and_product(tmp_path: Path) -> None:
    ids = set()
    for product, key in [(PRODUCT, KEY), (PRODUCT, OTHER_KEY), ("com.example.other", KEY)]:
        store = make_store(tmp_path / "ids", product=product, key=key)
        store.write(DOC)
        ids.add(store.path.read_bytes()[5:13])
        store.path.unlink()
    assert len(ids) == 3
    assert key_id(KEY) not in (KEY[:8], KEY[-8:])


def test_read_takes_no_lock(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(DOC)

    def no_lock(_path: Path) -> Any:
        raise AssertionError("read() must not lock")

    monkeypatch.setattr(files_module, "_path_lock", no_lock)
    assert store.read() == DOC


def test_read_path_does_not_import_filelock_or_platformdirs(store: Store) -> None:
    store.write(DOC)
    script = (
        "import sys; from pathlib import Path; from software_dna.store import Store\n"
        f"s = Store(Path({str(store.path)!r}), product={PRODUCT!r}, key_material={KEY!r})\n"
        "assert s.read()['activation_id'] == 'act_123'\n"
        "print(sorted(m for m in ('filelock', 'platformdirs', 'requests') if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert out.stdout.strip() == "[]"


def test_constructor_validates_arguments(tmp_path: Path) -> None:
    path = tmp_path / "x.license"
    with pytest.raises(ValueError):
        Store(path, product="", key_material=KEY)
    with pytest.raises(ValueError):
        Store(path, product=PRODUCT, key_material=b"")
    with pytest.raises(TypeError):
        Store(path, product=PRODUCT, key_material="text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Store(path, product="\ud800", key_material=KEY)


def test_write_refuses_data_that_cannot_be_stored(store: Store) -> None:
    store.write(DOC)
    before = store.path.read_bytes()
    with pytest.raises(TypeError):
        store.write({"when": object()})
    with pytest.raises(ValueError):
        store.write({"x": float("nan")})
    with pytest.raises(TypeError):
        store.write(["not", "a", "mapping"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too large"):
        store.write({"blob": "x" * MAX_FILE_SIZE})
    assert store.path.read_bytes() == before
    assert leftovers(store.path.parent) == []


def test_clear(store: Store, tmp_path: Path) -> None:
    store.clear()  # no folder yet
    store.write(DOC)
    store.clear()
    assert not store.path.exists()
    assert store.read() is None
    store.clear()  # no file
    store.write({"a": 1})
    assert store.read() == {"a": 1}


# --------------------------------------------------------------------------- paths


def test_store_path_for_plain_product_id(tmp_path: Path) -> None:
    assert store_path_for("com.example.editor", tmp_path) == tmp_path / "com.example.editor.license"
    assert store_path_for("my-app_2", tmp_path) == tmp_path / "my-app_2.license"


@pytest.mark.parametrize(
    "product",
    ["..", ".", "../../etc/passwd", "a/b", "a\\b", "/abs", "C:\\x", "con", "NUL.txt", "x.",
     "with space", "Ünïcode", "a\x00b", "x" * 300, ".hidden"],
)  # fmt: skip
def test_store_path_for_escapes_unsafe_ids(tmp_path: Path, product: str) -> None:
    path = store_path_for(product, tmp_path)
    assert path.parent == tmp_path
    name = path.name
    assert name.endswith(".license")
    assert "/" not in name and "\\" not in name and "\x00" not in name and ":" not in name
    assert not name.startswith(".")
    assert len(name) <= 80
    assert name.split(".")[0].lower() not in {"con", "nul", "prn", "aux"}
    assert store_path_for(product, tmp_path) == path  # stable


def test_store_path_for_distinct_ids_get_distinct_files(tmp_path: Path) -> None:
    ids = ["app", "App", "APP", "a/b", "a\\b", "a_b", "a b", "a:b", "con", "Con"]
    names = {store_path_for(p, tmp_path).name.lower() for p in ids}
    assert len(names) == len(ids), "distinct even on case-insensitive file systems"


def test_store_path_for_refuses_empty(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        store_path_for("", tmp_path)


def test_default_store_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_HOME", str(tmp_path / "home"))
    assert default_store_dir("Editor", "Example") == tmp_path / "home"
    monkeypatch.delenv("SOFTWARE_DNA_HOME")
    expected = Path(platformdirs.user_data_dir("Editor", "Example", roaming=False))
    assert default_store_dir("Editor", "Example") == expected
    assert default_store_dir("Editor", None) == Path(
        platformdirs.user_data_dir("Editor", None, roaming=False)
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the platformdirs-free path is Linux only")
@pytest.mark.parametrize("xdg", [None, "", "/srv/xdg", "/srv/xdg/", "relative/dir", "  "])
@pytest.mark.parametrize("home", [None, "/home/someone", "/home/someone/", "/", "relative"])
@pytest.mark.parametrize("kind", ["data", "state"])
def test_user_dir_is_platformdirs(monkeypatch: pytest.MonkeyPatch, kind: Literal["data", "state"],
                                  xdg: str | None, home: str | None) -> None:
    """user_dir() (no platformdirs import on Linux) gives platformdirs' folder."""

    variable = "XDG_DATA_HOME" if kind == "data" else "XDG_STATE_HOME"
    for name, value in ((variable, xdg), ("HOME", home)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    try:
        expected = (platformdirs.user_data_dir("Editor", "Example", roaming=False)
                    if kind == "data" else platformdirs.user_state_dir("software_dna", False))
    except RuntimeError:  # newer platformdirs: no usable home folder
        pytest.skip("platformdirs finds no home folder here")
    author: str | Literal[False] = "Example" if kind == "data" else False
    assert user_dir(kind, "Editor" if kind == "data" else "software_dna", author) == expected


# --------------------------------------------------------------------------- corrupt files


def assert_quarantined(store: Store, bad: bytes, read: Callable[[], object] | None = None, *,
                       other_machine: bool = False) -> None:
    """Reading fails with StoreCorrupted, the file is moved aside intact, and the store recovers.

    ``other_machine``: the file is a well-formed one written under another
    machine key, so the error is StoreFromAnotherMachine and the file is
    moved to ``.other-machine-``; otherwise exactly StoreCorrupted and ``.corrupt-``.
    """
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_bytes(bad)
    with pytest.raises(StoreCorrupted) as caught:
        (read or store.read)()
    error = caught.value
    assert isinstance(error, StoreError) and isinstance(error, LicenseError)
    assert error.moved_to is not None
    aside = Path(error.moved_to)
    assert aside.parent == store.path.parent
    assert aside.read_bytes() == bad, "the bad file is kept, byte for byte"
    assert str(aside) in str(error)
    if other_machine:
        assert type(error) is StoreFromAnotherMachine
        assert isinstance(error, WrongMachine)
        assert aside.name.startswith(store.path.name + ".other-machine-")
        assert "another computer" in str(error) and "no longer has" in str(error)
        assert "activate it here with your license key" in str(error)
    else:
        assert type(error) is StoreCorrupted
        assert aside.name.startswith(store.path.name + ".corrupt-")
        assert "activate it with your license key" in str(error) and "no other seat" in str(error)
    assert not store.path.exists()
    assert store.read() is None, "no crash loop: the next read sees no file"
    store.write({"fresh": True})
    assert store.read() == {"fresh": True}
    store.path.unlink()
    aside.unlink()


@pytest.fixture
def real_file(tmp_path: Path) -> bytes:
    """The bytes of a genuine store file for PRODUCT under KEY."""
    store = make_store(tmp_path / "genuine")
    store.write(DOC)
    return store.path.read_bytes()


def sealed(store: Store, plaintext: bytes) -> bytes:
    """Encrypt arbitrary plaintext with the store's own key (contents a bug could produce)."""
    return store._seal(plaintext)


@pytest.mark.parametrize(
    "make_bad",
    [
        pytest.param(lambda s, real: b"", id="empty"),
        pytest.param(lambda s, real: b"\x00" * len(real), id="nul-filled"),
        pytest.param(lambda s, real: os.urandom(len(real)), id="random-bytes"),
        pytest.param(lambda s, real: b'{"token": "plain json"}', id="not-our-format"),
        pytest.param(lambda s, real: real[:4] + bytes([3]) + real[5:], id="future-version"),
        pytest.param(lambda s, real: real[:4] + bytes([0]) + real[5:], id="version-zero"),
        pytest.param(lambda s, real: real[:4] + bytes([1]) + real[5:], id="version-edited-to-1"),
        pytest.param(lambda s, real: real[:13] + bytes([real[13] ^ 1]) + real[14:],
                     id="flipped-nonce-bit"),
        pytest.param(lambda s, real: real[:30] + bytes([real[30] ^ 1]) + real[31:],
                     id="flipped-ciphertext-bit"),
        pytest.param(lambda s, real: b"SDNB" + real[4:], id="wrong-magic"),
        pytest.param(lambda s, real: real[:-1] + bytes([real[-1] ^ 1]), id="flipped-tag-bit"),
        pytest.param(lambda s, real: real[:20] + bytes([real[20] ^ 0x80]) + real[21:], id="flip"),
        pytest.param(lambda s, real: real + b"\x00", id="trailing-byte"),
        pytest.param(lambda s, real: b"SDNA\x01" + os.urandom(MAX_FILE_SIZE), id="oversized"),
        pytest.param(lambda s, real: sealed(s, b"[1,2,3]"), id="json-array-inside"),
        pytest.param(lambda s, real: sealed(s, b'"text"'), id="json-string-inside"),
        pytest.param(lambda s, real: sealed(s, b'{"a":1,"a":2}'), id="duplicate-keys"),
        pytest.param(lambda s, real: sealed(s, b'{"a":NaN}'), id="nan-inside"),
        pytest.param(lambda s, real: sealed(s, b'{"a":Infinity}'), id="infinity-inside"),
        pytest.param(lambda s, real: sealed(s, b'{"a":"\xff"}'), id="invalid-utf8-inside"),
        pytest.param(lambda s, real: sealed(s, b'{"a":'), id="truncated-json-inside"),
        pytest.param(lambda s, real: sealed(s, b"[" * 100_000), id="deep-nesting-inside"),
    ],
)
def test_corrupt_file_is_moved_aside(
    store: Store, real_file: bytes, make_bad: Callable[[Store, bytes], bytes]
) -> None:
    assert_quarantined(store, make_bad(store, real_file))


def test_truncated_at_every_length(store: Store, real_file: bytes) -> None:
    assert len(real_file) > 100
    for length in range(len(real_file)):
        assert_quarantined(store, real_file[:length])


def test_file_from_another_machine(store: Store, tmp_path: Path) -> None:
    elsewhere = make_store(tmp_path / "other-machine", key=OTHER_KEY)
    elsewhere.write(DOC)
    assert_quarantined(store, elsewhere.path.read_bytes(), other_machine=True)


def test_file_from_another_machine_in_transaction(store: Store, tmp_path: Path) -> None:
    elsewhere = make_store(tmp_path / "other-machine", key=OTHER_KEY)
    elsewhere.write(DOC)

    def run() -> None:
        with store.transaction() as data:
            data["never"] = "written"

    assert_quarantined(store, elsewhere.path.read_bytes(), read=run, other_machine=True)


def test_file_from_another_machine_that_cannot_be_moved(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = make_store(tmp_path / "other-machine", key=OTHER_KEY)
    elsewhere.write(DOC)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(elsewhere.path.read_bytes())

    def refuse(*_args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StoreFromAnotherMachine) as caught:
        store.read()
    assert caught.value.moved_to is None
    assert "delete or rename" in str(caught.value)
    assert store.path.read_bytes() == elsewhere.path.read_bytes()


def test_same_key_id_with_flipped_ciphertext_is_damage_not_another_machine(
    store: Store, real_file: bytes
) -> None:
    assert real_file[5:13] == key_id(KEY)
    damaged = real_file[:-20] + bytes([real_file[-20] ^ 0x01]) + real_file[-19:]
    assert_quarantined(store, damaged)  # exactly StoreCorrupted, moved to .corrupt-


def test_edited_key_id_does_not_open(store: Store, real_file: bytes) -> None:
    edited = real_file[:5] + bytes([real_file[5] ^ 0x01]) + real_file[6:]
    assert_quarantined(store, edited, other_machine=True)


def test_other_machine_file_with_our_key_id_pasted_in_is_damage(
    store: Store, tmp_path: Path
) -> None:
    """Copying this computer's key id into a foreign file does not make it readable."""
    elsewhere = make_store(tmp_path / "other-machine", key=OTHER_KEY)
    elsewhere.write(DOC)
    foreign = elsewhere.path.read_bytes()
    forged = foreign[:5] + key_id(KEY) + foreign[13:]
    assert_quarantined(store, forged)


def test_file_of_another_product(store: Store, tmp_path: Path) -> None:
    # Same machine key, another product; even copied to our product's file name.
    # The key id is per product, so it names a key this store does not have.
    other = make_store(tmp_path / "data", product="com.example.other")
    other.write(DOC)
    assert other.path != store.path
    assert store.read() is None
    assert_quarantined(store, other.path.read_bytes(), other_machine=True)
    assert other.read() == DOC, "the other product's own file is untouched"


# --------------------------------------------------------------------------- format 1


def v1_file(material: bytes, data: dict[str, Any], product: str = PRODUCT) -> bytes:
    """A format-1 store file, built with the format-1 rules (not with the module's code)."""
    key = hkdf(material, b"software_dna local store key derivation",
               b"software_dna store v1\0" + product.encode(), 32)
    nonce = os.urandom(12)
    plaintext = json.dumps(data, separators=(",", ":")).encode()
    aad = b"SDNA" + b"\x01" + product.encode()
    return b"SDNA\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


LEGACY_KEY = b"the raw machine identifier format 1 was keyed with"


def legacy_store(directory: Path, answer: Callable[[], bytes | None]) -> Store:
    return Store(store_path_for(PRODUCT, directory), product=PRODUCT, key_material=KEY,
                 legacy_key_material=answer)


def test_format_1_file_is_read_with_legacy_key_material_and_rewritten_as_format_2(
    tmp_path: Path,
) -> None:
    calls: list[int] = []

    def legacy() -> bytes:
        calls.append(1)
        return LEGACY_KEY

    store = legacy_store(tmp_path / "data", legacy)
    store.path.parent.mkdir(parents=True)
    old = v1_file(LEGACY_KEY, DOC)
    store.path.write_bytes(old)
    assert store.read() == DOC
    assert store.read() == DOC
    assert store.path.read_bytes() == old, "reading does not rewrite the file"
    with store.transaction() as data:
        assert data == DOC
        data["token"] = "refreshed"
    raw = store.path.read_bytes()
    assert raw[4] == 2 and raw[5:13] == key_id(KEY), "the next write is format 2"
    assert store.read() == {**DOC, "token": "refreshed"}
    # Format 2 needs no legacy key: neither this store nor a fresh one asks for it.
    assert Store(store.path, product=PRODUCT, key_material=KEY,
                 legacy_key_material=lambda: None).read() == {**DOC, "token": "refreshed"}
    assert len(calls) == 1, "the legacy key material is fetched once, for the format-1 file"


def test_format_1_file_is_rewritten_as_format_2_by_write(tmp_path: Path) -> None:
    store = legacy_store(tmp_path / "data", lambda: LEGACY_KEY)
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(v1_file(LEGACY_KEY, DOC))
    assert store.read() == DOC
    store.write({"token": "new"})
    assert store.path.read_bytes()[4] == 2
    assert make_store(tmp_path / "data").read() == {"token": "new"}


def test_format_1_file_without_legacy_is_read_under_key_material(store: Store) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(v1_file(KEY, DOC))
    assert store.read() == DOC
    store.write(DOC)
    assert store.path.read_bytes()[:13] == b"SDNA\x02" + key_id(KEY)
    assert store.read() == DOC


def test_format_1_file_under_key_material_is_not_read_when_legacy_is_given(
    tmp_path: Path,
) -> None:
    store = legacy_store(tmp_path / "data", lambda: LEGACY_KEY)
    assert_quarantined(store, v1_file(KEY, DOC))


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(lambda: None, id="returns-none"),
        pytest.param(lambda: b"", id="returns-empty"),
        pytest.param(lambda: OTHER_KEY, id="returns-other-material"),
    ],
)
def test_format_1_file_whose_legacy_key_is_missing_is_moved_aside(
    tmp_path: Path, answer: Callable[[], bytes | None]
) -> None:
    store = legacy_store(tmp_path / "data", answer)
    assert_quarantined(store, v1_file(LEGACY_KEY, DOC))


def test_format_1_file_whose_legacy_key_material_raises_is_moved_aside(tmp_path: Path) -> None:
    def unavailable() -> bytes:
        raise FingerprintUnavailable("no machine identifier on this computer")

    store = legacy_store(tmp_path / "data", unavailable)
    assert_quarantined(store, v1_file(LEGACY_KEY, DOC))
    # The transaction path too.

    def run() -> None:
        with store.transaction() as data:
            data["x"] = 1

    assert_quarantined(store, v1_file(LEGACY_KEY, DOC), read=run)


def test_format_1_file_of_another_product_is_moved_aside(tmp_path: Path) -> None:
    store = legacy_store(tmp_path / "data", lambda: LEGACY_KEY)
    assert_quarantined(store, v1_file(LEGACY_KEY, DOC, product="com.example.other"))


def test_legacy_key_material_must_be_callable(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        Store(tmp_path / "x.license", product=PRODUCT, key_material=KEY,
              legacy_key_material=LEGACY_KEY)  # type: ignore[arg-type]


def test_corrupt_file_in_transaction(store: Store) -> None:
    def run() -> None:
        with store.transaction() as data:
            data["never"] = "written"

    assert_quarantined(store, b"\x00" * 64, read=run)
    with store.transaction() as data:
        assert data == {}
        data["n"] = 1
    assert store.read() == {"n": 1}


def test_file_replaced_meanwhile_is_not_quarantined(
    store: Store, real_file: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock-free read saw bad bytes, but under the lock the file is fine: keep it."""
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(real_file)
    real_read = store._read_raw
    calls = []

    def first_read_sees_garbage() -> bytes | None:
        calls.append(1)
        return b"\x00" * 10 if len(calls) == 1 else real_read()

    monkeypatch.setattr(store, "_read_raw", first_read_sees_garbage)
    assert store.read() == DOC
    assert len(calls) == 2
    assert store.path.read_bytes() == real_file
    assert [p for p in store.path.parent.iterdir() if ".corrupt-" in p.name] == []


def test_corrupt_file_that_cannot_be_moved(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.path.parent.mkdir(parents=True)
    store.path.write_bytes(b"garbage")

    def refuse(*_args: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StoreCorrupted) as caught:
        store.read()
    assert caught.value.moved_to is None
    assert "delete or rename" in str(caught.value)
    assert isinstance(caught.value.__cause__, PermissionError)
    assert store.path.read_bytes() == b"garbage"


# --------------------------------------------------------------------------- I/O failures


def test_read_only_folder(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    store.write(DOC)
    before = store.path.read_bytes()
    directory = store.path.parent
    if IS_ROOT or not POSIX:
        # Permissions do not apply to root: make the rename fail the way a
        # read-only folder does.
        def refuse(*_args: object) -> None:
            raise PermissionError(errno.EACCES, "Permission denied")

        monkeypatch.setattr(os, "replace", refuse)
    else:
        directory.chmod(0o500)
    try:
        with pytest.raises(StoreError) as caught:
            store.write({"token": "new"})
        with pytest.raises(StoreError), store.transaction() as data:
            data["token"] = "new"
    finally:
        directory.chmod(0o700)
    error = caught.value
    assert not isinstance(error, StoreCorrupted)
    assert "Permission denied" in str(error) and str(directory) in str(error)
    assert isinstance(error.__cause__, OSError)
    assert store.path.read_bytes() == before
    assert store.read() == DOC
    assert leftovers(directory) == []


@pytest.mark.skipif(IS_ROOT or not POSIX, reason="file permissions do not apply to root")
def test_unreadable_file_is_a_store_error_not_corruption(store: Store) -> None:
    store.write(DOC)
    store.path.chmod(0)
    try:
        with pytest.raises(StoreError) as caught:
            store.read()
    finally:
        store.path.chmod(0o600)
    assert not isinstance(caught.value, StoreCorrupted)
    assert store.read() == DOC


@pytest.mark.parametrize("failing_call", ["write", "fsync"])
def test_disk_full(store: Store, monkeypatch: pytest.MonkeyPatch, failing_call: str) -> None:
    store.write(DOC)
    before = store.path.read_bytes()

    def disk_full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing_call, disk_full)
    with pytest.raises(StoreError) as caught:
        store.write({"token": "new", "pad": "x" * 10_000})
    with pytest.raises(StoreError), store.transaction() as data:
        data["token"] = "new"
    monkeypatch.undo()
    assert "full" in str(caught.value) and "Free some disk space" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    assert store.path.read_bytes() == before
    assert store.read() == DOC
    assert leftovers(store.path.parent) == []


def test_folder_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    store = make_store(blocker / "store")
    with pytest.raises(StoreError) as caught:
        store.write(DOC)
    assert "not a folder" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)
    with pytest.raises(StoreError, match="not a folder") as caught:
        store.read()
    assert not isinstance(caught.value, StoreCorrupted)
    store.clear()  # nothing to clear; must not raise


def test_store_path_is_a_folder(store: Store) -> None:
    store.path.mkdir(parents=True)
    with pytest.raises(StoreError) as caught:
        store.read()
    assert not isinstance(caught.value, StoreCorrupted)
    assert isinstance(caught.value.__cause__, OSError)


# --------------------------------------------------------------------------- transactions


def test_transaction_on_missing_file_yields_empty_dict(store: Store) -> None:
    with store.transaction() as data:
        assert data == {}
    assert not store.path.exists(), "nothing changed, nothing written"
    with store.transaction() as data:
        data.update(DOC)
    assert store.read() == DOC


def test_transaction_exception_writes_nothing(store: Store) -> None:
    store.write(DOC)
    before = store.path.read_bytes()
    with pytest.raises(KeyError), store.transaction() as data:
        data["token"] = "half-done"
        raise KeyError("boom")
    assert store.path.read_bytes() == before
    assert store.read() == DOC

    other = make_store(store.path.parent, product="com.example.fresh")
    with pytest.raises(RuntimeError), other.transaction() as data:
        data["x"] = 1
        raise RuntimeError
    assert not other.path.exists()


def test_transaction_without_change_does_not_rewrite(store: Store) -> None:
    store.write(DOC)
    inode = store.path.stat().st_ino
    before = store.path.read_bytes()
    with store.transaction() as data:
        data["settings"] = dict(data["settings"])  # equal copy: no change
    assert store.path.read_bytes() == before
    assert store.path.stat().st_ino == inode


def test_transaction_detects_type_only_change(store: Store) -> None:
    store.write({"flag": 1})
    with store.transaction() as data:
        data["flag"] = True  # == 1 in Python, but not the same JSON
    assert store.read() == {"flag": True}
    assert store.read()["flag"] is True  # type: ignore[index]


def test_transaction_is_reentrant_in_one_thread(store: Store) -> None:
    with store.transaction() as outer:
        store.write({"inner": 1})
        with store.transaction() as inner:
            assert inner == {"inner": 1}
            inner["inner"] = 2
        outer["outer"] = 1
    assert store.read() == {"outer": 1}, "the outer transaction writes its own view last"


# --------------------------------------------------------------------------- locking


def test_lock_held_by_another_thread_times_out(store: Store) -> None:
    store.write({"n": 0})
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(30)
        waiter = make_store(store.path.parent)
        waiter.lock_timeout = 0.2
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked"):
            waiter.write({"n": 1})
        assert time.monotonic() - started < 5
        assert waiter.read() == {"n": 0}, "reads need no lock"
    finally:
        release.set()
        holder.join(30)
    waiter.write({"n": 1})
    assert store.read() == {"n": 1}


def test_lock_held_by_another_process_times_out(store: Store) -> None:
    store.write({"n": 0})
    lock_path = str(store.path) + ".lock"
    script = (
        "import sys, filelock\n"
        "lock = filelock.FileLock(sys.argv[1])\n"
        "lock.acquire()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, lock_path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        store.lock_timeout = 0.3
        started = time.monotonic()
        with pytest.raises(StoreError, match="locked by another program"):
            store.write({"n": 1})
        with pytest.raises(StoreError):
            store.clear()
        assert 0.25 < time.monotonic() - started < 5
        assert store.read() == {"n": 0}
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()
    store.lock_timeout = 10
    store.write({"n": 1})
    assert store.read() == {"n": 1}


def test_threads_increment_exactly(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    shared = make_store(directory)
    threads_count, per_thread = 8, 50
    errors: list[BaseException] = []
    seen: list[int] = []

    def work(index: int) -> None:
        # Half the threads share one Store object, half have their own.
        store = shared if index % 2 else make_store(directory)
        try:
            for _ in range(per_thread):
                with store.transaction() as data:
                    data["counter"] = data.get("counter", 0) + 1
                    data[f"t{index}"] = data.get(f"t{index}", 0) + 1
                seen.append(store.read()["counter"])  # type: ignore[index]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    final = shared.read()
    assert final is not None
    assert final["counter"] == threads_count * per_thread
    assert all(final[f"t{i}"] == per_thread for i in range(threads_count))
    assert leftovers(directory) == []


WRITER = """
import sys, time
from pathlib import Path
from software_dna.store import Store
path, product, key, name, count, ready, go = sys.argv[1:]
store = Store(Path(path), product=product, key_material=bytes.fromhex(key))
Path(ready).touch()
deadline = time.monotonic() + 60
while not Path(go).exists():
    if time.monotonic() > deadline:
        sys.exit("never told to start")
    time.sleep(0.001)
for _ in range(int(count)):
    with store.transaction() as data:
        data["counter"] = data.get("counter", 0) + 1
        data[name] = data.get(name, 0) + 1
"""

READER = """
import json, sys, time
from pathlib import Path
from software_dna.store import Store
path, product, key, ready, stop = sys.argv[1:]
store = Store(Path(path), product=product, key_material=bytes.fromhex(key))
Path(ready).touch()
reads = 0
errors = []
backwards = 0
last = -1
distinct = set()
deadline = time.monotonic() + 120
while not Path(stop).exists() and time.monotonic() < deadline:
    try:
        # The public path, and the raw bytes checked without any recovery.
        data = store.read()
        raw = Path(path).read_bytes()
        direct = store._open(raw)
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
        continue
    reads += 1
    value = data["counter"]
    distinct.add(value)
    if value < last:
        backwards += 1
    last = max(last, value, direct["counter"])
print(json.dumps({"reads": reads, "errors": errors[:5], "error_count": len(errors),
                  "backwards": backwards, "last": last, "distinct": len(distinct)}))
"""


def wait_for(paths: list[Path], procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in paths):
        for proc in procs:
            if proc.poll() is not None:
                raise AssertionError(f"a helper process exited early: {proc.communicate()}")
        assert time.monotonic() < deadline, "helper processes did not start"
        time.sleep(0.01)


def test_two_processes_200_transactions_each_with_a_reader(tmp_path: Path) -> None:
    store = make_store(tmp_path / "data")
    store.write({"counter": 0})
    flags = tmp_path / "flags"
    flags.mkdir()
    common = [str(store.path), PRODUCT, KEY.hex()]
    per_writer = 200
    env = subprocess_env()

    def spawn(*args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-c", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    writers = [
        spawn(
            WRITER, *common, f"w{i}", str(per_writer), str(flags / f"ready{i}"), str(flags / "go")
        )
        for i in range(2)
    ]
    reader = spawn(READER, *common, str(flags / "reader-ready"), str(flags / "stop"))
    procs = [*writers, reader]
    try:
        wait_for([flags / "ready0", flags / "ready1", flags / "reader-ready"], procs)
        (flags / "go").touch()
        for writer in writers:
            _, err = writer.communicate(timeout=120)
            assert writer.returncode == 0, err
        (flags / "stop").touch()
        out, err = reader.communicate(timeout=60)
        assert reader.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    summary = json.loads(out)
    assert summary["error_count"] == 0, summary["errors"]
    assert summary["backwards"] == 0
    assert summary["reads"] > 0
    assert summary["distinct"] > 1, "the reader ran while the writers were writing"
    final = store.read()
    assert final == {"counter": 2 * per_writer, "w0": per_writer, "w1": per_writer}
    assert leftovers(store.path.parent) == []
    assert [p for p in store.path.parent.iterdir() if ".corrupt-" in p.name] == []


@pytest.fixture(autouse=True)
def _no_lock_leak() -> Iterator[None]:
    """Every test must leave the store locks released."""
    yield
    for entry in list(files_module._LOCKS.values()):
        assert entry.thread_lock.acquire(timeout=5), f"lock left held: {entry.lock_path}"
        entry.thread_lock.release()


def test_peek_never_moves_an_unreadable_file(tmp_path: Path) -> None:
    """peek() reads like read() but leaves a damaged file in place (the witness relies on it)."""
    store = Store(tmp_path / "p.license", product=PRODUCT, key_material=KEY)
    store.write({"a": 1})
    assert store.peek() == {"a": 1}
    store.path.write_bytes(b"")
    with pytest.raises(StoreCorrupted) as caught:
        store.peek()
    assert caught.value.moved_to is None and store.path.read_bytes() == b""
    assert [p for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == [store.path]
