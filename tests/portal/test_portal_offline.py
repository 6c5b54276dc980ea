"""Air-gapped activation in the portal: the session's own license only, where the product
allows it, with every rule of an activation."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from software_dna.server.models import Activation, AuditEntry
from software_dna.server.testing import InProcessServer
from software_dna.wire import airgap
from tests.portal.helpers import (
    PASSWORD,
    ROOMY,
    PortalUser,
    airgap_request,
    db,
    setup_license,
    tables,
)
from tests.server.helpers import Api, check_token
from tests.server.mailing import mail_env
from tests.smtp import Mailbox

_ANSWER = re.compile(r'<textarea id="f-answer"[^>]*>([^<]+)</textarea>')


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-offline"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


def _live(srv: InProcessServer, license_id: str) -> int:
    with db(srv) as session:
        return int(session.scalar(select(func.count()).select_from(Activation).where(
            Activation.license_id == license_id, Activation.deactivated_at.is_(None))) or 0)


def test_the_own_licenses_request_is_answered(portal_server: InProcessServer,
                                              api: Api) -> None:
    held = setup_license(portal_server, api, None, product={"air_gapped": True})
    keys = portal_server.admin.public_keys(held.product_id)
    request = airgap_request(held.product_id, held.key)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        page = user.get("offline")
        assert page.status_code == 200 and 'for="f-request"' in page.text
        assert "/offline" in user.get("license").text  # the navigation shows it
        # Without the password beside the request: refused next to the password field.
        missing = user.post("offline", {"request": request})
        assert missing.status_code == 403 and 'id="e-password"' in missing.text
        answered = user.post("offline", {"request": request, "password": PASSWORD})
        assert answered.status_code == 200, answered.text
        found = _ANSWER.search(answered.text)
        assert found is not None and "readonly" in answered.text
        response = airgap.parse_response(html.unescape(found[1]))
        assert check_token(response.token, keys, held.product_id)
        # The same request as a file: the same activation, no second seat.
        download = user.post("offline", {"request": request, "password": PASSWORD,
                                         "then": "download"})
        assert download.status_code == 200
        assert download.headers["content-disposition"].startswith("attachment;")
        assert airgap.parse_response(download.text).activation_id == response.activation_id
    assert _live(portal_server, held.license["id"]) == 2  # setup's machine + this one
    with db(portal_server) as session:
        actors = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.activation_id == response.activation_id,
            AuditEntry.action == "activation.create")).all()
    assert actors == ["portal"]


def test_another_licenses_request_is_refused_like_an_unknown_key(
        portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None, product={"air_gapped": True})
    other = setup_license(portal_server, api, None, product_id=held.product_id)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        before = tables(portal_server)
        foreign = user.post("offline", {"request": airgap_request(held.product_id, other.key),
                                        "password": PASSWORD})
        unknown = user.post("offline", {
            "request": airgap_request(held.product_id, "ZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZ"),
            "password": PASSWORD})
        assert foreign.status_code == unknown.status_code == 404
        assert 'id="e-request"' in foreign.text
        strip = re.compile(r'<textarea id="f-request".*?</textarea>', re.S)
        assert strip.sub("", foreign.text) == strip.sub("", unknown.text)
        damaged = user.post("offline", {"request": "not a request", "password": PASSWORD})
        assert damaged.status_code == 400 and 'id="e-request"' in damaged.text
        assert tables(portal_server) == before
    assert _live(portal_server, other.license["id"]) == 1


def test_seats_are_counted_as_for_the_app(portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None, seats=1, product={"air_gapped": True})
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        full = user.post("offline", {"request": airgap_request(held.product_id, held.key),
                                     "password": PASSWORD})
        assert full.status_code == 409 and 'id="e-request"' in full.text
    assert _live(portal_server, held.license["id"]) == 1


def test_a_product_without_air_gapped_activation_shows_no_page(
        portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        assert user.get("offline").status_code == 404
        assert "/offline" not in user.get("license").text
        before = tables(portal_server)
        posted = user.post("offline", {"request": airgap_request(held.product_id, held.key),
                                       "password": PASSWORD})
        assert posted.status_code == 404
        assert tables(portal_server) == before


def test_after_erasure_the_session_is_read_only_and_the_request_waits_for_a_password(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """Erasure ends the person's reach: their session keeps a read-only view of the
    limited license (no air-gapped answer, no new password from it); the license's
    password went with the data, so a request waits for the vendor's new password."""
    email = f"era-{secrets.token_hex(3)}@example.com"
    held = setup_license(portal_server, api, mailbox, email=email, product={"air_gapped": True})
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert user.post("erase").status_code == 303  # the password goes with the data
        assert user.get("license").status_code == 200
        request = airgap_request(held.product_id, held.key)
        for path, form in (("offline", {"request": request}),
                           ("password", {"password": "mine now", "repeat": "mine now"})):
            assert user.get(path).headers.get("location", "").endswith("/license")
            before = tables(portal_server)
            assert user.post(path, form).headers.get("location", "").endswith("/license")
            assert tables(portal_server) == before
    portal_server.admin.set_password(held.license["id"], "after erasure")
    with PortalUser(portal_server, held.product_id) as holder_again:
        assert holder_again.sign_in(held.key, "after erasure").status_code == 303
        answered = holder_again.post("offline", {"request": request,
                                                 "password": "after erasure"})
        assert answered.status_code == 200, answered.text
        assert _ANSWER.search(answered.text)
