"""Attack review (second pass): exact-machine tokens and the unreadable-component allowance.

Each test asserts the promise; a failing one is a finding.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from software_dna import LicenseClient, WrongMachine
from software_dna.client import verifier
from software_dna.testing import SimulatedMachine
from tests.inprocess import InProcessServer
from tests.security.test_airgap_protection import respond
from tests.test_offline import AirGapped

MAC_X = "02:11:22:33:44:01"
MAC_Y = "02:11:22:33:44:02"


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Callable[..., AirGapped]]:
    def make(product: str, keys: list[str], name: str = "machine", **kwargs: Any) -> AirGapped:
        return AirGapped(product, keys, tmp_path / name, **kwargs)
    yield make


def new_product(server: InProcessServer, **policy: Any) -> tuple[str, list[str]]:
    product = "atk2-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, features=["export"], **policy)
    return product, keys


def two_real_machines(tmp_path: Path) -> tuple[SimulatedMachine, SimulatedMachine]:
    """Two honest computers of one model: every identifier readable and different."""
    return (SimulatedMachine(tmp_path / "x", machine_id="machine-x-0001", macs=[MAC_X]),
            SimulatedMachine(tmp_path / "y", machine_id="machine-y-0002", macs=[MAC_Y]))


def test_air_gapped_token_from_a_set_claiming_no_machine_id_and_both_macs_runs_on_two_machines(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    """The request block's set says "machine id unreadable" and lists the MAC addresses of
    two computers. The token then allows one differing component (the 'unreadable' machine
    id) and a MAC list matches when it shares one address, so each computer's own readable
    machine id is the allowed difference and its MAC carries the match: one seat, one token,
    two machines, never refreshed."""
    product, keys = new_product(server, air_gapped=True)
    issued = server.admin.issue_license(product, seats=1)
    forged = SimulatedMachine(tmp_path / "forged", machine_id=None, macs=[MAC_X, MAC_Y])
    maker = machine(product, keys, "maker", machine=forged)
    maker.client.activate_offline(respond(
        server, maker.client.create_activation_request(issued["license_key"])))
    token = maker.client._state.read()["token"]
    x, y = two_real_machines(tmp_path)
    on_x = machine(product, keys, "on-x", machine=x)
    on_y = machine(product, keys, "on-y", machine=y)
    accepted = []
    for app in (on_x, on_y):
        try:
            app.client.install_token(token)
            accepted.append(app.restart().check().license_id)
        except WrongMachine:
            pass
    assert len(accepted) <= 1, \
        "one air-gapped token runs on two machines with different ids and MACs"


def test_trial_token_from_a_set_claiming_no_machine_id_and_both_macs_runs_on_two_machines(
        server: InProcessServer, tmp_path: Path) -> None:
    """The same with a trial: the SDK's own check of the trial token (tolerance = the
    unreadable count) accepts both computers, each under its own store."""
    product, keys = new_product(server, trial_days=7)
    forged = SimulatedMachine(tmp_path / "forged", machine_id=None, macs=[MAC_X, MAC_Y])
    trial = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                          store_path=tmp_path / "trial", transport=server.transport(),
                          machine=forged)
    lic = trial.start_trial()
    x, y = two_real_machines(tmp_path)
    runs = [verifier._same_machine(lic, m.fingerprint(product)) for m in (x, y)]
    assert runs.count(True) <= 1, "one trial token matches two machines with different ids and MACs"


def test_air_gapped_token_from_a_set_claiming_no_network_card_runs_on_every_clone_of_its_image(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    """The request says "no network card" (mac unreadable); the token then allows one
    differing component, which the MAC of any VM cloned from the same image (same machine
    id, CPU and OS; its own MAC address) uses up: one air-gapped seat runs on every clone.
    With the MAC read honestly, the clone would be refused (it differs in the MAC)."""
    product, keys = new_product(server, air_gapped=True)
    issued = server.admin.issue_license(product, seats=1)
    forged = SimulatedMachine(tmp_path / "forged", machine_id="cloned-image-id", macs=[])
    maker = machine(product, keys, "maker", machine=forged)
    maker.client.activate_offline(respond(
        server, maker.client.create_activation_request(issued["license_key"])))
    token = maker.client._state.read()["token"]
    clones = [SimulatedMachine(tmp_path / f"clone{i}", machine_id="cloned-image-id",
                               macs=[f"02:11:22:33:55:0{i}"]) for i in range(3)]
    accepted = 0
    for i, clone in enumerate(clones):
        app = machine(product, keys, f"on-clone{i}", machine=clone)
        try:
            app.client.install_token(token)
            app.restart().check()
            accepted += 1
        except WrongMachine:
            pass
    assert accepted <= 1, f"one air-gapped token runs on {accepted} clones"
