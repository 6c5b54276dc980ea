"""The activation password in the portal: the current one is asked, never reused, and
the app activates with the new one at once."""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PASSWORD, ROOMY, PortalUser, setup_license
from tests.server.helpers import Api, error_code
from tests.server.mailing import mail_env
from tests.smtp import Mailbox


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-password"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


def test_a_password_session_must_give_the_right_current_password(
        portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        page = user.get("password")
        assert page.status_code == 200
        assert 'id="f-current"' in page.text
        missing = user.post("password", {"password": "new one", "repeat": "new one"})
        wrong = user.post("password", {"current": "not it", "password": "new one",
                                       "repeat": "new one"})
        for refused in (missing, wrong):
            assert refused.status_code == 400
            assert 'id="e-current"' in refused.text  # the error next to its field
            assert 'aria-invalid="true"' in refused.text
        same = user.post("password", {"current": PASSWORD, "password": PASSWORD,
                                      "repeat": PASSWORD})
        assert same.status_code == 400
        assert 'id="e-password"' in same.text
        differ = user.post("password", {"current": PASSWORD, "password": "new one",
                                        "repeat": "other one"})
        assert differ.status_code == 400 and 'id="e-repeat"' in differ.text
    # Nothing of that changed the password: the app still activates with the old one.
    answer = api.activate(held.product_id, held.key, machine="after-refusals",
                          password=PASSWORD)
    assert answer.status_code == 201, answer.text


def test_a_new_password_ends_other_sessions_and_works_in_the_app(
        portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    new = "new " + secrets.token_hex(4)
    with PortalUser(portal_server, held.product_id) as user, \
            PortalUser(portal_server, held.product_id) as other:
        assert user.sign_in(held.key).status_code == 303
        assert other.sign_in(held.key).status_code == 303
        done = user.post("password", {"current": PASSWORD, "password": new, "repeat": new})
        assert done.status_code == 303, done.text
        assert done.headers["location"].endswith("/license")
        assert user.get("license").status_code == 200  # this session goes on
        assert other.get("license").status_code == 303  # the other one ended
        # The previous password again is refused (it is not the current one any more,
        # so the current field is what fails) and the new one again too.
        again = user.post("password", {"current": new, "password": new, "repeat": new})
        assert again.status_code == 400
    old = api.activate(held.product_id, held.key, machine="old-pw", password=PASSWORD)
    assert old.status_code == 403 and error_code(old) == "wrong_password"
    fresh = api.activate(held.product_id, held.key, machine="new-pw", password=new)
    assert fresh.status_code == 201, fresh.text
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key, PASSWORD).status_code == 401
        assert user.sign_in(held.key, new).status_code == 303


def test_a_link_session_sets_a_password_without_the_current_one(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    email = f"pw-{secrets.token_hex(3)}@example.com"
    held = setup_license(portal_server, api, mailbox, email=email, password=None)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        page = user.get("password")
        assert page.status_code == 200 and 'id="f-current"' not in page.text
        # A current password the client sends anyway changes nothing about the rule.
        done = user.post("password", {"current": "anything", "password": "first secret",
                                      "repeat": "first secret"})
        assert done.status_code == 303, done.text
    without = api.activate(held.product_id, held.key, machine="no-pw")
    assert without.status_code == 403 and error_code(without) == "wrong_password"
    assert api.activate(held.product_id, held.key, machine="with-pw",
                        password="first secret").status_code == 201


@pytest.mark.parametrize("new", ["", "x" * 257])
def test_an_empty_or_too_long_password_is_refused_next_to_its_field(
        portal_server: InProcessServer, api: Api, new: str) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        refused = user.post("password", {"current": PASSWORD, "password": new, "repeat": new})
        assert refused.status_code == 400
        assert 'id="e-password"' in refused.text
    assert api.activate(held.product_id, held.key, machine="still-old",
                        password=PASSWORD).status_code == 201
