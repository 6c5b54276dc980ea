"""The end user's address in the portal: change (confirmed by mail), remove, and the
sign-in links that die with the old address."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from software_dna.server.models import EndUser
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import ROOMY, PortalUser, db, portal_link, setup_license
from tests.server.helpers import Api, session_for
from tests.server.mailing import drain, mail_env
from tests.smtp import Mailbox, mailed_link


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-email"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


def _address() -> str:
    return f"eu-{secrets.token_hex(4)}@example.com"


def _no_mail_after(box: Mailbox, srv: InProcessServer, count: int) -> None:
    drain(srv)
    time.sleep(0.3)
    assert len(box.messages) == count, [m["To"] for m in box.messages[count:]]


def test_a_new_address_is_confirmed_by_the_link_mailed_to_it(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    old, new = _address(), _address()
    held = setup_license(portal_server, api, mailbox, email=old)
    (found,) = portal_server.admin.find_end_users(old)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, old).status_code == 303
        page = user.get("email")
        assert page.status_code == 200 and old in page.text
        before = len(mailbox.messages)
        changed = user.post("email", {"email": new})
        assert changed.status_code == 303, changed.text
        message = mailbox.wait_for(before + 1)[before]
        assert message["To"] == new
        page = user.get("email")
        assert new in page.text and old not in page.text
        assert 'id="email-confirmed">No' in page.text
        with db(portal_server) as session:
            person = session.get(EndUser, found["id"])
            assert person is not None
            assert person.email_confirmed_at is None and person.consent_at is not None
        # Unconfirmed: a sign-in link is not mailed to it.
        with PortalUser(portal_server, held.product_id) as other:
            count = len(mailbox.messages)
            assert other.ask_link(new).status_code == 200
            _no_mail_after(mailbox, portal_server, count)
        with session_for(portal_server) as http:
            assert http.post(mailed_link(message), timeout=30).status_code == 200
        assert 'id="email-confirmed">Yes' in user.get("email").text
    # Confirmed: the new address signs in, the old one gets nothing.
    with PortalUser(portal_server, held.product_id) as other:
        assert other.sign_in_by_link(mailbox, new).status_code == 303
        count = len(mailbox.messages)
        assert other.ask_link(old).status_code == 200
        _no_mail_after(mailbox, portal_server, count)


def test_a_link_mailed_before_the_address_changed_no_longer_signs_in(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    old = _address()
    held = setup_license(portal_server, api, mailbox, email=old)
    with PortalUser(portal_server, held.product_id) as user, \
            PortalUser(portal_server, held.product_id) as waiting:
        assert user.sign_in_by_link(mailbox, old).status_code == 303
        before = len(mailbox.messages)
        assert waiting.ask_link(old).status_code == 200
        drain(portal_server)
        link = portal_link(mailbox, before + 1)
        assert user.post("email", {"email": _address()}).status_code == 303
        waiting.http.get(link)
        assert waiting.http.post(link, allow_redirects=False).status_code == 401
        assert waiting.get("license").status_code == 303


def test_removing_the_address_keeps_the_session_and_mails_nothing_more(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    old = _address()
    held = setup_license(portal_server, api, mailbox, email=old)
    (found,) = portal_server.admin.find_end_users(old)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, old).status_code == 303
        removed = user.post("email/remove")
        assert removed.status_code == 303, removed.text
        page = user.get("email")
        assert page.status_code == 200 and old not in page.text
        assert 'id="email-on-file">None' in page.text
        assert user.get("license").status_code == 200
        assert user.get("data").status_code == 200  # still this end user's session
        with PortalUser(portal_server, held.product_id) as other:
            count = len(mailbox.messages)
            assert other.ask_link(old).status_code == 200
            _no_mail_after(mailbox, portal_server, count)
        # They may set one again.
        again = _address()
        before = len(mailbox.messages)
        assert user.post("email", {"email": again}).status_code == 303
        assert mailbox.wait_for(before + 1)[before]["To"] == again
    with db(portal_server) as session:
        person = session.get(EndUser, found["id"])
        assert person is not None and person.email_index is not None
        assert person.email_confirmed_at is None


@pytest.mark.parametrize("typed", ["", "not an address", "a@b", "x <x@example.com>",
                                   "a" * 300 + "@example.com"])
def test_a_malformed_address_is_refused_next_to_its_field(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox, typed: str) -> None:
    email = _address()
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        refused = user.post("email", {"email": typed})
        assert refused.status_code == 400, refused.text
        assert 'id="e-email"' in refused.text
        assert email in user.get("email").text  # unchanged
