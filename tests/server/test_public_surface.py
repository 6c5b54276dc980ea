"""The public surface costs an attacker more than it costs the server.

- An erasure runs no ``VACUUM``: a single-flight job empties the SQLite WAL
  off the request path, at most once per interval.  With an injected clock:
  the erased bytes are gone from ``server.db`` and ``server.db-wal`` once the
  job has run, and a second erasure inside the interval waits for the next.
- Erasure requests are rate limited per activation and per client network,
  whatever the client sends (a new trial's credentials, a wrong secret, an
  ``X-Forwarded-For`` header).
- An admin body over 4 KiB is not read before the admin key is checked: over
  a real socket, the 401 comes back while the body has not been sent.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from software_dna import ActivationLocked, LicenseClient, Mode
from software_dna.server.db import (
    CheckpointJob,
    checkpoint_job,
    install_checkpoint_job,
    make_engine,
    wal_checkpoint,
)
from software_dna.server.testing import LocalServer
from tests.inprocess import ASGIAdapter, InProcessApp, InProcessServer
from tests.server.helpers import Api, fingerprint, nonce
from tests.server.test_erasure_and_keys import _needles

# --------------------------------------------------------------------------- the checkpoint job


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _sqlite_files(srv: InProcessServer) -> dict[str, bytes]:
    """The bytes of ``server.db`` and ``server.db-wal`` (empty when the WAL is absent)."""
    path = Path(srv.database_url.removeprefix("sqlite:///"))
    files = {}
    for suffix in ("", "-wal"):
        p = Path(str(path) + suffix)
        files[p.name] = p.read_bytes() if p.exists() else b""
    return files


def _with_personal_data(srv: InProcessServer, api: Api, product: str, key: str,
                        machine: str) -> tuple[dict[str, Any], list[bytes], str]:
    """Activate ``machine`` with a recognisable email and registration; returns
    (the activation, every form of them the database holds, the end user's id)."""
    tag = secrets.token_hex(4)
    email = f"marker.{tag}@erased.example"
    registration = {"name": f"Marker {tag}", "company": f"Erased {tag} Ltd"}
    answer = api.activate(product, key, machine=machine, email=email,
                          registration=registration, consent=True)
    assert answer.status_code == 201, answer.text
    (user,) = srv.admin.find_end_users(email)
    clear, stored = _needles(srv, user["id"], email, registration)
    return answer.json(), clear + stored, user["id"]


@pytest.fixture
def clocked(tmp_path: Path) -> Iterator[tuple[InProcessServer, CheckpointJob, FakeClock]]:
    """An in-process SQLite server whose checkpoint job runs only when told, on a fake clock."""
    with InProcessServer(tmp_path) as srv:
        clock = FakeClock()
        job = install_checkpoint_job(CheckpointJob(srv.app.state.sdna.engine, interval=60,
                                                   clock=clock, background=False))
        yield srv, job, clock


def test_erasure_runs_no_vacuum_and_the_wal_checkpoint_empties_db_and_wal(
        clocked: tuple[InProcessServer, CheckpointJob, FakeClock]) -> None:
    srv, job, clock = clocked
    api = Api.for_server(srv)
    product = "ck-" + secrets.token_hex(3)
    srv.admin.setup_product(product)
    key = srv.admin.issue_license(product, seats=10)["license_key"]
    first, first_needles, _ = _with_personal_data(srv, api, product, key, "m1")
    second, second_needles, _ = _with_personal_data(srv, api, product, key, "m2")
    before = b"".join(_sqlite_files(srv).values())
    assert all(n in before for n in first_needles[-3:])  # the search sees the stored forms

    assert api.erasure(first["activation_id"], first["activation_secret"]).status_code == 200
    # The request did not checkpoint (nor vacuum): the job holds it, the WAL still has the bytes.
    assert job.pending and job.runs == 0
    assert any(n in b"".join(_sqlite_files(srv).values()) for n in first_needles)
    assert job.run_due()  # never ran before: due at once
    files = _sqlite_files(srv)
    assert files["server.db-wal"] == b""
    for name, data in files.items():
        for needle in first_needles:
            assert needle not in data, (name, needle)

    # A second erasure 10 s later: the job runs at most once a minute.
    clock.now += 10
    assert api.erasure(second["activation_id"], second["activation_secret"]).status_code == 200
    assert job.pending
    assert not job.run_due() and job.runs == 1
    assert any(n in b"".join(_sqlite_files(srv).values()) for n in second_needles)
    clock.now += 50
    assert job.run_due() and job.runs == 2 and not job.pending
    for name, data in _sqlite_files(srv).items():
        for needle in first_needles + second_needles:
            assert needle not in data, (name, needle)
    api.close()


def test_many_erasures_in_a_burst_cost_one_checkpoint_per_interval(tmp_path: Path) -> None:
    """Requests from many threads at once: one run; the next only once the interval passed."""
    with InProcessServer(tmp_path) as srv:
        engine = srv.app.state.sdna.engine
        clock = FakeClock()
        job = install_checkpoint_job(CheckpointJob(engine, interval=60, clock=clock))
        assert checkpoint_job(engine) is job
        start = threading.Barrier(20)

        def ask() -> None:
            start.wait()
            for _ in range(50):
                job.request()

        threads = [threading.Thread(target=ask) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        deadline = time.monotonic() + 10
        while job.runs < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # room for a wrong second run to show
        assert job.runs == 1
        clock.now += 60
        job.request()  # wakes the job: due now
        deadline = time.monotonic() + 10
        while job.runs < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert job.runs == 2
        assert job.wait_idle(10)
        job.close()


def test_concurrent_checkpoints_of_two_workers_are_harmless(tmp_path: Path) -> None:
    """Two processes' jobs on one file: each checkpoint succeeds or reports busy, never fails."""
    with InProcessServer(tmp_path) as srv:
        engines = [make_engine(srv.settings) for _ in range(2)]
        results: list[bool] = []
        errors: list[BaseException] = []

        def run(engine: Any) -> None:
            try:
                for _ in range(20):
                    results.append(wal_checkpoint(engine))
            except BaseException as exc:  # the finding
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(e,)) for e in engines]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for e in engines:
            e.dispose()
        assert not errors and len(results) == 40 and any(results)


