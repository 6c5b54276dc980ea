"""Usage counts (services/usage.py): counted by the public routes, flushed by upsert.

Real requests on the in-process app (SQLite, then PostgreSQL), then the
counts in the database; and two app instances on one database flushing the
same keys at once, whose counts must add up.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server import services as service
from software_dna.server.api.deps import AppState
from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.models import UsageCount
from software_dna.server.services import usage
from software_dna.server.testing import InProcessServer

from .helpers import Api, fingerprint, nonce

DAY = date(2031, 5, 6)


def _product(server: InProcessServer, **kw: Any) -> str:
    product_id = "use-" + secrets.token_hex(4)
    with server.app.state.sdna.sessions() as session:
        service.create_product(session, product_id=product_id, **kw)
        service.generate_key(session, server.app.state.sdna.ctx, product_id)
    return product_id


def _key(server: InProcessServer, product_id: str, **kw: Any) -> str:
    with server.app.state.sdna.sessions() as session:
        _, key = service.issue_license(session, server.app.state.sdna.ctx,
                                       product_id=product_id, **kw)
    return key


def _counts(server: InProcessServer, product_id: str) -> dict[tuple[str, str], int]:
    """Flush the app's counter, then the product's rows as {(event, outcome): count}."""
    state: AppState = server.app.state.sdna
    with state.sessions() as session:
        usage.flush(session, server.app.state.usage)
        rows = session.execute(select(UsageCount.event, UsageCount.outcome, UsageCount.count)
                               .where(UsageCount.product_id == product_id))
        totals: dict[tuple[str, str], int] = {}
        for event, outcome, n in rows:
            totals[(event, outcome)] = totals.get((event, outcome), 0) + n
        return totals


@pytest.fixture
def api(inprocess_any_server: InProcessServer) -> Iterator[Api]:
    client = Api.for_server(inprocess_any_server)
    yield client
    client.close()


def test_validations_and_activations_are_counted(inprocess_any_server: InProcessServer,
                                                 api: Api) -> None:
    server = inprocess_any_server
    product = _product(server)
    made = api.activate(product, _key(server, product), machine="u1")
    assert made.status_code == 201
    body = made.json()
    secret = body["activation_secret"]
    for _ in range(3):
        answer = api.validate(body["activation_id"], secret, machine="u1")
        assert answer.status_code == 200
        secret = answer.json()["activation_secret"]
    # A replay of the activation is no new activation.
    assert _counts(server, product) == {("activation", "ok"): 1, ("validation", "ok"): 3}

    # Refusals count under their code (and under no product: the client's word names it).
    before = _counts(server, "")
    assert api.validate(body["activation_id"], "wrong-secret", machine="u1").status_code == 401
    assert api.activate(product, "AAAA-BBBB-CCCC-DDDD", machine="u2").status_code in (400, 403,
                                                                                      404)
    after = _counts(server, "")
    assert after.get(("validation", "unauthorized"), 0) \
        == before.get(("validation", "unauthorized"), 0) + 1
    refused = {k: v - before.get(k, 0) for k, v in after.items()
               if k[0] == "activation" and v != before.get(k, 0)}
    assert sum(refused.values()) == 1 and ("activation", "ok") not in refused
    assert _counts(server, product) == {("activation", "ok"): 1, ("validation", "ok"): 3}


def test_trials_started_and_converted(inprocess_any_server: InProcessServer, api: Api) -> None:
    server = inprocess_any_server
    product = _product(server, trial_days=14)
    started = api.http.post(f"{api.url}/v1/trials", json={
        "product": product, "fingerprint": fingerprint("t1"), "nonce": nonce()}, timeout=30)
    assert started.status_code == 201, started.text
    trial = started.json()
    # The same machine asking again gets its running trial: not a second start.
    again = api.http.post(f"{api.url}/v1/trials", json={
        "product": product, "fingerprint": fingerprint("t1"), "nonce": nonce()}, timeout=30)
    assert again.status_code == 200
    bought = api.activate(product, _key(server, product), machine="t1", replaces={
        "activation_id": trial["activation_id"],
        "activation_secret": again.json()["activation_secret"]})
    assert bought.status_code == 201, bought.text
    counts = _counts(server, product)
    assert counts[("trial_started", "ok")] == 1
    assert counts[("trial_converted", "ok")] == 1
    assert counts[("activation", "ok")] == 1


def test_counter_is_thread_safe_and_gives_back_on_failure() -> None:
    counter = usage.UsageCounter()

    def hammer() -> None:
        for _ in range(5000):
            counter.record(usage.VALIDATION, usage.OK, "p", day=DAY)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter.pending() == 20000
    taken = counter.take()
    assert taken == {(DAY, "p", "validation", "ok"): 20000} and counter.pending() == 0
    counter.give_back(taken)
    assert counter.pending() == 20000


@pytest.fixture
def two_apps(tmp_path: Path, fresh_database_url: str) -> Iterator[tuple[AppState, AppState]]:
    """Two app instances (two workers) on one fresh database."""
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "DATABASE_URL": fresh_database_url})
    initialize(settings)
    apps = [create_app(settings), create_app(settings)]
    states: list[AppState] = [app.state.sdna for app in apps]
    try:
        yield states[0], states[1]
    finally:
        for state in states:
            state.dispose()


def test_concurrent_flushes_of_two_workers_add_up(two_apps: tuple[AppState, AppState]) -> None:
    """Two workers flushing the same keys at the same moment, many times: nothing lost."""
    rounds, per_round = 20, 7
    counters = [usage.UsageCounter(), usage.UsageCounter()]
    barrier = threading.Barrier(2)
    failures: list[BaseException] = []

    def worker(state: AppState, counter: usage.UsageCounter, outcome: str) -> None:
        try:
            for _ in range(rounds):
                for _ in range(per_round):
                    counter.record(usage.VALIDATION, usage.OK, "prod", day=DAY)
                    counter.record(usage.VALIDATION, outcome, "prod", day=DAY)
                counter.record(usage.ACTIVATION, usage.OK, "", day=DAY)
                barrier.wait(timeout=30)
                with state.sessions() as session:
                    usage.flush(session, counter)
        except BaseException as exc:  # reported below
            failures.append(exc)

    threads = [threading.Thread(target=worker, args=(state, counter, outcome))
               for state, counter, outcome in zip(two_apps, counters,
                                                  ("license_revoked", "wrong_machine"),
                                                  strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures
    assert all(c.pending() == 0 for c in counters)
    with two_apps[0].sessions() as session:
        rows = {(r.product_id, r.event, r.outcome): r.count
                for r in session.scalars(select(UsageCount).where(UsageCount.day == DAY))}
    assert rows == {
        ("prod", "validation", "ok"): 2 * rounds * per_round,
        ("prod", "validation", "license_revoked"): rounds * per_round,
        ("prod", "validation", "wrong_machine"): rounds * per_round,
        ("", "activation", "ok"): 2 * rounds,
    }
    with two_apps[1].sessions() as session:
        daily = usage.daily_counts(session, days=1, today=DAY, product_id="prod")
    assert {(d.event, d.outcome): d.count for d in daily} == {
        ("validation", "ok"): 280, ("validation", "license_revoked"): 140,
        ("validation", "wrong_machine"): 140}


def test_the_app_flushes_at_shutdown(tmp_path: Path) -> None:
    """What was counted and not yet flushed is written when the app stops."""
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "DATABASE_URL": f"sqlite:///{tmp_path / 'u.db'}"})
    initialize(settings)
    app = create_app(settings)
    try:
        async def run() -> None:
            async with app.router.lifespan_context(app):
                app.state.usage.record(usage.VALIDATION, usage.OK, "shut", day=DAY)

        asyncio.run(run())
        with app.state.sdna.sessions() as session:
            assert session.scalar(select(UsageCount.count)
                                  .where(UsageCount.product_id == "shut")) == 1
    finally:
        app.state.sdna.dispose()
