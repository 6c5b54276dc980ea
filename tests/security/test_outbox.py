"""The outbox under fire: events x worker processes x SIGKILLs, on SQLite and PostgreSQL.

Events are queued (one ``license.issued`` per license), then several
``software-dna server worker`` processes deliver them to a real receiver
(tests/webhook_receiver.py, verifying every signature) while worker processes
are SIGKILLed at random moments and replaced.  The receiver answers after a
short random delay, so kills land mid-delivery.

A case is unexpected when:

- an event is lost: not received, or not ``delivered`` in the database;
- a receipt fails the Standard Webhooks signature check, or carries an id
  the outbox never held;
- one id arrives with different bodies (a repeat must be the same message);
- a repeat happens outside the documented window: every receipt beyond the
  one recorded as delivered must be a delivery whose outcome was never
  recorded (a worker killed after the receiver accepted, before the commit),
  so the unrecorded receipts number at most the kills, and each event has
  exactly one recorded acceptance.
"""

from __future__ import annotations

import random
import secrets
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from software_dna.server import services as service
from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.models import DeliveryAttempt, OutboxItem
from software_dna.server.services import webhooks
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases
from tests.security._family import Scale, Tally
from tests.webhook_receiver import Receiver, WorkerProcess

PRODUCT = "outbox-stress"
#: Seconds an item stays claimed: short, so a killed worker's items come back quickly.
LEASE = 2


def run(database_url: str, folder: Path, *, events: int, workers: int, kills: int,
        timeout: float) -> Tally:
    """One run; see the module docstring."""
    tally = Tally("outbox")
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(folder / "home"),
                                  "DATABASE_URL": database_url})
    initialize(settings)
    state = create_app(settings).state.sdna
    rng = random.Random(secrets.randbits(32))
    try:
        with Receiver(delay=0.04) as receiver:
            with state.sessions() as session:
                service.create_product(session, product_id=PRODUCT)
                _, receiver.secret = webhooks.create_endpoint(
                    session, state.ctx, url=receiver.url, events=["license.issued"])
                for _ in range(events):
                    service.issue_license(session, state.ctx, product_id=PRODUCT, seats=1)
                ids = set(session.scalars(select(OutboxItem.id)))
            env = settings.to_env()
            options = ("--batch", "4", "--lease", str(LEASE))
            procs = [WorkerProcess(env, folder / f"w{n}.log", *options) for n in range(workers)]
            killed = 0
            deadline = time.monotonic() + timeout
            try:
                # Kill a random worker whenever deliveries are flowing, then replace it.
                while killed < kills and time.monotonic() < deadline:
                    before = len(receiver.requests)
                    if not receiver.wait_for(before + rng.randint(1, 3), timeout=10):
                        break
                    victim = rng.randrange(len(procs))
                    procs[victim].kill()
                    killed += 1
                    procs[victim] = WorkerProcess(env, folder / f"w{workers + killed}.log",
                                                  *options)
                while time.monotonic() < deadline:
                    with state.sessions() as session:
                        left = session.scalar(select(func.count()).select_from(OutboxItem)
                                              .where(OutboxItem.status != "delivered"))
                    if not left:
                        break
                    time.sleep(0.2)
            finally:
                for proc in procs:
                    if proc.proc.poll() is None:
                        proc.terminate()
            with state.sessions() as session:
                statuses = dict(session.execute(select(OutboxItem.id, OutboxItem.status)).all())
                logged = Counter(session.scalars(select(DeliveryAttempt.item_id)))
                accepted = Counter(session.scalars(select(DeliveryAttempt.item_id).where(
                    DeliveryAttempt.outcome == "delivered")))
            received = receiver.ids()
            bodies: dict[str, set[bytes]] = {}
            for request in receiver.requests:
                bodies.setdefault(request.webhook_id, set()).add(request.raw)
                tally.check(request.verified, f"receipt {request.webhook_id} failed the "
                                              f"signature check: {request.error}")
            for item_id in sorted(ids):
                tally.check(received[item_id] >= 1, f"{item_id} lost: never received")
                tally.check(statuses.get(item_id) == "delivered",
                            f"{item_id} is {statuses.get(item_id)}, not delivered")
                tally.check(accepted[item_id] == 1,
                            f"{item_id} recorded as accepted {accepted[item_id]} times")
                tally.check(len(bodies.get(item_id, ())) <= 1,
                            f"{item_id} arrived with different bodies")
            tally.check(set(received) <= ids,
                        f"ids the outbox never held: {sorted(set(received) - ids)[:3]}")
            unrecorded = sum(max(0, received[i] - logged[i]) for i in ids)
            repeats = sum(max(0, received[i] - 1) for i in ids)
            tally.check(repeats <= unrecorded <= killed,
                        f"{repeats} repeats, {unrecorded} unrecorded receipts, {killed} kills: "
                        "a repeat outside the kill window")
    finally:
        state.dispose()
    return tally


def family(scale: Scale) -> Tally:
    """SQLite, then PostgreSQL (long): events x workers x kills."""
    tally = Tally("outbox")
    events, workers, kills = scale.pick(40, 400), scale.pick(2, 4), scale.pick(2, 16)
    with tempfile.TemporaryDirectory(prefix="sdna-outbox-") as folder:
        tally.merge(run(f"sqlite:///{folder}/outbox.db", Path(folder), events=events,
                        workers=workers, kills=kills, timeout=scale.pick(120, 600)))
    if scale is Scale.LONG:
        databases = PgDatabases(PG_ADMIN_URL)
        try:
            with tempfile.TemporaryDirectory(prefix="sdna-outbox-pg-") as folder:
                tally.merge(run(databases.create(), Path(folder), events=events,
                                workers=workers, kills=kills, timeout=600))
        finally:
            databases.drop_all()
    return tally


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql",
                                                            marks=pytest.mark.postgres)])
def test_outbox_family_short(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'outbox.db'}"
    else:
        url = request.getfixturevalue("pg_databases").create()
    tally = run(url, tmp_path, events=30, workers=2, kills=2, timeout=120)
    tally.assert_clean()
    assert tally.tried >= 30 * 4
