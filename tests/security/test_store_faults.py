"""Store faults, from the app's side, against the real server: clear errors and recovery.

``tests/test_store.py`` tests the store module itself (each corruption moved
aside, I/O errors typed).  This family puts the same faults under a
:class:`LicenseClient` with a real activation on a one-seat license and the
real server, and checks what the app sees:

- a damaged or foreign file (0 bytes, NUL-filled, truncated at every length,
  random bytes, another machine's key, another product's file): the next
  start raises :class:`StoreCorrupted` once, with the bad file kept aside
  byte for byte; the start after that is clean (``NotActivated``, never the
  same error again: no crash loop); activating again with the same key on
  the same machine restores the license *without taking another seat* (the
  server hands back the same activation: the license has one seat); a
  well-formed file written under another machine key (another computer's,
  another product's) is a :class:`StoreFromAnotherMachine`, kept aside as
  ``.other-machine-``, anything else exactly a ``StoreCorrupted`` kept as
  ``.corrupt-``;
- a store written by the previous version (format 1): the license still
  checks, and the next write turns the file into format 2;
- the store folder missing: ``NotActivated``, then the same recovery;
- the same on a ``user`` seat license (one seat per OS account), where the
  seat is found again by the account's installation id;
- the folder not writable (read-only, or a file where the folder should
  be) and the disk full (simulated: ``ENOSPC`` from ``os.write``): a valid
  license still checks; writes fail with a :class:`StoreError` that says
  what to do, the file is untouched, and once the fault is gone everything
  works, still on one seat.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from software_dna import (
    LicenseClient,
    LicenseError,
    NotActivated,
    StoreCorrupted,
    StoreError,
    StoreFromAnotherMachine,
)
from software_dna import fingerprint as fp
from software_dna.server.testing import LocalServer
from software_dna.store import Store
from tests.security._family import Scale, Tally
from tests.test_store import IS_ROOT, OTHER_KEY, POSIX, leftovers, v1_file

Fault = Callable[["App", bytes], bytes]


class App:
    """The vendor's app on this machine: a one-seat license activated through the server."""

    def __init__(self, server: LocalServer, folder: Path, seat_mode: str = "machine") -> None:
        self.server = server
        self.product = "sf-" + secrets.token_hex(4)
        self.keys = server.admin.setup_product(self.product, features=["pro"])
        lic = server.admin.issue_license(self.product, seats=1, seat_mode=seat_mode)
        self.license_id, self.key = lic["id"], lic["license_key"]
        self.folder = folder
        client = self.client()
        try:
            self.activation_id = client.activate(self.key).activation_id
        finally:
            client.close()

    def client(self) -> LicenseClient:
        """A new start of the app (a fresh client on the same store)."""
        return LicenseClient(product=self.product, public_keys=self.keys,
                             server_url=self.server.url, store_path=self.folder, timeout=10)

    @property
    def path(self) -> Path:
        return self.client().store_path

    def store_key(self) -> bytes:
        """The key material this machine's store is written under (from its machine key)."""
        return self.client()._state.machine_key().derive("store")

    def seats(self) -> int:
        return int(self.server.admin.get_license(self.license_id)["seats_in_use"])

    def recover(self, tally: Tally, label: str) -> None:
        """Activate again with the same key: same activation, one seat, then check() works."""
        client = self.client()
        try:
            lic = client.activate(self.key)
            tally.check(lic.activation_id == self.activation_id and self.seats() == 1,
                        f"{label}: activating again took another seat ({lic.activation_id}, "
                        f"{self.seats()} in use)")
            checked = self.client().check()
            tally.check(checked.activation_id == self.activation_id,
                        f"{label}: check() after recovery gave {checked.activation_id}")
        except LicenseError as exc:
            tally.check(False, f"{label}: recovery failed: {type(exc).__name__}: {exc}")
        finally:
            client.close()


# --------------------------------------------------------------------------- damaged files


def _sealed(app: App, product: str, key: bytes) -> bytes:
    """The bytes of a genuine store file of ``product`` under machine key ``key``."""
    with tempfile.TemporaryDirectory(prefix="sdna-sf-other-") as folder:
        other = Store(Path(folder) / "x.license", product=product, key_material=key)
        other.write({"token": "v4.public.x", "activation_id": "act_elsewhere"})
        return other.path.read_bytes()


def _wrong_key(app: App, good: bytes) -> bytes:
    """A genuine store file of this product, written on another machine."""
    return _sealed(app, app.product, OTHER_KEY)


def _other_product(app: App, good: bytes) -> bytes:
    """A genuine store file of another product on this machine, copied over ours."""
    return _sealed(app, "another-product", app.store_key())


