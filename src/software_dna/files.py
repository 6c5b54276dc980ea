"""Temporary stand-in until the shared file module lands (replaced by the store branch)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_locks: dict[str, threading.RLock] = {}


def read_limited(path: Path, limit: int) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read(limit + 1)
    except FileNotFoundError:
        return None


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    temp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def move_aside(path: Path, label: str) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.{label}-{stamp}-{os.urandom(4).hex()}")
    os.replace(path, aside)
    return aside


@contextmanager
def exclusive(lock_path: Path, timeout: float) -> Iterator[None]:
    import filelock

    lock = _locks.setdefault(str(lock_path), threading.RLock())
    with lock, filelock.FileLock(str(lock_path), timeout=timeout):
        yield
