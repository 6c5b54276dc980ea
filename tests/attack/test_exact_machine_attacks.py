"""Attack review (second pass): exact-machine tokens and the unreadable-component allowance.

Each test asserts the promise; a failing one is a finding.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from software_dna import FingerprintUnavailable, LicenseClient, WrongMachine
from software_dna.testing import SimulatedMachine
from tests.airgapped import AirGapped
from tests.inprocess import InProcessServer
from tests.security.test_airgap_protection import post_request, respond

MAC_X = "02:11:22:33:44:01"
MAC_Y = "02:11:22:33:44:02"


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


def new_product(server: InProcessServer, **policy: Any) -> tuple[str, list[str]]:
    product = "atk2-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, features=["export"], **policy)
    return product, keys


def two_real_machines(tmp_path: Path) -> tuple[SimulatedMachine, SimulatedMachine]:
    """Two honest computers of one model: every identifier readable and different."""
    return (SimulatedMachine(tmp_path / "x", machine_id="machine-x-0001", macs=[MAC_X]),
            SimulatedMachine(tmp_path / "y", machine_id="machine-y-0002", macs=[MAC_Y]))


def test_air_gapped_request_claiming_no_machine_id_and_both_macs_takes_no_seat(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    """The request block's set says "machine id unreadable" and lists the MAC addresses of
    two computers, hoping for a token that allows the unreadable part as a difference (each
    computer's own machine id) while a shared MAC carries the match. Exact-machine tokens
    never allow for a claimed-unreadable part: the request is refused up front, no seat."""
    product, keys = new_product(server, air_gapped=True)
    issued = server.admin.issue_license(product, seats=1)
    forged = SimulatedMachine(tmp_path / "forged", machine_id=None, macs=[MAC_X, MAC_Y])
    maker = machine(product, keys, "maker", machine=forged)
    status, body = post_request(
        server, maker.client.create_activation_request(issued["license_key"]))
    assert (status, body["error"]["code"]) == (400, "invalid_fingerprint"), body
    assert server.admin.get_license(issued["id"])["seats_in_use"] == 0


def test_trial_claiming_no_machine_id_and_both_macs_is_refused(
        server: InProcessServer, tmp_path: Path) -> None:
    """The same with a trial: refused before the trial is used."""
    product, keys = new_product(server, trial_days=7)
    forged = SimulatedMachine(tmp_path / "forged", machine_id=None, macs=[MAC_X, MAC_Y])
    trial = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                          store_path=tmp_path / "trial", transport=server.transport(),
                          machine=forged)
    with pytest.raises(FingerprintUnavailable):
        trial.start_trial()
    assert server.admin.list_trials(product) == []


def test_air_gapped_request_claiming_no_network_card_is_refused_for_every_clone(
        server: InProcessServer, machine: Callable[..., AirGapped], tmp_path: Path) -> None:
    """The request says "no network card", hoping the allowance for it lets every VM cloned
    from one image (same machine id, its own MAC) run the token: refused up front, and a
    token made from an honest set refuses the clones (they differ in the MAC)."""
    product, keys = new_product(server, air_gapped=True)
    issued = server.admin.issue_license(product, seats=2)
    forged = SimulatedMachine(tmp_path / "forged", machine_id="cloned-image-id", macs=[])
    maker = machine(product, keys, "maker", machine=forged)
    status, body = post_request(
        server, maker.client.create_activation_request(issued["license_key"]))
    assert (status, body["error"]["code"]) == (400, "invalid_fingerprint"), body
    honest = machine(product, keys, "honest", machine=SimulatedMachine(
        tmp_path / "honest", machine_id="cloned-image-id", macs=["02:11:22:33:55:09"]))
    honest.client.activate_offline(respond(
        server, honest.client.create_activation_request(issued["license_key"])))
    token = honest.client._state.read()["token"]
    for i in range(3):
        clone = SimulatedMachine(tmp_path / f"clone{i}", machine_id="cloned-image-id",
                                 macs=[f"02:11:22:33:55:0{i}"])
        with pytest.raises(WrongMachine):
            machine(product, keys, f"on-clone{i}", machine=clone).client.install_token(token)
