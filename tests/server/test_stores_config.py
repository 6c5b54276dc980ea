"""Store connectors and price mappings: the admin API, the rules, and ``software-dna stores``.

The admin API on the app in this process (SQLite); the CLI in this process on
a data folder made by ``software-dna server init`` (direct mode) and against
the app behind uvicorn on a thread (remote mode opens its own connections).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna.server.adminclient import AdminError
from software_dna.server.cli import _common
from tests.cli_runner import run_cli
from tests.stores_payloads import Shop, now, stripe_event, stripe_invoice

from ..inprocess import InProcessServer
from ..threaded import ThreadedServer

SECRET = "whsec_" + "C0nf1gXy" * 4


@pytest.fixture
def shop(inprocess_server: InProcessServer) -> Iterator[Shop]:
    store = Shop(inprocess_server)
    yield store
    store.close()


def _refused(call: Any) -> AdminError:
    with pytest.raises(AdminError) as info:
        call()
    return info.value


def test_a_connector_keeps_its_secret_encrypted_and_never_shows_it(shop: Shop) -> None:
    connector = shop.connect("stripe", SECRET, refund_action="suspend")
    listed = {c["id"]: c for c in shop.admin.list_stores()}[connector]
    assert listed == {**listed, "provider": "stripe", "mode": "live",
                      "refund_action": "suspend", "webhook_path": "/v1/stores/stripe/webhook"}
    assert SECRET not in json.dumps(shop.admin.list_stores())
    stored = shop.scalar("SELECT secret_ciphertext FROM store_connectors WHERE id = :c",
                         c=connector)
    assert SECRET.encode() not in bytes(stored)
    # Connecting again replaces the secret (rotation): the old one no longer verifies.
    product = shop.product()
    shop.map(connector, "price_rotated", product, subscription=True)
    assert shop.connect("stripe", SECRET + "new", refund_action="revoke") == connector
    event = stripe_event("invoice.paid", stripe_invoice(
        subscription="sub_rotated", price="price_rotated",
        period_end=now() + timedelta(days=30)))
    assert shop.poster.stripe(event, SECRET).json()["error"]["code"] == "invalid_signature"
    assert shop.poster.stripe(event, SECRET + "new").json() == {"outcome": "issued"}
    # A store that issued a license cannot be disconnected (its renewals must still apply).
    assert _refused(lambda: shop.admin.disconnect_store(connector)).status == 409


@pytest.mark.parametrize(("fields", "status"), [
    ({"provider": "shopify", "secret": SECRET}, 400),
    ({"provider": "stripe", "secret": "short"}, 400),
    ({"provider": "stripe", "secret": SECRET, "mode": "staging"}, 400),
    ({"provider": "stripe", "secret": SECRET, "refund_action": "refund"}, 400),
    ({"provider": "stripe", "secret": SECRET, "extra": 1}, 400),
])
def test_malformed_connectors_are_refused(shop: Shop, fields: dict[str, Any],
                                          status: int) -> None:
    error = _refused(lambda: shop.admin.request("POST", "/stores/connectors", json=fields))
    assert error.status == status
    assert SECRET not in error.message


def test_mapping_rules(shop: Shop) -> None:
    connector = shop.connect("paddle", "pdl_ntfset_" + "m" * 20)
    plain = shop.product(subscription=False)
    mandatory = shop.product()
    # A subscription needs protection "mandatory".
    assert _refused(lambda: shop.map(connector, "pri_a", plain, subscription=True)).status == 400
    made = shop.map(connector, "pri_a", mandatory, subscription=True, seats=5,
                    features=["pro"], seat_mode="user")
    assert (made["product"], made["seats"], made["seat_mode"]) == (mandatory, 5, "user")
    # A sale cannot give a password, so a product that requires one is refused.
    locked = shop.product(subscription=False)
    shop.admin.update_product(locked, password_required=True)
    assert _refused(lambda: shop.map(connector, "pri_p", locked)).status == 400
    # One mapping per price and connector.
    assert _refused(lambda: shop.map(connector, "pri_a", plain)).status == 409
    assert _refused(lambda: shop.map("sc_nope", "pri_b", plain)).status == 404
    assert _refused(lambda: shop.map(connector, "pri_b", "no-such-product")).status == 404
    # Test sales never reach a live product (and the other way round).
    test = shop.connect("paddle", "pdl_ntfset_" + "t" * 20, mode="test")
    assert _refused(lambda: shop.map(test, "pri_c", mandatory)).status == 409
    test_product = shop.product()
    shop.map(test, "pri_c", test_product)
    assert _refused(lambda: shop.map(connector, "pri_d", test_product)).status == 409
    assert {m["price_ref"] for m in shop.admin.list_mappings(connector)} == {"pri_a"}
    shop.admin.unmap_price(made["id"])
    assert shop.admin.list_mappings(connector) == []
    assert _refused(lambda: shop.admin.unmap_price(made["id"])).status == 404
    # A connector that issued nothing can go, with its mappings.
    shop.admin.disconnect_store(test)
    assert all(c["id"] != test for c in shop.admin.list_stores())
    assert shop.admin.list_mappings(test) == []


def test_the_routes_need_the_admin_key(shop: Shop) -> None:
    http = shop.poster.http
    for method, path in [("GET", "/v1/admin/stores/connectors"),
                         ("POST", "/v1/admin/stores/mappings"),
                         ("DELETE", "/v1/admin/stores/mappings/1")]:
        answer = http.request(method, shop.server.url + path, json={}, timeout=30)
        assert answer.status_code == 401, path


# --------------------------------------------------------------------------- the CLI



PUBLIC_URL = "https://licenses.example.com"


def _cycle(prefix: list[str], product: str) -> None:
    """connect, list, map, mappings, unmap, disconnect through one backend."""
    # A Stripe API key or any other text is not the webhook signing secret.
    code, _, err = run_cli("stores", "connect", *prefix, "stripe", "--secret-stdin",
                        stdin="sk_live_" + "x" * 24 + "\n")
    assert code != 0 and "API key" in err and "whsec_" in err
    code, _, err = run_cli("stores", "connect", *prefix, "stripe", "--secret", "not-a-whsec")
    assert code != 0 and "whsec_" in err
    # The webhook URL printed is the one to paste: the server's public URL + the path.
    code, out, err = run_cli("stores", "connect", *prefix, "stripe", "--secret-stdin",
                          stdin="whsec_cli_" + "s" * 16 + "\n")
    assert code == 0, err
    assert f"webhook URL: {PUBLIC_URL}/v1/stores/stripe/webhook" in out
    code, out, _ = run_cli("stores", "list", *prefix, "--json")
    (stripe,) = json.loads(out)["connectors"]
    assert stripe["webhook_url"] == f"{PUBLIC_URL}/v1/stores/stripe/webhook"
    assert run_cli("stores", "disconnect", *prefix, stripe["id"])[0] == 0
    code, out, err = run_cli("stores", "connect", *prefix, "lemonsqueezy", "--secret-stdin",
                          "--refund-action", "none", "--json", stdin="ls-cli-secret\n")
    assert code == 0, err
    connector = json.loads(out)
    assert connector["refund_action"] == "none" and "secret" not in connector
    code, out, _ = run_cli("stores", "list", *prefix)
    assert code == 0 and connector["id"] in out and "ls-cli-secret" not in out
    code, out, err = run_cli("stores", "map", *prefix, connector["id"], "424242", product,
                          "--seats", "2", "--json")
    assert code == 0, err
    mapping = json.loads(out)
    assert (mapping["price_ref"], mapping["seats"]) == ("424242", 2)
    code, out, _ = run_cli("stores", "mappings", *prefix, "--connector", connector["id"], "--json")
    assert [m["id"] for m in json.loads(out)["mappings"]] == [mapping["id"]]
    code, out, err = run_cli("stores", "map", *prefix, connector["id"], "525252", product,
                          "--days", "365", "--feature", "pro", "--feature", "export", "--json")
    assert code == 0, err
    yearly = json.loads(out)
    # The listing shows what a sale gives: kind, term, features.
    code, out, _ = run_cli("stores", "mappings", *prefix, "--connector", connector["id"])
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "full, perpetual, product's features" in lines[str(mapping["id"])]
    assert "full, 365 days from first activation, features export,pro" in lines[
        str(yearly["id"])]
    assert run_cli("stores", "unmap", *prefix, str(yearly["id"]))[0] == 0
    code, _, err = run_cli("stores", "map", *prefix, connector["id"], "424242", product)
    assert code != 0 and "already" in err
    assert run_cli("stores", "unmap", *prefix, str(mapping["id"]))[0] == 0
    assert run_cli("stores", "disconnect", *prefix, connector["id"])[0] == 0
    code, out, _ = run_cli("stores", "list", *prefix, "--json")
    assert json.loads(out) == {"connectors": []}


def test_the_cli_on_the_database(tmp_path: Path, own_key_folder: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL", _common.ENV_SERVER_URL,
                 _common.ENV_ADMIN_KEY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", PUBLIC_URL)
    code, out, err = run_cli("server", "init")
    assert code == 0, err
    assert re.search(r"sdna_admin_", out)
    assert run_cli("products", "create", "cli-prod")[0] == 0
    _cycle([], "cli-prod")


def test_the_cli_against_a_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL", _common.ENV_SERVER_URL,
                 _common.ENV_ADMIN_KEY):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SOFTWARE_DNA_PUBLIC_URL", raising=False)  # the server's, not ours
    with ThreadedServer(tmp_path / "srv", env={"SOFTWARE_DNA_PUBLIC_URL": PUBLIC_URL}) as server:
        server.admin.create_product("remote-prod")
        _cycle(["--server-url", server.url, "--admin-key", server.admin_key], "remote-prod")
