"""Attack reviews: who receives a license's password reset codes, and email confirmation."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from software_dna.server.testing import LocalServer
from tests.server.helpers import Api, session_for
from tests.server.test_password_reset_server import (
    activate,
    ask,
    mail_env,
)
from tests.smtp import Mailbox, mailed_link

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory,
                mailbox: Mailbox) -> Iterator[LocalServer]:
    with InProcessServer(tmp_path_factory.mktemp("reset-attack"),
                         env=mail_env(mailbox)) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(mail_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(mail_server)
    yield client
    client.close()


def test_a_departed_user_no_longer_receives_the_licenses_reset_codes(
        mail_server: LocalServer, api: Api, mailbox: Mailbox) -> None:
    """A co-worker who once used a seat (with their own, confirmed address) deactivated and
    left. The owner asks for a reset code: it must not be mailed to the departed user,
    who could otherwise set the license's password."""
    pid = "ra-" + secrets.token_hex(4)
    mail_server.admin.setup_product(pid, name="Acme Editor")
    lic = mail_server.admin.issue_license(pid, seats=2, password="old secret")
    owner = f"owner-{secrets.token_hex(3)}@example.com"
    departed = f"departed-{secrets.token_hex(3)}@example.net"
    activate(mail_server, api, pid, lic, email=owner, box=mailbox, machine="owner")
    made = api.activate(pid, lic["license_key"], machine="coworker", password="old secret",
                        email=departed, consent=True)
    assert made.status_code == 201, made.text
    with session_for(mail_server) as http:
        assert http.post(mailed_link(mailbox.wait_for(len(mailbox.messages))[-1]),
                         timeout=30).status_code == 200
    body = made.json()
    assert api.deactivate(body["activation_id"], body["activation_secret"]).status_code == 200

    before = len(mailbox.messages)
    answer = ask(mail_server, pid, lic["license_key"])
    assert answer.status_code == 202, answer.text
    mailed = mailbox.wait_for(before + answer.json()["sent"])[before:]
    recipients = [m["To"] for m in mailed]
    assert departed not in recipients, recipients
    assert answer.json()["sent"] == 1


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