def test_checkpoint_job_does_nothing_on_postgresql(database_url: str, tmp_path: Path) -> None:
    """PostgreSQL reclaims deleted tuples with autovacuum: the job never runs there."""
    with InProcessServer(tmp_path, database_url=database_url) as srv:
        job = checkpoint_job(srv.app.state.sdna.engine)
        job.request()
        if database_url.startswith("sqlite"):
            assert job.wait_idle(10) and job.runs >= 1
        else:
            assert not job.pending and job.runs == 0


# --------------------------------------------------------------------------- erasure rate limits


def _trial(http: requests.Session, url: str, product: str) -> dict[str, Any]:
    """A new machine's trial: activation credentials that cost nothing."""
    answer = http.post(f"{url}/v1/trials", timeout=30, json={
        "product": product, "fingerprint": fingerprint("t-" + secrets.token_hex(6)),
        "nonce": nonce()})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _erase(http: requests.Session, url: str, activation: dict[str, Any],
           secret: str | None = None, **headers: str) -> requests.Response:
    auth = {"Authorization": f"Bearer {secret or activation['activation_secret']}"}
    return http.post(f"{url}/v1/activations/{activation['activation_id']}/erasure",
                     json={"nonce": nonce()}, headers={**auth, **headers}, timeout=30)


