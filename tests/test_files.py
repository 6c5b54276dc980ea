"""Tests for the shared file machinery (``software_dna.files``).

Real files in ``tmp_path``, real threads and a real second process holding a
lock; only a full disk and a refused rename are simulated by making one OS
call fail.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import software_dna.files as files
from software_dna.files import (
    LockTimeout,
    exclusive,
    move_aside,
    read_limited,
    replace,
    write_atomically,
)

POSIX = os.name == "posix"
SRC = str(Path(files.__file__).resolve().parents[1])


def temporaries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- writing


def test_write_atomically_creates_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "state.bin"
    write_atomically(target, b"first")
    assert target.read_bytes() == b"first"
    write_atomically(target, b"second, longer" * 1000)
    assert target.read_bytes() == b"second, longer" * 1000
    write_atomically(target, b"")
    assert target.read_bytes() == b""
    if POSIX:
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert temporaries(tmp_path) == []


@pytest.mark.skipif(not POSIX, reason="POSIX permission bits")
def test_write_atomically_uses_the_given_mode(tmp_path: Path) -> None:
    target = tmp_path / "shared.bin"
    old = os.umask(0o022)
    try:
        write_atomically(target, b"x", mode=0o640)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


@pytest.mark.parametrize("failing_call", ["write", "fsync", "replace"])
def test_write_atomically_failure_leaves_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing_call: str
) -> None:
    target = tmp_path / "state.bin"
    write_atomically(target, b"previous")

    def disk_full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, failing_call, disk_full)
    with pytest.raises(OSError) as caught:
        write_atomically(target, b"new contents")
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"previous"
    assert temporaries(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.bin"]


def test_write_atomically_short_writes_are_completed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = os.write

    def one_byte_at_a_time(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:1]))

    monkeypatch.setattr(os, "write", one_byte_at_a_time)
    write_atomically(tmp_path / "slow.bin", b"all of it")
    monkeypatch.undo()
    assert (tmp_path / "slow.bin").read_bytes() == b"all of it"


def test_write_atomically_into_a_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomically(tmp_path / "missing" / "x.bin", b"x")
    assert not (tmp_path / "missing").exists()


def test_replace_raises_when_the_rename_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        replace(tmp_path / "absent", tmp_path / "target")


# --------------------------------------------------------------------------- reading


def test_read_limited(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    assert read_limited(path, 10) is None
    path.write_bytes(b"0123456789")
    assert read_limited(path, 10) == b"0123456789"
    path.write_bytes(b"0123456789" * 100)
    assert read_limited(path, 10) == b"01234567890", "limit + 1 bytes: too large, not loaded"
    with pytest.raises(OSError):
        read_limited(tmp_path, 10)  # a folder


# --------------------------------------------------------------------------- moving aside


def test_move_aside_names_and_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.license"
    path.write_bytes(b"bad bytes")
    first = move_aside(path, "corrupt")
    assert not path.exists()
    assert first.parent == tmp_path
    assert re.fullmatch(r"x\.license\.corrupt-\d{8}T\d{6}Z-[0-9a-f]{8}", first.name), first.name
    assert first.read_bytes() == b"bad bytes"
    path.write_bytes(b"more bad bytes")
    second = move_aside(path, "other-machine")
    assert re.fullmatch(r"x\.license\.other-machine-\d{8}T\d{6}Z-[0-9a-f]{8}", second.name)
    assert second != first and first.read_bytes() == b"bad bytes"
    assert second.read_bytes() == b"more bad bytes"


def test_move_aside_of_a_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        move_aside(tmp_path / "absent", "corrupt")
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- locks


def test_exclusive_is_reentrant_in_one_thread(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with exclusive(lock, 1.0), exclusive(lock, 1.0):
        assert lock.exists()
    with exclusive(lock, 0):
        pass


def test_exclusive_times_out_while_another_thread_holds_it(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with exclusive(lock, 10):
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(30)
        with pytest.raises(LockTimeout), exclusive(lock, 0.1):
            pytest.fail("entered a lock another thread holds")
    finally:
        release.set()
        holder.join(30)
    with exclusive(lock, 1.0):
        pass


def test_exclusive_times_out_while_another_process_holds_it(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    script = (
        "import sys, filelock\n"
        "lock = filelock.FileLock(sys.argv[1])\n"
        "lock.acquire()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, str(lock)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeout), exclusive(lock, 0.2):
            pytest.fail("entered a lock another process holds")
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(30)
        holder.stdout.close()
    with exclusive(lock, 5.0):
        pass


def test_exclusive_releases_when_the_block_raises(tmp_path: Path) -> None:
    lock = tmp_path / "x.lock"
    with pytest.raises(KeyError), exclusive(lock, 1.0):
        raise KeyError("boom")
    done = threading.Event()

    def other_thread() -> None:
        with exclusive(lock, 5.0):
            done.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    thread.join(30)
    assert done.is_set()


def test_importing_files_does_not_load_filelock() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "import sys, software_dna.files; print('filelock' in sys.modules)"],
        env={**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")},
        capture_output=True, text=True, check=True, timeout=60,
    )
    assert out.stdout.strip() == "False"


@pytest.fixture(autouse=True)
def _no_lock_leak() -> Iterator[None]:
    """Every test must leave the locks released."""
    yield
    for entry in list(files._LOCKS.values()):
        assert entry.thread_lock.acquire(timeout=5), f"lock left held: {entry.lock_path}"
        entry.thread_lock.release()
