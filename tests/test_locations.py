"""Where local state lives (software_dna.client.locations): the store and witness never wander.

Each scenario runs on a temporary home. The ones that check a license use a
real LicenseClient with a token installed offline and the process environment
set to the scenario (HOME, XDG_*); the others call the functions with an
explicit Env, which also runs macOS and Windows rules here.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from pathlib import Path

import filelock
import platformdirs.macos
import platformdirs.unix
import platformdirs.windows
import pytest

from software_dna import LicenseClient, StoreRolledBack
from software_dna.client.locations import (
    Env,
    anchor_dir,
    data_dir_candidates,
    find_store,
    find_witness,
    keyring_path,
    pointer_path,
    remember_store,
    witness_path,
)
from software_dna.fingerprint import collect
from software_dna.store import store_path_for
from software_dna.wire.paseto import SecretKey

from .tokens import make_token

PRODUCT = "acme-editor"
APP = "Editor"
AUTHOR = "Acme"
_LOCATION_VARIABLES = ("SOFTWARE_DNA_HOME", "SOFTWARE_DNA_STATE_HOME", "XDG_DATA_HOME",
                       "XDG_STATE_HOME", "LOCALAPPDATA")


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary home folder, with no location variable set in this process."""
    for name in _LOCATION_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def linux(home: Path, **environ: str) -> Env:
    return Env(environ, home, "linux")


def client(key: SecretKey, store_path: Path | None = None) -> LicenseClient:
    return LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                         app_name=APP, app_author=AUTHOR, store_path=store_path)


def activate(key: SecretKey, store_path: Path | None = None) -> Path:
    """Install a real license; return its store file."""
    app = client(key, store_path)
    app.install_token(make_token(key, PRODUCT, collect(PRODUCT)))
    assert app.store_path.is_file()
    return app.store_path


def licenses_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.license"))


