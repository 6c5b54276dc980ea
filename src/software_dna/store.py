"""The encrypted local store: one small JSON document per product, on disk.

The client keeps its license token, activation id and secret, the clock
high-water mark and a few settings here (see ``docs/architecture.md``).

File format (version 2)
-----------------------
One file per product (see :func:`store_path_for`), laid out as::

    offset  size  content
    0       4     magic b"SDNA"
    4       1     format version, 2
    5       8     key id: which machine key the file was written under
    13      12    random nonce (fresh for every write)
    25      n+16  AES-256-GCM ciphertext of the plaintext, followed by the 16-byte tag

* Key: HKDF-SHA256 over the machine-bound ``key_material``, with the fixed
  salt ``b"software_dna local store v2 key derivation"`` and ``info =
  b"software_dna store v2\0" + product id (UTF-8)``, 32 bytes. Each product
  therefore has its own key.
* Key id: the first 8 bytes of HKDF-SHA256 over the same ``key_material``
  and salt with ``info = b"software_dna store key id v2\0" + product id``.
  It names the key without revealing it (a different ``info``, so
  independent of the key), and lets a file written under another machine key
  -- copied from another computer, or left behind when this computer's
  machine key was lost -- be told apart from a damaged one: the former raises
  :class:`~software_dna.errors.StoreFromAnotherMachine` and is moved to
  ``<name>.other-machine-<UTC timestamp>-<random>``. Another product's file
  has another key id too.
* Associated data: the whole header (``magic + version byte + key id``) +
  product id (UTF-8). A file whose header was edited fails to authenticate.
* Plaintext: a compact UTF-8 JSON object (``separators=(",", ":")``,
  ASCII-escaped). Reading refuses duplicate keys, ``NaN``/``Infinity`` and
  anything but an object at the top level.
* The whole file is at most :data:`MAX_FILE_SIZE` bytes (1 MiB); a larger file
  is refused without being read into memory.

Every write is format 2. Format 1 (the same without the key id: the nonce at
offset 5; key from salt ``b"software_dna local store key derivation"`` and
``info = b"software_dna store v1\0" + product id``; associated data ``magic +
b"\x01" + product id``) is still read, under the key material that
``legacy_key_material()`` returns (or ``key_material`` when that is not
given); its contents are returned as they are and the next write turns the
file into format 2.

Writing and locking
-------------------
Every write goes to a temporary file with a unique name in the same folder
(mode ``0o600``), is flushed with :func:`os.fsync`, then atomically renamed
over the store with :func:`os.replace`, and the folder itself is fsynced
(best effort; skipped on Windows, which cannot open a folder that way):
:func:`software_dna.files.write_atomically`. The folder is created with mode
``0o700`` when missing.

Writers are serialised by :func:`software_dna.files.exclusive`: a per-path
threading lock (between threads of this process) plus a :mod:`filelock` lock
file ``<store file>.lock`` next to the store (between processes). Acquiring
both has a finite timeout (:attr:`Store.lock_timeout`, 10 s by default) and
then raises
:class:`~software_dna.errors.StoreError`: the SDK never hangs on a stuck lock.

Why :meth:`Store.read` takes no lock: the store file is only ever *replaced*,
never modified in place. A reader that opens the path gets either the
complete old file or the complete new one (rename is atomic on POSIX and on
NTFS), never a half-written file, so the start-up path costs one open and
read, one AES-GCM decryption and one ``json.loads``. The lock is taken only
when the file turns out to be unreadable, to re-check it before moving it
aside (so a file another process just replaced is never quarantined).

Unreadable files
----------------
An empty, truncated, zero-filled, foreign (not this format, an unknown
version) or undecryptable (damaged; a format-1 file from another machine)
file is moved aside to ``<name>.corrupt-<UTC timestamp>-<random>`` in the same
folder -- never deleted -- and :class:`~software_dna.errors.StoreCorrupted`
is raised. A format-2 file with another key id is moved aside to
``<name>.other-machine-<UTC timestamp>-<random>`` and
:class:`~software_dna.errors.StoreFromAnotherMachine` (a ``StoreCorrupted``
and a ``WrongMachine``) is raised; its message says that activating the
license on this computer is the way back. Either way the next read finds no
file and returns ``None``, so an app does not loop on the same error; the
license comes back by activating again with the same key (on the computer it
was activated on, the server recognises the machine, so no seat is taken).

Security
--------
The encryption is a deterrent against copying the store to another machine
and against casual reading or editing. It is not DRM: the key is derived from
material on the same machine, so anyone with that machine and a debugger can
read the store. See ``docs/security.md``.

Errors
------
No :class:`OSError`, ``cryptography`` or :mod:`json` exception escapes this
module: I/O problems become :class:`~software_dna.errors.StoreError` (whose
message says what the user can do) and unreadable contents become
:class:`~software_dna.errors.StoreCorrupted`. Programming errors (a product
id that is empty, data that is not JSON-serialisable) raise
:class:`TypeError` or :class:`ValueError`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Literal, NoReturn

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from software_dna.errors import (
    LicenseError,
    Message,
    StoreCorrupted,
    StoreError,
    StoreFromAnotherMachine,
)
from software_dna.files import (
    LockTimeout,
    exclusive,
    fsync_directory,
    move_aside,
    read_limited,
    write_atomically,
)
from software_dna.i18n import N_
from software_dna.wire.strict_json import loads_object

__all__ = [
    "FORMAT_VERSION",
    "LOCK_TIMEOUT",
    "MAGIC",
    "MAX_FILE_SIZE",
    "Store",
    "StoreBusy",
    "default_store_dir",
    "store_path_for",
]

#: First four bytes of every store file.
MAGIC = b"SDNA"
#: The format version this module writes (format 1 is still read).
FORMAT_VERSION = 2
#: Largest store file read, in bytes (1 MiB).
MAX_FILE_SIZE = 1 << 20
#: Default time, in seconds, to wait for the store lock before giving up.
LOCK_TIMEOUT = 10.0

_V1 = 1
_NONCE_SIZE = 12
_TAG_SIZE = 16
_KEY_ID_SIZE = 8
_PREFIX_SIZE = len(MAGIC) + 1  # magic and version byte: format 1's whole header
_V2_HEADER_SIZE = _PREFIX_SIZE + _KEY_ID_SIZE
_V1_SALT = b"software_dna local store key derivation"
_V1_KEY_INFO = b"software_dna store v1\0"
_V2_SALT = b"software_dna local store v2 key derivation"
_V2_KEY_INFO = b"software_dna store v2\0"
_V2_KEY_ID_INFO = b"software_dna store key id v2\0"
_ENV_HOME = "SOFTWARE_DNA_HOME"
_RECOVERY_HINT = N_(
    "To use the license again, activate it with your license key: the license server "
    "recognises this computer, so no other seat is taken."
)
_OTHER_MACHINE_HINT = N_(
    "To use the license on this computer, activate it here with your license key (if it "
    "was activated on this computer before, the license server recognises it and no other "
    "seat is taken)."
)
_SAFE_STEM = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_WINDOWS_RESERVED = frozenset(
    {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {f"lpt{i}" for i in range(10)}
)


# --------------------------------------------------------------------------- paths


def default_store_dir(app_name: str, app_author: str | None) -> Path:
    """Return the folder the store files of an app live in.

    :param app_name: the vendor's app name (as given to :mod:`platformdirs`).
    :param app_author: the vendor's name, used on Windows; ``None`` to omit.
    :returns: ``$SOFTWARE_DNA_HOME`` when that environment variable is set and
        not empty, else ``platformdirs.user_data_dir(app_name, app_author,
        roaming=False)``; always an absolute path. The folder is not created
        here (the first write creates it).
    :raises ValueError: ``app_name`` is empty.
    """
    override = os.environ.get(_ENV_HOME)
    if override:
        return Path(override).expanduser().absolute()
    if not app_name:
        raise ValueError("app_name must be a non-empty string")
    return Path(user_dir("data", app_name, app_author)).absolute()


#: XDG base directory variable and default (under the home folder) of each kind.
_XDG_DIRS = {"data": ("XDG_DATA_HOME", "~/.local/share"),
             "state": ("XDG_STATE_HOME", "~/.local/state")}


def user_dir(kind: Literal["data", "state"], app_name: str,
             app_author: str | Literal[False] | None) -> str:
    """``platformdirs.user_<kind>_dir(app_name, app_author, roaming=False)``.

    On Linux, in the usual case (the XDG variable unset, empty or an absolute
    path, and an absolute ``HOME``), this is the XDG Base Directory rule:
    ``$XDG_DATA_HOME`` (or ``$XDG_STATE_HOME``) or ``~/.local/share`` (or
    ``~/.local/state``), then ``/<app_name>``; it is computed here without
    importing :mod:`platformdirs` (6-8 ms of start-up: it imports
    ``tempfile``, ``shutil``, ``bz2``, ``lzma``). Anything else (other
    systems, Android, a relative variable, no home) asks platformdirs.

    :param kind: ``"data"`` or ``"state"``.
    :param app_name: the app's folder name.
    :param app_author: the vendor's name (used on Windows only), or ``None``
        / ``False`` to omit it.
    :returns: the folder (not created).
    """
    variable, default = _XDG_DIRS[kind]
    value = os.environ.get(variable, "")
    home = os.environ.get("HOME", "")
    if (sys.platform == "linux" and not hasattr(sys, "getandroidapilevel")
            and not os.environ.get("ANDROID_ROOT") and app_name
            and (value.startswith("/") or (not value and home.startswith("/")))):
        return os.path.join(value or os.path.expanduser(default), app_name)
    import platformdirs  # other systems and unusual settings

    if kind == "data":
        return platformdirs.user_data_dir(app_name, app_author, roaming=False)
    return platformdirs.user_state_dir(app_name, app_author, roaming=False)


def store_path_for(product: str, directory: Path) -> Path:
    """Return the store file of ``product`` inside ``directory``.

    A product id that is already a safe, portable file name (lower-case ASCII
    letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit; at
    most 64 characters; not a reserved Windows device name) is used as is:
    ``<product>.license``. Any other id (upper case, path separators, spaces,
    non-ASCII, ``..`` ...) becomes a readable sanitised prefix followed by a
    hash of the exact id, so distinct ids never share a file, even on
    case-insensitive file systems, and no id can escape ``directory``.

    :param product: the product id.
    :param directory: the store folder (see :func:`default_store_dir`).
    :returns: ``directory / "<safe name>.license"``.
    :raises ValueError: ``product`` is empty or not encodable as UTF-8.
    """
    encoded = _product_bytes(product)
    stem = product
    if (
        _SAFE_STEM.fullmatch(product) is None
        or product.endswith(".")
        or product.split(".", 1)[0] in _WINDOWS_RESERVED
    ):
        # No dots in the prefix: "nul.txt-<hash>" would still be a Windows device name.
        readable = re.sub(r"[^a-z0-9_-]+", "_", product.lower()).strip("_-")[:40] or "product"
        stem = f"{readable}-{hashlib.sha256(encoded).hexdigest()[:16]}"
    return Path(directory) / f"{stem}.license"


def _product_bytes(product: str) -> bytes:
    if not isinstance(product, str):
        raise TypeError(f"product must be a str, not {type(product).__name__}")
    if not product:
        raise ValueError("product must be a non-empty string")
    try:
        return product.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("product must be encodable as UTF-8") from exc


# --------------------------------------------------------------------------- helpers


#: What the store could not do, by the action the message names.
_FAILED_ACTIONS = {
    "read": N_("Could not read the license store %(path)s: %(detail)s."),
    "write": N_("Could not write the license store %(path)s: %(detail)s."),
    "remove": N_("Could not remove the license store %(path)s: %(detail)s."),
    "create the folder of": N_("Could not create the folder of the license store %(path)s: "
                               "%(detail)s."),
    "lock": N_("Could not lock the license store %(path)s: %(detail)s."),
}


class StoreBusy(StoreError):
    """The store's lock stayed held by another instance of the app for the whole wait.

    A :class:`~software_dna.errors.StoreError` to the app; the client tells it
    apart from a store that cannot be written (a read-only folder, a full disk).
    """


class _UnreadableError(Exception):
    """Internal: the bytes read are not a valid store file; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _OtherMachineError(_UnreadableError):
    """Internal: a well-formed format-2 file written under another machine key."""


