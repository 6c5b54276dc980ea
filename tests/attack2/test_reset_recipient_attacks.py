"""Attack review (second pass): who receives a license's password reset codes."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from software_dna.server.testing import LocalServer
from tests.server.helpers import Api
from tests.server.test_password_reset_server import activate, ask, mail_env
from tests.smtp import Mailbox

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory,
                mailbox: Mailbox) -> Iterator[LocalServer]:
    with InProcessServer(tmp_path_factory.mktemp("attack2-reset"),
                         env=mail_env(mailbox)) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(mail_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(mail_server)
    yield client
    client.close()


def test_former_holder_gets_the_code_while_the_live_seat_holder_gave_no_email(
        mail_server: LocalServer, api: Api, mailbox: Mailbox) -> None:
    """The first holder (confirmed address) deactivated and handed the one seat on; the
    new holder activated without an email (it is optional). An activation is live, so the
    former holder "no longer holds the license" -- yet the fallback meant for "no
    activation is live" mails them the code, because only activations with an end user
    on file are looked at. With it they set the license's password and lock the holder
    out of every re-activation."""
    pid = "a2rs-" + secrets.token_hex(4)
    mail_server.admin.setup_product(pid, name="Acme Editor")
    lic = mail_server.admin.issue_license(pid, seats=1, password="old secret")
    former = f"former-{secrets.token_hex(3)}@example.com"
    activate(mail_server, api, pid, lic, email=former, box=mailbox, machine="old-pc")
    (first,) = [a for a in mail_server.admin.list_activations(lic["id"])]
    mail_server.admin.remove_activation(first["id"])  # the vendor moves the seat on
    activate(mail_server, api, pid, lic, email=None, machine="new-holder")
    assert [a for a in mail_server.admin.list_activations(lic["id"])
            if a["deactivated_at"] is None]

    before = len(mailbox.messages)
    answer = ask(mail_server, pid, lic["license_key"])
    sent = answer.json().get("sent", 0) if answer.status_code == 202 else 0
    mailed = mailbox.wait_for(before + sent)[before:] if sent else []
    recipients = [m["To"] for m in mailed]
    assert former not in recipients, (answer.status_code, recipients)
