"""The damaged-witness window after a rename of ``.prev`` over the current copy.

The rename leaves the current copy with a write number above 1 and no
previous copy beside it: it only vouches as a previous copy does, so a store
level with it is unconfirmed and works until the token's refresh_by, then
StoreRolledBack. These tests probe whether that window holds.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from software_dna import LicenseRevoked, StoreRolledBack

from ._helpers import outcome, witness
from .test_witness_attacks import revoked  # noqa: F401  (the shared fixture)


def _rearrange(product: Any, laptop: Any, store: Any, old_store: bytes,
               attack: str = "rename prev over current") -> None:
    current = witness(product.name, laptop)
    prev = current.with_name(current.name + ".prev")
    if attack == "rename prev over current":
        os.replace(prev, current)
    elif attack == "copy prev over current":
        current.write_bytes(prev.read_bytes())
    else:  # "delete current"
        current.unlink()
    store.write_bytes(old_store)
    laptop.forget()


@pytest.mark.parametrize("attack", ["rename prev over current", "copy prev over current",
                                    "delete current"])
def test_one_clock_mark_write_does_not_turn_the_window_into_the_grace_period(
        revoked: Any, license_client: Any, app_clock: Any, attack: str) -> None:  # noqa: F811
    """The store written once during the window (the clock's high-water mark, every
    five minutes) is one generation ahead of the copy that only vouches as a previous
    one: that must not make it look honest."""
    product, laptop, network, store, old_store = revoked
    _rearrange(product, laptop, store, old_store, attack)
    first = license_client(product, laptop, link=network, clock=app_clock).check()
    assert first.refresh_by is not None
    app_clock.advance(minutes=10)  # check() moves the clock mark on disk: one store write
    license_client(product, laptop, link=network, clock=app_clock).check()
    app_clock.advance(seconds=(first.refresh_by - app_clock()).total_seconds() + 3600)
    results = [outcome(license_client(product, laptop, link=network, clock=app_clock).check)
               for _ in range(3)]
    print("past refresh_by ->", [repr(r)[:100] for r in results])
    for result in results:
        assert isinstance(result, (LicenseRevoked, StoreRolledBack)), repr(result)


def test_past_refresh_by_a_second_start_does_not_get_the_grace_period(
        revoked: Any, license_client: Any, app_clock: Any) -> None:  # noqa: F811
    """The first start past refresh_by raises StoreRolledBack; the clock mark it wrote
    on the way must not let the next start through."""
    product, laptop, network, store, old_store = revoked
    _rearrange(product, laptop, store, old_store)
    lic = license_client(product, laptop, link=network, clock=app_clock).check()
    assert lic.refresh_by is not None
    app_clock.advance(seconds=(lic.refresh_by - app_clock()).total_seconds() + 3600)
    first = outcome(license_client(product, laptop, link=network, clock=app_clock).check)
    second = outcome(license_client(product, laptop, link=network, clock=app_clock).check)
    print("first ->", repr(first)[:100], "second ->", repr(second)[:100])
    assert isinstance(first, (LicenseRevoked, StoreRolledBack)), repr(first)
    assert isinstance(second, (LicenseRevoked, StoreRolledBack)), repr(second)


def test_an_honest_witness_without_its_prev_copy_recovers_once_online(
        activated: Any, license_client: Any, license_server: Any, app_clock: Any) -> None:
    """No attacker: the ``.prev`` copy is gone (a clean-up tool, a backup restoring only
    the main file). Going online once must make the witness vouch again, so that the
    next offline stretch gets the ordinary grace period past refresh_by."""
    product, laptop, _issued, _store = activated
    network = license_server.link()
    client = license_client(product, laptop, link=network, clock=app_clock)
    client.refresh()  # a few more witness writes: seq > 1
    current = witness(product.name, laptop)
    current.with_name(current.name + ".prev").unlink()
    laptop.forget()
    online = license_client(product, laptop, link=network, clock=app_clock)
    for _ in range(3):  # online three times: each a confirmed witness write
        app_clock.advance(minutes=10)
        lic = online.refresh()
    network.offline()
    assert lic.refresh_by is not None
    app_clock.advance(seconds=(lic.refresh_by - app_clock()).total_seconds() + 60)
    laptop.forget()
    result = outcome(license_client(product, laptop, link=network, clock=app_clock).check)
    aside = sorted(p.name for p in current.parent.iterdir() if ".damaged-" in p.name)
    print("offline past refresh_by ->", repr(result)[:100], "; set aside:", aside)
    assert not isinstance(result, BaseException), repr(result)


def test_two_instances_writing_in_turn_never_see_a_rollback_or_a_window(
        activated: Any, license_client: Any, license_server: Any, app_clock: Any) -> None:
    """No attacker: two instances of the app on one machine, each moving the clock mark
    (a store and a witness write) in turn, many times; then a third start, offline."""
    product, laptop, _issued, _store = activated
    network = license_server.link()
    first = license_client(product, laptop, link=network, clock=app_clock)
    lic = first.refresh()
    second = license_client(product, laptop, link=network, clock=app_clock)
    network.offline()
    for _ in range(40):
        for client in (first, second):
            app_clock.advance(minutes=6)
            result = outcome(client.check)
            assert not isinstance(result, BaseException), repr(result)
    assert lic.refresh_by is not None
    app_clock.advance(seconds=max(0.0, (lic.refresh_by - app_clock()).total_seconds()) + 60)
    laptop.forget()
    result = outcome(license_client(product, laptop, link=network, clock=app_clock).check)
    current = witness(product.name, laptop)
    aside = [p.name for p in current.parent.iterdir() if ".damaged-" in p.name]
    assert not isinstance(result, BaseException), repr(result)
    assert not aside, aside