def _derive(material: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(material)


def _dumps(data: Mapping[str, Any]) -> bytes:
    """Serialise ``data`` as compact JSON (TypeError/ValueError if it cannot be)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"the store holds a mapping, not {type(data).__name__}")
    obj = data if isinstance(data, dict) else dict(data)
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False)
    except TypeError as exc:
        raise TypeError(f"store data must be JSON-serialisable: {exc}") from exc
    except ValueError as exc:  # NaN / Infinity, circular references
        raise ValueError(f"store data must be plain JSON: {exc}") from exc
    except RecursionError as exc:
        raise ValueError("store data is nested too deeply") from exc
    return text.encode("ascii")


def _loads(plaintext: bytes) -> dict[str, Any]:
    """Parse decrypted plaintext strictly; raise :class:`_UnreadableError` if invalid."""
    try:
        return loads_object(plaintext, max_size=MAX_FILE_SIZE)
    except ValueError as exc:  # includes JSONDecodeError
        raise _UnreadableError(f"its contents are not a valid license document ({exc})") from exc


# --------------------------------------------------------------------------- the store


class Store:
    """One product's encrypted store file.

    Thread-safe and process-safe: any number of :class:`Store` objects, in any
    number of threads and processes, may use the same path.

    :param path: the store file (see :func:`store_path_for`).
    :param product: the product id; it is bound into the key, the key id and
        the associated data, so one product cannot read another's file.
    :param key_material: machine-bound secret bytes (not empty) from which
        the AES-256 key and the key id are derived with HKDF-SHA256.
    :param legacy_key_material: called only when a format-1 file is found,
        to return the key material that file was written under (bytes; the
        key derived from it is kept for this object's lifetime). ``None`` or
        empty bytes returned, or a :class:`~software_dna.errors.LicenseError`
        raised, makes the file undecryptable (it is moved aside). When not
        given, format-1 files are read under ``key_material``.
    :raises TypeError: ``product`` is not a str, ``key_material`` not bytes,
        or ``legacy_key_material`` not callable.
    :raises ValueError: ``product`` or ``key_material`` is empty.
    """

    #: Seconds to wait for the store lock before raising StoreError.
    lock_timeout: float = LOCK_TIMEOUT

    def __init__(self, path: Path, *, product: str, key_material: bytes,
                 legacy_key_material: Callable[[], bytes | None] | None = None) -> None:
        product_id = _product_bytes(product)
        if not isinstance(key_material, (bytes, bytearray, memoryview)):
            raise TypeError(f"key_material must be bytes, not {type(key_material).__name__}")
        if len(key_material) == 0:
            raise ValueError("key_material must not be empty")
        if legacy_key_material is not None and not callable(legacy_key_material):
            raise TypeError("legacy_key_material must be callable or None")
        #: The store file.
        self.path: Path = Path(path)
        self.product = product
        self._product_id = product_id
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        material = bytes(key_material)
        self._key_id = _derive(material, _V2_SALT, _V2_KEY_ID_INFO + product_id, _KEY_ID_SIZE)
        self._header = MAGIC + bytes([FORMAT_VERSION]) + self._key_id
        self._aad = self._header + product_id
        self._aead = AESGCM(_derive(material, _V2_SALT, _V2_KEY_INFO + product_id, 32))
        # Format 1 is rare (one read per machine, then rewritten): derived on demand.
        self._legacy = legacy_key_material
        self._material = material
        self._v1_aead: AESGCM | None = None

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r}, product={self.product!r})"

    # ------------------------------------------------------------------ public API

    def read(self) -> dict[str, Any] | None:
        """Read and decrypt the store.

        Takes no lock in the normal case (see the module docstring).

        :returns: the stored JSON object, or ``None`` if there is no store file.
        :raises StoreFromAnotherMachine: the file was written under another
            machine key (another computer's, or one this computer lost); it
            has been moved aside (``moved_to``) and the next call returns
            ``None``.
        :raises StoreCorrupted: the file is unreadable (empty, truncated,
            damaged, a newer format, a format-1 file that does not decrypt);
            it has been moved aside (``moved_to``) and the next call returns
            ``None``.
        :raises StoreError: the file cannot be read (permissions, I/O error).
        """
        return self._read(self._recover)

    def peek(self) -> dict[str, Any] | None:
        """Read and decrypt the store without ever moving it: for files whose damage
        must stay visible (the rollback witness keeps a damaged copy in place).

        :returns: the stored JSON object, or ``None`` if there is no file.
        :raises StoreFromAnotherMachine, StoreCorrupted: as :meth:`read`, with
            ``moved_to=None``: the file is left where it is.
        :raises StoreError: the file cannot be read (permissions, I/O error).
        """
        return self._read(self._left_in_place)

    def _read(self, bad_file: Callable[[_UnreadableError], dict[str, Any] | None]
              ) -> dict[str, Any] | None:
        """The lock-free read; ``bad_file`` decides what an unreadable file becomes."""
        raw = self._read_raw()
        if raw is None:
            return None
        try:
            return self._open(raw)
        except _UnreadableError as bad:
            return bad_file(bad)

    def _left_in_place(self, bad: _UnreadableError) -> NoReturn:
        raise self._unusable(bad, problem="it was left in place")

    def write(self, data: Mapping[str, Any]) -> None:
        """Replace the store's contents with ``data``, atomically, under the lock.

        :param data: a JSON-serialisable mapping with str keys; serialised it
            must fit in :data:`MAX_FILE_SIZE`.
        :raises StoreError: the folder cannot be created or written
            (permissions, read-only, disk full), or the lock was not obtained
            within :attr:`lock_timeout` seconds. The previous contents are
            then intact.
        :raises TypeError: ``data`` is not a mapping or not JSON-serialisable.
        :raises ValueError: ``data`` holds NaN/Infinity or is too large.
        """
        blob = self._seal(_dumps(data))
        with self._locked():
            self._write_blob(blob)

    @contextmanager
    def transaction(self, timeout: float | None = None) -> Iterator[dict[str, Any]]:
        """Lock the store, read it and yield its contents for changing.

        ``timeout``: seconds to wait for the lock (default :attr:`lock_timeout`).

        The dict is written back atomically when the block ends without an
        exception *and* its serialised form changed; if the block raises,
        nothing is written. The lock (threads and processes) is held for the
        whole block, so keep it short. Re-entrant within one thread.

        :yields: the stored object, or ``{}`` when there is no store file.
        :raises StoreCorrupted: the existing file is unreadable, or (as
            :class:`~software_dna.errors.StoreFromAnotherMachine`) written
            under another machine key; it was moved aside and the next
            transaction starts from ``{}``.
        :raises StoreError: as :meth:`write`, including lock timeout.
        :raises TypeError: the changed dict is not JSON-serialisable.
        :raises ValueError: the changed dict holds NaN/Infinity or is too large.
        """
        with self._locked(timeout):
            raw = self._read_raw()
            data: dict[str, Any] = {}
            if raw is not None:
                try:
                    data = self._open(raw)
                except _UnreadableError as bad:
                    self._quarantine(bad)
            before = _dumps(data)
            yield data
            after = _dumps(data)
            if after != before:
                self._write_blob(self._seal(after))

    @contextmanager
    def locked(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the store's lock (threads and processes) for the block, reading nothing.

        For a read-decide-write that spans more than one :meth:`transaction`
        (the client holds it from reading its activation secret to storing
        the server's answer). Re-entrant within one thread, so
        :meth:`transaction` inside the block works.

        :param timeout: seconds to wait for the lock (default: :attr:`lock_timeout`).
        :raises StoreError: the lock was not obtained in time, or the folder
            cannot be created.
        """
        with self._locked(timeout):
            yield

    def clear(self) -> None:
        """Remove the store file, under the lock. A missing file is fine.

        :raises StoreError: the file cannot be removed (permissions,
            read-only folder) or the lock was not obtained in time.
        """
        if not self.path.parent.is_dir():
            return
        with self._locked():
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                return
            except OSError as exc:
                raise self._io_error("remove", exc) from exc
            fsync_directory(self.path.parent)

    # ------------------------------------------------------------------ format

    def _seal(self, plaintext: bytes) -> bytes:
        nonce = os.urandom(_NONCE_SIZE)
        blob = self._header + nonce + self._aead.encrypt(nonce, plaintext, self._aad)
        if len(blob) > MAX_FILE_SIZE:
            raise ValueError(
                f"store data is too large ({len(blob)} bytes encrypted; the limit is "
                f"{MAX_FILE_SIZE} bytes)"
            )
        return blob

    def _open(self, raw: bytes) -> dict[str, Any]:
        """Check, decrypt and parse a whole file; raise :class:`_UnreadableError` if it is bad."""
        size = len(raw)
        if size == 0:
            raise _UnreadableError("it is empty")
        if size > MAX_FILE_SIZE:
            raise _UnreadableError(f"it is larger than {MAX_FILE_SIZE} bytes")
        if raw.count(0) == size:
            raise _UnreadableError("it contains only zero bytes")
        if raw[: len(MAGIC)] != MAGIC[:size]:
            raise _UnreadableError("it is not a software_dna license store")
        if size < _PREFIX_SIZE:
            raise _UnreadableError("it is truncated")
        version = raw[len(MAGIC)]
        if version == FORMAT_VERSION:
            return self._open_v2(raw)
        if version == _V1:
            return self._open_v1(raw)
        if version > FORMAT_VERSION:
            raise _UnreadableError(
                f"it was written by a newer version of software_dna (format {version})"
            )
        raise _UnreadableError(f"it has an unknown format version ({version})")

    def _open_v2(self, raw: bytes) -> dict[str, Any]:
        if len(raw) < _V2_HEADER_SIZE + _NONCE_SIZE + _TAG_SIZE:
            raise _UnreadableError("it is truncated")
        if raw[_PREFIX_SIZE:_V2_HEADER_SIZE] != self._key_id:
            raise _OtherMachineError("it was written under another machine key")
        nonce = raw[_V2_HEADER_SIZE : _V2_HEADER_SIZE + _NONCE_SIZE]
        try:
            plaintext = self._aead.decrypt(nonce, raw[_V2_HEADER_SIZE + _NONCE_SIZE :], self._aad)
        except InvalidTag as exc:
            # The key id matched, so the key is right: the bytes were changed.
            raise _UnreadableError("it is damaged (it fails its integrity check)") from exc
        return _loads(plaintext)

    def _open_v1(self, raw: bytes) -> dict[str, Any]:
        if len(raw) < _PREFIX_SIZE + _NONCE_SIZE + _TAG_SIZE:
            raise _UnreadableError("it is truncated")
        aead = self._v1_key()
        nonce = raw[_PREFIX_SIZE : _PREFIX_SIZE + _NONCE_SIZE]
        aad = MAGIC + bytes([_V1]) + self._product_id
        try:
            plaintext = aead.decrypt(nonce, raw[_PREFIX_SIZE + _NONCE_SIZE :], aad)
        except InvalidTag as exc:
            raise _UnreadableError(
                "it cannot be decrypted: it was copied from another machine, belongs to "
                "another product, or is damaged"
            ) from exc
        return _loads(plaintext)

    def _v1_key(self) -> AESGCM:
        """The format-1 AEAD (see the class docstring); :class:`_UnreadableError` if none."""
        if self._v1_aead is None:
            material: bytes | None = self._material
            if self._legacy is not None:
                try:
                    material = self._legacy()
                except LicenseError as exc:
                    raise _UnreadableError(
                        f"it is in the earlier format 1, and the key it was written under is "
                        f"not available ({exc})"
                    ) from exc
            if not material:
                raise _UnreadableError(
                    "it is in the earlier format 1, and the key it was written under is not "
                    "available on this computer"
                )
            key = _derive(bytes(material), _V1_SALT, _V1_KEY_INFO + self._product_id, 32)
            self._v1_aead = AESGCM(key)
        return self._v1_aead

    # ------------------------------------------------------------------ I/O

    def _read_raw(self) -> bytes | None:
        """Return the file's bytes (at most MAX_FILE_SIZE + 1), or None if it does not exist."""
        try:
            return read_limited(self.path, MAX_FILE_SIZE)
        except OSError as exc:
            raise self._io_error("read", exc) from exc

    def _recover(self, bad: _UnreadableError) -> dict[str, Any] | None:
        """The lock-free read found a bad file: re-check it under the lock, then move it aside."""
        try:
            lock = self._locked()
            lock.__enter__()
        except StoreError as exc:
            raise self._unusable(bad, problem=str(exc)) from exc
        try:
            raw = self._read_raw()
            if raw is None:
                return None  # another process moved it aside meanwhile
            try:
                return self._open(raw)  # another process replaced it meanwhile
            except _UnreadableError as again:
                self._quarantine(again)
        finally:
            lock.__exit__(None, None, None)

    def _quarantine(self, bad: _UnreadableError) -> NoReturn:
        """Move the bad file aside (lock held) and raise StoreCorrupted (or its subclass)."""
        label = "other-machine" if isinstance(bad, _OtherMachineError) else "corrupt"
        try:
            aside = move_aside(self.path, label)
        except OSError as exc:
            raise self._unusable(bad, problem=exc.strerror or str(exc)) from exc
        raise self._unusable(bad, aside=aside)

    def _write_blob(self, blob: bytes) -> None:
        """Atomically replace the store file with ``blob`` (lock held, folder exists)."""
        try:
            write_atomically(self.path, blob)
        except OSError as exc:
            raise self._io_error("write", exc) from exc

    @contextmanager
    def _locked(self, timeout: float | None = None) -> Iterator[None]:
        """Hold the thread lock and the file lock, creating the folder if needed."""
        wait = self.lock_timeout if timeout is None else timeout
        try:
            os.makedirs(self.path.parent, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise self._io_error("create the folder of", exc) from exc
        with ExitStack() as stack:
            # Only entering is translated: errors raised by the block pass through.
            try:
                stack.enter_context(exclusive(self._lock_path, wait))
            except LockTimeout as exc:
                raise self._busy_error(wait) from exc
            except OSError as exc:
                raise self._io_error("lock", exc) from exc
            except RuntimeError as exc:
                raise StoreError(Message(
                    N_("The license store %(path)s could not be locked (%(error)s). Restart "
                       "the application and try again."), path=self.path, error=exc)) from exc
            yield

    # ------------------------------------------------------------------ messages

    def _unusable(self, bad: _UnreadableError, *, aside: Path | None = None,
                  problem: str = "") -> StoreCorrupted:
        """The error for a bad file, moved to ``aside`` (or not moved: ``problem`` says why)."""
        error: type[StoreCorrupted] = StoreCorrupted
        what = Message(N_("The license store %(path)s is unreadable: %(reason)s."),
                       path=self.path, reason=bad.reason)
        hint = Message(_RECOVERY_HINT)
        if isinstance(bad, _OtherMachineError):
            error, hint = StoreFromAnotherMachine, Message(_OTHER_MACHINE_HINT)
            what = Message(N_("The license store %(path)s was made on another computer (or "
                              "under a machine key this computer no longer has), so it cannot "
                              "be used here."), path=self.path)
        if aside is None:
            return error(Message.joined(what, Message(
                N_("It could not be moved aside (%(problem)s); delete or rename it."),
                problem=problem), hint), moved_to=None)
        return error(Message.joined(what, Message(N_("It was moved to %(place)s."),
                                                  place=aside), hint),
                     moved_to=str(aside))

    def _busy_error(self, waited: float) -> StoreBusy:
        return StoreBusy(Message(
            N_("The license store %(path)s is locked by another program or thread and stayed "
               "locked for %(seconds)s s. Close other running copies of the application and "
               "try again."), path=self.path, seconds=f"{waited:g}"))

    def _io_error(self, action: str, exc: OSError) -> StoreError:
        directory = self.path.parent
        code = exc.errno
        detail = exc.strerror or str(exc) or type(exc).__name__
        if code in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            advice = Message(N_("The disk holding %(folder)s is full. Free some disk space and "
                                "try again."), folder=directory)
        elif code == errno.EROFS:
            advice = Message(N_("The folder %(folder)s is on a read-only file system. Make it "
                                "writable, or set %(variable)s to a writable folder."),
                             folder=directory, variable=_ENV_HOME)
        elif isinstance(exc, PermissionError) or code in (errno.EACCES, errno.EPERM):
            advice = Message(N_("Make sure your user account can read and write the folder "
                                "%(folder)s (it may be read-only), or set %(variable)s to a "
                                "writable folder."), folder=directory, variable=_ENV_HOME)
        elif isinstance(exc, (NotADirectoryError, FileExistsError)) or code == errno.ENOTDIR:
            advice = Message(N_("A file is in the way: %(folder)s (or one of its parents) is not "
                                "a folder. Move that file away, or set %(variable)s to another "
                                "folder."), folder=directory, variable=_ENV_HOME)
        elif isinstance(exc, IsADirectoryError):
            advice = Message(N_("%(path)s is a folder, not a file. Move it away and try again."),
                             path=self.path)
        else:
            advice = Message(N_("Check the disk and the folder's permissions, then try again."))
        return StoreError(Message.joined(
            Message(_FAILED_ACTIONS[action], path=self.path, detail=detail), advice))
