"""Attack review: per-network limits and IPv4 clients written as IPv6.

A real server process behind a trusted proxy (X-Forwarded-For from 127.0.0.1 believed).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from software_dna.server.crypto import rate_limit_network
from software_dna.server.testing import LocalServer
from tests.server.helpers import fingerprint, nonce

ADDRESS_ATTEMPTS = 5


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with tempfile.TemporaryDirectory(prefix="sdna-attack-net-") as folder, LocalServer(
            Path(folder), log_level="warning", forwarded_allow_ips="127.0.0.1",
            rate_limit_address_attempts=ADDRESS_ATTEMPTS, rate_limit_window=300) as server:
        server.admin.setup_product("acme")
        yield server


def attempt(server: LocalServer, client: str) -> int:
    answer = requests.post(f"{server.url}/v1/activations", timeout=30,
                           headers={"X-Forwarded-For": client},
                           json={"product": "acme", "license_key": "ZZZZ-ZZZZ-ZZZZ-ZZZZ",
                                 "fingerprint": fingerprint("n"), "nonce": nonce(),
                                 "idempotency_key": nonce(), "consent": False})
    return answer.status_code


@pytest.mark.parametrize(("first", "second"), [
    # RFC 6052 well-known prefix (NAT64 / SIIT-DC): IPv4 clients 192.0.2.1 and 198.51.100.7
    ("64:ff9b::c000:201", "64:ff9b::c633:6407"),
    # IPv4-translated addresses (RFC 2765 SIIT, ::ffff:0:0/96)
    ("::ffff:0:c000:201", "::ffff:0:c633:6407"),
])
def test_ipv4_clients_behind_a_translator_do_not_share_one_counter(
        srv: LocalServer, first: str, second: str) -> None:
    """Every IPv4 client reaching an IPv6 server through a stateless translator is written
    64:ff9b::a.b.c.d: one /64 for the whole IPv4 Internet. One attacker then locks every
    IPv4 user out of activation (and of password reset, erasure, confirmation)."""
    answers = [attempt(srv, first) for _ in range(ADDRESS_ATTEMPTS + 1)]
    assert answers[-1] == 429, answers
    assert attempt(srv, second) != 429


@pytest.mark.parametrize(("address", "network"), [
    ("64:ff9b::c000:201", "192.0.2.1"),
    ("[64:ff9b::192.0.2.1]", "192.0.2.1"),
    ("::ffff:0:c633:6407", "198.51.100.7"),
    # only the well-known /96: other addresses of 64:ff9b::/64 and the local-use
    # 64:ff9b:1::/48 (network-specific) stay IPv6 networks
    ("64:ff9b::1:c000:201", "64:ff9b::/64"),
    ("64:ff9b:1::c000:201", "64:ff9b:1::/64"),
])
def test_only_a_translators_well_known_prefix_is_read_as_ipv4(address: str, network: str) -> None:
    """Only the translators' well-known /96 prefixes are read as IPv4; any other IPv6
    address (one a native IPv6 client holds) keeps its /64."""
    assert rate_limit_network(address) == network
