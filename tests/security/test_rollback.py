"""Rollback: the clock set back, the store deleted, the store replaced by an older copy.

None of them may revive an expired, revoked or limited license without the
server's word (software_dna.client.rollback: the witness file). With the server
reachable the license recovers at once, so a paying user is never locked out.
The last test pins down the documented limit: rolling back *every* file and
the clock together still works, as docs/security.md says.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from software_dna import (
    ClockTampered,
    InvalidToken,
    License,
    LicenseClient,
    LicenseError,
    LicenseExpired,
    LicenseRevoked,
    Mode,
    StoreRolledBack,
)
from software_dna.client.locations import witness_path
from tests.inprocess import InProcessServer, unreachable
from tests.security._family import Scale, Tally
from tests.security._tokenlab import PRODUCT, Lab
from tests.test_client_e2e import EMAIL, App, new_product


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


T0 = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Machine:
    """An offline lab machine with a settable clock (aware UTC)."""

    def __init__(self, folder: Path) -> None:
        self.lab = Lab(folder / "store", now=T0)
        self.folder = folder

    def at(self, when: datetime) -> LicenseClient:
        """A fresh client (a new start of the app) whose clock shows ``when``."""
        self.lab.now = when
        return self.lab.make_client()

    @property
    def store(self) -> Path:
        return self.lab.client.store_path

    @property
    def witness(self) -> Path:
        return witness_path(PRODUCT)

    def delete_witness(self) -> None:
        """Delete the witness: its current and its previous copy."""
        self.witness.unlink()
        self.witness.with_name(self.witness.name + ".prev").unlink(missing_ok=True)

    def snapshot(self) -> bytes:
        return self.store.read_bytes()

    def restore(self, blob: bytes) -> None:
        self.store.write_bytes(blob)

    def close(self) -> None:
        self.lab.close()


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Machine]:
    m = Machine(tmp_path)
    yield m
    m.close()


def _install(machine: Machine, when: datetime, **token: object) -> License:
    return machine.at(when).install_token(machine.lab.token(**token))


def outcome(client: LicenseClient) -> License | LicenseError:
    try:
        return client.check()
    except LicenseError as exc:
        return exc


# --------------------------------------------------------------------------- offline


def test_clock_set_back_after_expiry(machine: Machine) -> None:
    _install(machine, T0, issued_at=T0, expires_at=T0 + timedelta(days=10))
    assert isinstance(outcome(machine.at(T0 + timedelta(days=11))), LicenseExpired)
    assert isinstance(outcome(machine.at(T0 + timedelta(days=5))), ClockTampered)


def test_store_deleted_to_reset_the_high_water_mark(machine: Machine) -> None:
    token = machine.lab.token(issued_at=T0, expires_at=T0 + timedelta(days=10))
    machine.at(T0 + timedelta(hours=1)).install_token(token)
    assert isinstance(outcome(machine.at(T0 + timedelta(days=11))), LicenseExpired)
    machine.store.unlink()  # forget the high-water mark ...
    with pytest.raises(ClockTampered):  # ... and reinstall the kept token with the clock back
        machine.at(T0 + timedelta(days=2)).install_token(token)


def test_store_replaced_by_an_older_copy_after_revocation(machine: Machine) -> None:
    _install(machine, T0 + timedelta(hours=1), issued_at=T0)
    old = machine.snapshot()
    client = machine.at(T0 + timedelta(hours=2))
    client._state.store_refusal("license_revoked", "The vendor revoked this license.")
    assert isinstance(outcome(machine.at(T0 + timedelta(hours=3))), LicenseRevoked)
    machine.restore(old)
    assert isinstance(outcome(machine.at(T0 + timedelta(hours=3))), LicenseRevoked)


def test_store_replaced_by_an_older_copy_after_limited_mode(machine: Machine) -> None:
    _install(machine, T0 + timedelta(hours=1), issued_at=T0)
    old = machine.snapshot()
    _install(machine, T0 + timedelta(hours=3), issued_at=T0 + timedelta(hours=2),
             mode=Mode.LIMITED, features=())
    machine.restore(old)
    result = outcome(machine.at(T0 + timedelta(hours=4)))
    assert isinstance(result, StoreRolledBack), result


def test_older_copy_with_the_witness_deleted(machine: Machine) -> None:
    _install(machine, T0 + timedelta(hours=1), issued_at=T0)
    old = machine.snapshot()
    machine.at(T0 + timedelta(hours=2))._state.store_refusal("license_revoked", "Revoked.")
    machine.restore(old)
    machine.delete_witness()
    assert isinstance(outcome(machine.at(T0 + timedelta(hours=3))), StoreRolledBack)


def test_token_older_than_one_already_installed(machine: Machine) -> None:
    older = machine.lab.token(issued_at=T0)
    _install(machine, T0 + timedelta(hours=2), issued_at=T0 + timedelta(hours=1))
    with pytest.raises(InvalidToken, match="older"):
        machine.at(T0 + timedelta(hours=3)).install_token(older)


def test_revoked_store_deleted_and_the_same_token_reinstalled(machine: Machine) -> None:
    token = machine.lab.token(issued_at=T0)
    machine.at(T0 + timedelta(hours=1)).install_token(token)
    machine.at(T0 + timedelta(hours=2))._state.store_refusal("license_revoked", "Revoked.")
    machine.store.unlink()
    with pytest.raises(LicenseRevoked):
        machine.at(T0 + timedelta(hours=3)).install_token(token)


def test_a_moved_or_copied_store_is_not_a_rollback(machine: Machine, tmp_path: Path) -> None:
    _install(machine, T0 + timedelta(hours=1), issued_at=T0)
    moved = tmp_path / "moved"
    shutil.copytree(machine.store.parent, moved)
    client = machine.lab.make_client(store_path=moved)
    assert isinstance(client.check(), License)


def test_documented_limit_every_file_and_the_clock_rolled_back(machine: Machine) -> None:
    """docs/security.md: someone who restores the store AND the witness AND sets the
    clock back keeps the old license until its own exp. Only the server can stop that."""
    _install(machine, T0 + timedelta(hours=1), issued_at=T0)
    store, witness = machine.snapshot(), machine.witness.read_bytes()
    machine.at(T0 + timedelta(hours=2))._state.store_refusal("license_revoked", "Revoked.")
    machine.restore(store)
    machine.witness.write_bytes(witness)
    assert isinstance(outcome(machine.at(T0 + timedelta(hours=1))), License)


# --------------------------------------------------------------------------- with the server


@pytest.fixture
def online(server: InProcessServer, tmp_path: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(product: str, keys: list[str], **kwargs: object) -> App:
        app = App(server, product, keys, tmp_path / "machine", **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.client.close()


def _unreachable(app: App) -> LicenseClient:
    """The same app started while the server cannot be reached."""
    return LicenseClient(**{**app.args, "transport": unreachable(),
                            "timeout": 1.0})


def test_older_copy_after_online_revocation(server: InProcessServer,
                                            online: Callable[..., App]) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product)
    app = online(product, keys)
    app.client.activate(key["license_key"])
    old = app.client.store_path.read_bytes()
    server.admin.revoke_license(key["id"])
    with pytest.raises(LicenseRevoked):
        app.client.refresh()
    app.client.store_path.write_bytes(old)
    with pytest.raises(LicenseRevoked):
        _unreachable(app).check()  # offline: the witness remembers
    with pytest.raises(LicenseRevoked):
        app.restart().check()  # online: the server says so again


def test_older_copy_after_erasure_recovers_limited_online(server: InProcessServer,
                                                          online: Callable[..., App]) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product)["license_key"]
    app = online(product, keys)
    assert app.client.activate(key, email=EMAIL, consent=True).mode is Mode.FULL
    old = app.client.store_path.read_bytes()
    assert app.client.request_erasure().mode is Mode.LIMITED
    app.client.store_path.write_bytes(old)
    with pytest.raises(StoreRolledBack):
        _unreachable(app).check()
    recovered = app.restart().check()  # the server's word: limited, and no lock-out
    assert recovered.mode is Mode.LIMITED and recovered.email is None
    assert app.restart().check().mode is Mode.LIMITED  # and offline again from now on
    assert EMAIL not in app.client.store_path.read_text(errors="replace")


# --------------------------------------------------------------------------- the family

_EVENTS = ("revoked", "limited", "expired", "suspended")
_ATTACKS = ("older copy", "older copy, witness deleted", "store deleted, token reinstalled",
            "clock set back", "older copy and clock set back")


def _scenario(folder: Path, rng: random.Random) -> tuple[str, bool]:
    """One random rollback attempt; returns (description, refused as designed)."""
    machine = Machine(folder)
    try:
        event, attack = rng.choice(_EVENTS), rng.choice(_ATTACKS)
        start = T0 + timedelta(minutes=rng.randrange(600))
        token = machine.lab.token(issued_at=start, expires_at=start + timedelta(days=10))
        machine.at(start + timedelta(minutes=30)).install_token(token)
        old = machine.snapshot()
        later = start + timedelta(hours=rng.randint(1, 48))
        if event in ("revoked", "suspended"):
            code = "license_revoked" if event == "revoked" else "license_suspended"
            machine.at(later)._state.store_refusal(code, "Refused.")
        elif event == "limited":
            machine.at(later).install_token(machine.lab.token(
                issued_at=later - timedelta(minutes=1), mode=Mode.LIMITED, features=()))
        else:
            later = start + timedelta(days=11)
            outcome(machine.at(later))
        back = start + timedelta(minutes=31)
        now = later if attack in ("older copy", "older copy, witness deleted") else back
        result: License | LicenseError
        try:
            if attack.startswith("older copy"):
                machine.restore(old)
                if "witness" in attack:
                    machine.delete_witness()
                result = outcome(machine.at(now))
            elif attack == "store deleted, token reinstalled":
                machine.store.unlink()
                result = machine.at(now).install_token(token)
            else:
                result = outcome(machine.at(now))
        except LicenseError as exc:
            result = exc
        ok = not isinstance(result, License) or (
            event == "limited" and result.mode is Mode.LIMITED)
        return f"{event} then {attack}: {result!r}"[:200], ok
    finally:
        machine.close()


def family(scale: Scale) -> Tally:
    """Random rollback attempts (offline) after a revocation, suspension, limited mode or expiry."""
    tally = Tally("rollback")
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    root = Path(tempfile.mkdtemp(prefix="sdna-rollback-"))
    state_home = os.environ.get("SOFTWARE_DNA_STATE_HOME")
    try:
        for i in range(scale.pick(40, 1500)):
            folder = root / str(i)
            os.environ["SOFTWARE_DNA_STATE_HOME"] = str(folder / "state")
            what, ok = _scenario(folder, rng)
            tally.check(ok, f"seed {seed} #{i}: {what}")
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        if state_home is None:
            os.environ.pop("SOFTWARE_DNA_STATE_HOME", None)
        else:
            os.environ["SOFTWARE_DNA_STATE_HOME"] = state_home
        shutil.rmtree(root, ignore_errors=True)
    return tally


def test_family_short_run() -> None:
    family(Scale.SHORT).assert_clean()
