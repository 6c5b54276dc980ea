"""Local state on simulated machines: honest drift keeps the store and the seat; a copy never works.

Each test is one scenario a paying user meets. The machines are
:class:`software_dna.testing.SimulatedMachine` (their own component values and
home folder); the server is the real app in this process.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from software_dna import (
    FingerprintUnavailable,
    LicenseClient,
    NotActivated,
    StoreFromAnotherMachine,
    WrongMachine,
)
from software_dna.store import Store
from software_dna.testing import SimulatedMachine

from .inprocess import InProcessServer
from .test_store import v1_file

_products = itertools.count()
KEY = "k4.public." + "A" * 43


@pytest.fixture
def product(inprocess_server: InProcessServer) -> tuple[str, list[str]]:
    """A fresh product (one per test: its seats and trials are the test's own)."""
    name = f"local-state-{next(_products)}"
    return name, inprocess_server.admin.setup_product(name, fingerprint_tolerance=1)


def client_on(machine: SimulatedMachine, server: InProcessServer,
              product: tuple[str, list[str]]) -> LicenseClient:
    """The app started on ``machine`` (a new client: a new process)."""
    return LicenseClient(product=product[0], public_keys=product[1],
                         transport=server.transport(), machine=machine)


def activations(server: InProcessServer, license_id: str) -> list[dict[str, object]]:
    return [a for a in server.admin.list_activations(license_id) if a.get("active", True)]


@pytest.mark.parametrize("component", ["machine_id", "mac", "cpu"])
def test_one_component_drifts_same_store_same_seat(
        tmp_path: Path, inprocess_server: InProcessServer, product: tuple[str, list[str]],
        component: str) -> None:
    laptop = SimulatedMachine(tmp_path / "laptop")
    key = inprocess_server.admin.issue_license(product[0], seats=1)["license_key"]
    first = client_on(laptop, inprocess_server, product).activate(key)
    laptop.drift(component)
    again = client_on(laptop, inprocess_server, product)
    assert again.check().activation_id == first.activation_id  # the store still opens
    assert again.refresh().activation_id == first.activation_id  # the server agrees
    assert len(activations(inprocess_server, first.license_id)) == 1


def test_machine_id_regenerated_at_every_boot_keeps_the_license(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    """WSL / read-only images: a new machine id at each boot, everything else stays.

    Locally the store follows every boot; on the server such a re-bind is not
    counted against the product's ``rebind_limit`` (default 3 per period).
    """
    box = SimulatedMachine(tmp_path / "wsl", machine_id_at_boot=True)
    key = inprocess_server.admin.issue_license(product[0], seats=1)["license_key"]
    first = client_on(box, inprocess_server, product).activate(key)
    for _ in range(6):
        box.reboot()
        client = client_on(box, inprocess_server, product)
        assert client.check().activation_id == first.activation_id
        assert client.refresh().activation_id == first.activation_id
    assert len(activations(inprocess_server, first.license_id)) == 1


def test_network_card_changes_are_still_counted(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    """Only a machine-id-only change is free: walking to other hardware is bounded."""
    laptop = SimulatedMachine(tmp_path / "laptop")
    key = inprocess_server.admin.issue_license(product[0], seats=1)["license_key"]
    client_on(laptop, inprocess_server, product).activate(key)
    for _ in range(3):  # the default bound: 3 counted re-binds per period
        laptop.drift("mac")
        client_on(laptop, inprocess_server, product).refresh()
    laptop.drift("mac")
    with pytest.raises(WrongMachine, match="changed too often"):
        client_on(laptop, inprocess_server, product).refresh()


def test_two_components_drift_at_once_wrong_machine_and_nothing_lost(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    laptop = SimulatedMachine(tmp_path / "laptop")
    key = inprocess_server.admin.issue_license(product[0], seats=2)["license_key"]
    first = client_on(laptop, inprocess_server, product).activate(key)
    before = sorted(p.name for p in laptop.home.rglob("*") if p.is_file())
    old_mac = list(laptop.macs)
    laptop.drift("machine_id", "mac")
    with pytest.raises(StoreFromAnotherMachine) as caught:
        client_on(laptop, inprocess_server, product).check()
    assert isinstance(caught.value, WrongMachine) and caught.value.moved_to is None
    assert "changed too much" in str(caught.value)
    assert sorted(p.name for p in laptop.home.rglob("*") if p.is_file()) == before
    laptop.set(macs=old_mac)  # the network card is back: the license is too
    assert client_on(laptop, inprocess_server, product).check().activation_id \
        == first.activation_id


def test_store_copied_to_another_machine_is_refused(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    office = SimulatedMachine(tmp_path / "office")
    home = SimulatedMachine(tmp_path / "home")
    key = inprocess_server.admin.issue_license(product[0], seats=1)["license_key"]
    client_on(office, inprocess_server, product).activate(key)
    office.copy_files_to(home)
    with pytest.raises(StoreFromAnotherMachine, match="another computer"):
        client_on(home, inprocess_server, product).check()


def test_activating_after_too_much_drift_starts_over_and_keeps_the_old_files(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    laptop = SimulatedMachine(tmp_path / "laptop")
    key = inprocess_server.admin.issue_license(product[0], seats=2)["license_key"]
    client_on(laptop, inprocess_server, product).activate(key)
    laptop.drift("machine_id", "mac")
    client = client_on(laptop, inprocess_server, product)
    lic = client.activate(key)  # a new machine by the rules: a second seat
    assert client_on(laptop, inprocess_server, product).check().activation_id \
        == lic.activation_id
    aside = [p.name for p in laptop.home.rglob("*.other-machine-*")]
    assert any(".keyring." in name for name in aside), aside


def test_store_moved_keeps_the_installation_id(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    """User seats: the installation id depends on the machine key and the account, not the path."""
    laptop = SimulatedMachine(tmp_path / "laptop")
    first = LicenseClient(product=product[0], public_keys=product[1], machine=laptop,
                          transport=inprocess_server.transport(), store_path=tmp_path / "a")
    second = LicenseClient(product=product[0], public_keys=product[1], machine=laptop,
                           transport=inprocess_server.transport(), store_path=tmp_path / "b")
    derive = first._state.derived_installation_id
    assert derive() == second._state.derived_installation_id()
    other = SimulatedMachine(tmp_path / "other")
    third = LicenseClient(product=product[0], public_keys=product[1], machine=other,
                          transport=inprocess_server.transport(), store_path=tmp_path / "a")
    assert third._state.derived_installation_id() != derive()


def test_container_without_machine_id_or_card_cannot_be_identified(tmp_path: Path) -> None:
    box = SimulatedMachine.container(tmp_path / "box")
    client = LicenseClient(product="p", public_keys=[KEY], machine=box,
                           server_url="https://unused.invalid")
    with pytest.raises(NotActivated):
        client.check()  # nothing stored: no need to identify the machine
    with pytest.raises(FingerprintUnavailable):
        client.create_activation_request("ABCD-EFGH")


def test_upgrade_from_0_2_keeps_the_license_offline_then_rekeys(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    """A store and witness written by 0.2 (format 1 under the machine-id secret, no keyring)."""
    laptop = SimulatedMachine(tmp_path / "laptop")
    key = inprocess_server.admin.issue_license(product[0], seats=1)["license_key"]
    link = inprocess_server.link()
    client = LicenseClient(product=product[0], public_keys=product[1], machine=laptop,
                           transport=link.transport())
    first = client.activate(key)
    state = client._state
    legacy = laptop.legacy_secret(product[0])
    for path, name in ((state.store_path, product[0]),
                       (state.guard.path, product[0] + "\0witness")):
        data = Store(path, product=name,
                     key_material=state.machine_key().derive(
                         "store" if path == state.store_path else "witness")).read()
        assert data is not None
        path.write_bytes(v1_file(legacy, data, product=name))
    state.machine_key().path.unlink()  # 0.2 had no keyring
    laptop.forget()
    link.offline()
    upgraded = LicenseClient(product=product[0], public_keys=product[1], machine=laptop,
                             transport=link.transport())
    assert upgraded.check().activation_id == first.activation_id  # offline, no StoreRolledBack
    link.online()
    assert upgraded.refresh().activation_id == first.activation_id
    assert upgraded.store_path.read_bytes()[4] == 2  # written again under the machine key
    assert len(activations(inprocess_server, first.license_id)) == 1


def test_machine_id_change_with_a_padded_card_list_is_counted(
        tmp_path: Path, inprocess_server: InProcessServer,
        product: tuple[str, list[str]]) -> None:
    """The free re-bind needs the exact same card addresses: a list padded with another
    machine's address (the first step of walking to it) is counted as before."""
    laptop = SimulatedMachine(tmp_path / "laptop")
    key = inprocess_server.admin.issue_license(product[0], seats=1)["license_key"]
    client_on(laptop, inprocess_server, product).activate(key)
    for _ in range(3):
        kept = laptop.macs[-1]
        laptop.set(machine_id=os.urandom(16).hex(), macs=[kept, _new_mac()])
        client_on(laptop, inprocess_server, product).refresh()
    laptop.set(machine_id=os.urandom(16).hex(), macs=[laptop.macs[-1], _new_mac()])
    with pytest.raises(WrongMachine, match="changed too often"):
        client_on(laptop, inprocess_server, product).refresh()


def _new_mac() -> str:
    return "00:1b:21:" + ":".join(f"{b:02x}" for b in os.urandom(3))
