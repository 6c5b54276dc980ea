"""Webhook endpoints through the admin API and the ``software-dna webhooks`` commands.

The admin API of the real app in this process (SQLite and PostgreSQL), a
real worker pass and a real receiver verifying every signature; the CLI on a
data folder set up by ``software-dna server init`` (the database backend).
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna.server.adminclient import AdminClient, AdminError
from software_dna.server.api.deps import AppState
from software_dna.server.services.common import clock_override, utcnow
from software_dna.server.testing import InProcessServer
from software_dna.server.worker import Worker
from tests.cli_runner import run_cli
from tests.webhook_receiver import Receiver

PRODUCT = "admin-hooks"


@pytest.fixture(scope="module")
def admin(inprocess_any_server: InProcessServer) -> AdminClient:
    client = inprocess_any_server.admin
    client.create_product(PRODUCT)
    return client


def _state(server: InProcessServer) -> AppState:
    state: AppState = server.app.state.sdna
    return state


def _drain(server: InProcessServer) -> None:
    state = _state(server)
    worker = Worker(state.ctx, state.sessions, jobs=())
    while worker.run_once():
        pass


def test_endpoint_lifecycle_over_the_admin_api(inprocess_any_server: InProcessServer,
                                                admin: AdminClient) -> None:
    with Receiver() as receiver:
        created = admin.webhook_create(receiver.url, ["license.issued", "license.revoked"],
                                       product=PRODUCT, description="crm")
        secret = created["secret"]
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
        endpoint = created["endpoint"]
        assert endpoint["product_id"] == PRODUCT and endpoint["enabled"]
        assert "secret" not in json.dumps(admin.webhook_list())  # shown once only
        assert [e["id"] for e in admin.webhook_list(product=PRODUCT)].count(endpoint["id"]) == 1

        receiver.secret = secret
        issued = admin.issue_license(PRODUCT)
        _drain(inprocess_any_server)
        assert [b["type"] for b in receiver.events()] == ["license.issued"]
        assert receiver.events()[0]["data"]["license_id"] == issued["id"]

        # The log shows it; a re-send delivers it again with the same id.
        [entry] = admin.webhook_deliveries(endpoint=endpoint["id"])
        assert entry["status"] == "delivered" and entry["last_status"] == 200
        assert entry["attempts"] == 1 and entry["attempts_logged"] == 1
        assert entry["event"] == "license.issued"
        assert admin.webhook_resend(entry["id"])["status"] == "pending"
        _drain(inprocess_any_server)
        assert receiver.ids()[entry["id"]] == 2

        # A new secret signs from now on; the old one no longer verifies.
        rotated = admin.webhook_rotate_secret(endpoint["id"])["secret"]
        assert rotated != secret
        ping = admin.webhook_test(endpoint["id"])
        _drain(inprocess_any_server)
        last = receiver.requests[-1]
        assert last.webhook_id == ping["id"] and not last.verified  # receiver has the old one
        receiver.secret = rotated
        later = utcnow() + timedelta(seconds=10)  # after the first back-off step
        with clock_override(lambda: later):
            _drain(inprocess_any_server)
        assert receiver.requests[-1].verified
        assert receiver.requests[-1].body["type"] == "webhook.ping"

        updated = admin.webhook_update(endpoint["id"], enabled=False, product=None,
                                       events=["activation.created"])
        assert not updated["enabled"] and updated["product_id"] is None
        assert updated["events"] == ["activation.created"]
        assert updated["description"] == "crm"
        assert admin.webhook_deliveries(endpoint=endpoint["id"], status="failed") == []
        admin.webhook_remove(endpoint["id"])
        with pytest.raises(AdminError) as gone:
            admin.webhook_rotate_secret(endpoint["id"])
        assert gone.value.status == 404


@pytest.mark.parametrize(("body", "status"), [
    ({"url": "http://example.com/hook", "events": ["license.issued"]}, 400),
    ({"url": "ftp://example.com/hook", "events": ["license.issued"]}, 400),
    ({"url": "https://user:pw@example.com/hook", "events": ["license.issued"]}, 400),
    ({"url": "https://example.com/hook", "events": ["license.exploded"]}, 400),
    ({"url": "https://example.com/hook", "events": []}, 400),
    ({"url": "https://example.com/hook", "events": "license.issued"}, 400),
    ({"url": "https://example.com/hook", "events": ["license.issued"], "x": 1}, 400),
    ({"url": "https://example.com/hook", "events": ["license.issued"],
      "product": "no-such-product"}, 404),
    ({"url": "https://[::1/hook", "events": ["license.issued"]}, 400),
    ({"url": "https://crm.example.com/a\tb", "events": ["license.issued"]}, 400),
    ({"url": "https://crm.example.com/a b", "events": ["license.issued"]}, 400),
    ({"url": "https://crm.example.com/\u0085x", "events": ["license.issued"]}, 400),
    ({"url": "https://crm.example.com\n/hook", "events": ["license.issued"]}, 400),
    ({"url": "https://crm.example.com:0/hook", "events": ["license.issued"]}, 400),
    ({"url": "https://crm.example.com:65536/hook", "events": ["license.issued"]}, 400),
])
def test_bad_endpoints_are_refused_with_json_errors(inprocess_any_server: InProcessServer,
                                                     admin: AdminClient, body: dict[str, Any],
                                                     status: int) -> None:
    with inprocess_any_server.session() as http:
        answer = http.post(f"{inprocess_any_server.url}/v1/admin/webhooks", json=body,
                           headers={"Authorization": f"Bearer {inprocess_any_server.admin_key}"},
                           timeout=30)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] in ("invalid_request", "not_found")


def test_loopback_http_and_any_https_are_accepted(admin: AdminClient) -> None:
    for url in ("http://localhost:9/x", "http://127.0.0.1:9/x", "http://[::1]:9/x",
                "https://hooks.example.com/in", "https://10.0.0.5/in"):
        created = admin.webhook_create(url, ["license.issued"])
        admin.webhook_remove(created["endpoint"]["id"])


def test_an_endpoint_url_is_stored_normalised_and_checked_on_update(
        admin: AdminClient) -> None:
    created = admin.webhook_create("  HTTPS://Hooks.Example.COM:8443/In?Q=1  ",
                                   ["license.issued"])
    endpoint = created["endpoint"]
    assert endpoint["url"] == "https://hooks.example.com:8443/In?Q=1"
    for bad in ("https://hooks.example.com:0/in", "https://hooks.example.com/in\r\nX: 1"):
        with pytest.raises(AdminError) as refused:
            admin.webhook_update(endpoint["id"], url=bad)
        assert refused.value.status == 400
    assert {e["id"]: e["url"] for e in admin.webhook_list()}[endpoint["id"]] == \
        "https://hooks.example.com:8443/In?Q=1"
    moved = admin.webhook_update(endpoint["id"], url="https://[::1]:65535/x")
    assert moved["url"] == "https://[::1]:65535/x"
    admin.webhook_remove(endpoint["id"])


def test_the_delivery_log_refuses_a_bad_status(admin: AdminClient) -> None:
    with pytest.raises(AdminError) as bad:
        admin.webhook_deliveries(status="lost")
    assert bad.value.status == 400
    with pytest.raises(AdminError) as missing:
        admin.webhook_resend("msg_nothing")
    assert missing.value.status == 404


# --------------------------------------------------------------------------- the CLI




@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for name in ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL", "SOFTWARE_DNA_SERVER_URL",
                 "SOFTWARE_DNA_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    code, _, err = run_cli("server", "init")
    assert code == 0, err
    assert run_cli("products", "create", PRODUCT)[0] == 0
    yield tmp_path / "home"


def test_webhooks_commands(home: Path) -> None:
    with Receiver() as receiver:
        code, out, err = run_cli("webhooks", "add", receiver.url, "--events", "all",
                              "--product", PRODUCT)
        assert code == 0, err
        secret = re.findall(r"^(whsec_\S+)$", out, re.M)
        endpoint_id = re.findall(r"^id:\s+(whe_\S+)$", out, re.M)[0]
        assert len(secret) == 1
        receiver.secret = secret[0]

        code, out, _ = run_cli("webhooks", "list", "--json")
        assert code == 0 and json.loads(out)["endpoints"][0]["id"] == endpoint_id
        assert "whsec_" not in out
        # The listing says which endpoints may receive personal data.
        code, out, err = run_cli("webhooks", "add", "https://crm.example.com/in", "--events",
                              "license.issued", "--personal-data")
        assert code == 0, err
        crm_id = re.findall(r"^id:\s+(whe_\S+)$", out, re.M)[0]
        code, out, _ = run_cli("webhooks", "list")
        assert code == 0 and "PERSONAL DATA" in out.splitlines()[0]
        rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
        assert rows[crm_id][-1] == "yes" and rows[endpoint_id][-1] == "no"
        assert run_cli("webhooks", "remove", crm_id, "--yes")[0] == 0

        assert run_cli("licenses", "issue", PRODUCT)[0] == 0
        code, out, err = run_cli("server", "worker", "--once")
        assert code == 0, err
        assert "1 item(s) attempted." in out
        assert re.search(r"msg_\S+ webhook license.issued attempt 1: delivered 200", err), err

        code, out, _ = run_cli("webhooks", "deliveries", "--status", "delivered")
        assert code == 0 and "license.issued" in out and "delivered" in out
        item_id = re.findall(r"^(msg_\S+)", out, re.M)[0]
        assert run_cli("webhooks", "resend", item_id)[0] == 0
        assert run_cli("webhooks", "test", endpoint_id)[0] == 0
        assert run_cli("server", "worker", "--once")[0] == 0
        assert receiver.ids()[item_id] == 2
        assert receiver.events()[-1]["type"] == "webhook.ping"
        assert all(r.verified for r in receiver.requests)

        code, out, _ = run_cli("webhooks", "update", endpoint_id, "--disable", "--json")
        assert code == 0 and json.loads(out)["enabled"] is False
        code, out, _ = run_cli("webhooks", "rotate-secret", endpoint_id)
        assert code == 0 and re.findall(r"^(whsec_\S+)$", out, re.M) != secret

        code, _, err = run_cli("webhooks", "add", "http://example.com/x", "--events",
                            "license.issued")
        assert code == 1 and err.startswith("software-dna: error: ")
        code, _, err = run_cli("webhooks", "update", endpoint_id)
        assert code == 2
        code, _, err = run_cli("webhooks", "remove", endpoint_id)
        assert code == 1  # no terminal: not confirmed
        assert run_cli("webhooks", "remove", endpoint_id, "--yes")[0] == 0
        code, out, _ = run_cli("webhooks", "list")
        assert "No webhook endpoint." in out
