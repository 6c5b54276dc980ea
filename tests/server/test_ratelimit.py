"""Activation attempts are rate limited in the database: per license and per client address.

One app in-process (tests/inprocess.py), restarted on the same database; two
uvicorn workers on PostgreSQL sharing the counters.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from software_dna.server.testing import LocalServer
from tests.fixtures_server import PgDatabases
from tests.server.helpers import Api, error_code

from ..inprocess import InProcessServer


def test_rate_limit_per_license_and_address(tmp_path: Path) -> None:
    with InProcessServer(tmp_path, rate_limit_attempts=3, rate_limit_address_attempts=8,
                         rate_limit_window=120) as srv:
        pid = "rl-" + secrets.token_hex(3)
        srv.admin.setup_product(pid)
        key = srv.admin.issue_license(pid, password="right")["license_key"]
        api = Api.for_server(srv)
        try:
            for _ in range(3):
                assert error_code(api.activate(pid, key, password="guess")) == "wrong_password"
            locked = api.activate(pid, key, password="right")
            assert locked.status_code == 429 and error_code(locked) == "rate_limited"
            retry_after = int(locked.headers["Retry-After"])
            assert 1 <= retry_after <= 121  # the window, plus under a second (1 s buckets)
            # Other licenses are not locked by this one's attempts ...
            other = srv.admin.issue_license(pid)["license_key"]
            assert api.activate(pid, other).status_code == 201
            # ... but this address is, after 8 attempts of any kind.
            for _ in range(3):
                assert api.activate(pid, "NOPE-NOPE-NOPE-NOPE").status_code == 404
            blocked = api.activate(pid, other)
            assert blocked.status_code == 429 and error_code(blocked) == "rate_limited"
            # The counters live in the database: a restart does not reset them.
            srv.stop()
            srv.start()
            assert api.activate(pid, other).status_code == 429
        finally:
            api.close()


@pytest.fixture
def two_workers(tmp_path: Path, pg_databases: PgDatabases) -> Iterator[LocalServer]:
    with LocalServer(tmp_path, database_url=pg_databases.create(), workers=2,
                     rate_limit_attempts=5, rate_limit_window=300) as srv:
        yield srv


@pytest.mark.postgres
def test_rate_limit_holds_across_workers(two_workers: LocalServer) -> None:
    srv = two_workers
    pid = "rlw-" + secrets.token_hex(3)
    srv.admin.setup_product(pid)
    key = srv.admin.issue_license(pid, password="right")["license_key"]
    statuses: list[int] = []
    lock = threading.Lock()

    def attempt() -> None:
        # A new connection each time, so the kernel spreads them over both workers.
        answer = requests.post(f"{srv.url}/v1/activations", timeout=30, json={
            "product": pid, "license_key": key, "password": "wrong",
            "fingerprint": {"id": "fp1.x", "algorithm": 1, "components": {"mac": "A" * 43}},
            "nonce": secrets.token_urlsafe(16), "idempotency_key": secrets.token_urlsafe(16),
        }, headers={"Connection": "close"})
        with lock:
            statuses.append(answer.status_code)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses.count(403) == 5, statuses
    assert statuses.count(429) == 7, statuses
