"""The keyring file on disk and the unlocked :class:`MachineKey` (format: :mod:`._keyring`).

:func:`unlock` reads the keyring, recovers the key with this machine's
reading and wraps it again when the machine drifted; it creates the keyring
(a new random key) when there is none. Creating and re-wrapping happen
under a file lock and re-read the file first, so two processes starting at
once never end up with two keys. A keyring this machine cannot open is never
deleted or overwritten unless the caller asks to start over (a new
activation): it is then moved aside, so that a machine whose components come
back (a network card plugged in again) can still be recovered by hand.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from software_dna.errors import Message, StoreError, StoreFromAnotherMachine
from software_dna.files import LockTimeout, exclusive, move_aside, read_limited, write_atomically
from software_dna.fingerprint._keyring import (
    KEY_SIZE,
    MAX_SIZE,
    Reading,
    Unwrapped,
    open_keyring,
    wrap_keyring,
)
from software_dna.i18n import N_
from software_dna.wire.frozen import Frozen

__all__ = ["LOCK_TIMEOUT", "MachineKey", "unlock"]

#: Seconds to wait for another process creating or re-wrapping the keyring.
LOCK_TIMEOUT = 10.0
_DERIVE_LABEL = b"software_dna/machine-key/derive/v1"


class MachineKey(Frozen):
    """This machine's key for one product, unlocked: the root of its local secrets.

    The key itself is not an attribute: it is only ever used through
    :meth:`derive`, so that each use gets a key of its own.

    Attributes:
        product: the product id.
        path: the keyring file it was read from (or written to).
    """

    __slots__ = ("_key", "path", "product")

    def __init__(self, key: bytes, product: str, path: Path) -> None:
        self._open()
        self._key: Final[bytes] = bytes(key)
        self.product: Final[str] = product
        self.path: Final[Path] = path
        self._seal()

    def derive(self, purpose: str) -> bytes:
        """32 bytes for one use (``"store"``, ``"witness"``, ``"installation"`` ...).

        HKDF-SHA256 with the product and ``purpose`` in ``info``: keys for
        different purposes or products are independent.
        """
        info = purpose.encode("ascii") + b"\0" + self.product.encode("utf-8")
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=_DERIVE_LABEL,
                    info=info).derive(self._key)

    def installation_id(self, account: str) -> str:
        """The user-seat installation id of an OS account (32 base64url characters).

        It tells user seats on one computer apart and reveals nothing about
        the account or the machine: a keyed hash under this key, which never
        leaves the machine. It depends on no path, so moving the store keeps it.
        """
        digest = hmac.new(self.derive("installation"), account.encode("utf-8", "surrogatepass"),
                          hashlib.sha256).digest()[:24]
        return base64.urlsafe_b64encode(digest).decode("ascii")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MachineKey):
            return NotImplemented
        return hmac.compare_digest(self._key, other._key) and self.product == other.product

    def __hash__(self) -> int:
        return hash((self.product, self.path))

    def __repr__(self) -> str:
        return f"MachineKey(product={self.product!r}, path={str(self.path)!r})"


def _locked_message(path: Path) -> Message:
    return Message(N_(
        "The license data on this computer cannot be opened here: it was made on another "
        "computer, or this computer changed too much at once (more than one of its system "
        "id, network cards, operating system and processor). Nothing was deleted: if a part "
        "was removed, putting it back restores the license; otherwise activate the license "
        "again on this computer. (Key file: %(path)s)"), path=path)


def _io_error(action: str, path: Path, exc: OSError) -> StoreError:
    detail = exc.strerror or str(exc) or type(exc).__name__
    return StoreError(Message(_KEY_FILE_FAILED[action], path=path, detail=detail))


#: What could not be done to the key file, by the action the message names.
_KEY_FILE_FAILED = {
    "lock": N_("Could not lock this computer's license key file %(path)s: %(detail)s. Make "
               "sure your user account can write that folder, then try again."),
    "read": N_("Could not read this computer's license key file %(path)s: %(detail)s. Make "
               "sure your user account can write that folder, then try again."),
    "write": N_("Could not write this computer's license key file %(path)s: %(detail)s. Make "
                "sure your user account can write that folder, then try again."),
    "move aside": N_("Could not move aside this computer's license key file %(path)s: "
                     "%(detail)s. Make sure your user account can write that folder, then try "
                     "again."),
}


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    try:
        os.makedirs(path.parent, mode=0o700, exist_ok=True)
        with exclusive(path.with_name(path.name + ".lock"), LOCK_TIMEOUT):
            yield
    except LockTimeout as exc:
        raise StoreError(Message(
            N_("This computer's license key file %(path)s is locked by another program and "
               "stayed locked for %(seconds)s s. Close other running copies of the application "
               "and try again."), path=path, seconds=f"{LOCK_TIMEOUT:g}")) from exc
    except RuntimeError as exc:  # filelock refusing a lock inherited across fork
        raise StoreError(Message(
            N_("This computer's license key file %(path)s could not be locked (%(error)s). "
               "Restart the application and try again."), path=path, error=exc)) from exc
    except OSError as exc:
        raise _io_error("lock", path, exc) from exc


def _read(path: Path) -> bytes | None:
    try:
        return read_limited(path, MAX_SIZE)
    except OSError as exc:
        raise _io_error("read", path, exc) from exc


def unlock(paths: Iterable[Path], product: str, reading: Reading, n: int, *,
           create: bool, start_over: bool = False,
           new_key: Callable[[int], bytes] = os.urandom) -> MachineKey | None:
    """The machine key of ``product``, from the first keyring of ``paths`` that exists.

    Args:
        paths: where the keyring may be, in order of preference (the first
            writable one is where a new keyring is created).
        product: the product id.
        reading: this machine's raw values now (:data:`._keyring.Reading`).
        n: the scrypt cost in force.
        create: create a keyring (a new random key) when none exists.
        start_over: a keyring this reading cannot open is moved aside and a
            new key made (a new activation), instead of raising.
        new_key: source of random bytes (tests).

    Returns:
        The :class:`MachineKey`, or None when no keyring exists and
        ``create`` is false.

    Raises:
        StoreFromAnotherMachine: a keyring exists but this machine's reading
            does not open it (copied from another machine, or more than the
            tolerated drift at once); nothing was changed.
        StoreError: the keyring cannot be read, or cannot be written where
            one must be created.
    """
    candidates = list(paths)
    for path in candidates:
        raw = _read(path)
        if raw is not None:
            return _existing(path, raw, product, reading, n, start_over=start_over,
                             new_key=new_key)
    if not create:
        return None
    failure: StoreError | None = None
    for path in candidates:
        try:
            return _create(path, product, reading, n, new_key)
        except StoreError as exc:
            failure = failure or exc
    assert failure is not None
    raise failure


def _opened(raw: bytes, product: str, reading: Reading, n: int) -> Unwrapped | None:
    """:func:`open_keyring`; a keyring edited into something it cannot handle does not open."""
    try:
        return open_keyring(raw, product, reading, n)
    except (ValueError, TypeError, KeyError, MemoryError, RecursionError, OverflowError):
        return None


def _existing(path: Path, raw: bytes, product: str, reading: Reading, n: int, *,
              start_over: bool, new_key: Callable[[int], bytes]) -> MachineKey:
    opened = _opened(raw, product, reading, n)
    if opened is None:
        if not start_over:
            raise StoreFromAnotherMachine(_locked_message(path), moved_to=None)
        with _lock(path):
            again = _read(path)
            if again is not None:
                reopened = _opened(again, product, reading, n)
                if reopened is not None:  # another process started over meanwhile
                    return MachineKey(reopened.key, product, path)
                try:
                    move_aside(path, "other-machine")
                except OSError as exc:
                    raise _io_error("move aside", path, exc) from exc
            return _write_new(path, product, reading, n, new_key)
    if opened.stale:
        # Drift this machine survives: wrap again for today's reading, so that
        # the next change is measured from here.
        with _lock(path):
            if _read(path) == raw:
                blob = wrap_keyring(opened.key, product, reading, n, opened.secrets)
                with contextlib.suppress(OSError):  # opens today anyway; wrapped again next time
                    write_atomically(path, blob)
    return MachineKey(opened.key, product, path)


def _create(path: Path, product: str, reading: Reading, n: int,
            new_key: Callable[[int], bytes]) -> MachineKey:
    with _lock(path):
        raw = _read(path)
        if raw is not None:  # another process made it meanwhile
            opened = _opened(raw, product, reading, n)
            if opened is not None:
                return MachineKey(opened.key, product, path)
            raise StoreFromAnotherMachine(_locked_message(path), moved_to=None)
        return _write_new(path, product, reading, n, new_key)


def _write_new(path: Path, product: str, reading: Reading, n: int,
               new_key: Callable[[int], bytes]) -> MachineKey:
    """A keyring with a new random key (the lock held, no keyring at ``path``)."""
    key = new_key(KEY_SIZE)
    try:
        write_atomically(path, wrap_keyring(key, product, reading, n))
    except OSError as exc:
        raise _io_error("write", path, exc) from exc
    return MachineKey(key, product, path)
