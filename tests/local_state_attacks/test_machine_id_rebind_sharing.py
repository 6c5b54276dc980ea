"""One seat on two cloned VMs (identical MACs, CPU, OS; machine ids of their own).

A re-bind where only the machine id changed (the MAC set exactly equal) is not
counted against rebind_limit; two machines taking turns are meant to be caught
by the sharing checks (secret rotation, A -> B -> A between bound sets). Both
clones use one store folder (SOFTWARE_DNA_HOME on a share), so the rotated
secret is always the current one.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from ._helpers import outcome


def _two_clones_one_store(license_server: Any, license_product: Any, license_client: Any,
                          machines: Any, tmp_path: Any, boot_ids: bool,
                          b_machine_id: str | None) -> Any:
    product = license_product(rebind_limit=2)
    issued = license_server.admin.issue_license(product.name, seats=1)
    vm_a = machines("vm-a", environ={"SOFTWARE_DNA_HOME": str(tmp_path / "share")},
                    machine_id_at_boot=boot_ids)
    license_client(product, vm_a).activate(issued["license_key"])
    vm_b = machines.clone(vm_a, "vm-b")  # same ids, a copy of the disk, the same share
    vm_b.set(machine_id=b_machine_id)
    return product, issued, vm_a, vm_b


@pytest.mark.parametrize(("boot_ids", "b_machine_id"), [
    (False, uuid.uuid4().hex), (False, None), (False, "b" * 32),
], ids=["fixed-ids", "clone-b-id-unreadable", "clone-b-id-a-placeholder"])
def test_two_clones_taking_turns_on_one_seat_are_flagged_or_stopped(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        tmp_path: Any, boot_ids: bool, b_machine_id: str | None) -> None:
    """Eight refreshes, A and B in turn: the activation must end up flagged as shared
    (or a refresh refused). With the ids fixed it is (A -> B -> A between known sets)."""
    product, issued, vm_a, vm_b = _two_clones_one_store(
        license_server, license_product, license_client, machines, tmp_path, boot_ids,
        b_machine_id)
    results = []
    for _ in range(4):
        for vm in (vm_a, vm_b):
            vm.reboot()  # a new start; with boot ids, a new machine id
            results.append(type(outcome(license_client(product, vm).refresh)).__name__)
    (activation,) = license_server.admin.list_activations(issued["id"])
    print("refreshes:", results, "shared:", activation.get("shared_at"),
          activation.get("shared_reason"))
    stopped = any(name != "License" for name in results)
    assert activation.get("shared_at") is not None or stopped, (results, activation)



def test_clones_regenerating_their_ids_at_boot_are_stopped_by_the_bound(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        tmp_path: Any) -> None:
    """Ids regenerated at every boot look exactly like a WSL box: every re-bind is a
    machine-id-only one and no set comes back, so nothing alternates. Those re-binds are
    free only up to MACHINE_ID_REBINDS_PER_COUNTED x rebind_limit per period (40 here),
    then they are counted: the pair is stopped."""
    product, _issued, vm_a, vm_b = _two_clones_one_store(
        license_server, license_product, license_client, machines, tmp_path, True,
        uuid.uuid4().hex)
    results = []
    for _ in range(23):
        for vm in (vm_a, vm_b):
            vm.reboot()
            results.append(type(outcome(license_client(product, vm).refresh)).__name__)
    assert results[:40] == ["License"] * 40, results
    assert "WrongMachine" in results[40:], results
