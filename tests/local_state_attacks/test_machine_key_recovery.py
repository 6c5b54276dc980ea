"""An honest user whose machine key file is gone: does activating again always recover?

While a store written under a machine key exists and no keyring is found, no
new key is made (check() raises StoreFromAnotherMachine); activate() starts
over. Each test: lose the keyring in one way, activate again, then start the
app again (a new process) and expect a working license.
"""

from __future__ import annotations

from typing import Any

import pytest

from software_dna import StoreFromAnotherMachine

from ._helpers import keyring, outcome


def _fresh(license_client: Any, product: Any, machine: Any, **options: Any) -> Any:
    machine.forget()  # a new process: nothing cached
    return license_client(product, machine, **options)


@pytest.mark.parametrize("where", ["default", "store_path", "SOFTWARE_DNA_HOME"])
def test_keyring_deleted_then_activate_again_recovers(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        tmp_path: Any, where: str) -> None:
    product = license_product()
    key = license_server.admin.issue_license(product.name, seats=2)["license_key"]
    options: dict[str, Any] = {}
    environ: dict[str, str] = {}
    if where == "store_path":
        options["store_path"] = tmp_path / "explicit"
    elif where == "SOFTWARE_DNA_HOME":
        environ["SOFTWARE_DNA_HOME"] = str(tmp_path / "dna-home")
    laptop = machines("laptop", environ=environ)
    license_client(product, laptop, **options).activate(key)
    keyring(product.name, laptop).unlink()
    with pytest.raises(StoreFromAnotherMachine):
        _fresh(license_client, product, laptop, **options).check()
    _fresh(license_client, product, laptop, **options).activate(key)
    for _ in range(2):
        result = outcome(_fresh(license_client, product, laptop, **options).check)
        assert not isinstance(result, BaseException), repr(result)


@pytest.mark.parametrize("when", ["from the start", "after activation"])
def test_anchor_unwritable_keyring_lost_then_activate_again_recovers(
        license_server: Any, license_product: Any, license_client: Any, machines: Any,
        when: str) -> None:
    """The anchor cannot be created (SOFTWARE_DNA_STATE_HOME names a folder nobody can
    make, even root): the keyring goes beside the store; lose it, activate again."""
    product = license_product()
    key = license_server.admin.issue_license(product.name, seats=2)["license_key"]
    laptop = machines("laptop")
    unwritable = "/proc/self/no-such-anchor"
    if when == "from the start":
        laptop.environ["SOFTWARE_DNA_STATE_HOME"] = unwritable
    client = license_client(product, laptop)
    client.activate(key)
    store = client.store_path
    if when == "from the start":
        lost = store.with_name(store.name + ".keyring")
        assert lost.exists()
        lost.unlink()
    else:
        laptop.environ["SOFTWARE_DNA_STATE_HOME"] = unwritable
    first = outcome(_fresh(license_client, product, laptop).check)
    assert isinstance(first, StoreFromAnotherMachine), repr(first)
    _fresh(license_client, product, laptop).activate(key)
    for _ in range(2):
        result = outcome(_fresh(license_client, product, laptop).check)
        assert not isinstance(result, BaseException), repr(result)


def test_state_home_switched_back_and_forth_keeps_needing_activation(
        activated: Any, license_client: Any, tmp_path: Any) -> None:
    """SOFTWARE_DNA_STATE_HOME set for some starts and not for others (a service and a
    desktop launch of the same app, same account, same store). The variable moves the
    anchor, and the machine key with it: each switch is a start where the key is not
    found. Documented (docs/security.md): the error names the variable, nothing is
    deleted, and activating again (same seat) recovers every time."""
    product, laptop, issued, _store = activated
    results: list[str] = []
    errors: list[BaseException] = []
    for step in range(4):
        if step % 2 == 0:
            laptop.environ["SOFTWARE_DNA_STATE_HOME"] = str(tmp_path / "state-elsewhere")
        else:
            laptop.environ.pop("SOFTWARE_DNA_STATE_HOME", None)
        first = outcome(_fresh(license_client, product, laptop).check)
        if isinstance(first, BaseException):
            errors.append(first)
            _fresh(license_client, product, laptop).activate(issued["license_key"])
        results.append(type(first).__name__)
    assert results == ["StoreFromAnotherMachine"] * 4, results
    assert "SOFTWARE_DNA_STATE_HOME" in str(errors[0])