FAULTS: dict[str, Fault] = {
    "0 bytes": lambda app, good: b"",
    "NUL-filled": lambda app, good: b"\x00" * len(good),
    "random bytes": lambda app, good: os.urandom(len(good)),
    "flipped last byte": lambda app, good: good[:-1] + bytes([good[-1] ^ 1]),
    "another machine's key": _wrong_key,
    "another product's file": _other_product,
}
#: Faults that leave a well-formed file under another machine key.
OTHER_MACHINE = {"another machine's key", "another product's file"}


def damaged(app: App, label: str, fault: Fault, tally: Tally) -> None:
    """One damaged file: StoreCorrupted once, kept aside, no loop, recovery on one seat."""
    path = app.path
    good = path.read_bytes()
    bad = fault(app, good)
    path.write_bytes(bad)
    client = app.client()
    try:
        client.check()
        tally.check(False, f"{label}: check() returned a license from a damaged store")
    except StoreCorrupted as exc:
        aside = Path(exc.moved_to) if exc.moved_to else None
        tally.check(aside is not None and aside.exists() and aside.read_bytes() == bad,
                    f"{label}: the bad file was not kept aside byte for byte ({exc.moved_to})")
        other = label.rsplit(", ", maxsplit=1)[-1] in OTHER_MACHINE
        expected, tag = ((StoreFromAnotherMachine, ".other-machine-") if other
                         else (StoreCorrupted, ".corrupt-"))
        tally.check(type(exc) is expected and tag in str(exc.moved_to),
                    f"{label}: {type(exc).__name__} moved to {exc.moved_to}, expected "
                    f"{expected.__name__} and {tag}")
        tally.check("activat" in str(exc) and "server" in str(exc),
                    f"{label}: the message does not say what to do: {exc}")
        if aside is not None:
            aside.unlink(missing_ok=True)
    except Exception as exc:  # any other outcome is the finding
        tally.check(False, f"{label}: check() raised {type(exc).__name__}: {exc}")
    finally:
        client.close()
    # No crash loop: the next start is clean.
    again = app.client()
    try:
        again.check()
        tally.check(False, f"{label}: the next start found a license")
    except NotActivated as exc:
        tally.check(not isinstance(exc, StoreError), f"{label}: the next start: {exc!r}")
    except Exception as exc:  # StoreCorrupted again would be the crash loop
        tally.check(False, f"{label}: the next start raised {type(exc).__name__}: {exc}")
    finally:
        again.close()
    app.recover(tally, label)


def truncations(app: App, lengths: list[int], tally: Tally) -> None:
    """The store cut at each of ``lengths`` bytes."""
    for length in lengths:
        def cut(_app: App, good: bytes, n: int = length) -> bytes:
            return good[:n]

        damaged(app, f"truncated at {length}", cut, tally)


def format_1(app: App, tally: Tally) -> None:
    """The store as the previous version wrote it: still checks; the next write is format 2."""
    data = Store(app.path, product=app.product, key_material=app.store_key()).read()
    assert data is not None
    legacy = fp.machine_secret(app.product)  # what the previous version keyed stores with
    app.path.write_bytes(v1_file(legacy, data, product=app.product))
    client = app.client()
    try:
        lic = client.check()
        tally.check(lic.activation_id == app.activation_id,
                    f"format 1: check() gave another license ({lic.activation_id})")
        client.refresh()
        tally.check(app.path.read_bytes()[4] == 2, "format 1: the next write was not format 2")
        tally.check(app.client().check().activation_id == app.activation_id,
                    "format 1: the rewritten store does not check")
    except Exception as exc:  # a paying user locked out by an upgrade is the finding
        tally.check(False, f"format 1: {type(exc).__name__}: {exc}")
    finally:
        client.close()
    tally.check(app.seats() == 1, f"format 1: {app.seats()} seats in use")


# --------------------------------------------------------------------------- I/O faults


def folder_missing(app: App, tally: Tally) -> None:
    shutil.rmtree(app.folder)
    client = app.client()
    try:
        client.check()
        tally.check(False, "folder missing: check() found a license")
    except NotActivated as exc:
        tally.check(not isinstance(exc, StoreError), f"folder missing: {exc!r}")
    except Exception as exc:  # the finding
        tally.check(False, f"folder missing: check() raised {type(exc).__name__}: {exc}")
    finally:
        client.close()
    app.recover(tally, "folder missing")


