"""Server under faults: PostgreSQL connections killed while validations run; duplicated activations.

The database going away is answered 503 ``unavailable`` (JSON, Retry-After),
never 500, and the server recovers by itself once it is back. Connections are
killed with ``pg_terminate_backend`` on the test's own database only, which
is what a PostgreSQL restart does to the server, without disturbing other tests.
"""

from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests
from sqlalchemy import make_url

from software_dna.server.testing import LocalServer
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases
from tests.security._family import Scale, Tally
from tests.server.helpers import Api, error_code


def _terminate(database_url: str) -> int:
    """Kill every connection to the database of ``database_url``; returns how many."""
    name = make_url(database_url).database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchall()
    return len(rows)


def validations_through_kills(server: LocalServer, seconds: float, kills: int) -> Tally:
    """Validate in 4 threads while the database connections are killed ``kills`` times."""
    tally = Tally("server faults")
    product = "pgf-" + secrets.token_hex(3)
    server.admin.setup_product(product)
    key = server.admin.issue_license(product, seats=4)["license_key"]
    api = Api(server.url)
    activations = [api.activate(product, key, machine=f"m{i}").json() for i in range(4)]
    statuses: Counter[int] = Counter()
    bad: list[str] = []
    stop = threading.Event()

    def validate(i: int) -> None:
        session = Api(server.url)
        a = activations[i]
        try:
            while not stop.is_set():
                answer = session.validate(a["activation_id"], a["activation_secret"],
                                          machine=f"m{i}")
                statuses[answer.status_code] += 1
                if answer.status_code == 503:
                    if error_code(answer) != "unavailable" or "Retry-After" not in answer.headers:
                        bad.append(f"503 without the protocol's error: {answer.text[:200]}")
                elif answer.status_code != 200:
                    bad.append(f"HTTP {answer.status_code}: {answer.text[:200]}")
        except requests.RequestException as exc:
            bad.append(f"connection failed: {exc!r}"[:200])
        finally:
            session.close()

    threads = [threading.Thread(target=validate, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(kills):
            time.sleep(seconds / kills)
            _terminate(server.database_url)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    tally.tried = sum(statuses.values())
    tally.expected = statuses[200] + statuses[503]
    for note in bad:
        tally.check(False, note)
    # Recovered without a restart: every activation validates again.
    for i, a in enumerate(activations):
        answer = api.validate(a["activation_id"], a["activation_secret"], machine=f"m{i}")
        tally.check(answer.status_code == 200, f"after the kills: HTTP {answer.status_code}")
    api.close()
    return tally


def duplicated_activations(server: LocalServer, rounds: int) -> Tally:
    """The same activation request sent twice at once (a lost answer retried): one seat."""
    tally = Tally("duplicated activation")
    product = "dup-" + secrets.token_hex(3)
    server.admin.setup_product(product)
    for n in range(rounds):
        lic = server.admin.issue_license(product, seats=1)
        idem = secrets.token_urlsafe(18)
        answers: list[requests.Response] = []

        def send(lic: dict[str, str] = lic, idem: str = idem, n: int = n,
                 answers: list[requests.Response] = answers) -> None:
            api = Api(server.url)
            answers.append(api.activate(product, lic["license_key"], machine=f"d{n}",
                                        idempotency_key=idem))
            api.close()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        ids = {a.json().get("activation_id") for a in answers if a.status_code in (200, 201)}
        seats = server.admin.get_license(lic["id"])["seats_in_use"]
        tally.check(len(ids) == 1 and seats == 1,
                    f"round {n}: {[a.status_code for a in answers]}, ids {ids}, seats {seats}")
    return tally


@pytest.fixture
def pg_local(tmp_path: Path, pg_databases: PgDatabases) -> Iterator[LocalServer]:
    with LocalServer(tmp_path, database_url=pg_databases.create()) as srv:
        yield srv


@pytest.mark.postgres
def test_postgresql_connections_killed_while_validating(pg_local: LocalServer) -> None:
    validations_through_kills(pg_local, seconds=3.0, kills=3).assert_clean()


@pytest.mark.postgres
def test_database_down_is_503_json_and_readiness_recovers(pg_local: LocalServer) -> None:
    _terminate(pg_local.database_url)
    statuses = set()
    for _ in range(3):  # the first request may meet a dead pooled connection
        answer = requests.get(f"{pg_local.url}/v1/ready", timeout=30)
        statuses.add(answer.status_code)
        if answer.status_code == 503:
            assert error_code(answer) == "unavailable"
    assert 500 not in statuses
    assert requests.get(f"{pg_local.url}/v1/ready", timeout=30).status_code == 200


def test_duplicated_activation_request_takes_one_seat(server: LocalServer) -> None:
    duplicated_activations(server, rounds=3).assert_clean()


def family(scale: Scale) -> Tally:
    """PostgreSQL connections killed under load; duplicated activation requests."""
    databases = PgDatabases(PG_ADMIN_URL)
    try:
        with tempfile.TemporaryDirectory(prefix="sdna-pgf-") as folder, \
                LocalServer(Path(folder), database_url=databases.create(), workers=2) as srv:
            tally = validations_through_kills(srv, seconds=scale.pick(3, 30),
                                              kills=scale.pick(3, 20))
            tally.merge(duplicated_activations(srv, scale.pick(3, 30)))
    finally:
        databases.drop_all()
    return tally
