"""The outbox and its worker: claim, finish, back-off, crashes, several workers, scheduled jobs.

Real SQLite and PostgreSQL databases, the real worker (in this process, or
``software-dna server worker`` in a subprocess where a process is killed),
and a real local receiver that verifies every Standard Webhooks signature.
Time is moved with ``clock_override``, never waited for.
"""

from __future__ import annotations

import threading
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
from software_dna.server.models import DeliveryAttempt, OutboxItem, ScheduledJob, WebhookEndpoint
from software_dna.server.services import events, outbox, schedule, webhooks
from software_dna.server.services.common import Context, clock_override, utcnow
from software_dna.server.testing import LocalServer
from software_dna.server.worker import DEFAULT_LEASE, Worker
from tests.webhook_receiver import Receiver, WorkerProcess

PRODUCT = "outbox-app"
START = datetime(2031, 3, 1, 9, tzinfo=timezone.utc)


def _at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


@dataclass
class Bench:
    settings: Settings
    state: AppState
    receiver: Receiver
    endpoint_id: str

    def worker(self, **options: Any) -> Worker:
        return Worker(self.state.ctx, self.state.sessions, jobs=(), **options)

    def queue(self, count: int = 1) -> list[str]:
        """``count`` license.issued events, one license each: their item ids."""
        with self.state.sessions() as session:
            for _ in range(count):
                service.issue_license(session, self.state.ctx, product_id=PRODUCT, seats=1)
            return list(session.scalars(select(OutboxItem.id).order_by(OutboxItem.created_at)))

    def item(self, item_id: str) -> OutboxItem:
        with self.state.sessions() as session:
            row = session.get(OutboxItem, item_id)
            assert row is not None
            return row


@pytest.fixture
def bench(tmp_path: Path, fresh_database_url: str) -> Iterator[Bench]:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path / "home"),
                                  "DATABASE_URL": fresh_database_url})
    initialize(settings)
    state: AppState = create_app(settings).state.sdna
    with Receiver() as receiver:
        with state.sessions() as session:
            service.create_product(session, product_id=PRODUCT)
            endpoint, secret = webhooks.create_endpoint(
                session, state.ctx, url=receiver.url, events=["license.issued"])
        receiver.secret = secret
        try:
            yield Bench(settings, state, receiver, endpoint.id)
        finally:
            state.dispose()


def test_claim_is_exclusive_and_finish_backs_off(bench: Bench) -> None:
    [item_id] = bench.queue()
    with clock_override(lambda: START), bench.state.sessions() as session:
        claimed = outbox.claim(session, worker="w1", limit=10, lease=60)
        assert [c.id for c in claimed] == [item_id] and claimed[0].attempts == 1
        assert outbox.claim(session, worker="w2", limit=10, lease=60) == []  # leased
        outbox.finish(session, item_id, "w1", outbox.Outcome(False, 503, "HTTP 503"),
                      duration_ms=3)
    row = bench.item(item_id)
    assert row.status == "pending" and row.claim is None and row.last_status == 503
    assert row.next_attempt_at == START + timedelta(seconds=outbox.BACKOFF[0])
    with clock_override(lambda: START + timedelta(seconds=outbox.BACKOFF[0] - 1)), \
            bench.state.sessions() as session:
        assert outbox.claim(session, worker="w3", limit=10, lease=60) == []  # not yet due
    # Every step of the schedule, then failed for good: more than a day of retries.
    now = START
    for step in outbox.BACKOFF:
        now += timedelta(seconds=step)
        with clock_override(_at(now)), bench.state.sessions() as session:
            [again] = outbox.claim(session, worker=f"w{now.timestamp()}", limit=1, lease=60)
            outbox.finish(session, again.id, again.claim or "", outbox.Outcome(False, 500),
                          duration_ms=1)
    row = bench.item(item_id)
    assert row.status == "failed" and row.attempts == len(outbox.BACKOFF) + 1
    assert sum(outbox.BACKOFF) >= 24 * 3600
    with bench.state.sessions() as session:
        assert len(session.scalars(select(DeliveryAttempt).where(
            DeliveryAttempt.item_id == item_id)).all()) == len(outbox.BACKOFF) + 1


def test_an_expired_lease_is_taken_over_and_the_late_finish_only_logs(bench: Bench) -> None:
    [item_id] = bench.queue()
    with clock_override(lambda: START), bench.state.sessions() as session:
        outbox.claim(session, worker="slow", limit=1, lease=60)
    with clock_override(lambda: START + timedelta(seconds=61)), bench.state.sessions() as s:
        [taken] = outbox.claim(s, worker="fast", limit=1, lease=60)
        assert taken.id == item_id and taken.attempts == 2
        # The first worker's late failure does not reschedule what the second holds.
        outbox.finish(s, item_id, "slow", outbox.Outcome(False, 500), duration_ms=1)
        assert bench.item(item_id).claim == "fast"
        outbox.finish(s, item_id, "fast", outbox.Outcome(True, 200), duration_ms=1)
    assert bench.item(item_id).status == "delivered"


