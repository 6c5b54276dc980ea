"""Signing in to the portal: key and password, mailed links, and what neither reveals."""

from __future__ import annotations

import secrets

from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PortalUser, portal_link, setup_license
from tests.server.helpers import Api
from tests.server.mailing import drain
from tests.smtp import Mailbox


def test_key_and_password_open_the_license_page(portal_server: InProcessServer,
                                                api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.get("license").status_code == 303  # signed out: to the sign-in page
        answer = user.sign_in(held.key)
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"].endswith("/license")


def test_wrong_key_and_wrong_password_look_the_same(portal_server: InProcessServer,
                                                    api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        wrong_password = user.sign_in(held.key, "not it")
        wrong_key = user.sign_in("AAAA-BBBB-CCCC-DDDD-EEEE", "not it")
    assert wrong_password.status_code == wrong_key.status_code == 401
    # The pages differ only by the key typed back into the form.
    assert wrong_password.text.replace(held.key, "KEY") == \
        wrong_key.text.replace("AAAA-BBBB-CCCC-DDDD-EEEE", "KEY")


def test_a_mailed_link_signs_in_once_and_only_in_its_browser(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    email = f"holder-{secrets.token_hex(3)}@example.com"
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as asker, \
            PortalUser(portal_server, held.product_id) as other:
        before = len(mailbox.messages)
        assert asker.ask_link(email).status_code == 200
        drain(portal_server)
        link = portal_link(mailbox, before + 1)
        other.http.get(link)
        assert other.http.post(link, allow_redirects=False).status_code == 401
        # Another browser's try changes nothing: the asking browser can still use it, once.
        assert asker.use_link(link).status_code == 303
        assert asker.get("license").status_code == 200
        with PortalUser(portal_server, held.product_id) as third:
            third.http.cookies.update(asker.http.cookies)
            third.http.cookies.pop("sdna_portal_session", None)
            assert third.http.post(link, allow_redirects=False).status_code == 401
