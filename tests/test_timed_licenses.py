"""Timed licenses, renewal and subscriptions, from the app's side, over real HTTP.

The app's clock can be moved (``App.offset``); the server's cannot, so the
vendor's side of time (a license that ended) is set through the admin API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    InvalidToken,
    Kind,
    License,
    LicenseClient,
    LicenseExpired,
    LicenseSuspended,
    RenewalRefused,
)
from software_dna.client.periodic import PeriodicCheck
from software_dna.fingerprint import Fingerprint, collect
from software_dna.server.adminclient import AdminError
from software_dna.wire.claims import _sign_claims, loads_strict
from software_dna.wire.paseto import SecretKey, untrusted_message

from .inprocess import InProcessServer
from .test_client_e2e import App, new_product, offline_app, other_machine
from .tokens import make_token


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


DAY = timedelta(days=1)
Changes = list[tuple["License | None", "License | None"]]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


@pytest.fixture
def watch() -> Iterator[Callable[[App], tuple[PeriodicCheck, Changes]]]:
    """A periodic check whose ticks the test runs by hand; records on_change calls."""
    handles: list[PeriodicCheck] = []

    def start(app: App) -> tuple[PeriodicCheck, Changes]:
        changes: Changes = []
        handle = app.client.start_periodic_check(
            3600, on_change=lambda old, new: changes.append((old, new)))
        handles.append(handle)
        return handle, changes

    yield start
    for handle in handles:
        handle.stop()


def test_fixed_end_date(server: InProcessServer, make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin, protection="offline")
    ends = utcnow() + 10 * DAY + timedelta(hours=1)
    app = make_app(product, keys)
    lic = app.client.activate(server.admin.issue_license(product, expires_at=ends)["license_key"])
    assert lic.kind is Kind.FULL and lic.days_left == 10
    assert lic.license_expires_at == ends.replace(microsecond=0)
    app.offset = 9 * DAY + timedelta(hours=2)
    assert app.restart().check().days_left == 0  # the last day, still valid
    app.offset = 10 * DAY + timedelta(hours=2)
    with pytest.raises(LicenseExpired, match="license expired on"):
        app.restart().check()


def test_term_starts_at_the_first_activation(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product, seats=2, expires_after_days=365)
    assert issued["expires_at"] is None and issued["expires_after_days"] == 365
    with pytest.raises(AdminError) as both:
        server.admin.issue_license(product, expires_after_days=5, expires_at=utcnow() + DAY)
    assert both.value.status == 400
    first = make_app(product, keys, "first").client.activate(issued["license_key"])
    assert first.license_expires_at is not None and first.days_left == 364
    assert first.license_expires_at - first.issued_at == 365 * DAY
    second = make_app(product, keys, "second", fingerprint=other_machine())
    later = second.client.activate(issued["license_key"])
    assert later.license_expires_at == first.license_expires_at  # one term per license


def test_vendor_extends_seen_at_the_next_refresh(
    server: InProcessServer, make_app: Callable[..., App],
    watch: Callable[[App], tuple[PeriodicCheck, Changes]],
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product, expires_at=utcnow() + 5 * DAY)
    app = make_app(product, keys)
    lic = app.client.activate(issued["license_key"])
    assert lic.license_expires_at is not None
    handle, changes = watch(app)
    handle.tick()
    assert changes == []  # nothing changed yet
    server.admin.extend_license(issued["id"], days=30)
    handle.tick()
    assert len(changes) == 1
    old, new = changes[0]
    assert old is not None and new is not None
    assert new.license_expires_at == lic.license_expires_at + 30 * DAY
    assert new.days_left == 34
    until = lic.license_expires_at + 100 * DAY
    server.admin.extend_license(issued["id"], until=until)
    assert app.client.refresh().license_expires_at == until
    for bad in ({"until": lic.license_expires_at}, {"days": 0}):
        with pytest.raises(AdminError) as refused:
            server.admin.extend_license(issued["id"], **bad)
        assert refused.value.status == 400


def test_expiry_fires_on_change_and_a_renewal_code_revives_it(
    server: InProcessServer, make_app: Callable[..., App],
    watch: Callable[[App], tuple[PeriodicCheck, Changes]],
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product, expires_at=utcnow() + 3 * DAY)
    app = make_app(product, keys)
    app.client.activate(issued["license_key"])
    handle, changes = watch(app)
    # The license ends on the vendor's side: the next refresh says so.
    server.admin.update_license(issued["id"], expires_at=utcnow() - timedelta(seconds=1),
                                allow_past=True)
    handle.tick()
    assert len(changes) == 1 and changes[0][0] is not None and changes[0][1] is None
    with pytest.raises(LicenseExpired):
        app.restart().check()  # stored: stays expired offline

    (code,) = server.admin.issue_renewal_codes(30, license_id=issued["id"])
    assert code.startswith("RENEW-")
    renewed = app.client.renew(code.lower().replace("-", " - "))  # as typed by a person
    assert renewed.license_expires_at is not None and renewed.days_left == 29
    assert renewed.license_expires_at - utcnow() > 29 * DAY  # counted from now: it had ended
    assert app.restart().check().license_id == issued["id"]
    handle.tick()
    assert len(changes) == 2 and changes[1][0] is None and changes[1][1] is not None
    # A retry of the same code (lost answer) adds nothing; another license cannot use it.
    assert app.client.renew(code).license_expires_at == renewed.license_expires_at
    other_key = server.admin.issue_license(product, expires_at=utcnow() + DAY)["license_key"]
    other = make_app(product, keys, "other", fingerprint=other_machine())
    other.client.activate(other_key)
    with pytest.raises(RenewalRefused, match="already used"):
        other.client.renew(code)
    with pytest.raises(RenewalRefused, match="does not exist"):
        other.client.renew("RENEW-AAAA-BBBB-CCCC-DDDD")
    (bound,) = server.admin.issue_renewal_codes(7, license_id=issued["id"])
    with pytest.raises(RenewalRefused, match="another license"):
        other.client.renew(bound)
    (product_code,) = server.admin.issue_renewal_codes(7, product_id=product)
    assert other.client.renew(product_code).days_left == 7
    listed = {c["id"]: c for c in server.admin.list_renewal_codes(product=product)}
    assert len(listed) == 3 and all(c["code"] is None for c in listed.values())
    assert sum(1 for c in listed.values() if c["redeemed_at"] is not None) == 2


def test_perpetual_licenses_need_no_renewal_and_conversion(
    server: InProcessServer, make_app: Callable[..., App],
    watch: Callable[[App], tuple[PeriodicCheck, Changes]],
) -> None:
    product, keys = new_product(server.admin)
    evaluation = server.admin.issue_license(product, kind="evaluation", expires_after_days=14)
    app = make_app(product, keys)
    lic = app.client.activate(evaluation["license_key"])
    assert lic.kind is Kind.EVALUATION and lic.days_left == 13
    handle, changes = watch(app)
    converted = server.admin.make_perpetual(evaluation["id"])
    assert converted["kind"] == "full" and converted["expires_at"] is None
    handle.tick()
    assert len(changes) == 1
    new = changes[0][1]
    assert new is not None and new.kind is Kind.FULL
    assert new.license_expires_at is None and new.days_left is None
    (code,) = server.admin.issue_renewal_codes(30, product_id=product)
    with pytest.raises(RenewalRefused, match="perpetual"):
        app.client.renew(code)
    with pytest.raises(AdminError) as refused:
        server.admin.extend_license(evaluation["id"], days=5)
    assert refused.value.status == 409


def test_subscription_cancel_warns_then_stops(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    loose, _ = new_product(server.admin)
    with pytest.raises(AdminError, match="mandatory"):
        server.admin.issue_license(loose, subscription=True)
    product, keys = new_product(server.admin, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600)
    issued = server.admin.issue_license(product, subscription=True, expires_after_days=30)
    with pytest.raises(AdminError) as kept:
        server.admin.update_product(product, protection="opportunistic")
    assert kept.value.status == 409
    app = make_app(product, keys)
    lic = app.client.activate(issued["license_key"])
    assert lic.subscription and lic.expires_at is not None and lic.days_left == 29

    cancelled = server.admin.cancel_subscription(issued["id"])
    assert cancelled["status"] == "suspended" and cancelled["cancelled_at"] is not None
    assert app.client.check().subscription_ends_at is None  # not seen before the refresh

    app.offset = timedelta(minutes=52)  # past refresh_by: the refresh sees the cancellation
    warned = app.restart().check()
    assert warned.subscription_ends_at == lic.expires_at  # the 10-minute warning period
    assert warned.offline_grace_ends_at is None  # the server was reached: no "go online"
    app.offset = timedelta(minutes=55)
    offline = offline_app(app)  # no server: the warning period still holds offline
    assert offline.check().subscription_ends_at == lic.expires_at
    app.offset = timedelta(minutes=61)
    with pytest.raises(LicenseSuspended, match="cancelled"):
        offline.check()
    with pytest.raises(AdminError) as not_one:
        server.admin.cancel_subscription(server.admin.issue_license(product)["id"])
    assert not_one.value.status == 409


def test_on_change_sees_the_warning_the_resume_and_the_stop(
    server: InProcessServer, make_app: Callable[..., App],
    watch: Callable[[App], tuple[PeriodicCheck, Changes]],
) -> None:
    product, keys = new_product(server.admin, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600)
    issued = server.admin.issue_license(product, subscription=True)
    app = make_app(product, keys)
    lic = app.client.activate(issued["license_key"])
    handle, changes = watch(app)
    server.admin.cancel_subscription(issued["id"])
    handle.tick()  # the refresh answers "cancelled": the warning period starts
    assert len(changes) == 1
    warned = changes[0][1]
    assert warned is not None and warned.subscription_ends_at == lic.expires_at
    handle.tick()
    assert len(changes) == 1  # nothing new
    server.admin.resume_license(issued["id"])  # re-subscribed within the warning period
    assert server.admin.get_license(issued["id"])["cancelled_at"] is None
    handle.tick()
    assert len(changes) == 2
    back = changes[1][1]
    assert back is not None and back.subscription_ends_at is None
    server.admin.cancel_subscription(issued["id"])
    handle.tick()
    assert len(changes) == 3 and changes[2][1] is not None
    app.offset = timedelta(minutes=61)  # the warning period is over
    handle.tick()
    assert len(changes) == 4 and changes[3][1] is None
    with pytest.raises(LicenseSuspended):
        app.restart().check()


# --------------------------------------------------------------------------- token claims


def _claims_token(key: SecretKey, fp: Fingerprint, **changes: Any) -> str:
    """A token signed the way the server signs, with claims changed (None: removed)."""


    claims = loads_strict(untrusted_message(make_token(
        key, "timed", fp, license_expires_at=utcnow() + 3 * DAY + timedelta(hours=1))))
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return _sign_claims(key, "timed", claims)


def test_kind_claim_defaults_to_full_and_is_strict(tmp_path: Path) -> None:
    key = SecretKey.generate()
    fp = collect("timed")
    client = LicenseClient(product="timed", public_keys=[key.public_key.to_paserk()],
                           store_path=tmp_path)
    older = client.install_token(_claims_token(key, fp, kind=None))  # issued before kinds
    assert older.kind is Kind.FULL and not older.subscription and older.days_left == 3
    assert client.check().days_left == 3
    evaluation = client.install_token(_claims_token(key, fp, kind="evaluation",
                                                    subscription=True))
    assert evaluation.kind is Kind.EVALUATION and evaluation.subscription
    for bad in ({"kind": "gold"}, {"kind": 1}, {"subscription": "yes"}):
        with pytest.raises(InvalidToken):
            client.install_token(_claims_token(key, fp, **bad))