def _session_from(srv: InProcessServer, address: str) -> requests.Session:
    """A session whose requests reach ``srv`` from the peer ``address``."""
    target = InProcessApp(srv.app, client=(address, 40000))
    http = requests.Session()
    http.mount(srv.url, ASGIAdapter(lambda: target))
    http.close = target.close  # type: ignore[method-assign]
    return http


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path, env={
            "SOFTWARE_DNA_ERASURE_ATTEMPTS": "2",
            "SOFTWARE_DNA_ERASURE_ADDRESS_ATTEMPTS": "4",
            "SOFTWARE_DNA_ERASURE_WINDOW": "3600"}) as srv:
        yield srv


def test_erasure_flood_of_one_activation_is_rate_limited(limited: InProcessServer) -> None:
    product = "el-" + secrets.token_hex(3)
    limited.admin.setup_product(product, trial_days=7)
    http = _session_from(limited, "192.0.2.10")
    other = _session_from(limited, "198.51.100.7")
    try:
        trial = _trial(http, limited.url, product)
        assert _erase(http, limited.url, trial).status_code == 200
        assert _erase(http, limited.url, trial).status_code == 200
        refused = _erase(http, limited.url, trial)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limited"
        assert "erasure" in refused.json()["error"]["message"]
        assert 0 < int(refused.headers["Retry-After"]) <= 3601
        # Another network does not lift the activation's limit.
        assert _erase(other, limited.url, trial).status_code == 429
    finally:
        http.close()
        other.close()


def test_erasure_with_fresh_trial_credentials_is_rate_limited_per_network(
        limited: InProcessServer) -> None:
    """New trials (free credentials), wrong secrets and forged X-Forwarded-For all count."""
    product = "en-" + secrets.token_hex(3)
    limited.admin.setup_product(product, trial_days=7)
    http = _session_from(limited, "203.0.113.5")
    other = _session_from(limited, "198.51.100.8")
    try:
        trials = [_trial(http, limited.url, product) for _ in range(4)]
        wrong = _erase(http, limited.url, trials[0], secret="not-the-secret")
        assert wrong.status_code == 401
        for n, trial in enumerate(trials[1:], start=1):
            answer = _erase(http, limited.url, trial, **{"X-Forwarded-For": f"10.0.0.{n}"})
            assert answer.status_code == 200, (n, answer.text)
        fifth = _erase(http, limited.url, _trial(http, limited.url, product),
                       **{"X-Forwarded-For": "10.9.9.9"})
        assert fifth.status_code == 429, fifth.text
        assert fifth.json()["error"]["code"] == "rate_limited"
        # Another network is not held up by this one.
        assert _erase(other, limited.url, trials[0]).status_code == 200
    finally:
        http.close()
        other.close()


def test_sdk_erasure_loop_is_refused_by_the_rate_limit(limited: InProcessServer,
                                                            tmp_path: Path) -> None:
    """The SDK's request_erasure() in a loop: the third is refused (a LicenseError naming
    the erasure limit), and the license keeps working."""
    product = "es-" + secrets.token_hex(3)
    keys = limited.admin.setup_product(product, trial_days=7)
    client = LicenseClient(product=product, public_keys=keys, server_url=limited.url,
                           store_path=tmp_path / "store", transport=limited.transport())
    try:
        client.start_trial()
        assert client.request_erasure().mode is Mode.LIMITED
        client.request_erasure()
        with pytest.raises(ActivationLocked, match="Too many erasure requests") as locked:
            client.request_erasure()
        assert locked.value.retry_after is not None  # when to ask again
        assert client.check().mode is Mode.LIMITED  # the license keeps working
    finally:
        client.close()


def test_erasure_from_many_addresses_of_one_ipv6_network_is_one_limit(
        limited: InProcessServer) -> None:
    """Addresses of one /64 (what one home gets) share the network's erasure limit."""
    vault = limited.app.state.sdna.ctx.vault
    addresses = [f"2001:db8:7:9::{n:x}" for n in range(1, 6)]
    assert len({vault.address_key(a) for a in addresses}) == 1  # one /64, one key
    product = "e6-" + secrets.token_hex(3)
    limited.admin.setup_product(product, trial_days=7)
    sessions = [_session_from(limited, a) for a in addresses]
    try:
        answers = [_erase(http, limited.url, _trial(http, limited.url, product)).status_code
                   for http in sessions]
        assert answers == [200, 200, 200, 200, 429], answers
    finally:
        for http in sessions:
            http.close()


