"""Portal sessions and links end when the server's state says so, whatever the browser holds.

Invariants tried here with what a browser controls (its cookies, its timing):
- a session opened with the key and password ends when the vendor (or the portal) sets a
  new password and when the license gets a new key; a link session does not depend on them;
- a session is for one product: its cookie opens no other product's portal;
- an idle or old session, an expired link, a link whose address changed since, does nothing;
- a link used twice at once signs in once;
- the answer to a link request is the same for a confirmed, an unconfirmed and an unknown
  address, and an address gets at most a few mails per window.
"""

from __future__ import annotations

import secrets
import threading
from datetime import timedelta

from sqlalchemy import select, update

from software_dna.server.models import EndUser, PortalLink, PortalSession
from software_dna.server.services.common import utcnow
from software_dna.server.services.licenses import rekey_license
from software_dna.server.services.portal import LINK_MAILS_PER_WINDOW
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PortalUser, db, portal_link, setup_license
from tests.server.helpers import Api
from tests.server.mailing import drain
from tests.smtp import Mailbox


def _email() -> str:
    return f"holder-{secrets.token_hex(4)}@example.com"


def test_a_new_password_or_key_ends_password_sessions_not_link_sessions(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    email = _email()
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as by_password, \
            PortalUser(portal_server, held.product_id) as by_link:
        assert by_password.sign_in(held.key).status_code == 303
        assert by_link.sign_in_by_link(mailbox, email).status_code == 303
        portal_server.admin.set_password(held.license["id"], "vendor's new one")
        assert by_password.get("license").status_code == 303  # back to sign-in
        assert by_link.get("license").status_code == 200
        assert by_password.sign_in(held.key, "vendor's new one").status_code == 303
        with db(portal_server) as session:
            _, new_key = rekey_license(session, portal_server.app.state.sdna.ctx,
                                       held.license["id"])
        assert by_password.get("license").status_code == 303
        assert by_link.get("license").status_code == 200
        assert by_password.sign_in(held.key, "vendor's new one").status_code == 401
        assert by_password.sign_in(new_key, "vendor's new one").status_code == 303


def test_a_session_opens_only_its_own_products_portal(portal_server: InProcessServer,
                                                      api: Api) -> None:
    first = setup_license(portal_server, api, None)
    second = setup_license(portal_server, api, None)
    with PortalUser(portal_server, first.product_id) as user:
        assert user.sign_in(first.key).status_code == 303
        cookies = user.http.cookies
        with PortalUser(portal_server, second.product_id) as elsewhere:
            elsewhere.http.cookies.update(cookies)
            assert elsewhere.get("license").status_code == 303
        # The first product's key does not open the second product's portal either.
        with PortalUser(portal_server, second.product_id) as other:
            assert other.sign_in(first.key).status_code == 401


def test_idle_and_old_sessions_end(portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    settings = portal_server.app.state.sdna.settings
    for column, age in (("last_seen_at", settings.portal_session_idle + 1),
                        ("created_at", 0)):
        with PortalUser(portal_server, held.product_id) as user:
            assert user.sign_in(held.key).status_code == 303
            with db(portal_server) as session:
                values = ({"last_seen_at": utcnow() - timedelta(seconds=age)}
                          if column == "last_seen_at"
                          else {"expires_at": utcnow() - timedelta(seconds=1)})
                session.execute(update(PortalSession).where(
                    PortalSession.license_id == held.license["id"]).values(**values))
                session.commit()
            assert user.get("license").status_code == 303


def _ask(user: PortalUser, box: Mailbox, email: str) -> str:
    before = len(box.messages)
    assert user.ask_link(email).status_code == 200
    drain(user.server)
    return portal_link(box, before + 1)


def test_an_expired_link_or_one_for_an_old_address_does_nothing(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    email = _email()
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as user:
        link = _ask(user, mailbox, email)
        with db(portal_server) as session:
            session.execute(update(PortalLink).where(
                PortalLink.license_id == held.license["id"]).values(
                expires_at=utcnow() - timedelta(seconds=1)))
            session.commit()
        assert user.use_link(link).status_code == 401
        link = _ask(user, mailbox, email)
        with db(portal_server) as session:
            person = session.scalars(select(EndUser).join(
                PortalLink, PortalLink.end_user_id == EndUser.id).where(
                PortalLink.license_id == held.license["id"])).first()
            assert person is not None
            person.email_index = "0" * 64  # the address changed since the link was mailed
            session.commit()
        assert user.use_link(link).status_code == 401
        assert user.get("license").status_code == 303


def test_a_link_pressed_twice_at_once_signs_in_once(portal_server: InProcessServer, api: Api,
                                                    mailbox: Mailbox) -> None:
    email = _email()
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as user:
        link = _ask(user, mailbox, email)
        cookies = dict(user.http.cookies)
        codes: list[int] = []
        barrier = threading.Barrier(4)

        def press() -> None:
            with portal_server.session() as http:
                http.cookies.update(cookies)
                barrier.wait()
                codes.append(http.post(link, allow_redirects=False).status_code)

        threads = [threading.Thread(target=press) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(codes) == [303, 401, 401, 401]


def test_link_requests_answer_alike_and_mail_a_few_times_at_most(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    email = _email()
    held = setup_license(portal_server, api, mailbox, email=email)
    unconfirmed = _email()
    setup_license(portal_server, api, None, product_id=held.product_id)
    with PortalUser(portal_server, held.product_id) as user:
        pages = [user.ask_link(address) for address in (email, unconfirmed, _email())]
        assert {page.status_code for page in pages} == {200}
        bodies = {page.text for page in pages}  # the address is not even echoed
        assert len(bodies) == 1
        drain(portal_server)
        before = len(mailbox.messages)
        for _ in range(LINK_MAILS_PER_WINDOW + 2):
            assert user.ask_link(email).status_code == 200
        drain(portal_server)
        mailed = [m for m in mailbox.messages[before:] if m["To"] == email]
        assert len(mailed) <= LINK_MAILS_PER_WINDOW - 1  # one went out above
