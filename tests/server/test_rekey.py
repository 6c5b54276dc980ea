"""A lost key replaced: ``POST /v1/admin/licenses/{id}/rekey`` and ``software-dna licenses
rekey``, on SQLite and PostgreSQL, the key mail through a real SMTP server (aiosmtpd).

The old key no longer activates; machines already activated with it keep validating;
the new key activates and is mailed to the address given (recorded as the buyer) or to
the buyer on file, once per new key.
"""

from __future__ import annotations

import io
import json
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from software_dna.server.adminclient import AdminError
from software_dna.server.cli import _common
from tests.cli_runner import ENV_CLEARED, cli_ok, run_cli

from ..inprocess import InProcessServer
from ..smtp import Mailbox
from ..threaded import ThreadedServer
from .helpers import Api, error_code, session_for
from .mailing import drain, items, mail_env


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox,
        database_url: str) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("rekey"), env=mail_env(mailbox),
                         database_url=database_url) as server:
        yield server


@pytest.fixture
def api(srv: InProcessServer) -> Iterator[Api]:
    client = Api(srv.url, session_for(srv))
    yield client
    client.close()


def _product(srv: InProcessServer) -> str:
    pid = "rk-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    return pid


def _address() -> str:
    return f"buyer.{secrets.token_hex(4)}@example.org"


def _texts_to(box: Mailbox, address: str) -> list[str]:
    with box.lock:
        found = [m for m in box.messages if m["To"] == address]
    texts = []
    for message in found:
        part = message.get_body(("plain",))
        assert part is not None
        texts.append(part.get_content())
    return texts


def test_a_rekeyed_license_takes_only_the_new_key_and_keeps_its_activations(
        srv: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    pid = _product(srv)
    issued = srv.admin.issue_license(pid, seats=3)  # a sale without an address
    old_key = issued["license_key"]
    first = api.activate(pid, old_key, machine="a")
    assert first.status_code == 201, first.text
    activation = first.json()

    address = _address()
    rekeyed = srv.admin.rekey_license(issued["id"], email=address)
    new_key = rekeyed["license_key"]
    assert new_key != old_key and rekeyed["key_mailed"] is True
    assert rekeyed["key_hint"].endswith(new_key[-4:]) and rekeyed["seats"] == 3
    assert rekeyed["buyer_id"] is not None
    assert srv.admin.get_license(issued["id"])["buyer_id"] == rekeyed["buyer_id"]

    # The old key activates nothing new; the machine activated with it keeps working.
    refused = api.activate(pid, old_key, machine="b")
    assert (refused.status_code, error_code(refused)) == (404, "unknown_license_key")
    still = api.validate(activation["activation_id"], activation["activation_secret"],
                         machine="a")
    assert still.status_code == 200, still.text
    fresh = api.activate(pid, new_key, machine="b")
    assert fresh.status_code == 201, fresh.text

    # The new key is mailed to the address, which is now the buyer on file.
    (queued,) = items(srv, license_id=issued["id"])
    assert queued.topic == "license_key" and queued.end_user_id == rekeyed["buyer_id"]
    assert new_key.encode() not in (queued.payload or b"")
    assert [a.outcome.delivered for a in drain(srv)] == [True]
    (text,) = _texts_to(mailbox, address)
    assert new_key in text and old_key not in text
    assert srv.admin.find_end_users(address)

    # Rekeyed again without an address: a new key, mailed to the buyer on file.
    again = srv.admin.rekey_license(issued["id"])
    assert again["key_mailed"] is True and again["license_key"] != new_key
    assert len(items(srv, license_id=issued["id"])) == 2
    drain(srv)
    texts = _texts_to(mailbox, address)
    assert len(texts) == 2 and again["license_key"] in texts[1]
    refused = api.activate(pid, new_key, machine="c")
    assert error_code(refused) == "unknown_license_key"
    # The audit log says a rekey happened, never the key.
    entries = srv.admin.audit(license_id=issued["id"])
    rekeys = [e for e in entries if e["action"] == "license.rekey"]
    assert len(rekeys) == 2
    assert not any(k in json.dumps(entries) for k in (old_key, new_key,
                                                       again["license_key"]))


def test_a_rekey_without_any_address_mails_nothing(srv: InProcessServer, api: Api) -> None:
    pid = _product(srv)
    issued = srv.admin.issue_license(pid)
    rekeyed = srv.admin.rekey_license(issued["id"])
    assert rekeyed["key_mailed"] is False and rekeyed["buyer_id"] is None
    assert items(srv, license_id=issued["id"]) == []
    assert api.activate(pid, rekeyed["license_key"]).status_code == 201


def test_rekey_refusals(srv: InProcessServer) -> None:
    pid = _product(srv)
    issued = srv.admin.issue_license(pid)
    for license_id, email, status in [("lic_nope", None, 404),
                                      (issued["id"], "no address", 400)]:
        with pytest.raises(AdminError) as refused:
            srv.admin.rekey_license(license_id, email=email)
        assert refused.value.status == status
    assert srv.admin.get_license(issued["id"])["key_hint"] == issued["key_hint"]
    srv.admin.revoke_license(issued["id"])
    with pytest.raises(AdminError) as refused:
        srv.admin.rekey_license(issued["id"])
    assert refused.value.status == 409
    # No body at all is the same as {}.
    other = srv.admin.issue_license(pid)
    answer = api_post(srv, f"/v1/admin/licenses/{other['id']}/rekey")
    assert answer.status_code == 200, answer.text
    assert answer.json()["key_mailed"] is False


def api_post(srv: InProcessServer, path: str) -> Any:
    http = session_for(srv)
    try:
        return http.post(srv.url + path, headers={"Authorization": f"Bearer {srv.admin_key}"},
                         timeout=30)
    finally:
        http.close()


# ---------------------------------------------------------------- the CLI

_run = run_cli


@pytest.fixture(params=["direct", "remote"])
def where(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the commands on the database, or through a server's admin API."""
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    if request.param == "direct":
        monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path))
        cli_ok("server", "init")
        yield "direct"
        return
    with ThreadedServer(tmp_path / "srv") as server:
        monkeypatch.setenv(_common.ENV_SERVER_URL, server.url)
        monkeypatch.setenv(_common.ENV_ADMIN_KEY, server.admin_key)
        yield "remote"


def test_licenses_rekey_command(where: str) -> None:
    cli_ok("products", "create", "cli-rekey", "--name", "Cli Rekey")
    issued = json.loads(cli_ok("licenses", "issue", "cli-rekey", "--json"))
    out = cli_ok("licenses", "rekey", issued["id"])
    assert "the old one no longer activates" in out and "nothing was mailed" in out
    shown = json.loads(cli_ok("licenses", "show", issued["id"], "--json"))
    new_hint = shown["key_hint"]
    assert new_hint != issued["key_hint"] and new_hint[-4:] in out
    rekeyed = json.loads(cli_ok("licenses", "rekey", issued["id"], "--email", "ana@example.org",
                             "--json"))
    assert rekeyed["key_mailed"] is True
    log = json.loads(cli_ok("mail", "log", "--license", issued["id"], "--json"))
    assert [(m["template"], m["to"]) for m in log["mails"]] == [
        ("license_key", "ana@example.org")]
    text = cli_ok("licenses", "show", issued["id"])
    assert "buyer" in text and rekeyed["buyer_id"] in text
    code, _, err = run_cli("licenses", "rekey", "lic_nope")
    assert code != 0 and "No such license" in err