def test_receiver_failing_five_times_gets_the_event_once_after_back_off(bench: Bench) -> None:
    bench.receiver.fail_first = 5
    now = [START]
    with clock_override(lambda: now[0]):
        [item_id] = bench.queue()
        worker = bench.worker()
        for step in outbox.BACKOFF[:5]:
            assert worker.run_once() == 1  # an attempt, answered 500
            now[0] += timedelta(seconds=step - 1)
            assert worker.run_once() == 0  # the back-off is kept
            now[0] += timedelta(seconds=1)
        assert worker.run_once() == 1
        assert worker.run_once() == 0
    row = bench.item(item_id)
    assert row.status == "delivered" and row.attempts == 6 and row.last_status == 200
    received = bench.receiver.requests
    assert len(received) == 6 and {r.webhook_id for r in received} == {item_id}
    assert all(r.verified for r in received)
    # Accepted once: the sixth; the body is the same on every attempt.
    assert len({r.raw for r in received}) == 1
    assert received[-1].body["type"] == "license.issued"


def test_sigkill_mid_delivery_loses_nothing_and_repeats_with_the_same_id(
        bench: Bench, tmp_path: Path) -> None:
    [item_id] = bench.queue()
    bench.receiver.hold = True  # received, not yet answered
    with WorkerProcess(bench.settings.to_env(), tmp_path / "worker.log") as proc:
        assert bench.receiver.wait_for(1), proc.output()
        proc.kill()
    bench.receiver.release()
    row = bench.item(item_id)
    assert row.status == "pending" and row.attempts == 1  # the claim survived, nothing else
    # Once the lease is over, another worker delivers it again, with the same id.
    later = utcnow() + timedelta(seconds=DEFAULT_LEASE + 1)
    with clock_override(lambda: later):
        assert bench.worker().run_once() == 1
    assert bench.item(item_id).status == "delivered"
    assert bench.receiver.ids() == {item_id: 2}
    assert all(r.verified for r in bench.receiver.requests)


def test_sigterm_finishes_the_item_in_flight_then_exits(bench: Bench, tmp_path: Path) -> None:
    [item_id] = bench.queue()
    bench.receiver.hold = True
    with WorkerProcess(bench.settings.to_env(), tmp_path / "worker.log") as proc:
        assert bench.receiver.wait_for(1), proc.output()
        proc.proc.send_signal(15)
        threading.Timer(0.2, bench.receiver.release).start()
        assert proc.proc.wait(60) == 0, proc.output()
        out = proc.output()
    assert bench.item(item_id).status == "delivered"
    assert bench.receiver.ids() == {item_id: 1}
    assert f"{item_id} webhook license.issued attempt 1: delivered 200" in out
    assert "@" not in out.replace("worker started", "")  # no address in the log


def test_worker_once_from_the_command_line(bench: Bench, tmp_path: Path) -> None:
    ids = bench.queue(3)
    with WorkerProcess(bench.settings.to_env(), tmp_path / "w.log", "--once") as proc:
        assert proc.proc.wait(60) == 0, proc.output()
        assert "3 item(s) attempted." in proc.output()
    assert sorted(bench.receiver.ids()) == sorted(ids)


@pytest.mark.postgres
def test_two_worker_processes_on_postgresql_deliver_each_item_once(
        tmp_path: Path, pg_databases: Any) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path / "home"),
                                  "DATABASE_URL": pg_databases.create()})
    initialize(settings)
    state: AppState = create_app(settings).state.sdna
    try:
        with Receiver() as receiver:
            with state.sessions() as session:
                service.create_product(session, product_id=PRODUCT)
                _, receiver.secret = webhooks.create_endpoint(
                    session, state.ctx, url=receiver.url, events=["license.issued"])
                for _ in range(60):
                    service.issue_license(session, state.ctx, product_id=PRODUCT, seats=1)
                ids = set(session.scalars(select(OutboxItem.id)))
            env = settings.to_env()
            with WorkerProcess(env, tmp_path / "a.log", "--batch", "3") as a, \
                    WorkerProcess(env, tmp_path / "b.log", "--batch", "3") as b:
                assert receiver.wait_for(len(ids), timeout=120), a.output() + b.output()
                assert a.terminate() == 0 and b.terminate() == 0
                logs = a.output() + b.output()
            counts = receiver.ids()
            assert set(counts) == ids and set(counts.values()) == {1}
            # Both took part (each logs the deliveries it made).
            assert "delivered 200" in a.output() and "delivered 200" in b.output(), logs
            with state.sessions() as session:
                assert set(session.scalars(select(OutboxItem.status))) == {"delivered"}
    finally:
        state.dispose()


