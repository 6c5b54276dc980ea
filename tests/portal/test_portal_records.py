"""The records of one address: joined only once proven, all erased at its owner's word.

Invariants tried with what the client controls (the address typed at each activation):
- an address typed at activation joins only the record whose owner proved it
  (confirmed), never an unconfirmed one (someone else may have typed it), so before
  the proof each activation giving the address has a record of its own;
- the erasure the proven owner asks for in the portal covers every record carrying
  the address.
"""

from __future__ import annotations

import secrets

from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PortalUser, setup_license
from tests.server.helpers import Api, session_for
from tests.server.mailing import drain
from tests.smtp import Mailbox, mailed_link


def test_records_of_one_address_join_once_proven_and_are_all_erased(
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
    confirmed = [p for p in portal_server.admin.find_end_users(email)
                 if portal_server.admin.export_end_user(p["id"])["email_confirmed_at"]]
    assert len(confirmed) == 1
    # A third computer typing the proven address joins the proven record.
    answer = api.activate(held.product_id, held.key, machine="pc-3", email=email,
                          consent=True, password="old secret")
    assert answer.status_code in (200, 201), answer.text
    assert len(portal_server.admin.find_end_users(email)) == 2
    exported = portal_server.admin.export_end_user(confirmed[0]["id"])
    assert len(exported["activations"]) == 2
    # The proven owner's erasure covers the unproven record of the same address too.
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert user.post("erase").status_code == 303
    assert portal_server.admin.find_end_users(email) == []
