"""The nginx recipe (deploy/nginx/software-dna.conf), run for real in front of the server.

Invariants:
- The SDK reaches the server only over TLS verified against the vendor's CA
  (pinned with ``ca_bundle``); without that CA the connection is refused.
- Plain HTTP to the proxy is redirected to HTTPS and never reaches the server.
- The server's idea of a client's address (the rate limit's key) comes from
  X-Forwarded-For only when the proxy sent it: a client talking to the server
  directly, or through the proxy, cannot choose its rate-limit address by
  sending its own header.
- Bodies over the recipe's limit are refused by the proxy with the server's
  JSON error; a client that stalls mid-body is cut off by the proxy.
"""

from __future__ import annotations

import http.client
import json
import re
import secrets
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from software_dna import LicenseClient
from software_dna.errors import ServerUnreachable
from software_dna.server.testing import LocalServer
from software_dna.testing import SimulatedMachine
from tests.deploy._proxy import PROXY_SOURCE, RECIPE, Nginx, require_nginx
from tests.server.helpers import fingerprint, nonce
from tests.tls import Tls, make_tls

#: Activation attempts per client address per window on the server under test.
ADDRESS_LIMIT = 4
#: The stalled-body timeout the test runs with (the recipe's is longer; see
#: test_recipe_bounds_every_client_timeout).
BODY_TIMEOUT = "1s"


class Stack:
    """One server behind nginx, and what the tests need to reach them."""

    def __init__(self, server: LocalServer, proxy: Nginx, tls: Tls, product: str,
                 keys: list[str]) -> None:
        self.server, self.proxy, self.tls, self.product, self.keys = \
            server, proxy, tls, product, keys


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_nginx()
    folder = tmp_path_factory.mktemp("proxy")
    tls = make_tls(folder)
    with LocalServer(folder / "server", forwarded_allow_ips=PROXY_SOURCE,
                     rate_limit_address_attempts=ADDRESS_LIMIT, rate_limit_window=600,
                     log_level="warning") as server, \
            Nginx(folder / "nginx", tls, [server.port],
                  overrides={"client_body_timeout": BODY_TIMEOUT}) as proxy:
        product = "proxied-" + secrets.token_hex(3)
        keys = server.admin.setup_product(product)
        yield Stack(server, proxy, tls, product, keys)


def _client(stack: Stack, home: Path, *, pinned: bool = True) -> LicenseClient:
    return LicenseClient(product=stack.product, public_keys=stack.keys,
                         server_url=stack.proxy.https_url,
                         ca_bundle=str(stack.tls.ca) if pinned else None,
                         machine=SimulatedMachine(home), store_path=home / "store",
                         timeout=10)


def test_sdk_activates_and_validates_over_tls_with_the_ca_pinned(stack: Stack,
                                                                tmp_path: Path) -> None:
    key = stack.server.admin.issue_license(stack.product, seats=1)["license_key"]
    before = len(stack.proxy.access_lines())
    client = _client(stack, tmp_path / "m1")
    try:
        activated = client.activate(key)
        refreshed = client.refresh()
        assert refreshed.activation_id == activated.activation_id
        assert client.check().activation_id == activated.activation_id
    finally:
        client.close()
    validations = [line for line in stack.proxy.lines_after(before, 2)
                   if line[4].endswith("/validate")]
    assert validations and validations[-1][1] == "200"


def test_without_the_vendor_ca_the_sdk_refuses_the_proxy(stack: Stack, tmp_path: Path) -> None:
    lic = stack.server.admin.issue_license(stack.product, seats=1)
    client = _client(stack, tmp_path / "m2", pinned=False)
    try:
        with pytest.raises(ServerUnreachable, match="certificate"):
            client.activate(lic["license_key"])
    finally:
        client.close()
    assert stack.server.admin.get_license(lic["id"])["seats_in_use"] == 0


def test_plain_http_is_redirected_and_never_reaches_the_server(stack: Stack) -> None:
    before = len(stack.proxy.access_lines())
    for method in ("GET", "POST"):
        answer = requests.request(method, f"{stack.proxy.http_url}/v1/activations",
                                  json={"x": 1}, allow_redirects=False, timeout=30)
        assert answer.status_code == 308
        assert answer.headers["Location"].startswith("https://")
    lines = stack.proxy.lines_after(before, 2)
    assert len(lines) == 2
    assert all(line[2] == "-" for line in lines), lines  # no upstream was contacted


def _tls_context(stack: Stack) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(stack.tls.ca))


