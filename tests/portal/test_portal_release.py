"""Freeing a computer in the portal: the product's limit holds under concurrency, the app
learns it was freed, and only the license's own activations can be freed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from software_dna.server.domain.refusals import DEACTIVATED_BY_PORTAL
from software_dna.server.models import Activation
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import ROOMY, PortalUser, db, set_product, setup_license, tables
from tests.server.helpers import Api, check_receipt, error_code
from tests.server.mailing import mail_env
from tests.smtp import Mailbox


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-release"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


def _freed(srv: InProcessServer, license_id: str) -> int:
    with db(srv) as session:
        return int(session.scalar(select(func.count()).select_from(Activation).where(
            Activation.license_id == license_id,
            Activation.deactivated_by == DEACTIVATED_BY_PORTAL)) or 0)


def test_the_freed_computer_learns_it_at_its_next_validation(portal_server: InProcessServer,
                                                              api: Api) -> None:
    held = setup_license(portal_server, api, None, machines=2)
    keys = portal_server.admin.public_keys(held.product_id)
    gone = held.activations[0]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        assert user.get(f"activations/{gone['activation_id']}/release").status_code == 200
        done = user.post(f"activations/{gone['activation_id']}/release")
        assert done.status_code == 303, done.text
        again = user.post(f"activations/{gone['activation_id']}/release")
        assert again.status_code == 404
    answer = api.validate(gone["activation_id"], gone["activation_secret"], machine="machine-0")
    assert answer.status_code == 410 and error_code(answer) == "activation_released"
    receipt = check_receipt(answer.json()["error"]["receipt"], keys, held.product_id)
    assert receipt["result"] == "activation_released"
    kept = held.activations[1]
    assert api.validate(kept["activation_id"], kept["activation_secret"],
                        machine="machine-1").status_code == 200


def test_concurrent_releases_cannot_pass_the_limit(portal_server: InProcessServer,
                                                   api: Api) -> None:
    held = setup_license(portal_server, api, None, machines=4, seats=4)
    set_product(portal_server, held.product_id, portal_release_limit=2,
                portal_release_period=30 * 86400)
    users = [PortalUser(portal_server, held.product_id) for _ in held.activations]
    try:
        for user in users:
            assert user.sign_in(held.key).status_code == 303
        page = users[0].get("license")
        assert "You may free 2 more computer(s) now: at most 2 every 30 days." in page.text
        answers: list[int] = []
        start = threading.Barrier(len(users))

        def free(user: PortalUser, activation_id: str) -> None:
            start.wait()
            answers.append(user.post(f"activations/{activation_id}/release").status_code)

        threads = [threading.Thread(target=free, args=(user, a["activation_id"]))
                   for user, a in zip(users, held.activations, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(answers) == [303, 303, 429, 429], answers
        assert _freed(portal_server, held.license["id"]) == 2
        assert "You may free 0 more computer(s) now" in users[0].get("license").text
    finally:
        for user in users:
            user.close()


def test_a_limit_of_zero_leaves_freeing_to_the_vendor(portal_server: InProcessServer,
                                                      api: Api) -> None:
    held = setup_license(portal_server, api, None)
    set_product(portal_server, held.product_id, portal_release_limit=0)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        assert "support only" in user.get("license").text
        before = tables(portal_server)
        refused = user.post(f"activations/{held.activations[0]['activation_id']}/release")
        assert refused.status_code == 429
        assert tables(portal_server) == before


def test_another_licenses_activation_cannot_be_freed_by_its_id(
        portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    other = setup_license(portal_server, api, None, product_id=held.product_id)
    elsewhere = setup_license(portal_server, api, None)  # another product
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        before = tables(portal_server)
        for target in (other, elsewhere):
            activation_id = target.activations[0]["activation_id"]
            assert user.get(f"activations/{activation_id}/release").status_code == 404
            assert user.post(f"activations/{activation_id}/release").status_code == 404
        for junk in ("x" * 41, "..", "%00"):
            assert user.post(f"activations/{junk}/release").status_code in (404, 405)
        assert tables(portal_server) == before
    for target, machine in ((other, "machine-0"), (elsewhere, "machine-0")):
        a = target.activations[0]
        assert api.validate(a["activation_id"], a["activation_secret"],
                            machine=machine).status_code == 200
