"""Per-address rate limits count the client's network, not the exact address string.

One home gets one IPv4 address but a whole IPv6 /64, so an attacker who
changes the low 64 bits of its address (or writes its IPv4 address as
``::ffff:a.b.c.d``) must not get a new counter.  The requests go through the
real app (in this process, on SQLite and PostgreSQL) with the peer address set
per request, as uvicorn -- or a trusted proxy's ``X-Forwarded-For`` -- would
hand it to the app.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from software_dna.server.crypto import UNPARSED_NETWORK, Vault, rate_limit_network
from software_dna.server.testing._inprocess import InProcessApp
from tests.inprocess import InProcessServer
from tests.server.helpers import fingerprint, nonce

LIMIT = 5
HOME = ipaddress.IPv6Network("2001:db8:1:2::/64")


@pytest.mark.parametrize(("address", "network"), [
    ("203.0.113.7", "203.0.113.7"),
    (" 203.0.113.7 ", "203.0.113.7"),
    ("::ffff:203.0.113.7", "203.0.113.7"),  # IPv4-mapped
    ("::FFFF:cb00:7107", "203.0.113.7"),
    ("2002:cb00:7107::1", "203.0.113.7"),  # 6to4 carries the site's IPv4 address
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("[2001:db8:1:2::1]", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    ("::1", "::/64"),
    ("testclient", UNPARSED_NETWORK),
    ("", UNPARSED_NETWORK),
    ("203.0.113.7:5000", UNPARSED_NETWORK),
    ("2001:db8::/64", UNPARSED_NETWORK),
    ("999.1.1.1", UNPARSED_NETWORK),
    ("x" * 10_000, UNPARSED_NETWORK),
])
def test_rate_limit_network(address: str, network: str) -> None:
    assert rate_limit_network(address) == network


def test_rate_limit_network_prefix_setting() -> None:
    assert rate_limit_network("2001:db8:1:2::1", 48) == "2001:db8:1::/48"
    assert rate_limit_network("2001:db8:1:2::1", 128) == "2001:db8:1:2::1/128"
    assert rate_limit_network("203.0.113.7", 32) == "203.0.113.7"  # IPv4 stays /32
    for bad in (31, 129, 0):
        with pytest.raises(ValueError, match="32 to 128"):
            rate_limit_network("::1", bad)


def test_address_key_is_the_networks() -> None:
    vault = Vault(secrets.token_bytes(32))
    assert vault.address_key("1.2.3.4") == vault.address_key("::ffff:1.2.3.4")
    assert vault.address_key("2001:db8:1:2::1") == vault.address_key("2001:db8:1:2:ffff::9")
    assert vault.address_key("2001:db8:1:2::1") != vault.address_key("2001:db8:1:3::1")
    wide = Vault(secrets.token_bytes(32), ipv6_prefix=48)
    assert wide.address_key("2001:db8:1:2::1") == wide.address_key("2001:db8:1:3::1")
    with pytest.raises(ValueError):
        Vault(secrets.token_bytes(32), ipv6_prefix=20)


# --------------------------------------------------------------------------- the real app


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, database_url: str
        ) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("networks"), database_url=database_url,
                         rate_limit_address_attempts=LIMIT, rate_limit_attempts=1000,
                         rate_limit_window=3600) as server:
        yield server


class Peer:
    """Requests to the app from a chosen client address."""

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        self.app = InProcessApp(server.app)

    def close(self) -> None:
        self.app.close()

    def post(self, address: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.app.client = (address, 50000)
        status, _, raw = self.app.request("POST", self.server.url + path,
                                          {"content-type": "application/json"},
                                          json.dumps(body).encode())
        return status, json.loads(raw) if raw else {}

    def activate(self, address: str, product: str, key: str = "") -> tuple[int, str]:
        status, body = self.post(address, "/v1/activations", {
            "product": product, "license_key": key or "NOPE-NOPE-NOPE-NOPE",
            "fingerprint": fingerprint("m-" + secrets.token_hex(4)), "nonce": nonce(),
            "idempotency_key": secrets.token_urlsafe(18)})
        return status, str(body.get("error", {}).get("code", ""))


@pytest.fixture
def peer(srv: InProcessServer) -> Iterator[Peer]:
    made = Peer(srv)
    yield made
    made.close()


def _in(network: ipaddress.IPv6Network) -> str:
    return str(network[secrets.randbelow(network.num_addresses)])


def _product(srv: InProcessServer, **policy: Any) -> str:
    product = "net-" + secrets.token_hex(4)
    srv.admin.setup_product(product, **policy)
    return product


def test_a_thousand_addresses_of_one_ipv6_64_share_one_limit(srv: InProcessServer,
                                                             peer: Peer) -> None:
    product = _product(srv)
    home = ipaddress.IPv6Network(f"2001:db8:{secrets.randbelow(0xffff):x}:1::/64")
    answers = [peer.activate(_in(home), product) for _ in range(1000)]
    assert answers[:LIMIT] == [(404, "unknown_license_key")] * LIMIT
    assert set(answers[LIMIT:]) == {(429, "rate_limited")}
    # The next /64 is another home: not limited by this one.
    neighbour = ipaddress.IPv6Network((int(home.network_address) + (1 << 64), 64))
    assert peer.activate(_in(neighbour), product) == (404, "unknown_license_key")
    # The same network is limited on every public route that counts addresses.
    status, body = peer.post(_in(home), "/v1/trials", {
        "product": product, "fingerprint": fingerprint("trial-box"), "nonce": nonce()})
    assert (status, body["error"]["code"]) == (429, "rate_limited")
    # The vendor unlocks the network by naming any address in it.
    cleared = srv.admin.reset_lockout(address=_in(home))
    assert cleared["attempts_forgotten"] == LIMIT
    assert peer.activate(_in(home), product) == (404, "unknown_license_key")


def test_ipv4_mapped_address_shares_the_ipv4_counter(srv: InProcessServer, peer: Peer) -> None:
    product = _product(srv)
    v4 = str(ipaddress.IPv4Address(0xC6336400 + secrets.randbelow(256)))  # 198.51.100.x
    mapped = ipaddress.IPv6Address("::ffff:" + v4)
    forms = [v4, f"::ffff:{v4}", mapped.compressed, mapped.exploded.upper()]
    answers = [peer.activate(forms[n % len(forms)], product) for n in range(LIMIT + 3)]
    assert answers[:LIMIT] == [(404, "unknown_license_key")] * LIMIT
    assert set(answers[LIMIT:]) == {(429, "rate_limited")}
    other = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(v4)) ^ 0x100))
    assert peer.activate(other, product) == (404, "unknown_license_key")


def test_a_peer_that_is_not_an_ip_address_is_limited_not_a_500(srv: InProcessServer,
                                                               peer: Peer) -> None:
    product = _product(srv)
    # Every peer that is not an IP address is one network: no malformed value mints
    # a new counter.
    answers = [peer.activate(f"not-an-address-{n}", product) for n in range(LIMIT + 2)]
    assert answers[:LIMIT] == [(404, "unknown_license_key")] * LIMIT
    assert set(answers[LIMIT:]) == {(429, "rate_limited")}


def test_activation_ledger_counts_the_network(srv: InProcessServer, peer: Peer) -> None:
    # The re-activation lock-out by address (new activations per network and period)
    # keys its ledger with the same network.
    product = _product(srv, address_activation_limit=2)
    home = ipaddress.IPv6Network(f"2001:db8:{secrets.randbelow(0xffff):x}:2::/64")
    keys = [srv.admin.issue_license(product)["license_key"] for _ in range(3)]
    assert peer.activate(_in(home), product, keys[0])[0] == 201
    assert peer.activate(_in(home), product, keys[1])[0] == 201
    assert peer.activate(_in(home), product, keys[2]) == (429, "activation_locked")