def test_a_scheduled_job_runs_once_per_due_time_with_two_workers(bench: Bench) -> None:
    runs: list[datetime] = []
    lock = threading.Lock()

    def job(_session: Any, _ctx: Context, now: datetime) -> int:
        with lock:
            runs.append(now)
        return 1

    jobs = (schedule.Job("test.count", 3600, job),)
    workers = [Worker(bench.state.ctx, bench.state.sessions, handlers={}, jobs=jobs)
               for _ in range(4)]
    for hour in (0, 0, 1, 1, 2):
        now = START + timedelta(hours=hour, seconds=hour)
        barrier = threading.Barrier(len(workers))

        def poll(worker: Worker, barrier: threading.Barrier) -> None:
            barrier.wait()
            worker.run_jobs()

        with clock_override(_at(now)):
            threads = [threading.Thread(target=poll, args=(w, barrier)) for w in workers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    assert runs == [START, START + timedelta(hours=1, seconds=1),
                    START + timedelta(hours=2, seconds=2)]
    with bench.state.sessions() as session:
        row = session.get(ScheduledJob, "test.count")
        assert row is not None and row.last_error is None


def test_a_failing_job_or_handler_never_stops_the_worker(bench: Bench) -> None:
    def broken_job(_session: Any, _ctx: Context, _now: datetime) -> int:
        raise RuntimeError("buyer@example.com")  # the message is never recorded

    def broken_handler(_ctx: Context, _item: OutboxItem, _payload: dict[str, Any]) -> Any:
        raise RuntimeError("boom")

    [item_id] = bench.queue()
    worker = Worker(bench.state.ctx, bench.state.sessions,
                    handlers={outbox.WEBHOOK: broken_handler},
                    jobs=(schedule.Job("test.broken", 60, broken_job),))
    assert worker.run_once() == 1
    row = bench.item(item_id)
    assert row.status == "pending" and row.last_error == "RuntimeError"
    with bench.state.sessions() as session:
        job = session.get(ScheduledJob, "test.broken")
        assert job is not None and job.last_error == "RuntimeError"


def test_disabled_removed_and_gone_endpoints(bench: Bench) -> None:
    ids = bench.queue(2)
    with bench.state.sessions() as session:
        webhooks.update_endpoint(session, bench.endpoint_id, {"enabled": False})
    bench.worker().run_once()
    assert {bench.item(i).status for i in ids} == {"failed"}
    assert bench.receiver.requests == []
    assert bench.item(ids[0]).last_error == "endpoint disabled"

    with bench.state.sessions() as session:
        webhooks.update_endpoint(session, bench.endpoint_id, {"enabled": True})
    bench.receiver.status = 410
    [gone] = [i for i in bench.queue(1) if i not in ids]
    bench.worker().run_once()
    assert bench.item(gone).status == "failed" and bench.item(gone).last_status == 410
    with bench.state.sessions() as session:
        endpoint = session.get(WebhookEndpoint, bench.endpoint_id)
        assert endpoint is not None and not endpoint.enabled  # 410: the receiver said gone
        webhooks.update_endpoint(session, bench.endpoint_id, {"enabled": True})

    bench.receiver.status = 302
    [moved] = [i for i in bench.queue(1) if i not in (*ids, gone)]
    bench.worker().run_once()
    row = bench.item(moved)
    assert row.status == "pending" and row.last_error == "redirect not followed"
    assert len(bench.receiver.requests) == 2  # the redirect's target was never called

    with bench.state.sessions() as session:
        webhooks.remove_endpoint(session, bench.endpoint_id)
    assert bench.item(moved).status == "cancelled"


def test_resend_delivers_again_with_the_same_id(bench: Bench) -> None:
    [item_id] = bench.queue()
    bench.worker().run_once()
    with bench.state.sessions() as session:
        outbox.resend(session, item_id)
    bench.worker().run_once()
    assert bench.receiver.ids() == {item_id: 2}
    assert bench.item(item_id).status == "delivered"


def test_stopping_gives_back_the_rest_of_the_batch(bench: Bench) -> None:
    ids = bench.queue(3)
    worker = bench.worker()
    seen: list[str] = []
    deliver = worker.handlers[outbox.WEBHOOK]

    def first_then_stop(ctx: Context, item: OutboxItem, payload: dict[str, Any]) -> Any:
        seen.append(item.id)
        worker.stop()
        return deliver(ctx, item, payload)

    worker.handlers[outbox.WEBHOOK] = first_then_stop
    assert worker.run_once() == 1
    rest = [bench.item(i) for i in ids if i not in seen]
    assert [(r.status, r.attempts, r.claim) for r in rest] == [("pending", 0, None)] * 2


def test_event_types_are_the_documented_ones() -> None:
    assert len(events.EVENT_TYPES) == 12
    assert {rule.event for rule in events.ACTIONS.values()} <= set(events.EVENT_TYPES)


def test_server_run_delivers_with_its_worker_thread(tmp_path: Path) -> None:
    """``software-dna server run`` (a real process) runs a worker: an event arrives unasked."""
    with Receiver() as receiver, LocalServer(tmp_path / "served") as server:
        admin = server.admin
        admin.create_product(PRODUCT)
        receiver.secret = admin.webhook_create(receiver.url, ["license.issued"])["secret"]
        issued = admin.issue_license(PRODUCT)
        assert receiver.wait_for(1, timeout=60), server.log_tail()
        assert receiver.events()[0]["data"]["license_id"] == issued["id"]
        [entry] = admin.webhook_deliveries()
        assert entry["status"] in ("delivered", "pending")  # the commit may trail the answer
    assert "webhook license.issued attempt 1: delivered 200" in server.log_tail(200)
