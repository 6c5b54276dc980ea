"""Attack review: the re-activation lock-out (honest developers, seat rotation)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from software_dna import ActivationLocked
from software_dna.server.services.bindings import MACHINE_ID_REBINDS_PER_COUNTED
from tests.airgapped import AirGapped
from tests.test_offline import send_receipt


def counted(server: Any, license_id: str) -> int:
    answer = server.admin.lockout(license_id)
    for row in answer.get("limits", []):
        if row.get("kind") == "reactivations":
            return int(row["count"])
    return int(answer.get("new_activations", -1))


def test_wsl_developer_deactivating_and_activating_after_a_reboot_is_not_counted(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """A machine id regenerated at every boot (WSL): the same computer by the identity
    comparison (its MAC and CPU are unchanged, and a live activation is found again after
    a reboot). Deactivating and activating it again must not count toward the lock-out
    (within the bound of machine-id-only changes, tested below)."""
    product = license_product(reactivation_limit=0)
    issued = license_server.admin.issue_license(product.name, seats=1)
    box = machines("wsl", machine_id_at_boot=True)
    license_client(product, box, clock=app_clock).activate(issued["license_key"])
    for _ in range(3):
        app_clock.advance(hours=1)
        license_client(product, box, clock=app_clock).deactivate()
        app_clock.advance(hours=1)
        box.reboot()
        license_client(product, box, clock=app_clock).activate(issued["license_key"])
    assert counted(license_server, issued["id"]) == 1


def test_honest_developer_with_a_new_network_card_returning_is_not_counted(
        license_server: Any, license_product: Any, license_client: Any, machines: Any) -> None:
    product = license_product(reactivation_limit=0)
    issued = license_server.admin.issue_license(product.name, seats=1)
    laptop = machines("laptop")
    license_client(product, laptop).activate(issued["license_key"])
    for _ in range(3):
        license_client(product, laptop).deactivate()
        laptop.drift("mac")
        license_client(product, laptop).activate(issued["license_key"])
    assert counted(license_server, issued["id"]) == 1


def test_rotation_between_an_online_and_an_air_gapped_computer_counts_each_return(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        tmp_path: Path) -> None:
    """A (online) and C (air-gapped) take turns on a one-seat license: once C activated,
    A's return is a new activation."""
    product = license_product(reactivation_limit=2, air_gapped=True)
    issued = license_server.admin.issue_license(product.name, seats=1)
    a = machines("a")
    license_client(product, a).activate(issued["license_key"])            # 1
    license_client(product, a).deactivate()
    c = AirGapped(product.name, product.public_keys, tmp_path / "c",
                  machine=machines("c"))
    request = c.client.create_activation_request(issued["license_key"])
    answer = license_server.session().post(f"{license_server.url}/v1/offline/activations",
                                           json={"request": request}, timeout=30)
    assert answer.status_code == 201, answer.text                        # 2
    c.client.activate_offline(answer.json()["response"])
    send_receipt(license_server, c.client.deactivate_offline())
    license_client(product, a).activate(issued["license_key"])            # 3: a return after C
    assert counted(license_server, issued["id"]) == 3



