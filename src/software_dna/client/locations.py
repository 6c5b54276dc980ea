"""Where the SDK's local state lives: the store, the rollback witness, the machine key.

Platform folders move when the environment does: ``XDG_DATA_HOME`` set after
activation, ``XDG_STATE_HOME`` set later, a :mod:`platformdirs` upgrade that
starts honouring the XDG variables on macOS. A store or witness left behind
in the old place reads as "not activated" or "rolled back". This module keeps
one fixed place per OS account, the *anchor*, and finds (and moves) what an
earlier layout left elsewhere.

Anchor (no XDG variable moves it)
    ``$SOFTWARE_DNA_STATE_HOME`` when set (an explicit override), else
    Linux/BSD ``<home>/.local/state/software_dna``, macOS
    ``<home>/Library/Application Support/software_dna``, Windows
    ``%LOCALAPPDATA%\\software_dna`` (else ``<home>\\AppData\\Local\\software_dna``).
    Per product, named by ``h = sha256(product)[:32 hex]``: ``<h>.witness``
    (and ``<h>.witness.prev``), ``<h>.keyring`` and ``<h>.where``, the
    *pointer*: a tiny JSON document ``{"version": 1, "store": "<abs path>"}``
    naming the store file last used.

Store (:func:`find_store`)
    ``$SOFTWARE_DNA_HOME`` is explicit: used as is, never searched or moved.
    Otherwise the preferred file is in platformdirs' user data dir under the
    current environment; when it is missing, the pointer's path and then this
    platform's previous layouts (:func:`data_dir_candidates`) are searched and
    the first store found is moved to the preferred place.

Witness (:func:`find_witness`)
    Always in the anchor; a witness found in an old state folder is moved in.

Moves
    One file at a time, under the store's own lock file (``<old>.lock``), by
    :func:`os.replace`, or across file systems by a synced copy, rename, and
    removal of the old file. A file is never left in two places: when the old
    copy cannot be removed the new one is, and the old path is used in place.
    Nothing here raises :class:`OSError`: whatever fails leaves the state
    where it was found, and that path is used.

Every function takes an :class:`Env` (default: this process's) so that any
platform's rules can run, and be tested, anywhere. The Linux start-up path
(the preferred store exists) costs one ``stat`` and imports nothing.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import posixpath
import sys
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import NamedTuple

from software_dna.files import (
    LockTimeout,
    exclusive,
    fsync_directory,
    read_limited,
    write_atomically,
)
from software_dna.store import MAX_FILE_SIZE, store_path_for, user_dir

__all__ = [
    "Env",
    "anchor_dir",
    "data_dir_candidates",
    "find_store",
    "find_witness",
    "keyring_path",
    "pointer_path",
    "remember_store",
    "witness_path",
]

_ENV_HOME = "SOFTWARE_DNA_HOME"
_ENV_STATE_HOME = "SOFTWARE_DNA_STATE_HOME"
_ANCHOR_NAME = "software_dna"
#: Seconds to wait for the old store's lock before using it in place.
_MOVE_LOCK_TIMEOUT = 1.0
_POINTER_VERSION = 1
_POINTER_MAX_SIZE = 64 * 1024


class Env(NamedTuple):
    """The parts of a machine that decide where files go.

    Attributes:
        environ: the environment variables (``XDG_*``, ``LOCALAPPDATA``,
            ``SOFTWARE_DNA_HOME``, ``SOFTWARE_DNA_STATE_HOME``).
        home: the OS account's home folder (absolute).
        platform: a :data:`sys.platform` value: ``"linux"``, ``"darwin"``,
            ``"win32"``, ``"freebsd14"``, ...
    """

    environ: Mapping[str, str]
    home: Path
    platform: str

    @classmethod
    def current(cls) -> Env:
        """This process's environment: :data:`os.environ`, the home folder, :data:`sys.platform`.

        The home folder is ``$HOME`` when it is absolute, else the account's
        home from the system (``Path.home()``; the password database on POSIX,
        as platformdirs does).
        """
        return cls(os.environ, _current_home(), sys.platform)


def _current_home() -> Path:
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return Path(home)
    if sys.platform != "win32":
        # A relative or missing HOME: platformdirs asks the password database too.
        with suppress(ImportError, KeyError, OSError):
            import pwd  # noqa: PLC0415 - POSIX only, and only without an absolute HOME

            return Path(pwd.getpwuid(os.getuid()).pw_dir)
    try:
        return Path.home().absolute()
    except (RuntimeError, KeyError, OSError):
        return Path(os.path.expanduser("~")).absolute()


def _env(env: Env | None) -> Env:
    return Env.current() if env is None else env


def _family(env: Env) -> str:
    """``"windows"``, ``"mac"``, ``"unix"`` (Linux, the BSDs, other POSIX) or ``"other"``."""
    platform = env.platform
    if platform == "win32":
        return "windows"
    if platform == "darwin":
        return "mac"
    if (platform in ("android", "ios", "emscripten", "wasi")
            or (platform.startswith("linux") and (
                env.environ.get("ANDROID_ROOT")
                or (platform == sys.platform and hasattr(sys, "getandroidapilevel"))))):
        return "other"  # platformdirs' own rules, for this process only
    return "unix"


def _xdg(env: Env, variable: str) -> Path | None:
    """An XDG base folder, when set to an absolute path (platformdirs ignores anything else)."""
    value = env.environ.get(variable, "")
    return Path(value) if posixpath.isabs(value) else None


def _expand(value: str, env: Env) -> Path:
    """An override from the environment: ``~`` is the env's home; made absolute."""
    if value == "~" or value.startswith(("~/", "~\\")):
        return env.home / value[2:]
    return Path(value).absolute()


