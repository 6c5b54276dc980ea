"""Attacks (and accidents) on where local state lives: losing an honest user's license, hanging.

One regression test per case, against the real SDK on simulated machines.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from software_dna import LicenseError

from ._helpers import anchor, finishes, keyring, outcome, pointer, witness

# ------------------------------------------------------------------ hangs


@pytest.mark.parametrize("which", ["keyring", "store", "witness"])
def test_a_fifo_in_place_of_a_state_file_does_not_hang_check(
        activated: Any, license_client: Any, which: str) -> None:
    """open() on a FIFO blocks until a writer comes: read_limited() never returns."""
    product, laptop, _, store = activated
    path = {"keyring": keyring(product.name, laptop), "store": store,
            "witness": witness(product.name, laptop)}[which]
    path.unlink()
    os.mkfifo(path)
    laptop.forget()
    client = license_client(product, laptop)
    done, result = finishes(client.check, path)
    assert done, f"check() hung opening the {which} FIFO"
    assert isinstance(result, (LicenseError, object))


def test_a_fifo_as_the_pointer_does_not_hang_a_start_without_a_store(
        activated: Any, license_client: Any) -> None:
    product, laptop, _, store = activated
    store.unlink()
    where = pointer(product.name, laptop)
    where.unlink(missing_ok=True)
    os.mkfifo(where)
    laptop.forget()
    done, _ = finishes(lambda: license_client(product, laptop), where)
    assert done, "LicenseClient() hung reading the pointer FIFO"


def test_a_symlink_loop_as_the_store_is_a_clear_error(activated: Any, license_client: Any) -> None:
    product, laptop, _, store = activated
    store.unlink()
    os.symlink(store.name, store)  # points at itself
    laptop.forget()
    result = outcome(license_client(product, laptop).check)
    assert isinstance(result, LicenseError), repr(result)


@pytest.mark.parametrize("which", ["keyring", "store", "witness"])
def test_a_folder_where_a_state_file_should_be_is_a_license_error(
        activated: Any, license_client: Any, which: str) -> None:
    product, laptop, _, store = activated
    path = {"keyring": keyring(product.name, laptop), "store": store,
            "witness": witness(product.name, laptop)}[which]
    path.unlink()
    path.mkdir()
    laptop.forget()
    result = outcome(license_client(product, laptop).check)
    assert isinstance(result, LicenseError) or hasattr(result, "activation_id"), repr(result)


# ------------------------------------------------------------------ honest users losing it


def test_explicit_state_home_dropped_later_moves_the_store_aside(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        tmp_path: Any) -> None:
    """Regression: the vendor's launcher set SOFTWARE_DNA_STATE_HOME at activation; a start
    without it (another launcher, a shell) finds no keyring in the default anchor, makes a
    NEW machine key on a mere check(), and the store reads as another machine's: moved
    aside as .other-machine-*. Going back to the launcher: NotActivated, offline lost."""
    product = license_product()
    key = license_server.admin.issue_license(product.name)["license_key"]
    laptop = machines("laptop", environ={"SOFTWARE_DNA_STATE_HOME": str(tmp_path / "state")})
    client = license_client(product, laptop)
    client.activate(key)
    store = client.store_path

    del laptop.environ["SOFTWARE_DNA_STATE_HOME"]
    laptop.forget()
    first = outcome(license_client(product, laptop).check)
    laptop.environ["SOFTWARE_DNA_STATE_HOME"] = str(tmp_path / "state")
    laptop.forget()
    again = outcome(license_client(product, laptop).check)
    assert hasattr(again, "activation_id"), (
        f"without the variable: {first!r}; back with it: {again!r}; "
        f"aside: {sorted(p.name for p in store.parent.iterdir())}")


def test_another_account_sharing_software_dna_home_does_not_take_the_store(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        tmp_path: Any) -> None:
    """Regression: SOFTWARE_DNA_HOME is a fixed store folder (a service's data folder); the
    keyring lives in each account's anchor. Another account (sudo, a service user) merely
    calling check() makes its own machine key and moves the shared store aside."""
    product = license_product()
    key = license_server.admin.issue_license(product.name)["license_key"]
    shared = {"SOFTWARE_DNA_HOME": str(tmp_path / "shared")}
    owner = machines("owner", environ=shared)
    license_client(product, owner).activate(key)
    admin = machines.account(owner, "admin")
    admin.environ.update(shared)
    outcome(license_client(product, admin).check)
    owner.forget()
    result = outcome(license_client(product, owner).check)
    assert hasattr(result, "activation_id"), (
        f"{result!r}; files: {sorted(p.name for p in (tmp_path / 'shared').iterdir())}")


def test_read_only_anchor_at_activation_keeps_working_when_it_becomes_writable(
        license_server: Any, license_product: Any, license_client: Any, machines: Any) -> None:
    product = license_product()
    key = license_server.admin.issue_license(product.name)["license_key"]
    laptop = machines("laptop")
    folder = anchor(laptop)
    folder.mkdir(parents=True)
    folder.chmod(0o500)
    try:
        license_client(product, laptop).activate(key)
    finally:
        folder.chmod(0o700)
    laptop.forget()
    result = outcome(license_client(product, laptop).check)
    assert hasattr(result, "activation_id"), repr(result)


def test_pointer_naming_another_apps_store_of_the_same_product(
        license_server: Any, license_product: Any, license_client: Any, machines: Any) -> None:
    """Two apps (app_name) of one product id share the anchor's pointer: a start of app B
    with no store of its own moves app A's store into B's folder."""
    product = license_product()
    key = license_server.admin.issue_license(product.name)["license_key"]
    laptop = machines("laptop")
    a = license_client(product, laptop, app_name="editor")
    a.activate(key)
    a_store = a.store_path
    b = license_client(product, laptop, app_name="viewer")
    print("A:", a_store, a_store.exists(), "B:", b.store_path)
    assert a_store.exists(), "app B took app A's store"
