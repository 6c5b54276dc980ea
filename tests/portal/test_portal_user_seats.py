"""User seats in the portal: each end user reaches only their own seat's data."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from software_dna.server.models import Activation
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import ROOMY, PortalUser, add_seat, db, setup_license, tables
from tests.server.helpers import Api
from tests.server.mailing import mail_env
from tests.smtp import Mailbox


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-seats"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


def _label(srv: InProcessServer, activation_id: str, label: str) -> None:
    ctx = srv.app.state.sdna.ctx
    with db(srv) as session:
        row = session.get(Activation, activation_id)
        assert row is not None
        row.label_ciphertext = ctx.vault.encrypt_field(
            label.encode(), aad=f"activation:{activation_id}:label")
        session.commit()


def test_each_end_user_reaches_only_their_own_seat(portal_server: InProcessServer,
                                                   api: Api, mailbox: Mailbox) -> None:
    held = setup_license(portal_server, api, None, machines=0, seat_mode="user")
    people = {}
    for name in ("ann", "bob"):
        email = f"{name}-{secrets.token_hex(3)}@example.com"
        seat = add_seat(portal_server, api, mailbox, held, email, machine=f"pc-{name}")
        label = f"{name} workstation {secrets.token_hex(3)}"
        _label(portal_server, seat["activation_id"], label)
        (found,) = portal_server.admin.find_end_users(email)
        people[name] = {"email": email, "seat": seat["activation_id"], "label": label,
                        "id": found["id"]}
    for me, them in (("ann", "bob"), ("bob", "ann")):
        mine, theirs = people[me], people[them]
        with PortalUser(portal_server, held.product_id) as user:
            assert user.sign_in_by_link(mailbox, mine["email"]).status_code == 303
            page = user.get("license").text
            assert mine["label"] in page and mine["seat"] in page
            assert theirs["label"] not in page and theirs["seat"] not in page
            before = tables(portal_server)
            assert user.get(f"activations/{theirs['seat']}/release").status_code == 404
            assert user.post(f"activations/{theirs['seat']}/release").status_code == 404
            assert tables(portal_server) == before
            exported = json.loads(user.post("data/export").text)
            assert exported["id"] == mine["id"] and exported["email"] == mine["email"]
            assert [a["id"] for a in exported["activations"]] == [mine["seat"]]
            data = user.get("data").text
            assert mine["email"] in data and theirs["email"] not in data
            assert theirs["email"] not in user.get("email").text


def test_a_password_session_sees_every_seat_but_no_label(portal_server: InProcessServer,
                                                         api: Api, mailbox: Mailbox) -> None:
    held = setup_license(portal_server, api, None, machines=0, seat_mode="user")
    labels = []
    for name in ("cid", "dee"):
        seat = add_seat(portal_server, api, mailbox, held,
                        f"{name}-{secrets.token_hex(3)}@example.com", machine=f"pc-{name}")
        labels.append(f"{name} laptop {secrets.token_hex(3)}")
        _label(portal_server, seat["activation_id"], labels[-1])
        held.activations.append(seat)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        page = user.get("license").text
        for seat, label in zip(held.activations, labels, strict=True):
            assert seat["activation_id"] in page
            assert label not in page
            assert label not in user.get(f"activations/{seat['activation_id']}/release").text
        # Personal pages need a link session.
        for path in ("email", "data", "erase"):
            assert user.get(path).status_code == 403


def test_one_seat_holder_never_replaces_the_shared_password_unknowingly(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """On a user-seat license the activation password is shared by several people: a
    link session must type the current one to replace it (on a machine license, the
    holder of a live seat may set one without, as the reset codes by mail allow)."""
    held = setup_license(portal_server, api, None, machines=0, seat_mode="user")
    email = f"eve-{secrets.token_hex(3)}@example.com"
    add_seat(portal_server, api, mailbox, held, email, machine="pc-eve")
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert 'name="current"' in user.get("password").text
        before = tables(portal_server)
        refused = user.post("password", {"password": "taken over", "repeat": "taken over"})
        assert refused.status_code == 400
        assert 'id="e-current"' in refused.text
        assert tables(portal_server) == before
        done = user.post("password", {"current": "old secret", "password": "agreed new",
                                      "repeat": "agreed new"})
        assert done.status_code == 303, done.text
    machine = setup_license(portal_server, api, mailbox, machines=1,
                            email=f"mo-{secrets.token_hex(3)}@example.com")
    assert machine.email is not None
    with PortalUser(portal_server, machine.product_id) as user:
        assert user.sign_in_by_link(mailbox, machine.email).status_code == 303
        assert 'name="current"' not in user.get("password").text
        assert user.post("password", {"password": "forgot the old one",
                                      "repeat": "forgot the old one"}).status_code == 303