def _windows_local(env: Env) -> Path:
    value = env.environ.get("LOCALAPPDATA", "")
    return Path(value) if value else env.home / "AppData" / "Local"


def _product_hash(product: str) -> str:
    return hashlib.sha256(product.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# --------------------------------------------------------------------------- the anchor


def anchor_dir(*, env: Env | None = None) -> Path:
    """The folder of this OS account's fixed per-product files (witness, keyring, pointer).

    Args:
        env: the machine (default :meth:`Env.current`).

    Returns:
        ``$SOFTWARE_DNA_STATE_HOME`` when set and not empty, else Linux/BSD
        ``<home>/.local/state/software_dna`` (never ``$XDG_STATE_HOME``),
        macOS ``<home>/Library/Application Support/software_dna``, Windows
        ``%LOCALAPPDATA%\\software_dna`` (``<home>\\AppData\\Local`` when the
        variable is unset). Not created here.
    """
    env = _env(env)
    override = env.environ.get(_ENV_STATE_HOME)
    if override:
        return _expand(override, env)
    family = _family(env)
    if family == "mac":
        return env.home / "Library" / "Application Support" / _ANCHOR_NAME
    if family == "windows":
        return _windows_local(env) / _ANCHOR_NAME
    if family == "other":
        return Path(user_dir("state", _ANCHOR_NAME, False)).absolute()
    return env.home / ".local" / "state" / _ANCHOR_NAME


def witness_path(product: str, *, env: Env | None = None) -> Path:
    """The rollback witness of ``product`` (a str): ``anchor_dir() / "<h>.witness"``."""
    return anchor_dir(env=env) / f"{_product_hash(product)}.witness"


def keyring_path(product: str, *, env: Env | None = None) -> Path:
    """The machine key file of ``product`` (a str): ``anchor_dir() / "<h>.keyring"``."""
    return anchor_dir(env=env) / f"{_product_hash(product)}.keyring"


def pointer_path(product: str, *, env: Env | None = None) -> Path:
    """The pointer to the store of ``product`` (a str): ``anchor_dir() / "<h>.where"``."""
    return anchor_dir(env=env) / f"{_product_hash(product)}.where"


# --------------------------------------------------------------------------- the store


def data_dir_candidates(app_name: str, app_author: str | None, *,
                        env: Env | None = None) -> list[Path]:
    """The folders an app's store may be in: the preferred one first, then older layouts.

    Args:
        app_name: the app's folder name (non-empty).
        app_author: the vendor's name (used on Windows only), or None.
        env: the machine (default :meth:`Env.current`).

    Returns:
        Absolute folders, without duplicates. The first is what
        ``platformdirs.user_data_dir(app_name, app_author, roaming=False)``
        returns under ``env`` (platformdirs 4.x, which honours ``XDG_DATA_HOME``
        on macOS too). Then: Linux/BSD ``$XDG_DATA_HOME/<app>``,
        ``<home>/.local/share/<app>``; macOS
        ``<home>/Library/Application Support/<app>``, ``$XDG_DATA_HOME/<app>``,
        ``<home>/.local/share/<app>``; Windows none (platformdirs has no XDG
        rule there).

    Raises:
        ValueError: ``app_name`` is empty.
    """
    if not app_name:
        raise ValueError("app_name must be a non-empty string")
    env = _env(env)
    family = _family(env)
    xdg = _xdg(env, "XDG_DATA_HOME")
    local_share = env.home / ".local" / "share"
    if family == "windows":
        return [_windows_local(env) / (app_author or app_name) / app_name]
    if family == "other":
        return [Path(user_dir("data", app_name, app_author)).absolute()]
    if family == "mac":
        support = env.home / "Library" / "Application Support"
        bases = [xdg or support, support, xdg, local_share]
    else:
        bases = [xdg or local_share, xdg, local_share]
    found: list[Path] = []
    for base in bases:
        if base is not None and base / app_name not in found:
            found.append(base / app_name)
    return found


def find_store(product: str, app_name: str, app_author: str | None, *,
               env: Env | None = None) -> Path:
    """The store file of ``product`` to use, moving one left in an older place.

    Args:
        product: the product id.
        app_name, app_author: name the store folder (see :func:`data_dir_candidates`).
        env: the machine (default :meth:`Env.current`).

    Returns:
        ``$SOFTWARE_DNA_HOME/<file>`` when that variable is set (no search,
        no move). Otherwise the preferred file (one ``stat`` when it exists).
        When it does not, the first store found at the path the pointer names,
        then in the previous layouts, is moved to the preferred path (and the
        pointer updated); if it cannot be moved it is used where it is. When
        nothing is found: the preferred path (nothing is created).

    Raises:
        ValueError: ``product`` or ``app_name`` is empty, or ``product`` is not
            encodable as UTF-8. Never :class:`OSError`.
    """
    env = _env(env)
    override = env.environ.get(_ENV_HOME)
    if override:
        return store_path_for(product, _expand(override, env))
    folders = data_dir_candidates(app_name, app_author, env=env)
    preferred = store_path_for(product, folders[0])
    if _is_file(preferred):
        return preferred
    old = next((path for path in [_pointed_store(product, preferred, env),
                                  *(store_path_for(product, f) for f in folders[1:])]
                if path is not None and path != preferred and _is_file(path)), None)
    if old is None:
        return preferred
    used = _move_in(old, preferred, lock=_lock_of(old))
    remember_store(product, used, env=env)
    return used


def remember_store(product: str, path: Path, *, env: Env | None = None) -> None:
    """Record ``path`` as the store of ``product`` in the pointer file, when it says otherwise.

    Best effort, never raises: the pointer (``{"version":1,"store":"<abs
    path>"}``, mode 0600, folder 0700) is written atomically. Nothing is
    recorded while ``$SOFTWARE_DNA_HOME`` is set (explicit locations are never
    searched).

    Args:
        product: the product id.
        path: the store file in use.
        env: the machine (default :meth:`Env.current`).
    """
    env = _env(env)
    if env.environ.get(_ENV_HOME):
        return
    try:
        target = str(Path(path).absolute())
        pointer = pointer_path(product, env=env)
        if _read_pointer(pointer) == target:
            return
        blob = json.dumps({"version": _POINTER_VERSION, "store": target},
                          separators=(",", ":")).encode("utf-8")
        pointer.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(pointer, blob)
    except (OSError, ValueError):
        pass  # the pointer only helps a later search; the store itself is unaffected


def _read_pointer(pointer: Path) -> str | None:
    """The store path a pointer file records, or None (missing, unreadable, garbage)."""
    try:
        raw = read_limited(pointer, _POINTER_MAX_SIZE)
        if raw is None or len(raw) > _POINTER_MAX_SIZE:
            return None
        doc = json.loads(raw)
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(doc, dict) or doc.get("version") != _POINTER_VERSION:
        return None
    store = doc.get("store")
    return store if isinstance(store, str) and os.path.isabs(store) else None


def _pointed_store(product: str, preferred: Path, env: Env) -> Path | None:
    """The pointer's store path, when it names a store file of this product in a folder
    of this app (named like ``preferred``'s): two apps sharing a product id never take
    each other's store."""
    recorded = _read_pointer(pointer_path(product, env=env))
    if recorded is None:
        return None
    path = Path(recorded)
    # Only a file named like this product's store, in a folder named like this app's:
    # a pointer never moves anything else.
    same = path.name == preferred.name and path.parent.name == preferred.parent.name
    return path if same else None


# --------------------------------------------------------------------------- the witness


def find_witness(product: str, *, env: Env | None = None) -> Path:
    """The rollback witness of ``product``, moving one left in an older state folder.

    Args:
        product: the product id.
        env: the machine (default :meth:`Env.current`).

    Returns:
        :func:`witness_path` (one ``stat`` when it exists). When it does not
        and ``$SOFTWARE_DNA_STATE_HOME`` is unset, a witness in platformdirs'
        ``user_state_dir("software_dna")`` under ``env`` (with and without
        ``XDG_STATE_HOME``) is moved in, with its ``.prev`` copy; if it cannot
        be moved, it is used where it is. Never raises :class:`OSError`.
    """
    env = _env(env)
    anchored = witness_path(product, env=env)
    if env.environ.get(_ENV_STATE_HOME) or _is_file(anchored):
        return anchored
    for folder in _old_state_dirs(env):
        old = folder / anchored.name
        if old != anchored and _is_file(old):
            return _move_in(old, anchored, lock=_lock_of(old), companions=(".prev",))
    return anchored


def _old_state_dirs(env: Env) -> list[Path]:
    """Where earlier versions kept witnesses: platformdirs' state dir with and without XDG."""
    family = _family(env)
    if family in ("windows", "other"):
        return []  # the anchor is that folder (no XDG rule on Windows)
    xdg = _xdg(env, "XDG_STATE_HOME")
    default = (env.home / "Library" / "Application Support" if family == "mac"
               else env.home / ".local" / "state")
    return [base / _ANCHOR_NAME for base in (xdg, default) if base is not None]


# --------------------------------------------------------------------------- moving


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # ValueError: a NUL in a path from the environment
        return False


#: Largest file moved (a store or a witness copy: the store's own limit).
_MAX_MOVED_SIZE = MAX_FILE_SIZE


def _lock_of(path: Path) -> Path:
    """The lock file the store takes for ``path`` (see :class:`software_dna.store.Store`)."""
    return path.with_name(path.name + ".lock")


def _move_in(old: Path, new: Path, *, lock: Path, companions: tuple[str, ...] = ()) -> Path:
    """Move ``old`` (and ``old + suffix`` for each companion) to ``new``; return the path to use.

    Under the old file's lock, so no writer of the old store is cut short.
    Returns ``new`` once moved, or when another process already moved it;
    ``old`` when the lock or the move failed.
    """
    try:
        with exclusive(lock, _MOVE_LOCK_TIMEOUT):
            if _is_file(new) or not _is_file(old):
                return new  # another process moved it while this one waited
            new.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _move_file(old, new)
            for suffix in companions:
                extra = old.with_name(old.name + suffix)
                if _is_file(extra):
                    with suppress(OSError):  # a spare copy: losing its move loses nothing
                        _move_file(extra, new.with_name(new.name + suffix))
            return new
    except (LockTimeout, OSError, RuntimeError):
        # The old store is busy, a read-only old folder, a failed copy ...
        return new if _is_file(new) and not _is_file(old) else old


def _move_file(old: Path, new: Path) -> None:
    """Move one file; across file systems: copy (synced), rename, remove the old one.

    Raises:
        OSError: it was not moved; ``old`` is then still the only copy.
    """
    try:
        os.replace(old, new)
        fsync_directory(new.parent)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    blob = read_limited(old, _MAX_MOVED_SIZE)
    if blob is None or len(blob) > _MAX_MOVED_SIZE:
        raise OSError(errno.EINVAL, "not a license file", str(old))
    write_atomically(new, blob, mode=_mode_of(old))
    try:
        os.unlink(old)
    except OSError:
        with suppress(OSError):
            os.unlink(new)  # never two copies: keep using the old one
        raise


def _mode_of(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o777 or 0o600
    except OSError:
        return 0o600
