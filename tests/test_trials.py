"""Trials, evaluation keys and test codes, from the app's side, over real HTTP.

The computers are simulated machines (the ``machines`` fixture of
software_dna.testing.plugin): a trial is once per machine, whatever the store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    Kind,
    LicenseExpired,
    LicenseRevoked,
    NotActivated,
    ServerUnreachable,
    TrialUnavailable,
    UnknownLicenseKey,
    WrongPassword,
)
from software_dna.server.adminclient import AdminError
from software_dna.testing.plugin import Machines

from .inprocess import InProcessServer, unreachable
from .test_client_e2e import App, new_product, offline_app


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


DAY = timedelta(days=1)


@pytest.fixture
def make_app(server: InProcessServer, tmp_path: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(product: str, keys: list[str], name: str = "machine", **kwargs: Any) -> App:
        app = App(server, product, keys, tmp_path / name, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.client.close()


def trial_product(server: InProcessServer, days: int = 14, **policy: Any) -> tuple[str, list[str]]:
    product, keys = new_product(server.admin, **policy)
    server.admin.update_product(product, trial_days=days)
    return product, keys


def test_trial_once_per_machine_even_after_the_store_is_deleted(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server, days=14)
    app = make_app(product, keys, machine=machines("laptop"))
    trial = app.client.start_trial()
    assert trial.kind is Kind.TRIAL
    assert trial.license_expires_at is not None
    assert trial.license_expires_at - trial.issued_at == 14 * DAY
    assert trial.days_left == 13  # whole days: 14 days less the seconds already gone
    assert trial.features == {"export", "sync"}
    assert app.restart().check().license_id == trial.license_id  # offline, next start

    # Asking again while it runs hands back the same trial, also with no store left.
    assert app.client.start_trial().license_id == trial.license_id
    app.client.store_path.unlink()
    again = app.restart().start_trial()
    assert again.license_id == trial.license_id
    assert again.license_expires_at == trial.license_expires_at  # not restarted
    assert len(server.admin.list_trials(product)) == 1

    # The trial ends (the vendor's server says so): no second trial, store or not.
    server.admin.update_license(trial.license_id,
                                expires_at=datetime.now(timezone.utc) - timedelta(seconds=1),
                                allow_past=True)
    with pytest.raises(LicenseExpired, match="trial has ended"):
        app.client.refresh()
    with pytest.raises(TrialUnavailable, match="already used its trial"):
        app.client.start_trial()
    app.client.store_path.unlink()
    with pytest.raises(TrialUnavailable):
        app.restart().start_trial()
    # Another computer still gets its own trial.
    other = make_app(product, keys, "other", machine=machines("desktop"))
    assert other.client.start_trial().license_id != trial.license_id


def test_same_machine_is_judged_with_the_fingerprint_tolerance(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server, fingerprint_tolerance=1)
    pc = machines("pc")
    first = make_app(product, keys, "a", machine=pc).client.start_trial()
    # New network card: one component differs, within the tolerance -> the same machine.
    drifted = machines.clone(pc, "pc-new-card")
    drifted.drift("mac")
    assert make_app(product, keys, "b", machine=drifted).client.start_trial().license_id \
        == first.license_id
    # Two more components differ: beyond the tolerance -> another machine, its own trial.
    moved = machines.clone(pc, "pc-moved")
    moved.drift("machine_id", "cpu")
    assert make_app(product, keys, "c", machine=moved).client.start_trial().license_id \
        != first.license_id


def test_no_trial_when_the_product_offers_none_or_a_license_is_held(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = new_product(server.admin)
    app = make_app(product, keys)
    with pytest.raises(TrialUnavailable, match="no trial"):
        app.client.start_trial()
    with pytest.raises(NotActivated):
        app.client.check()  # nothing was stored
    trial_product_id, trial_keys = trial_product(server)
    bought = make_app(trial_product_id, trial_keys, "bought", machine=machines("x"))
    bought.client.activate(server.admin.issue_license(trial_product_id)["license_key"])
    with pytest.raises(TrialUnavailable, match="already has a license"):
        bought.client.start_trial()
    assert bought.client.check().kind is Kind.FULL


def test_trial_to_paid_keeps_the_settings(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server)
    app = make_app(product, keys, machine=machines("studio"))
    trial = app.client.start_trial()
    app.client.settings = {"theme": "dark", "recent": ["a.txt"]}
    issued = server.admin.issue_license(product)

    paid = app.client.activate(issued["license_key"])
    assert paid.kind is Kind.FULL and paid.license_id == issued["id"]
    assert paid.days_left is None  # perpetual
    assert app.client.settings == {"theme": "dark", "recent": ["a.txt"]}
    assert app.restart().check().license_id == issued["id"]
    # The trial's activation was released; the machine is still known as a trial machine.
    (trial_activation,) = server.admin.list_activations(trial.license_id)
    assert trial_activation["deactivated_by"] == "end_user"
    app.client.deactivate()
    with pytest.raises(TrialUnavailable):
        app.client.start_trial()  # a running trial cannot be restarted after buying
    # The settings now belong to the paid license: another machine with that key sees them.
    server.admin.update_license(issued["id"], seats=2)
    desk = make_app(product, keys, "desk", machine=machines("desk"))
    desk.client.activate(issued["license_key"])
    assert desk.client.settings == {"theme": "dark", "recent": ["a.txt"]}


def test_a_failed_activation_leaves_the_trial_as_it_was(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server)
    app = make_app(product, keys, machine=machines("notebook"))
    trial = app.client.start_trial()
    app.client.settings = {"zoom": 2}
    guarded = server.admin.issue_license(product, password="s3cret")
    with pytest.raises(UnknownLicenseKey):
        app.client.activate("AAAA-BBBB-CCCC-DDDD")
    with pytest.raises(WrongPassword):
        app.client.activate(guarded["license_key"], password="wrong")
    # The server cannot be reached: nothing changes either.

    app.args["transport"] = unreachable()
    with pytest.raises(ServerUnreachable):
        app.restart().activate(guarded["license_key"], password="s3cret")
    app.args["transport"] = server.transport()
    still = app.restart().check()
    assert still.kind is Kind.TRIAL and still.activation_id == trial.activation_id
    assert app.client.refresh().activation_id == trial.activation_id  # live on the server too
    assert app.client.settings == {"zoom": 2}
    assert [a["deactivated_at"] for a in server.admin.list_activations(trial.license_id)] == [
        None]
    # And then the right password: trial to paid.
    assert app.client.activate(guarded["license_key"], password="s3cret").kind is Kind.FULL
    assert app.client.settings == {"zoom": 2}


def test_a_paid_license_in_use_keeps_its_own_settings(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server)
    key = server.admin.issue_license(product, seats=2)["license_key"]
    office = make_app(product, keys, "office", machine=machines("office"))
    office.client.activate(key)
    office.client.settings = {"theme": "light"}
    home = make_app(product, keys, "home", machine=machines("home"))
    home.client.start_trial()
    home.client.settings = {"theme": "dark"}
    home.client.activate(key)
    assert home.client.settings == {"theme": "light"}  # the paid license's settings win


def test_evaluation_key(server: InProcessServer, make_app: Callable[..., App]) -> None:
    # Protection "offline": the app's clock can be moved a month ahead of the server's.
    product, keys = new_product(server.admin, protection="offline")
    for bad in (0, 61):
        with pytest.raises(AdminError) as refused:
            server.admin.issue_license(product, kind="evaluation", expires_after_days=bad)
        assert refused.value.status == 400
    with pytest.raises(AdminError, match="expires_after_days"):
        server.admin.issue_license(product, kind="evaluation")
    issued = server.admin.issue_license(product, kind="evaluation", expires_after_days=30)
    assert issued["kind"] == "evaluation" and issued["expires_at"] is None
    assert issued["expires_after_days"] == 30 and issued["first_activated_at"] is None
    app = make_app(product, keys)
    lic = app.client.activate(issued["license_key"])
    assert lic.kind is Kind.EVALUATION and lic.days_left == 29
    assert lic.license_expires_at is not None
    shown = server.admin.get_license(issued["id"])
    assert shown["first_activated_at"] is not None and shown["expires_at"] is not None
    app.offset = 29 * DAY + timedelta(hours=12)
    assert app.restart().check().days_left == 0  # the last day
    app.offset = 31 * DAY
    with pytest.raises(LicenseExpired, match="evaluation period ended"):
        app.restart().check()


def test_test_codes_are_limited_and_resettable(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys = new_product(server.admin)
    server.admin.update_product(product, test_code_limit=2)
    first = server.admin.issue_test_code(product, days=2)
    second = server.admin.issue_test_code(product)
    assert first["license_key"].startswith("TEST-") and first["kind"] == "test"
    with pytest.raises(AdminError) as refused:
        server.admin.issue_test_code(product)
    assert refused.value.status == 409 and "limit" in refused.value.message
    server.admin.revoke_license(second["id"])  # a revoked code frees its place
    third = server.admin.issue_test_code(product)
    assert {c["id"] for c in server.admin.list_test_codes(product)} == {
        first["id"], second["id"], third["id"]}

    app = make_app(product, keys)
    lic = app.client.activate(first["license_key"])
    assert lic.kind is Kind.TEST and lic.days_left == 1
    app.client.settings = {"debug": True}
    server.admin.reset_test_code(first["id"])
    with pytest.raises(NotActivated):
        app.client.refresh()  # its activation was removed
    again = app.restart().activate(first["license_key"])
    assert again.activation_id != lic.activation_id and again.days_left == 1
    assert app.client.settings == {}  # reset deletes the test code's settings
    with pytest.raises(AdminError) as not_a_test_code:
        server.admin.reset_test_code(server.admin.issue_license(product)["id"])
    assert not_a_test_code.value.status == 409


def test_forgotten_trial_machine_may_start_again(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server)
    app = make_app(product, keys, machine=machines("lab"))
    first = app.client.start_trial()
    (trial,) = server.admin.list_trials(product)
    assert trial["license_id"] == first.license_id
    server.admin.remove_trial(trial["id"])
    with pytest.raises(LicenseRevoked):
        app.client.refresh()
    fresh = app.client.start_trial()
    assert fresh.license_id != first.license_id and fresh.kind is Kind.TRIAL


def test_settings_changed_offline_during_the_trial_carry_over(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = trial_product(server)
    app = make_app(product, keys, machine=machines("train"))
    app.client.start_trial()
    app.client.settings = {"layout": "wide"}
    offline = offline_app(app)
    offline.settings = {"layout": "narrow"}  # kept locally, not sent yet
    app.args["transport"] = server.transport()
    app.restart().activate(server.admin.issue_license(product)["license_key"])
    assert app.client.settings == {"layout": "narrow"}