def files_under(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*"))


# --------------------------------------------------------------------------- the store moves


def test_xdg_data_home_set_after_activation_moves_the_store(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = activate(key)
    assert old == home / ".local" / "share" / APP / f"{PRODUCT}.license"
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    app = client(key)
    assert app.store_path == tmp_path / "xdg-data" / APP / f"{PRODUCT}.license"
    assert app.check().license_id == "lic_1"
    assert not old.exists()
    assert licenses_under(tmp_path) == [app.store_path]  # moved, not copied
    pointer = json.loads(pointer_path(PRODUCT, env=Env.current()).read_text())
    assert pointer == {"version": 1, "store": str(app.store_path)}


def test_xdg_data_home_unset_after_activation_finds_the_store_by_the_pointer(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    old = activate(key)
    assert old.is_relative_to(tmp_path / "xdg-data")
    monkeypatch.delenv("XDG_DATA_HOME")  # no rule leads back there: only the pointer does
    app = client(key)
    assert app.store_path == home / ".local" / "share" / APP / f"{PRODUCT}.license"
    assert app.check().license_id == "lic_1"
    assert licenses_under(tmp_path) == [app.store_path]


def test_xdg_state_home_set_after_activation_offline_check_passes(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    activate(key)
    witness = home / ".local" / "state" / "software_dna" / witness_path(
        PRODUCT, env=Env.current()).name
    assert witness.is_file()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    assert client(key).check().license_id == "lic_1"  # no server: the witness was found
    assert witness.is_file()


def test_witness_left_under_xdg_state_home_is_moved_into_the_anchor(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An earlier version, run with XDG_STATE_HOME set, kept the witness there."""
    activate(key)
    anchored = witness_path(PRODUCT, env=Env.current())
    earlier = tmp_path / "xdg-state" / "software_dna"
    earlier.mkdir(parents=True)
    os.replace(anchored, earlier / anchored.name)
    previous = anchored.with_name(anchored.name + ".prev")  # the witness's previous copy
    previous_bytes = previous.read_bytes()
    os.replace(previous, earlier / previous.name)
    with pytest.raises(StoreRolledBack):  # the witness is missing where it is looked for
        client(key).check()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg-state"))
    assert client(key).check().license_id == "lic_1"
    assert anchored.is_file() and not (earlier / anchored.name).exists()
    assert previous.read_bytes() == previous_bytes
    assert not (earlier / (anchored.name + ".prev")).exists()


def test_macos_layout_change_finds_the_store(key: SecretKey, tmp_path: Path) -> None:
    """platformdirs 4 honours XDG_DATA_HOME on macOS; older ones used Application Support."""
    mac = Env({"XDG_DATA_HOME": str(tmp_path / "xdg-data")}, tmp_path / "home", "darwin")
    old = activate(key, tmp_path / "home" / "Library" / "Application Support" / APP)
    found = find_store(PRODUCT, APP, AUTHOR, env=mac)
    assert found == tmp_path / "xdg-data" / APP / f"{PRODUCT}.license"
    assert not old.exists() and licenses_under(tmp_path) == [found]
    assert client(key, found).check().license_id == "lic_1"


def test_macos_witness_under_xdg_state_home_is_moved_into_application_support(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    mac = Env({"XDG_STATE_HOME": str(tmp_path / "xdg-state")}, home, "darwin")
    old = tmp_path / "xdg-state" / "software_dna" / witness_path(PRODUCT, env=mac).name
    old.parent.mkdir(parents=True)
    old.write_bytes(b"witness")
    found = find_witness(PRODUCT, env=mac)
    assert found == home / "Library" / "Application Support" / "software_dna" / old.name
    assert found.read_bytes() == b"witness" and not old.exists()


def test_pointer_to_a_custom_previous_location_finds_the_store(
    key: SecretKey, home: Path, tmp_path: Path
) -> None:
    env = linux(home)
    old = activate(key, tmp_path / "custom" / APP)  # a folder of this app elsewhere
    remember_store(PRODUCT, old, env=env)
    found = find_store(PRODUCT, APP, AUTHOR, env=env)
    assert found == home / ".local" / "share" / APP / f"{PRODUCT}.license"
    assert not old.exists() and licenses_under(tmp_path) == [found]
    assert client(key, found).check().license_id == "lic_1"
    assert json.loads(pointer_path(PRODUCT, env=env).read_text())["store"] == str(found)


def test_pointer_to_a_file_of_another_name_moves_nothing(home: Path, tmp_path: Path) -> None:
    env = linux(home)
    other = tmp_path / "elsewhere" / "notes.txt"
    other.parent.mkdir()
    other.write_bytes(b"not a store")
    remember_store(PRODUCT, other, env=env)
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == store_path_for(
        PRODUCT, home / ".local" / "share" / APP)
    assert other.read_bytes() == b"not a store"


def test_cross_device_move_copies_then_removes_never_duplicates(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = activate(key)
    blob = old.read_bytes()
    replace = os.replace
    refused: list[str] = []

    def replace_across_devices(src: object, dst: object) -> None:
        if not refused:
            refused.append(str(src))
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "replace", replace_across_devices)
    found = find_store(PRODUCT, APP, AUTHOR, env=linux(home, XDG_DATA_HOME=str(tmp_path / "x")))
    assert refused == [str(old)]
    assert found == tmp_path / "x" / APP / f"{PRODUCT}.license"
    assert found.read_bytes() == blob and not old.exists()
    assert licenses_under(tmp_path) == [found]
    assert not list(found.parent.glob(".*.tmp"))
    assert found.stat().st_mode & 0o777 == 0o600


def test_unremovable_old_store_is_used_in_place_without_a_copy(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = activate(key)
    replace, unlink = os.replace, os.unlink
    state = {"refused": False}

    def replace_across_devices(src: object, dst: object) -> None:
        if not state["refused"]:
            state["refused"] = True
            raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))
        replace(src, dst)  # type: ignore[arg-type]

    def unlink_but_not_old(path: object, *args: object, **kwargs: object) -> None:
        if Path(str(path)) == old:
            raise PermissionError(errno.EACCES, "read-only folder", str(path))
        unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    with monkeypatch.context() as patch:
        patch.setattr(os, "replace", replace_across_devices)
        patch.setattr(os, "unlink", unlink_but_not_old)
        found = find_store(PRODUCT, APP, AUTHOR,
                           env=linux(home, XDG_DATA_HOME=str(tmp_path / "x")))
    assert state["refused"]
    assert found == old and old.is_file()
    assert licenses_under(tmp_path) == [old]
    assert client(key, found).check().license_id == "lic_1"


def test_old_store_locked_by_another_process_is_used_in_place(
    key: SecretKey, home: Path, tmp_path: Path
) -> None:
    old = activate(key)
    with filelock.FileLock(str(old) + ".lock"):  # another holder: this lookup cannot take it
        found = find_store(PRODUCT, APP, AUTHOR,
                           env=linux(home, XDG_DATA_HOME=str(tmp_path / "x")))
    assert found == old and licenses_under(tmp_path) == [old]


def test_explicit_software_dna_home_is_not_searched(
    key: SecretKey, home: Path, tmp_path: Path
) -> None:
    old = activate(key)
    env = linux(home, SOFTWARE_DNA_HOME=str(tmp_path / "explicit"),
                XDG_DATA_HOME=str(tmp_path / "x"))
    remember_store(PRODUCT, old, env=env)
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == tmp_path / "explicit" / f"{PRODUCT}.license"
    assert old.is_file() and licenses_under(tmp_path) == [old]
    assert not (tmp_path / "explicit").exists()


def test_explicit_software_dna_home_with_a_tilde_is_under_the_env_home(home: Path) -> None:
    env = linux(home, SOFTWARE_DNA_HOME="~/licenses")
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == home / "licenses" / f"{PRODUCT}.license"


def test_nothing_anywhere_gives_the_preferred_path_and_creates_nothing(
    key: SecretKey, home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = linux(home, XDG_DATA_HOME=str(tmp_path / "x"), XDG_STATE_HOME=str(tmp_path / "s"))
    before = files_under(tmp_path)
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == tmp_path / "x" / APP / f"{PRODUCT}.license"
    assert find_witness(PRODUCT, env=env) == witness_path(PRODUCT, env=env)
    assert files_under(tmp_path) == before
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    app = client(key)
    assert files_under(tmp_path) == before
    app.install_token(make_token(key, PRODUCT, collect(PRODUCT)))  # the first write
    assert app.store_path.is_file()
    assert json.loads(pointer_path(PRODUCT, env=env).read_text())["store"] == str(app.store_path)
    assert pointer_path(PRODUCT, env=env).stat().st_mode & 0o777 == 0o600
    assert anchor_dir(env=env).stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[1, 2]", b'{"version": 2, "store": "/x"}',
                                     b'{"version": 1, "store": "relative/acme-editor.license"}',
                                     b'{"version": 1, "store": 7}', b"\xff\xfe\x00"],
                         ids=["empty", "broken", "list", "version", "relative", "number", "bytes"])
def test_pointer_json_garbage_is_ignored(
    key: SecretKey, home: Path, tmp_path: Path, garbage: bytes
) -> None:
    env = linux(home, XDG_DATA_HOME=str(tmp_path / "x"))
    pointer = pointer_path(PRODUCT, env=env)
    pointer.parent.mkdir(parents=True)
    pointer.write_bytes(garbage)
    preferred = tmp_path / "x" / APP / f"{PRODUCT}.license"
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == preferred
    old = activate(key)  # a previous layout is still searched
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == preferred and not old.exists()
    assert json.loads(pointer.read_text()) == {"version": 1, "store": str(preferred)}


# --------------------------------------------------------------------------- the rules


def _with_environ(monkeypatch: pytest.MonkeyPatch, environ: dict[str, str]) -> None:
    for name in ("HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)


XDG_SETTINGS: list[dict[str, str]] = [
    {}, {"XDG_DATA_HOME": ""}, {"XDG_DATA_HOME": "/srv/data"},
    {"XDG_DATA_HOME": "relative/data"}, {"XDG_DATA_HOME": "~/data"},
    {"XDG_DATA_HOME": "/srv/data/"}, {"XDG_STATE_HOME": "/srv/state"},
]


@pytest.mark.parametrize("setting", XDG_SETTINGS, ids=repr)
@pytest.mark.parametrize("author", [AUTHOR, None])
def test_preferred_data_dir_is_platformdirs_on_linux(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: dict[str, str], author: str | None
) -> None:
    _with_environ(monkeypatch, {"HOME": str(tmp_path), **setting})
    expected = platformdirs.unix.Unix(APP, author, roaming=False).user_data_dir
    env = Env(dict(os.environ), tmp_path, "linux")
    assert data_dir_candidates(APP, author, env=env)[0] == Path(expected)


@pytest.mark.parametrize("setting", XDG_SETTINGS, ids=repr)
def test_preferred_data_dir_is_platformdirs_on_macos(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: dict[str, str]
) -> None:
    _with_environ(monkeypatch, {"HOME": str(tmp_path), **setting})
    expected = platformdirs.macos.MacOS(APP, AUTHOR, roaming=False).user_data_dir
    env = Env(dict(os.environ), tmp_path, "darwin")
    assert data_dir_candidates(APP, AUTHOR, env=env)[0] == Path(expected)


@pytest.mark.parametrize("author", [AUTHOR, None])
def test_preferred_data_dir_is_platformdirs_on_windows(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, author: str | None
) -> None:
    _with_environ(monkeypatch, {"LOCALAPPDATA": str(tmp_path / "Local"),
                                "XDG_DATA_HOME": str(tmp_path / "xdg")})
    # Off Windows, platformdirs reads the folder from the environment variable. The
    # resolver it calls is _RESOLVE_WIN_FOLDER from 4.14.8, get_win_folder before.
    resolver = ("_RESOLVE_WIN_FOLDER" if hasattr(platformdirs.windows, "_RESOLVE_WIN_FOLDER")
                else "get_win_folder")
    monkeypatch.setattr(platformdirs.windows, resolver,
                        platformdirs.windows.get_win_folder_from_env_vars)
    expected = platformdirs.windows.Windows(APP, author, roaming=False).user_data_dir
    env = Env(dict(os.environ), tmp_path, "win32")
    assert data_dir_candidates(APP, author, env=env) == [Path(expected)]  # no XDG on Windows


def test_previous_layouts_in_search_order(tmp_path: Path) -> None:
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    on_linux = data_dir_candidates(APP, AUTHOR, env=linux(home, XDG_DATA_HOME=str(xdg)))
    assert on_linux == [xdg / APP, home / ".local" / "share" / APP]
    assert data_dir_candidates(APP, AUTHOR, env=linux(home)) == [home / ".local" / "share" / APP]
    on_mac = data_dir_candidates(APP, AUTHOR, env=Env({"XDG_DATA_HOME": str(xdg)}, home, "darwin"))
    support = home / "Library" / "Application Support" / APP
    assert on_mac == [xdg / APP, support, home / ".local" / "share" / APP]
    assert data_dir_candidates(APP, AUTHOR, env=Env({}, home, "darwin"))[:2] == [
        support, home / ".local" / "share" / APP]
    bsd = data_dir_candidates(APP, AUTHOR, env=Env({}, home, "freebsd14"))
    assert bsd == [home / ".local" / "share" / APP]


@pytest.mark.parametrize(("platform", "environ", "expected"), [
    ("linux", {}, ".local/state/software_dna"),
    ("linux", {"XDG_STATE_HOME": "/srv/state"}, ".local/state/software_dna"),
    ("freebsd14", {"XDG_STATE_HOME": "/srv/state"}, ".local/state/software_dna"),
    ("darwin", {"XDG_STATE_HOME": "/srv/state"}, "Library/Application Support/software_dna"),
    ("win32", {}, "AppData/Local/software_dna"),
])
def test_anchor_ignores_xdg_variables(
    tmp_path: Path, platform: str, environ: dict[str, str], expected: str
) -> None:
    env = Env(environ, tmp_path, platform)
    assert anchor_dir(env=env) == tmp_path / expected
    digest = witness_path(PRODUCT, env=env).name.removesuffix(".witness")
    assert len(digest) == 32 and int(digest, 16) >= 0
    assert keyring_path(PRODUCT, env=env) == tmp_path / expected / f"{digest}.keyring"
    assert pointer_path(PRODUCT, env=env) == tmp_path / expected / f"{digest}.where"


def test_anchor_on_windows_is_under_localappdata(tmp_path: Path) -> None:
    env = Env({"LOCALAPPDATA": str(tmp_path / "Local")}, tmp_path / "home", "win32")
    assert anchor_dir(env=env) == tmp_path / "Local" / "software_dna"


def test_software_dna_state_home_is_the_anchor_and_is_not_searched(tmp_path: Path) -> None:
    env = linux(tmp_path / "home", SOFTWARE_DNA_STATE_HOME=str(tmp_path / "explicit"))
    assert anchor_dir(env=env) == tmp_path / "explicit"
    old = tmp_path / "home" / ".local" / "state" / "software_dna" / witness_path(
        PRODUCT, env=env).name
    old.parent.mkdir(parents=True)
    old.write_bytes(b"witness")
    assert find_witness(PRODUCT, env=env) == tmp_path / "explicit" / old.name
    assert old.read_bytes() == b"witness"


def test_remember_store_never_raises_on_an_unwritable_anchor(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    env = linux(tmp_path, SOFTWARE_DNA_STATE_HOME=str(blocker / "anchor"))
    remember_store(PRODUCT, tmp_path / f"{PRODUCT}.license", env=env)  # NotADirectoryError inside
    assert find_store(PRODUCT, APP, AUTHOR, env=env) == store_path_for(
        PRODUCT, tmp_path / ".local" / "share" / APP)


def test_current_env_reads_this_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    env = Env.current()
    assert env.home == tmp_path and env.environ["HOME"] == str(tmp_path)
    assert env.platform == sys.platform