# --------------------------------------------------------------------------- admin key first


@pytest.fixture(scope="module")
def process_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("surface"), log_level="warning") as srv:
        yield srv


def _raw(srv: LocalServer, head: bytes, body: bytes = b"") -> bytes:
    """Send ``head`` (and ``body``) on a fresh connection; the server's whole answer."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(head + body)
        reply = b""
        while b"\r\n\r\n" not in reply or not _complete(reply):
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


def _complete(reply: bytes) -> bool:
    head, _, body = reply.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":")[1])
    return False


def _head(path: str, *, length: int | None, auth: str | None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json"]
    lines.append(f"Content-Length: {length}" if length is not None
                 else "Transfer-Encoding: chunked")
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@pytest.mark.parametrize("path", ["/v1/admin/products", "/v1/admin/no-such-route/x",
                                  "/v1/administrator"])
@pytest.mark.parametrize("auth", [None, "Bearer wrong-key", "Basic abc"])
def test_unauthenticated_admin_body_over_4_kib_is_refused_before_it_is_read(
        process_server: LocalServer, path: str, auth: str | None) -> None:
    # Only the headers are sent: the 401 comes back without a byte of the 1 MiB body.
    reply = _raw(process_server, _head(path, length=1024 * 1024, auth=auth))
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]
    assert b'"code":"unauthorized"' in reply
    # Chunked: the first 4 KiB are read, then the key is checked before the rest.
    chunk = b"[" + b" " * 5000 + b"]"
    reply = _raw(process_server, _head(path, length=None, auth=auth),
                 f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 401"), reply[:200]


def test_admin_refusal_before_the_body_has_the_routes_shape(process_server: LocalServer) -> None:
    big = requests.post(f"{process_server.url}/v1/admin/products", data=b"{}" + b" " * 8000,
                        headers={"Content-Type": "application/json"}, timeout=30)
    small = requests.post(f"{process_server.url}/v1/admin/products", json={"id": "x"},
                          timeout=30)
    assert big.status_code == small.status_code == 401
    assert big.json() == small.json()


def test_admin_body_over_4_kib_with_the_key_is_read(process_server: LocalServer) -> None:
    product = "big-" + secrets.token_hex(3)
    body = ('{"id": "' + product + '", "name": "' + "n" * 100 + '"' + " " * 6000 + "}").encode()
    answer = requests.post(f"{process_server.url}/v1/admin/products", data=body, timeout=30,
                           headers={"Content-Type": "application/json",
                                    "Authorization": f"Bearer {process_server.admin_key}"})
    assert answer.status_code == 201, answer.text


def test_cli_erasure_leaves_no_byte_when_the_command_exits(tmp_path: Path) -> None:
    """The vendor's one-shot erasure (no server running): the files are clean when it ends."""
    with InProcessServer(tmp_path) as srv:
        api = Api.for_server(srv)
        product = "cli-" + secrets.token_hex(3)
        srv.admin.setup_product(product)
        key = srv.admin.issue_license(product, seats=2)["license_key"]
        _, needles, end_user = _with_personal_data(srv, api, product, key, "m1")
        api.close()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOFTWARE_DNA_") and k != "DATABASE_URL"}
    env.update(SOFTWARE_DNA_SERVER_HOME=str(tmp_path), DATABASE_URL=srv.database_url)
    done = subprocess.run([sys.executable, "-m", "software_dna.server.cli", "end-users",
                           "erase", end_user, "--yes"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    for name, data in _sqlite_files(srv).items():
        for needle in needles:
            assert needle not in data, (name, needle)
