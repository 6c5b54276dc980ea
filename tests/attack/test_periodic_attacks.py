"""Attack review: the periodic check and an unlucky machine."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from software_dna import License, LicenseError


def wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("unreadable", [("machine_id",), ("machine_id", "mac"),
                                        ("machine_id", "cpu")])
def test_identifiers_unreadable_for_a_moment_are_a_failure_not_a_verdict(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        unreadable: tuple[str, ...]) -> None:
    """A machine not identifiable *now* (a permission glitch on /etc/machine-id, the network
    card driver reloading) counts as a failure for on_error, never on_change(old, None)
    (docs/api.md)."""
    product = license_product(refresh_interval=60, offline_grace_period=3600)
    key = license_server.admin.issue_license(product.name)["license_key"]
    laptop = machines("laptop")
    license_client(product, laptop).activate(key)
    saved = {"machine_id": laptop.machine_id, "mac": list(laptop.macs), "cpu": laptop.cpu}
    client = license_client(product, laptop)
    changes: list[tuple[License | None, License | None]] = []
    errors: list[LicenseError] = []
    lock = threading.Lock()

    def on_change(old: License | None, new: License | None) -> None:
        with lock:
            changes.append((old, new))

    def on_error(exc: LicenseError) -> None:
        with lock:
            errors.append(exc)

    client.check()
    values: dict[str, Any] = {}
    for name in unreadable:
        values[{"mac": "macs"}.get(name, name)] = [] if name == "mac" else None
    laptop.set(**values)
    check = client.start_periodic_check(0.2, on_change=on_change, on_error=on_error, jitter=0)
    try:
        time.sleep(1.5)
    finally:
        check.stop()
    laptop.set(machine_id=saved["machine_id"], macs=saved["mac"], cpu=saved["cpu"])
    print(unreadable, [type(e).__name__ for e in errors][:3], changes[:2])
    assert [c for c in changes if c[1] is None] == [], (changes, errors)
