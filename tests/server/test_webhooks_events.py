"""Outbound webhook events: one per change, in the change's transaction, none for validations.

The real app's services on SQLite and PostgreSQL, a real worker pass and a
real local receiver (tests/webhook_receiver.py) that verifies every signature
with the Standard Webhooks reference implementation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server import services as service
from software_dna.server.api.deps import AppState
from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.models import License, OutboxItem
from software_dna.server.services import events, outbox, webhooks
from software_dna.server.services.common import audit, clock_override
from software_dna.server.worker import Worker
from tests.server.helpers import fingerprint, nonce
from tests.webhook_receiver import Receiver

PRODUCT = "hooked-app"
EMAIL = "buyer.person@example.com"


def _at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@dataclass
class World:
    state: AppState
    receiver: Receiver
    endpoint_id: str
    worker: Worker

    def drain(self) -> list[dict[str, Any]]:
        """Deliver everything queued; the event types received since the last drain."""
        before = len(self.receiver.requests)
        while self.worker.run_once():
            pass
        return [r.body for r in self.receiver.requests[before:]]


@pytest.fixture
def world(tmp_path: Path, fresh_database_url: str) -> Iterator[World]:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "DATABASE_URL": fresh_database_url})
    initialize(settings)
    state: AppState = create_app(settings).state.sdna
    with Receiver() as receiver, state.sessions() as session:
        service.create_product(session, product_id=PRODUCT, features=["pro"],
                               trial_days=14)
        service.create_product(session, product_id="other-app")
        service.generate_key(session, state.ctx, PRODUCT)
        endpoint, secret = webhooks.create_endpoint(
            session, state.ctx, url=receiver.url, events=events.EVENT_TYPES,
            product_id=PRODUCT)
        receiver.secret = secret
        worker = Worker(state.ctx, state.sessions, jobs=())
        try:
            yield World(state, receiver, endpoint.id, worker)
        finally:
            state.dispose()


def _fp(machine: str) -> service.FingerprintData:
    fp = fingerprint(machine)
    return service.parse_fingerprint(fp["algorithm"], fp["components"])


def _types(bodies: list[dict[str, Any]]) -> list[str]:
    return [b["type"] for b in bodies]


def test_each_change_raises_its_event_and_validations_none(world: World) -> None:
    state = world.state
    with state.sessions() as session:
        lic, key = service.issue_license(session, state.ctx, product_id=PRODUCT, seats=2)
        license_id = lic.id
    got = world.drain()
    assert _types(got) == ["license.issued"]
    issued = got[0]
    assert issued["version"] == 1 and issued["data"]["license_id"] == license_id
    assert issued["data"]["product_id"] == PRODUCT and issued["data"]["status"] == "active"
    assert datetime.strptime(issued["timestamp"], "%Y-%m-%dT%H:%M:%SZ")
    assert all(r.verified for r in world.receiver.requests)

    with state.sessions() as session:
        done = service.activate(session, state.ctx, service.ActivationRequest(
            product=PRODUCT, license_key=key, fingerprint=_fp("m1"), nonce=nonce(),
            idempotency_key="idem-1", email=EMAIL, consent=True))
        activation_id, secret = done.activation_id, done.activation_secret
    got = world.drain()
    assert _types(got) == ["activation.created"]
    assert got[0]["data"]["activation_id"] == activation_id

    # Validations and heartbeats are not events.
    with state.sessions() as session:
        for _ in range(3):
            answer = service.validate(session, state.ctx, activation_id, secret,
                                      fingerprint=_fp("m1"), nonce=nonce())
            secret = answer.activation_secret or secret
    assert world.drain() == []

    with state.sessions() as session:
        service.suspend_license(session, license_id)
        service.resume_license(session, license_id)
    got = world.drain()
    assert _types(got) == ["license.changed", "license.changed"]
    assert [b["data"]["change"] for b in got] == ["suspended", "resumed"]
    assert got[0]["data"]["status"] == "suspended"

    with state.sessions() as session:
        service.remove_activation(session, activation_id)
    got = world.drain()
    assert _types(got) == ["activation.removed"]
    assert got[0]["data"]["reason"] == "vendor"

    with state.sessions() as session:
        trial = service.start_trial(session, state.ctx, service.TrialRequest(
            product=PRODUCT, fingerprint=_fp("m2"), nonce=nonce()))
    got = world.drain()
    assert _types(got) == ["trial.started"]
    assert got[0]["data"]["activation_id"] == trial.activation_id

    with state.sessions() as session:
        end_user = service.find_end_users(session, state.ctx, EMAIL)[0]
        service.erase_end_user(session, state.ctx, end_user.id)
        end_user_id = end_user.id
    got = world.drain()
    assert _types(got) == ["end_user.erased"]
    assert got[0]["data"]["end_user_id"] == end_user_id
    assert license_id in got[0]["data"]["licenses"]

    with state.sessions() as session:
        service.revoke_license(session, license_id)
    got = world.drain()
    assert _types(got) == ["license.revoked"]

    # Every id was delivered once, and no body carries the end user's address.
    assert set(world.receiver.ids().values()) == {1}
    for request in world.receiver.requests:
        assert EMAIL.encode() not in request.raw
        assert b"buyer.person" not in request.raw


def test_a_rolled_back_change_raises_nothing(world: World) -> None:
    with world.state.sessions() as session:
        lic, _ = service.issue_license(session, world.state.ctx, product_id=PRODUCT, seats=1)
        license_id = lic.id
    with world.state.sessions() as session:
        row = session.get(License, license_id)
        assert row is not None
        row.status = "suspended"
        audit(session, "admin", "license.suspend", product_id=PRODUCT, license_id=license_id)
        session.flush()
        assert "license.changed" in session.scalars(select(OutboxItem.topic)).all()
        session.rollback()
    with world.state.sessions() as session:
        topics = session.scalars(select(OutboxItem.topic)).all()
    assert topics == ["license.issued"]


def test_subscriptions_products_and_disabled_endpoints(world: World) -> None:
    state = world.state
    with state.sessions() as session:
        webhooks.update_endpoint(session, world.endpoint_id, {"events": ["license.revoked"]})
        other, _ = webhooks.create_endpoint(session, state.ctx, url=world.receiver.url,
                                            events=["license.issued"], product_id="other-app")
        off, _ = webhooks.create_endpoint(session, state.ctx, url=world.receiver.url,
                                          events=["license.issued"], enabled=False)
        lic, _ = service.issue_license(session, state.ctx, product_id=PRODUCT, seats=1)
        service.revoke_license(session, lic.id)
        rows = session.scalars(select(OutboxItem)).all()
    # Only the subscribed type, only the matching product, never the disabled endpoint.
    assert [(r.topic, r.endpoint_id) for r in rows] == [("license.revoked", world.endpoint_id)]
    assert other.id and off.id


def test_personal_data_only_to_personal_endpoints(world: World) -> None:
    state = world.state
    with Receiver() as personal_receiver, state.sessions() as session:
        endpoint, secret = webhooks.create_endpoint(
            session, state.ctx, url=personal_receiver.url, events=["license.issued"],
            personal_data=True)
        personal_receiver.secret = secret
        with events.personal_data(session, state.ctx, "*", {"email": EMAIL}):
            service.issue_license(session, state.ctx, product_id=PRODUCT, seats=1)
        rows = {r.endpoint_id: r for r in session.scalars(select(OutboxItem))}
        assert rows[endpoint.id].personal and not rows[world.endpoint_id].personal
        assert EMAIL.encode() not in (rows[endpoint.id].payload or b"")  # encrypted at rest
        personal_id = rows[endpoint.id].id
        session.commit()
        world.drain()
        assert personal_receiver.events()[0]["data"]["email"] == EMAIL
        assert EMAIL.encode() not in world.receiver.requests[0].raw
        with state.sessions() as check:
            item = check.get(OutboxItem, personal_id)
            assert item is not None and item.status == "delivered"
            assert item.payload is None  # dropped once delivered


def test_expiring_and_expired_events_once(world: World) -> None:
    state = world.state
    start = datetime(2031, 1, 1, 12, tzinfo=timezone.utc)
    with clock_override(lambda: start):
        with state.sessions() as session:
            lic, _ = service.issue_license(session, state.ctx, product_id=PRODUCT, seats=1,
                                           expires_at=start + timedelta(days=10))
        world.drain()
        with state.sessions() as session:
            assert events.expiry_events(session, state.ctx, start) == 0
    for day in (3, 4, 5, 10, 11, 12):
        now = start + timedelta(days=day)
        with clock_override(_at(now)), state.sessions() as session:
            events.expiry_events(session, state.ctx, now)
    with clock_override(lambda: start + timedelta(days=12)):
        got = world.drain()
    assert _types(got) == ["license.expiring", "license.expired"]
    assert got[0]["data"]["days_left"] == 7 and got[0]["data"]["license_id"] == lic.id


def test_payload_is_ids_only(world: World) -> None:
    with world.state.sessions() as session:
        service.issue_license(session, world.state.ctx, product_id=PRODUCT, seats=1)
        item = session.scalars(select(OutboxItem)).one()
        body = outbox.payload_of(world.state.ctx, item)
    assert set(body) == {"type", "timestamp", "version", "data"}
    assert set(body["data"]) <= {"license_id", "product_id", "status", "kind", "seats",
                                 "expires_at", "duration_days", "subscription"}
    assert "key" not in json.dumps(body)


def test_a_bought_trial_raises_trial_converted(world: World) -> None:
    state = world.state
    with state.sessions() as session:
        trial = service.start_trial(session, state.ctx, service.TrialRequest(
            product=PRODUCT, fingerprint=_fp("m3"), nonce=nonce()))
        _, key = service.issue_license(session, state.ctx, product_id=PRODUCT, seats=1)
    world.drain()
    with state.sessions() as session:
        paid = service.activate(session, state.ctx, service.ActivationRequest(
            product=PRODUCT, license_key=key, fingerprint=_fp("m3"), nonce=nonce(),
            idempotency_key="idem-paid", replaces=(trial.activation_id,
                                                   trial.activation_secret)))
    got = world.drain()
    assert sorted(_types(got)) == ["activation.created", "activation.removed",
                                   "trial.converted"]
    converted = next(b for b in got if b["type"] == "trial.converted")
    assert converted["data"]["activation_id"] == trial.activation_id
    assert converted["data"]["by_activation_id"] == paid.activation_id
    removed = next(b for b in got if b["type"] == "activation.removed")
    assert removed["data"]["reason"] == "replaced"
