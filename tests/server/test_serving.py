"""``server run --workers N`` in real processes on real sockets: how connections are
shared between the workers, and a graceful shutdown.

Invariants:
- with 2 workers and 16 keep-alive clients that connect at once, each worker
  serves 40-60 % of the validations (the dispatcher hands connections out in
  turn; the access log names the worker's pid on each line);
- SIGTERM lets a request in flight finish with 200, and the server refuses new
  connections from then on.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from software_dna.server.testing import LocalServer
from tests.fixtures_server import PgDatabases
from tests.server.helpers import check_token, fingerprint, nonce

CLIENTS = 16
ROUNDS = 20
_VALIDATION_LINE = re.compile(
    r'\[(\d+)\] INFO: +"POST /v1/activations/[^/]+/validate HTTP/1.1" 200')


def _activate(srv: LocalServer, pid: str, key: str, machine: str) -> tuple[str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
    try:
        body = {"product": pid, "license_key": key, "fingerprint": fingerprint(machine),
                "nonce": nonce(), "idempotency_key": secrets.token_urlsafe(18)}
        conn.request("POST", "/v1/activations", json.dumps(body),
                     {"Content-Type": "application/json"})
        answer = conn.getresponse()
        data = json.loads(answer.read())
        assert answer.status == 201, data
        return data["activation_id"], data["activation_secret"]
    finally:
        conn.close()


def _validate(conn: http.client.HTTPConnection, machine: str, activation: str,
              secret: str) -> dict[str, Any]:
    conn.request("POST", f"/v1/activations/{activation}/validate",
                 json.dumps({"fingerprint": fingerprint(machine), "nonce": nonce()}),
                 {"Content-Type": "application/json", "Authorization": f"Bearer {secret}"})
    answer = conn.getresponse()
    data: dict[str, Any] = json.loads(answer.read())
    assert answer.status == 200, data
    return data


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory,
                pg_databases: PgDatabases) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("serving-2w"), database_url=pg_databases.create(),
                     workers=2, log_level="info") as srv:
        yield srv


@pytest.fixture(scope="module")
def product(two_workers: LocalServer) -> tuple[str, list[str], str]:
    pid = "serving"
    keys = two_workers.admin.setup_product(pid)
    license_key: str = two_workers.admin.request(
        "POST", "/licenses", json={"product": pid, "seats": CLIENTS + 4})["license_key"]
    return pid, keys, license_key


@pytest.mark.postgres
def test_two_workers_share_sixteen_keep_alive_clients(
        two_workers: LocalServer, product: tuple[str, list[str], str]) -> None:
    pid, keys, license_key = product
    machines = [f"balance-{i}" for i in range(CLIENTS)]
    activations = [_activate(two_workers, pid, license_key, m) for m in machines]
    before = two_workers.log_path.read_text(encoding="utf-8", errors="replace")
    # Every client connects before any sends: the case a shared listening socket gets wrong.
    conns = [http.client.HTTPConnection("127.0.0.1", two_workers.port, timeout=60)
             for _ in machines]
    for conn in conns:
        conn.connect()
    sockets = [conn.sock for conn in conns]
    barrier = threading.Barrier(CLIENTS)
    failures: list[BaseException] = []

    def client(index: int) -> None:
        activation, secret = activations[index]
        try:
            barrier.wait()
            for _ in range(ROUNDS):
                data = _validate(conns[index], machines[index], activation, secret)
                check_token(data["token"], keys, pid)
                secret = data["activation_secret"]
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    # Keep-alive held: every client used the one connection it opened.
    assert [conn.sock for conn in conns] == sockets
    for conn in conns:
        conn.close()
    total = CLIENTS * ROUNDS
    deadline = time.monotonic() + 30  # the access log is written by two processes
    while True:
        log = two_workers.log_path.read_text(encoding="utf-8", errors="replace")
        served = Counter(_VALIDATION_LINE.findall(log[len(before):]))
        if sum(served.values()) >= total or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert sum(served.values()) == total, served
    assert len(served) == 2, served
    for pid_served, count in served.items():
        assert 0.40 <= count / total <= 0.60, (pid_served, served)


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.mark.postgres
def test_sigterm_finishes_the_request_in_flight_and_refuses_new_connections(
        tmp_path_factory: pytest.TempPathFactory, pg_databases: PgDatabases) -> None:
    with LocalServer(tmp_path_factory.mktemp("serving-stop"),
                     database_url=pg_databases.create(), workers=2) as srv:
        pid = "stopping"
        keys = srv.admin.setup_product(pid)
        license_key: str = srv.admin.request(
            "POST", "/licenses", json={"product": pid})["license_key"]
        activation, secret = _activate(srv, pid, license_key, "slow")
        body = json.dumps({"fingerprint": fingerprint("slow"), "nonce": nonce()}).encode()
        # A slow client: the request's head and half its body, the rest after SIGTERM.
        slow = socket.create_connection(("127.0.0.1", srv.port), timeout=60)
        slow.sendall(
            f"POST /v1/activations/{activation}/validate HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer {secret}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        process = srv._proc
        assert process is not None
        log_before = srv.log_path.read_text(encoding="utf-8", errors="replace")
        process.terminate()
        deadline = time.monotonic() + 30
        while not _refused(srv.port):  # the listening socket goes first
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.02)
        while srv.log_path.read_text(encoding="utf-8", errors="replace")[
                len(log_before):].count("Shutting down") < 2:
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.02)
        assert process.poll() is None  # still finishing our request
        slow.sendall(body[10:])
        raw = b""
        while b"\r\n\r\n" not in raw or len(raw.partition(b"\r\n\r\n")[2]) < _length(raw):
            chunk = slow.recv(65536)
            assert chunk, raw
            raw += chunk
        slow.close()
        head, _, payload = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), raw
        check_token(json.loads(payload)["token"], keys, pid)
        assert process.wait(30) == 0
        assert _refused(srv.port)


def _length(raw: bytes) -> int:
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").lower()
    found = re.search(r"content-length: *(\d+)", head)
    return int(found.group(1)) if found else 0
