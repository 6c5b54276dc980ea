"""Which requests the nginx recipe sends again after an instance received them and died.

An instance that dies after committing a request but before answering is
played by a relay: it passes the request to the real server, reads the
answer, and drops the connection without passing the answer on. nginx then
tries the other instance (the real server, as ``backup``).

Invariants:
- A repeated activation takes no second seat: the SDK ends with the one
  activation the server holds (the idempotency key).
- A repeated validation leaves the client valid, online and offline (the
  secret the lost answer rotated is the grace generation).
- A request outside those two routes is never repeated by the proxy: it
  reached one instance once, and the client gets the JSON ``unavailable``.
"""

from __future__ import annotations

import re
import secrets
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from software_dna import LicenseClient
from software_dna.server.testing import LocalServer
from software_dna.testing import SimulatedMachine
from tests.deploy._proxy import PROXY_SOURCE, Nginx, require_nginx
from tests.tls import Tls, make_tls


def _read_message(conn: socket.socket, buffered: bytes = b"") -> tuple[bytes, bytes]:
    """One HTTP/1.1 message with a Content-Length body; returns (message, what follows)."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the headers ended")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
    length = int(match.group(1)) if match else 0
    while len(rest) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise ConnectionError("closed before the body ended")
        rest += chunk
    return head + b"\r\n\r\n" + rest[:length], rest[length:]


class LosingRelay(socketserver.ThreadingTCPServer):
    """Passes requests to ``target``; drops the answer of those whose path matches ``lose``.

    Attributes: ``port``; ``lost`` (paths whose answer was dropped after the
    server handled them); ``passed`` (paths answered normally).
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, target: int, lose: str) -> None:
        super().__init__(("127.0.0.1", 0), _RelayHandler)
        self.target, self.lose = target, re.compile(lose)
        self.port: int = self.server_address[1]
        self.lost: list[str] = []
        self.passed: list[str] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.shutdown()
        self.server_close()


class _RelayHandler(socketserver.BaseRequestHandler):
    server: LosingRelay

    def handle(self) -> None:
        conn: socket.socket = self.request
        pending = b""
        try:
            while True:
                request, pending = _read_message(conn, pending)
                path = request.split(b" ", 2)[1].decode("ascii", "replace")
                with socket.create_connection(("127.0.0.1", self.server.target),
                                              timeout=30) as upstream:
                    upstream.sendall(request)
                    answer, _ = _read_message(upstream)
                if self.server.lose.search(path):
                    self.server.lost.append(path)
                    return  # the instance "died" after doing the work: no answer
                self.server.passed.append(path)
                conn.sendall(answer)
        except (ConnectionError, OSError):
            return


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    require_nginx()
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("instance"), database_url=database_url,
                     forwarded_allow_ips=PROXY_SOURCE, log_level="warning") as server:
        yield server


def _proxied(tmp_path: Path, tls: Tls, instance: LocalServer, lose: str) -> tuple[Nginx,
                                                                                 LosingRelay]:
    relay = LosingRelay(instance.port, lose)
    proxy = Nginx(tmp_path / "nginx", tls, [relay.port, instance.port], backup=[instance.port])
    try:
        proxy.start()
    except BaseException:
        relay.close()
        raise
    return proxy, relay


def _product(instance: LocalServer) -> tuple[str, list[str]]:
    product = "retry-" + secrets.token_hex(3)
    return product, instance.admin.setup_product(product)


def _client(product: str, keys: list[str], proxy: Nginx, tls: Tls, home: Path) -> LicenseClient:
    return LicenseClient(product=product, public_keys=keys, server_url=proxy.https_url,
                         ca_bundle=str(tls.ca), machine=SimulatedMachine(home),
                         store_path=home / "store", timeout=15)


def test_an_activation_whose_answer_was_lost_is_repeated_without_a_second_seat(
        tmp_path: Path, tls: Tls, instance: LocalServer) -> None:
    product, keys = _product(instance)
    lic = instance.admin.issue_license(product, seats=2)
    proxy, relay = _proxied(tmp_path, tls, instance, lose=r"^/v1/activations$")
    client = _client(product, keys, proxy, tls, tmp_path / "m")
    try:
        activated = client.activate(lic["license_key"])
        assert client.refresh().activation_id == activated.activation_id
        lines = proxy.lines_after(0, 2)
    finally:
        client.close()
        proxy.stop()
        relay.close()
    assert relay.lost == ["/v1/activations"]  # the first instance did take the seat ...
    assert instance.admin.get_license(lic["id"])["seats_in_use"] == 1  # ... and only it
    # The proxy itself sent it again; the second instance answered with the existing one.
    assert lines[0][1:3] == ["200", f"127.0.0.1:{relay.port}, 127.0.0.1:{instance.port}"]


def test_a_validation_whose_answer_was_lost_is_repeated_and_the_client_stays_valid(
        tmp_path: Path, tls: Tls, instance: LocalServer) -> None:
    product, keys = _product(instance)
    key = instance.admin.issue_license(product, seats=1)["license_key"]
    proxy, relay = _proxied(tmp_path, tls, instance, lose=r"/validate$")
    client = _client(product, keys, proxy, tls, tmp_path / "m")
    try:
        activated = client.activate(key)
        for _ in range(3):  # the first one's answer is lost and repeated by the proxy
            assert client.refresh().activation_id == activated.activation_id
        assert client.check().activation_id == activated.activation_id
        validations = [line for line in proxy.lines_after(0, 4) if line[4].endswith("/validate")]
    finally:
        client.close()
        proxy.stop()
        relay.close()
    assert relay.passed == ["/v1/activations"]
    assert len(relay.lost) == 1 and relay.lost[0].endswith("/validate")
    assert validations[0][1:3] == ["200", f"127.0.0.1:{relay.port}, 127.0.0.1:{instance.port}"]


def test_other_requests_are_not_repeated_once_an_instance_received_them(
        tmp_path: Path, tls: Tls, instance: LocalServer) -> None:
    proxy, relay = _proxied(tmp_path, tls, instance, lose=r"^/v1/password-resets$")
    try:
        before = len(proxy.access_lines())
        answer = requests.post(f"{proxy.https_url}/v1/password-resets",
                               json={"product": "none", "license_key": "ZZZZ-ZZZZ-ZZZZ-ZZZZ"},
                               verify=str(tls.ca), timeout=30)
        line = proxy.lines_after(before)[0]
    finally:
        proxy.stop()
        relay.close()
    assert answer.status_code == 503
    assert answer.json()["error"]["code"] == "unavailable" and "Retry-After" in answer.headers
    assert relay.lost == ["/v1/password-resets"]
    assert line[2] == f"127.0.0.1:{relay.port}"  # one upstream only: not sent again
