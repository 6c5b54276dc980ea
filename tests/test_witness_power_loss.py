"""A rollback witness damaged by a power loss (or a disk error) must not lock out a paying user.

The witness (software_dna.client.rollback) keeps its previous copy (``.prev``);
reading falls back to it. When no copy can be read the store needs the
server's word: with the server, the witness is rebuilt at once; without it the
license works until the token's refresh time, then says what happened. Real
server (in process), real files, real crypto; time moves through the clients'
``clock=``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna import License, LicenseClient, LicenseRevoked, StoreRolledBack
from software_dna.client.rollback import ROLLED_BACK, RollbackGuard, WitnessState
from software_dna.store import Store
from tests.airgapped import AirGapped
from tests.inprocess import InProcessServer, unreachable
from tests.test_client_e2e import App
from tests.test_offline import respond


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


REFRESH = timedelta(hours=1)
GRACE = timedelta(days=1)


class Machine:
    """One app on one machine, online or not, with a movable clock."""

    def __init__(self, server: InProcessServer, folder: Path) -> None:
        self.server = server
        self.product = "wpl-" + secrets.token_hex(4)
        self.keys = server.admin.setup_product(
            self.product, name="Power loss", features=["export"],
            refresh_interval=int(REFRESH.total_seconds()),
            offline_grace_period=int(GRACE.total_seconds()))
        self.license = server.admin.issue_license(self.product)
        self.app = App(server, self.product, self.keys, folder / "store")
        self.clients: list[LicenseClient] = []

    @property
    def guard(self) -> RollbackGuard:
        return self.app.client._state.guard

    @property
    def witness(self) -> Path:
        return self.guard.path

    @property
    def previous(self) -> Path:
        return self.guard.previous_path

    def copies(self) -> list[Path]:
        return [p for p in (self.witness, self.previous) if p.exists()]

    def set_aside(self) -> list[Path]:
        return sorted(self.witness.parent.glob("*.damaged-*"))

    def offline(self, after: timedelta = timedelta(0)) -> LicenseClient:
        """The app started at ``after`` from now, with the server unreachable."""
        self.app.offset = after
        client = LicenseClient(**{**self.app.args, "transport": unreachable(), "timeout": 1.0})
        self.clients.append(client)
        return client

    def online(self, after: timedelta = timedelta(0)) -> LicenseClient:
        self.app.offset = after
        return self.app.restart()

    def close(self) -> None:
        for client in [*self.clients, self.app.client]:
            client.close()


@pytest.fixture
def machine(server: InProcessServer, tmp_path: Path) -> Iterator[Machine]:
    m = Machine(server, tmp_path)
    m.app.client.activate(m.license["license_key"])
    m.app.client.refresh()  # a few writes: both copies exist
    assert m.witness.exists() and m.previous.exists()
    yield m
    m.close()


def zero(*paths: Path) -> None:
    """What a power loss leaves of a file written just before it: 0 bytes."""
    for path in paths:
        path.write_bytes(b"")


def test_zero_byte_witness_and_server_down_works_until_refresh_by_then_says_damaged(
        machine: Machine) -> None:
    zero(machine.witness, machine.previous)
    refresh_by = machine.offline().check().refresh_by
    assert refresh_by is not None
    later = refresh_by - machine.app.now() - timedelta(minutes=1)
    assert isinstance(machine.offline(later).check(), License)  # clock marks written meanwhile
    assert machine.guard.state() is WitnessState.DAMAGED
    assert [p.stat().st_size for p in machine.copies()] == [0, 0]  # left where they are

    with pytest.raises(StoreRolledBack) as caught:
        machine.offline(later + timedelta(minutes=2)).check()
    message = str(caught.value)
    assert "damaged" in message and "power loss" in message and "internet" in message
    assert message != ROLLED_BACK


def test_zero_byte_witness_and_server_up_gets_a_fresh_token_and_a_new_witness(
        machine: Machine) -> None:
    before = machine.app.client._state.read()["token"]
    zero(machine.witness, machine.previous)
    lic = machine.online().check()
    assert machine.app.client._state.read()["token"] != before  # the server confirmed
    assert machine.guard.state() is WitnessState.READABLE
    assert machine.guard.read() is not None and not machine.previous.exists()
    aside = machine.set_aside()
    assert len(aside) == 2 and all(p.stat().st_size == 0 for p in aside)  # kept, not deleted
    # Normal again: offline, after the old token's refresh time, within the grace period.
    assert machine.offline(REFRESH + timedelta(minutes=5)).check().license_id == lic.license_id


def test_current_copy_zero_bytes_previous_readable_works_offline_and_catches_a_rollback(
        machine: Machine) -> None:
    old_store = machine.app.client.store_path.read_bytes()
    machine.app.client.refresh()
    machine.app.client.refresh()
    zero(machine.witness)
    assert machine.guard.state() is WitnessState.READABLE
    # Past refresh_by, in the grace period: the readable (previous) copy vouches,
    # so this is the ordinary offline grace, not the damaged window.
    lic = machine.offline(REFRESH + timedelta(minutes=5)).check()
    assert lic.offline_grace_ends_at is not None

    machine.app.client.store_path.write_bytes(old_store)
    with pytest.raises(StoreRolledBack, match="older copy"):
        machine.offline(REFRESH + timedelta(minutes=10)).check()


def test_revocation_undone_by_one_store_write_and_a_destroyed_current_copy_needs_the_server(
        machine: Machine) -> None:
    """The previous copy is one write older, so a store put back by exactly one write is
    level with it: not vouched for. It works only within the damaged window, and the
    server (when reachable) has the last word."""
    old_store = machine.app.client.store_path.read_bytes()
    machine.server.admin.revoke_license(machine.license["id"])
    with pytest.raises(LicenseRevoked):
        machine.app.client.refresh()
    machine.app.client.store_path.write_bytes(old_store)
    machine.witness.unlink()
    refresh_by = machine.offline().check().refresh_by
    assert refresh_by is not None
    with pytest.raises(StoreRolledBack, match="damaged"):
        machine.offline(refresh_by - machine.app.now() + timedelta(minutes=1)).check()
    with pytest.raises(LicenseRevoked):
        machine.online().check()


def test_both_copies_deleted_is_a_rollback_offline(machine: Machine) -> None:
    machine.witness.unlink()
    machine.previous.unlink()
    with pytest.raises(StoreRolledBack) as caught:
        machine.offline().check()
    assert str(caught.value) == ROLLED_BACK


class PowerLoss(BaseException):
    """The process dies here."""


def test_crash_between_the_two_renames_leaves_a_readable_copy(
        machine: Machine, monkeypatch: pytest.MonkeyPatch) -> None:
    witness = machine.witness
    write = Store.write

    def die_on_the_witness(self: Store, data: Any) -> None:
        if self.path == witness:
            raise PowerLoss
        write(self, data)

    monkeypatch.setattr(Store, "write", die_on_the_witness)
    with pytest.raises(PowerLoss):  # the store is written, then the witness's first rename
        machine.app.client._state.save_settings({"theme": "dark"}, dirty=True)
    monkeypatch.undo()

    assert not witness.exists() and machine.previous.exists()
    fresh = RollbackGuard(machine.product, machine.guard._key_material, path=witness)
    assert fresh.state() is WitnessState.READABLE and fresh.read() is not None
    assert isinstance(machine.offline(REFRESH + timedelta(minutes=5)).check(), License)
    machine.app.client._state.save_settings({"theme": "light"}, dirty=True)
    assert witness.exists() and machine.guard.unconfirmed(
        machine.app.client._state.read()) is False


def test_a_store_write_while_damaged_does_not_recreate_the_witness(machine: Machine) -> None:
    zero(machine.witness, machine.previous)
    client = machine.offline(timedelta(minutes=30))
    client.check()  # moves the clock mark: a store write
    client._state.save_settings({"theme": "dark"}, dirty=True)
    assert [p.stat().st_size for p in machine.copies()] == [0, 0]
    assert machine.set_aside() == []
    assert machine.guard.state() is WitnessState.DAMAGED


@pytest.fixture
def air_gapped(server: InProcessServer, tmp_path: Path) -> Callable[..., AirGapped]:
    def make(product: str, keys: list[str], **kwargs: Any) -> AirGapped:
        return AirGapped(product, keys, tmp_path / "air-gapped", **kwargs)
    return make


def test_air_gapped_license_with_a_zero_byte_witness_keeps_working_offline(
        server: InProcessServer, air_gapped: Callable[..., AirGapped]) -> None:
    product = "wpl-air-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, name="Air gapped", features=["export"],
                                      protection="offline", air_gapped=True)
    issued = server.admin.issue_license(product)
    app = air_gapped(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    app.client.activate_offline(respond(server, request))
    guard = app.client._state.guard
    assert guard.state() is WitnessState.READABLE
    zero(*(p for p in (guard.path, guard.previous_path) if p.exists()))

    assert isinstance(app.restart().check(), License)
    app.offset = timedelta(days=300)  # within the air-gapped token's lifetime (365 days)
    assert app.restart().check().license_id == issued["id"]
    assert app.client._state.guard.state() is WitnessState.DAMAGED  # no server: not repaired
    app.offset = timedelta(days=400)  # the token ended: a new activation response is needed
    with pytest.raises(StoreRolledBack):
        app.restart().check()
