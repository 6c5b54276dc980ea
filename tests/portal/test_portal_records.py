"""One person, one record: the records an address gets before it is proven become one.

Invariants tried with what the client controls (the address typed at each activation):
- an address typed at activation joins only the record whose owner proved it
  (confirmed), never an unconfirmed one (someone else may have typed it);
- once the owner confirms, every unconfirmed record of that address is folded into
  theirs, so the vendor's search, the export, the portal and the erasure cover every
  computer they activated.
"""

from __future__ import annotations

import secrets

from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PortalUser, setup_license
from tests.server.helpers import Api, session_for
from tests.server.mailing import drain
from tests.smtp import Mailbox, mailed_link


def test_two_computers_of_one_person_are_one_record_once_confirmed(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    email = f"ana-{secrets.token_hex(3)}@example.com"
    held = setup_license(portal_server, api, None, machines=0)
    links = []
    for machine in ("pc-1", "pc-2"):  # both before any confirmation: two claims
        before = len(mailbox.messages)
        answer = api.activate(held.product_id, held.key, machine=machine, email=email,
                              consent=True, password="old secret")
        assert answer.status_code in (200, 201), answer.text
        drain(portal_server)
        links.append(mailed_link(mailbox.wait_for(before + 1)[before]))
    assert len(portal_server.admin.find_end_users(email)) == 2
    with session_for(portal_server) as http:
        assert http.post(links[1], timeout=30).status_code == 200
    (person,) = portal_server.admin.find_end_users(email)
    exported = portal_server.admin.export_end_user(person["id"])
    assert len(exported["activations"]) == 2
    # A third computer typing the confirmed address joins the same record.
    answer = api.activate(held.product_id, held.key, machine="pc-3", email=email,
                          consent=True, password="old secret")
    assert answer.status_code in (200, 201), answer.text
    (same,) = portal_server.admin.find_end_users(email)
    assert same["id"] == person["id"]
    # Her link session sees and erases all of it.
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert user.get("license").text.count("/release") == 3
        assert user.post("erase").status_code == 303
    assert portal_server.admin.find_end_users(email) == []
