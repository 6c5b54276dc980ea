"""The portal's sign-in limits and the app's activation limits are separate, and a locked
key looks like an unknown one."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from sqlalchemy import delete

from software_dna.server.models import RateLimitCounter
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PASSWORD, PortalUser, db, setup_license
from tests.server.helpers import Api, error_code
from tests.server.mailing import mail_env
from tests.smtp import Mailbox

LIMIT = 3
UNKNOWN = "AAAA-BBBB-CCCC-DDDD-EEEE"


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """Low limits on portal sign-ins and on activations per license; none per address."""
    with InProcessServer(tmp_path_factory.mktemp("portal-lockout"), env={
            **mail_env(mailbox), "SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS": str(LIMIT),
            "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS": str(LIMIT),
            "SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS": "100000"}) as srv:
        yield srv


def _forget_network(srv: InProcessServer) -> None:
    """Every in-process request comes from 127.0.0.1: forget its portal network counter, so
    a test sees the per-key counter alone."""
    with db(srv) as session:
        session.execute(delete(RateLimitCounter).where(RateLimitCounter.key.like("portal:%")))
        session.commit()


@pytest.fixture(autouse=True)
def _fresh_network(portal_server: InProcessServer) -> None:
    _forget_network(portal_server)


def test_portal_failures_do_not_lock_the_apps_activation(portal_server: InProcessServer,
                                                         api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        answers = [user.sign_in(held.key, "wrong").status_code for _ in range(LIMIT + 1)]
        assert answers == [401] * LIMIT + [429]
        _forget_network(portal_server)
        assert user.sign_in(held.key).status_code == 429  # the key is locked in the portal
    answer = api.activate(held.product_id, held.key, machine="right-after",
                          password=PASSWORD)
    assert answer.status_code == 201, answer.text


def test_the_apps_limits_do_not_lock_the_portal(portal_server: InProcessServer,
                                                api: Api) -> None:
    held = setup_license(portal_server, api, None)
    codes = [error_code(api.activate(held.product_id, held.key, machine=f"guess-{n}",
                                     password="wrong"))
             for n in range(LIMIT + 1)]
    assert codes[-1] == "rate_limited", codes
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        assert user.get("license").status_code == 200


def _same(page: str, typed: str) -> str:
    return re.sub(r"in \d+ minutes", "in N minutes", page.replace(typed, "KEY"))


def test_a_locked_key_looks_like_a_locked_unknown_key(portal_server: InProcessServer,
                                                      api: Api) -> None:
    held = setup_license(portal_server, api, None)
    pages = {}
    for typed in (held.key, UNKNOWN):
        with PortalUser(portal_server, held.product_id) as user:
            for _ in range(LIMIT):
                assert user.sign_in(typed, "wrong").status_code == 401
            _forget_network(portal_server)
            # The right password for the real key: refused all the same while it is locked.
            locked = user.sign_in(typed, PASSWORD)
            assert locked.status_code == 429
            pages[typed] = _same(locked.text, typed)
            _forget_network(portal_server)
    assert pages[held.key] == pages[UNKNOWN]
