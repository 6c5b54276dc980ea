"""Small files the SDK keeps on disk: atomic writes, bounded reads, locks, moving aside.

The local store, the keyring, the rollback witness, the fingerprint cache
and any other file the SDK writes share this machinery instead of copying
it. It knows nothing about what the files hold and raises plain
:class:`OSError` (and :class:`LockTimeout`): each caller translates those
into its own :class:`~software_dna.errors.LicenseError` with a message that
says what the user can do.

Writing
-------
:func:`write_atomically` writes to a temporary file with a unique name in
the same folder (created with ``O_EXCL``, so it never follows or reuses
another file), flushes it with :func:`os.fsync`, renames it over the target
with :func:`replace` and fsyncs the folder (:func:`fsync_directory`). A
reader that opens the target therefore sees either the complete old file or
the complete new one, never a half-written file, and a failed write leaves
no temporary file behind.

Locking
-------
:func:`exclusive` serialises the holders of one lock file: a per-path
re-entrant thread lock (between threads of this process) plus a
:mod:`filelock` lock (between processes), both within one finite timeout.
:mod:`filelock` is imported on first use only, so a read-only start-up path
never loads it. A forked child starts with no locks held.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from filelock import BaseFileLock

__all__ = [
    "LockTimeout",
    "exclusive",
    "load_locking",
    "fsync_directory",
    "move_aside",
    "read_limited",
    "replace",
    "write_atomically",
]


class LockTimeout(Exception):
    """:func:`exclusive` did not obtain its lock within the timeout."""


# --------------------------------------------------------------------------- writing


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable. Best effort: never raises.

    Skipped on Windows, which cannot open a folder this way; some file
    systems refuse to fsync a folder, which is ignored (the file itself was
    synced).

    :param directory: the folder whose entries changed.
    """
    if sys.platform == "win32":
        return
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace(source: Path, target: Path) -> None:
    """:func:`os.replace`, retried for up to a second on Windows, where an open reader blocks it.

    :param source: the file to rename.
    :param target: its new name (replaced if it exists).
    :raises OSError: the rename failed (on Windows: still failed after the retries).
    """
    attempts = 20 if sys.platform == "win32" else 1
    for attempt in range(attempts):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    The folder must exist. See the module docstring for the steps; a failure
    at any step leaves ``path`` as it was and removes the temporary file.

    :param path: the file to write.
    :param data: its complete new contents.
    :param mode: permission bits of a newly created file (before the umask).
    :raises OSError: the file could not be written (permissions, disk full,
        missing folder ...).
    """
    directory = path.parent
    temporary = directory / f".{path.name}.{os.urandom(8).hex()}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temporary, flags, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        replace(temporary, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def read_limited(path: Path, limit: int) -> bytes | None:
    """Read at most ``limit + 1`` bytes of ``path``, so an oversized file is seen but not loaded.

    :param path: the file to read.
    :param limit: the largest size the caller accepts, in bytes; a result
        longer than ``limit`` means the file is too large.
    :returns: the bytes read, or ``None`` when the file does not exist.
    :raises OSError: the file exists but cannot be read (permissions, a
        folder, a FIFO or a device in its place, I/O error). Opening never
        blocks: a FIFO put where a file should be is refused, not waited on.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def move_aside(path: Path, label: str) -> Path:
    """Rename ``path`` to ``<name>.<label>-<UTC stamp>-<8 hex>`` in its folder; never delete it.

    :param path: the file to move aside.
    :param label: what the new name says about the file (``"corrupt"`` ...).
    :returns: the file's new path, e.g. ``x.license.corrupt-20240501T120000Z-1a2b3c4d``.
    :raises OSError: the file could not be renamed (it is then where it was).
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = path.with_name(f"{path.name}.{label}-{stamp}-{os.urandom(4).hex()}")
    replace(path, aside)
    fsync_directory(path.parent)
    return aside


# --------------------------------------------------------------------------- locks


class _PathLock:
    """The in-process lock and the cross-process file lock of one lock path."""

    def __init__(self, lock_path: str) -> None:
        self.thread_lock = threading.RLock()
        self.lock_path = lock_path
        self._file_lock: BaseFileLock | None = None

    def file_lock(self) -> BaseFileLock:
        # Called with thread_lock held, so creation needs no extra locking.
        if self._file_lock is None:
            import filelock  # lazy: not needed on the read-only start-up path

            self._file_lock = filelock.FileLock(self.lock_path, mode=0o600, poll_interval=0.005)
        return self._file_lock


def load_locking() -> None:
    """Import :mod:`filelock` (and what it imports) now; never raises.

    For a frozen app (``sys.frozen``): :func:`exclusive` imports it lazily, at
    the first store write, and a one-file app's unpacked folder, which holds
    the extension modules it needs (``_decimal``, ``_contextvars``), may be
    removed while the app runs. What cannot be loaded now fails, as before,
    at the first write.
    """
    with suppress(ImportError, OSError):
        import filelock  # noqa: F401  # lazy everywhere else: the read path


_LOCKS: dict[str, _PathLock] = {}
_LOCKS_GUARD = threading.Lock()


def _path_lock(lock_path: Path) -> _PathLock:
    key = os.path.normcase(os.path.abspath(lock_path))
    with _LOCKS_GUARD:
        entry = _LOCKS.get(key)
        if entry is None:
            entry = _LOCKS[key] = _PathLock(key)
        return entry


def _forget_locks_after_fork() -> None:
    # A forked child must not inherit locks held by other threads of its parent
    # (they would never be released), nor filelock instances (filelock refuses
    # to use them across fork).
    global _LOCKS_GUARD  # noqa: PLW0603 - reset of module state in a fresh child
    _LOCKS_GUARD = threading.Lock()
    _LOCKS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_after_fork)


@contextmanager
def exclusive(lock_path: Path, timeout: float) -> Iterator[None]:
    """Hold the thread lock and the file lock of ``lock_path`` for the block.

    Re-entrant within one thread. The lock file (mode ``0o600``) is created
    when missing and left in place.

    :param lock_path: the lock file, e.g. ``<file>.lock`` next to the file it guards.
    :param timeout: seconds to wait for both locks together (0 or less: try once).
    :raises LockTimeout: another thread or process held the lock for ``timeout`` seconds.
    :raises OSError: the lock file cannot be created or locked.
    :raises RuntimeError: :mod:`filelock` refused (e.g. a lock object
        carried into a child process by an unusual start method).
    """
    entry = _path_lock(lock_path)
    deadline = time.monotonic() + timeout
    if not entry.thread_lock.acquire(timeout=max(timeout, 0.0)):
        raise LockTimeout(f"{lock_path} stayed locked by another thread for {timeout:g} s")
    try:
        import filelock  # lazy: cheap once imported; lazy for the read path

        file_lock = entry.file_lock()
        try:
            file_lock.acquire(timeout=max(deadline - time.monotonic(), 0.0))
        except filelock.Timeout as exc:  # an OSError subclass: caught first
            raise LockTimeout(
                f"{lock_path} stayed locked by another process for {timeout:g} s"
            ) from exc
        try:
            yield
        finally:
            with suppress(OSError):
                file_lock.release()
    finally:
        entry.thread_lock.release()