def test_a_developer_returning_on_a_team_license_is_not_counted(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """Two seats: colleague B activated first-thing in the morning; later developer A
    deactivates and activates their own computer again. No other computer activated the
    license since A's deactivation, so A's return is not new (docs/seats.md)."""
    product = license_product(reactivation_limit=0)
    issued = license_server.admin.issue_license(product.name, seats=2)
    a, b = machines("a"), machines("b")
    license_client(product, a, clock=app_clock).activate(issued["license_key"])
    license_client(product, b, clock=app_clock).activate(issued["license_key"])
    for _ in range(3):
        app_clock.advance(hours=2)
        license_client(product, a, clock=app_clock).deactivate()
        app_clock.advance(minutes=5)
        license_client(product, a, clock=app_clock).activate(issued["license_key"])  # back
    assert counted(license_server, issued["id"]) == 2


def test_two_os_accounts_rotating_one_user_seat_are_counted(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """A user-seat license (a seat is a person): two people with their own OS accounts on one
    computer take turns on one seat by deactivating and activating. The return rule looks at
    the machine only, so after the first hand-over every turn is free."""
    product = license_product(reactivation_limit=1)
    issued = license_server.admin.issue_license(product.name, seats=1, seat_mode="user")
    laptop = machines("shared")
    ben = machines.account(laptop, "ben")
    order = [laptop, ben] * 4
    for account in order:
        app_clock.advance(hours=1)
        try:
            license_client(product, account, clock=app_clock).activate(issued["license_key"])
        except ActivationLocked:
            return  # the lock-out stopped the rotation
        app_clock.advance(hours=1)
        license_client(product, account, clock=app_clock).deactivate()
    pytest.fail(f"{len(order)} turns on one user seat, counted: "
                f"{counted(license_server, issued['id'])} of {1 + 1} allowed")


def test_one_account_returning_to_its_user_seat_is_not_counted(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """The honest side of the user-seat rule: the same OS account deactivating and
    activating again on its own computer is a return."""
    product = license_product(reactivation_limit=0)
    issued = license_server.admin.issue_license(product.name, seats=1, seat_mode="user")
    laptop = machines("mine")
    for _ in range(4):
        app_clock.advance(hours=1)
        license_client(product, laptop, clock=app_clock).activate(issued["license_key"])
        app_clock.advance(hours=1)
        license_client(product, laptop, clock=app_clock).deactivate()
    assert counted(license_server, issued["id"]) == 1


def _turns(product: Any, license_key: str, license_client: Any, order: list[Any],
           app_clock: Any) -> int:
    """Activate and deactivate each machine of ``order`` in turn; the number of
    activations made before the lock-out refused one (all of them: ``len(order)``)."""
    for made, machine in enumerate(order):
        app_clock.advance(hours=1)
        try:
            license_client(product, machine, clock=app_clock).activate(license_key)
        except ActivationLocked:
            return made
        app_clock.advance(hours=1)
        license_client(product, machine, clock=app_clock).deactivate()
    return len(order)


def test_two_clones_rotating_one_seat_by_deactivating_are_stopped_by_the_machine_id_bound(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """Two cloned VMs (identical MACs, CPU, OS; machine ids of their own) take turns on one
    seat by deactivating and activating: each hand-over looks exactly like a WSL box coming
    back after a reboot. Free only up to MACHINE_ID_REBINDS_PER_COUNTED x rebind_limit x
    seats returns per rebind_period for the whole license; then every turn counts."""
    product = license_product(reactivation_limit=0, rebind_limit=1)
    issued = license_server.admin.issue_license(product.name, seats=1)
    vm_a = machines("vm-a")
    vm_b = machines.account(vm_a, "vm-b")  # the same component values, a disk of its own
    vm_b.set(machine_id=uuid.uuid4().hex)
    bound = MACHINE_ID_REBINDS_PER_COUNTED * 1 * 1
    made = _turns(product, issued["license_key"], license_client, [vm_a, vm_b] * (bound + 5),
                  app_clock)
    assert made == 1 + bound, made  # the first activation, then the free returns


def test_machine_id_rebinds_and_returns_share_one_bound(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """A return starts a new activation with a re-bind budget of its own; the bound of free
    machine-id-only returns counts the license's machine-id re-binds too, so spending the
    re-bind budget and then returning does not renew it for ever."""
    product = license_product(reactivation_limit=0, rebind_limit=1)
    issued = license_server.admin.issue_license(product.name, seats=1)
    box = machines("wsl-busy", machine_id_at_boot=True)
    license_client(product, box, clock=app_clock).activate(issued["license_key"])
    for _ in range(MACHINE_ID_REBINDS_PER_COUNTED - 1):  # reboots seen by a refresh
        app_clock.advance(hours=1)
        box.reboot()
        license_client(product, box, clock=app_clock).refresh()
    for expected_locked in (False, True):  # one free return left, then counted
        app_clock.advance(hours=1)
        license_client(product, box, clock=app_clock).deactivate()
        box.reboot()
        if expected_locked:
            with pytest.raises(ActivationLocked):
                license_client(product, box, clock=app_clock).activate(issued["license_key"])
        else:
            license_client(product, box, clock=app_clock).activate(issued["license_key"])
    assert counted(license_server, issued["id"]) == 1


def test_a_machine_sending_another_machines_macs_plus_its_own_is_not_a_return(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        app_clock: Any) -> None:
    """The machine-id-only return needs the MAC set exactly equal: a set padded with the
    released machine's addresses (and its CPU and OS) on a machine id of its own is
    another machine, and its activation counts."""
    product = license_product(reactivation_limit=0, rebind_limit=1)
    issued = license_server.admin.issue_license(product.name, seats=1)
    a = machines("padded-a")
    b = machines("padded-b", macs=[*a.macs, "02:00:5e:10:00:01"], cpu=a.cpu, os_arch=a.os_arch)
    assert _turns(product, issued["license_key"], license_client, [a, b], app_clock) == 1
