"""Attacks on the machine key's keyring: copied, moved, edited, doubled.

One regression test per attack (each named after it), against the real SDK
on simulated machines and the in-process server. Known limit, documented in
docs/security.md: a USB network card moved with a copy of the files to a
machine of the same model counts as "all components but one".
"""

from __future__ import annotations

import json
import shutil
import threading
from typing import Any

import pytest

from software_dna import LicenseError, StoreFromAnotherMachine
from software_dna.fingerprint import _key_reading
from software_dna.fingerprint._keyring import wrap_keyring
from software_dna.testing import SimulatedMachine

from ._helpers import anchor, edit_keyring, keyring, outcome


def _restart(license_client: Any, product: Any, machine: Any) -> Any:
    machine.forget()  # a new process: nothing cached
    return license_client(product, machine)


# ------------------------------------------------------------------ exceptions escaping


def test_keyring_edited_to_n_65536_without_quick_wrap_raises_only_license_errors(
        activated: Any, license_client: Any) -> None:
    """n = 2**16 passes the keyring's own bound but hashlib.scrypt's maxmem (64 MiB)
    refuses it: a plain ValueError from OpenSSL escapes check()."""
    product, laptop, _, _ = activated
    edit_keyring(keyring(product.name, laptop),
                 lambda d: d.update(n=2**16, quick=None))
    result = outcome(_restart(license_client, product, laptop).check)
    assert isinstance(result, LicenseError), repr(result)


def test_keyring_present_holding_a_list_raises_only_license_errors(
        activated: Any, license_client: Any) -> None:
    """_parse calls set(present) before checking its items: unhashable -> TypeError."""
    product, laptop, _, _ = activated
    edit_keyring(keyring(product.name, laptop), lambda d: d.update(present=[[]]))
    result = outcome(_restart(license_client, product, laptop).check)
    assert isinstance(result, LicenseError), repr(result)


def test_keyring_wrap_names_holding_a_list_raises_only_license_errors(
        activated: Any, license_client: Any) -> None:
    """_open_slowly calls set(choice) on each wrap's names: unhashable -> TypeError."""
    product, laptop, _, _ = activated
    edit_keyring(keyring(product.name, laptop),
                 lambda d: d.update(quick=None, wraps=[{"names": [["x"]], "box": "AA"}]))
    result = outcome(_restart(license_client, product, laptop).check)
    assert isinstance(result, LicenseError), repr(result)


@pytest.mark.parametrize("content", [
    b"", b"{", b"null", b"[]", b'{"version": 1}', b"\xff\xfe" * 10,
    json.dumps({"version": 1, "n": 16, "names": [1], "present": [], "wraps": []}).encode(),
    json.dumps({"version": 1, "n": 16, "names": ["mac"], "present": ["mac"],
                "wraps": "x"}).encode(),
    json.dumps({"version": 1, "n": True, "names": [], "present": [], "wraps": []}).encode(),
    b"[" * 100_000,
    b" " * (10 * 1024 * 1024),
], ids=["empty", "open-brace", "null", "list", "bare", "binary", "int-names", "str-wraps",
        "bool-n", "deep-nesting", "10MB"])
def test_malformed_keyring_is_a_clear_license_error_and_nothing_is_deleted(
        activated: Any, license_client: Any, content: bytes) -> None:
    product, laptop, _, store = activated
    path = keyring(product.name, laptop)
    path.write_bytes(content)
    result = outcome(_restart(license_client, product, laptop).check)
    assert isinstance(result, StoreFromAnotherMachine), repr(result)
    assert path.read_bytes() == content and store.exists()


# ------------------------------------------------------------------ another machine


def test_store_keyring_and_witness_copied_to_a_second_machine_do_not_open(
        activated: Any, license_client: Any, machines: Any) -> None:
    product, laptop, _, _ = activated
    desk = machines("desk", cpu=laptop.cpu, os_arch=laptop.os_arch)  # same model, other ids
    laptop.copy_files_to(desk)
    with pytest.raises(StoreFromAnotherMachine):
        license_client(product, desk).check()


def test_second_machines_keyring_beside_the_first_machines_store(
        activated: Any, license_client: Any, license_server: Any, machines: Any) -> None:
    product, laptop, issued, _ = activated
    desk = machines("desk")
    license_client(product, desk).activate(issued["license_key"])
    shutil.copy(keyring(product.name, desk), keyring(product.name, laptop))
    with pytest.raises(StoreFromAnotherMachine):
        _restart(license_client, product, laptop).check()


def test_wraps_dropped_or_boxes_swapped_never_open_on_another_machine(
        activated: Any, license_client: Any, machines: Any) -> None:
    product, laptop, _, _ = activated
    desk = machines("desk", cpu=laptop.cpu, os_arch=laptop.os_arch)
    laptop.copy_files_to(desk)
    path = keyring(product.name, desk)
    doc = json.loads(path.read_bytes())
    boxes = [w["box"] for w in doc["wraps"]] + [doc["quick"]]
    for variant in range(len(boxes)):
        mutated = dict(doc)
        # Every wrap carries box[variant], under every name list; quick too; present widened.
        mutated["wraps"] = [{"names": w["names"], "box": boxes[variant]} for w in doc["wraps"]]
        mutated["quick"] = boxes[variant]
        mutated["names"] = ["cpu", "os_arch"]
        mutated["present"] = ["cpu", "os_arch"]
        mutated["wraps"].append({"names": ["cpu", "os_arch"], "box": boxes[variant]})
        path.write_text(json.dumps(mutated))
        desk.forget()
        assert isinstance(outcome(license_client(product, desk).check),
                          StoreFromAnotherMachine)


def test_anchor_keyring_wins_over_the_one_beside_the_store(
        activated: Any, license_client: Any, machines: Any) -> None:
    """Two keyrings: the anchor's is used even when it cannot open and the fallback can."""
    product, laptop, _, store = activated
    good = keyring(product.name, laptop)
    fallback = store.with_name(store.name + ".keyring")
    shutil.copy(good, fallback)
    other = machines("other")
    # The anchor gets a keyring made for another machine.
    blob = wrap_keyring(b"\1" * 32, product.name, _key_reading(other.read()), other.cost)
    good.write_bytes(blob)
    result = outcome(_restart(license_client, product, laptop).check)
    assert isinstance(result, StoreFromAnotherMachine), repr(result)
    assert store.exists()  # check() moves nothing aside


# ------------------------------------------------------------------ races


def test_two_threads_on_a_fresh_machine_end_with_one_key(
        license_server: Any, license_product: Any, license_client: Any, machines: Any) -> None:
    product = license_product()
    key = license_server.admin.issue_license(product.name)["license_key"]
    laptop = machines("laptop")
    barrier = threading.Barrier(4)
    results: list[object] = []

    def run() -> None:
        machine = SimulatedMachine(laptop.home, machine_id=laptop.machine_id,
                                   macs=laptop.macs, cpu=laptop.cpu, os_arch=laptop.os_arch)
        client = license_client(product, machine)
        barrier.wait()
        results.append(outcome(lambda: client.activate(key).activation_id))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    laptop.forget()
    assert license_client(product, laptop).check().activation_id == results[0]
    assert not list(anchor(laptop).glob("*.other-machine-*"))