def _attempt(stack: Stack, *, source: str, via_proxy: bool, forwarded_for: str | None) -> int:
    """One activation attempt with an unknown key from ``source``; returns the HTTP status."""
    body = json.dumps({"product": stack.product, "license_key": "ZZZZ-ZZZZ-ZZZZ-ZZZZ",
                       "fingerprint": fingerprint("spoof"), "nonce": nonce(),
                       "idempotency_key": nonce(), "consent": False})
    headers = {"Content-Type": "application/json"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    conn: http.client.HTTPConnection
    if via_proxy:
        conn = http.client.HTTPSConnection("127.0.0.1", stack.proxy.https_port, timeout=30,
                                           source_address=(source, 0),
                                           context=_tls_context(stack))
    else:
        conn = http.client.HTTPConnection("127.0.0.1", stack.server.port, timeout=30,
                                          source_address=(source, 0))
    try:
        conn.request("POST", "/v1/activations", body=body, headers=headers)
        return conn.getresponse().status
    finally:
        conn.close()


def _spoofed() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 1}"


def test_a_direct_client_cannot_choose_its_rate_limit_address(stack: Stack) -> None:
    # Each attempt claims another address; the server counts the real one.
    statuses = [_attempt(stack, source="127.0.0.5", via_proxy=False, forwarded_for=_spoofed())
                for _ in range(ADDRESS_LIMIT + 1)]
    assert statuses == [404] * ADDRESS_LIMIT + [429]


def test_a_proxied_client_cannot_choose_its_rate_limit_address(stack: Stack) -> None:
    statuses = [_attempt(stack, source="127.0.0.3", via_proxy=True, forwarded_for=_spoofed())
                for _ in range(ADDRESS_LIMIT + 1)]
    assert statuses == [404] * ADDRESS_LIMIT + [429]
    # The server saw the client's address, not the proxy's: another client is not limited.
    assert _attempt(stack, source="127.0.0.4", via_proxy=True, forwarded_for=None) == 404


def test_a_body_over_the_limit_is_refused_by_the_proxy_as_json(stack: Stack) -> None:
    before = len(stack.proxy.access_lines())
    answer = requests.post(f"{stack.proxy.https_url}/v1/activations", data=b"{" * (2 << 20),
                           headers={"Content-Type": "application/json"},
                           verify=str(stack.tls.ca), timeout=30)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"
    line = stack.proxy.lines_after(before)[0]
    assert line[1] == "413" and line[2] == "-"  # refused before any instance


def test_a_body_over_the_public_limit_is_refused_by_the_server_through_the_proxy(
        stack: Stack) -> None:
    answer = requests.post(f"{stack.proxy.https_url}/v1/activations", data=b" " * (100 << 10),
                           headers={"Content-Type": "application/json"},
                           verify=str(stack.tls.ca), timeout=30)
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "too_large"


def test_a_client_that_stalls_mid_body_is_cut_off(stack: Stack) -> None:
    before = len(stack.proxy.access_lines())
    raw = socket.create_connection(("127.0.0.1", stack.proxy.https_port), timeout=60)
    with _tls_context(stack).wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        conn.sendall(b"POST /v1/activations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"a\"")
        received = b""
        while chunk := conn.recv(65536):  # nginx closes the connection
            received += chunk
    assert received in (b"",) or received.startswith(b"HTTP/1.1 408"), received[:200]
    # Logged as 408, and the body was buffered by the proxy: no instance was held up.
    assert [line[1:3] for line in stack.proxy.lines_after(before)] == [["408", "-"]]


def _directive_values(name: str) -> list[str]:
    text = RECIPE.read_text(encoding="utf-8")
    return re.findall(rf"^\s*{name}\s+([^;]+);", text, flags=re.MULTILINE)


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)?", value.strip())
    assert match, value
    number, unit = int(match.group(1)), match.group(2) or "s"
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else float(number)


@pytest.mark.parametrize(("directive", "most"), [
    ("client_header_timeout", 30), ("client_body_timeout", 30), ("send_timeout", 30),
    ("proxy_connect_timeout", 5), ("proxy_read_timeout", 60), ("proxy_send_timeout", 30),
    ("proxy_next_upstream_timeout", 30),
])
def test_recipe_bounds_every_client_timeout(directive: str, most: float) -> None:
    values = _directive_values(directive)
    assert len(values) == 1, f"{directive} is set {len(values)} times in the recipe"
    assert 0 < _seconds(values[0]) <= most


def test_recipe_limits_bodies_to_the_servers_largest_limit() -> None:
    from software_dna.server.config import ADMIN_BODY_LIMIT  # noqa: PLC0415

    assert _directive_values("client_max_body_size") == [f"{ADMIN_BODY_LIMIT >> 20}m"]