def _refuse_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, error: int) -> None:
    """Make writes into ``folder`` fail as the OS would (root ignores permissions)."""
    real_open, real_replace = os.open, os.replace

    def deny_open(path: str | os.PathLike[str], flags: int, *args: int, **kwargs: int) -> int:
        if flags & os.O_CREAT and Path(path).resolve().parent == folder.resolve():
            raise OSError(error, os.strerror(error), str(path))
        return real_open(path, flags, *args, **kwargs)

    def deny_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        if Path(dst).resolve().parent == folder.resolve():
            raise OSError(error, os.strerror(error), str(dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "open", deny_open)
    monkeypatch.setattr(os, "replace", deny_replace)


def _disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    def full(*_args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)


def unwritable(app: App, label: str, break_it: Callable[[pytest.MonkeyPatch], None],
               tally: Tally, restore: Callable[[], None] = lambda: None) -> None:
    """Writes fail: the license still checks; a write is a clear StoreError; then recovery."""
    before = app.path.read_bytes()
    with pytest.MonkeyPatch.context() as monkeypatch:
        break_it(monkeypatch)
        client = app.client()
        try:
            lic = client.check()
            tally.check(lic.activation_id == app.activation_id,
                        f"{label}: check() gave another license")
        except Exception as exc:  # a paying user locked out by a full disk is the finding
            tally.check(False, f"{label}: check() raised {type(exc).__name__}: {exc}")
        for action, call in (("refresh()", client.refresh), ("activate()",
                                                             lambda: client.activate(app.key))):
            try:
                call()
                tally.check(False, f"{label}: {action} claimed to have stored its answer")
            except StoreError as exc:
                tally.check(not isinstance(exc, StoreCorrupted) and ("space" in str(exc) or
                                                                      "ermission" in str(exc)),
                            f"{label}: {action}: the message does not say why: {exc}")
            except Exception as exc:  # the finding
                tally.check(False, f"{label}: {action} raised {type(exc).__name__}: {exc}")
        client.close()
        restore()
    tally.check(app.path.read_bytes() == before, f"{label}: the store file was changed")
    tally.check(leftovers(app.path.parent) == [], f"{label}: temporary files left behind")
    app.recover(tally, label)


def folder_is_a_file(app: App, tally: Tally) -> None:
    """A file where the store folder should be: a clear StoreError, never a crash."""
    shutil.rmtree(app.folder)
    app.folder.write_text("not a folder")
    client = app.client()
    try:
        for action, call in (("check()", client.check),
                             ("activate()", lambda: client.activate(app.key))):
            try:
                call()
                tally.check(False, f"folder is a file: {action} succeeded")
            except StoreError as exc:
                tally.check("not a folder" in str(exc),
                            f"folder is a file: {action}: unclear message: {exc}")
            except Exception as exc:  # the finding
                tally.check(False, f"folder is a file: {action} raised "
                                   f"{type(exc).__name__}: {exc}")
    finally:
        client.close()
        app.folder.unlink()
    app.recover(tally, "folder is a file")


# --------------------------------------------------------------------------- the run


def run(server: LocalServer, folder: Path, *, every_length: bool, tally: Tally) -> None:
    app = App(server, folder / "store")
    format_1(app, tally)
    for label, fault in FAULTS.items():
        damaged(app, label, fault, tally)
    size = len(app.path.read_bytes())
    lengths = list(range(size)) if every_length else sorted(
        {1, 4, 5, 16, 17, 32, size // 2, size - 17, size - 16, size - 1})
    truncations(app, lengths, tally)
    folder_missing(app, tally)
    folder_is_a_file(app, tally)
    if IS_ROOT or not POSIX:  # permissions do not stop root: refuse as the OS would
        unwritable(app, "read-only folder",
                   lambda mp: _refuse_writes(mp, app.path.parent, errno.EACCES), tally)
    else:
        unwritable(app, "read-only folder", lambda mp: app.path.parent.chmod(0o500), tally,
                   restore=lambda: app.path.parent.chmod(0o700))
    unwritable(app, "disk full", _disk_full, tally)
    # A user-seat license (one seat per OS account): the account's seat is found again.
    user = App(server, folder / "user-store", seat_mode="user")
    for label in ("0 bytes", "another machine's key"):
        damaged(user, f"user seat, {label}", FAULTS[label], tally)
    folder_missing(user, tally)


def _server(folder: Path) -> LocalServer:
    # Every truncation length is one more activation from this address: no rate limit here.
    return LocalServer(folder, log_level="warning", rate_limit_attempts=1_000_000,
                       rate_limit_address_attempts=1_000_000)


@pytest.fixture(scope="module")
def fault_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with _server(tmp_path_factory.mktemp("store-faults")) as srv:
        yield srv


def test_store_faults_recover_through_the_server(fault_server: LocalServer,
                                                 tmp_path: Path) -> None:
    tally = Tally("store faults")
    run(fault_server, tmp_path, every_length=False, tally=tally)
    tally.assert_clean()


def family(scale: Scale) -> Tally:
    """Short: ten truncation lengths; long: every length of the store file."""
    tally = Tally("store faults")
    with tempfile.TemporaryDirectory(prefix="sdna-sf-") as folder, \
            _server(Path(folder) / "server") as srv:
        run(srv, Path(folder), every_length=scale is Scale.LONG, tally=tally)
    return tally
