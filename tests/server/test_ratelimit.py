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
from tests.server.helpers import Api, error_code, fingerprint

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
            # ... but this address is, after 8 guesses (3 wrong passwords, 5 unknown keys);
            # then a key that exists gets the very refusal an unknown key gets.
            for _ in range(5):
                assert api.activate(pid, "NOPE-NOPE-NOPE-NOPE").status_code == 404
            guess = api.activate(pid, "NOPE-NOPE-NOPE-NOPE")
            blocked = api.activate(pid, other, machine="m2")
            assert guess.status_code == blocked.status_code == 429
            assert error_code(blocked) == "rate_limited"
            assert blocked.json()["error"]["retry_at"] == guess.json()["error"]["retry_at"]
            # The counters live in the database: a restart does not reset them.
            srv.stop()
            srv.start()
            assert api.activate(pid, other, machine="m3").status_code == 429
        finally:
            api.close()


def test_activations_with_real_keys_do_not_use_up_the_network_limit(
        tmp_path: Path, fresh_database_url: str) -> None:
    """Invariant: a network gets at most ``rate_limit_address_attempts`` guesses (unknown
    keys, wrong passwords) answered per window, however many real activations it makes
    in between (the apps behind one NAT address are not throttled by each other); once
    the limit is reached a real key is refused exactly as a guess is."""
    limit = 5
    with InProcessServer(tmp_path, database_url=fresh_database_url, rate_limit_attempts=1000,
                         rate_limit_address_attempts=limit, rate_limit_window=600) as srv:
        pid = "rln-" + secrets.token_hex(3)
        srv.admin.setup_product(pid)
        key = srv.admin.issue_license(pid, seats=100)["license_key"]
        guarded = srv.admin.issue_license(pid, password="right")["license_key"]
        api = Api.for_server(srv)
        try:
            # Three times the limit of real activations (new machines and reinstalls).
            for n in range(3 * limit):
                assert api.activate(pid, key, machine=f"office-{n}").status_code == 201
                assert api.activate(pid, key, machine=f"office-{n}").status_code == 200
            assert api.activate(pid, guarded, password="right").status_code == 201
            # A stranger on the same network, guessing between real activations.
            answered = refused = 0
            for n in range(4 * limit):
                guess = (api.activate(pid, f"NOPE-{n:04d}-NOPE-NOPE") if n % 2
                         else api.activate(pid, guarded, password=f"guess {n}"))
                if guess.status_code == 429:
                    refused += 1
                else:
                    assert error_code(guess) in ("unknown_license_key", "wrong_password")
                    answered += 1
                api.activate(pid, key, machine=f"later-{n}")
            assert answered == limit and refused == 3 * limit
            # Past the limit the right key (and password) tells the stranger nothing.
            for right in (api.activate(pid, key, machine="new"),
                          api.activate(pid, guarded, password="right", machine="new")):
                assert right.status_code == 429 and error_code(right) == "rate_limited"
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


@pytest.mark.postgres
def test_concurrent_guesses_among_real_activations_stay_within_the_network_limit(
        tmp_path: Path, pg_databases: PgDatabases) -> None:
    """Two workers, 8 threads from one address, a new connection each: real activations
    run alongside unknown-key guesses; never more than the limit of guesses answered."""
    limit = 10
    with LocalServer(tmp_path, database_url=pg_databases.create(), workers=2,
                     rate_limit_attempts=1000, rate_limit_address_attempts=limit,
                     rate_limit_window=600) as srv:
        pid = "rlc-" + secrets.token_hex(3)
        srv.admin.setup_product(pid)
        key = srv.admin.issue_license(pid, seats=1000)["license_key"]
        statuses: dict[str, list[int]] = {"guess": [], "real": []}
        lock = threading.Lock()

        def run(t: int) -> None:
            for n in range(10):
                kind = "guess" if (t + n) % 2 else "real"
                answer = requests.post(f"{srv.url}/v1/activations", timeout=60, json={
                    "product": pid,
                    "license_key": key if kind == "real" else f"NOPE-{t:02d}{n:02d}-NOPE-NOPE",
                    "fingerprint": fingerprint(f"m-{t}-{n}"),
                    "nonce": secrets.token_urlsafe(16),
                    "idempotency_key": secrets.token_urlsafe(16),
                }, headers={"Connection": "close"})
                with lock:
                    statuses[kind].append(answer.status_code)

        threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert statuses["guess"].count(404) == limit, statuses
        assert set(statuses["guess"]) == {404, 429}, statuses
        assert set(statuses["real"]) <= {201, 429}, statuses
