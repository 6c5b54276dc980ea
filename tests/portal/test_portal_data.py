"""The end user's data in the portal: the download is the vendor's export, and erasure
leaves nothing behind and limits the license."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server.models import Activation, AuditEntry, EndUser
from software_dna.server.testing import InProcessServer
from software_dna.wire.claims import Mode
from tests.portal.helpers import ROOMY, PortalUser, add_seat, db, raw_database, setup_license
from tests.server.helpers import Api, check_token
from tests.server.mailing import mail_env
from tests.smtp import Mailbox


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-data"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


def set_label(srv: InProcessServer, activation_id: str, label: str) -> bytes:
    """Give an activation the label an app would set (encrypted); returns its ciphertext."""
    ctx = srv.app.state.sdna.ctx
    with db(srv) as session:
        row = session.get(Activation, activation_id)
        assert row is not None
        row.label_ciphertext = ctx.vault.encrypt_field(
            label.encode(), aad=f"activation:{activation_id}:label")
        session.commit()
        return bytes(row.label_ciphertext)


def _registered(srv: InProcessServer, api: Api, box: Mailbox, *, seat_mode: str | None = None,
                ) -> tuple[Any, str, dict[str, str], list[str]]:
    """A license whose first activation gave an email (confirmed) and registration details."""
    email = f"ada-{secrets.token_hex(4)}@example.com"
    registration = {"name": f"Ada Q{secrets.token_hex(3)}"}
    held = setup_license(srv, api, None, seat_mode=seat_mode, machines=0,
                         product={"features": ["pro"], "limited_features": ["view"]})
    first = add_seat(srv, api, box, held, email, machine="m1", registration=registration)
    held.activations.append(first)
    keys = srv.admin.public_keys(held.product_id)
    return held, email, registration, keys


def test_the_download_is_the_vendors_export(portal_server: InProcessServer, api: Api,
                                           mailbox: Mailbox) -> None:
    held, email, registration, _ = _registered(portal_server, api, mailbox)
    (found,) = portal_server.admin.find_end_users(email)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        page = user.get("data")
        assert page.status_code == 200
        assert email in page.text and registration["name"] in page.text
        answer = user.post("data/export")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.headers["content-disposition"] == \
        f'attachment; filename="{found["id"]}.json"'
    vendors = portal_server.admin.export_end_user(found["id"])
    assert answer.text == json.dumps(vendors, indent=2, sort_keys=True) + "\n"
    assert json.loads(answer.text)["email"] == email
    with db(portal_server) as session:
        audited = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "end_user.exported",
            AuditEntry.end_user_id == found["id"])).all()
    assert [(a.actor, a.license_id) for a in audited] == [("portal", held.license["id"])]


def _stored(srv: InProcessServer, end_user_id: str) -> list[bytes]:
    with db(srv) as session:
        person = session.get(EndUser, end_user_id)
        assert person is not None and person.email_ciphertext and person.registration_ciphertext
        return [bytes(person.email_ciphertext)[-24:], bytes(person.registration_ciphertext)[-24:],
                str(person.email_index).encode()]


def test_erasure_leaves_no_byte_and_limits_the_license(portal_server: InProcessServer,
                                                       api: Api, mailbox: Mailbox) -> None:
    held, email, registration, keys = _registered(portal_server, api, mailbox)
    first = held.activations[0]
    label = f"Ada laptop {secrets.token_hex(3)}"
    label_ct = set_label(portal_server, first["activation_id"], label)
    (found,) = portal_server.admin.find_end_users(email)
    stored = [*_stored(portal_server, found["id"]), label_ct[-24:]]
    clear = [email.encode(), registration["name"].encode(), label.encode()]
    before = raw_database(portal_server)
    assert all(needle in before for needle in stored)  # the search sees the stored forms
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert label in user.get("license").text  # their own computer's name
        page = user.get("erase")
        assert page.status_code == 200
        assert "view" in page.text  # this product's limited mode, in words
        assert "activation password is deleted" in page.text
        done = user.post("erase")
        assert done.status_code == 303, done.text
        assert done.headers["location"].endswith("/license")
        page = user.get("license")
        assert page.status_code == 200
        assert 'id="license-mode">Limited' in page.text
        assert label not in page.text
        # Personal data is out of this session's reach now.
        assert user.get("data").status_code == 403
        assert user.get("email").status_code == 403
    after = raw_database(portal_server)
    for needle in clear + stored:
        assert needle not in after, needle
    answer = api.validate(first["activation_id"], first["activation_secret"], machine="m1")
    assert answer.status_code == 200, answer.text
    token = check_token(answer.json()["token"], keys, held.product_id)
    assert token.mode is Mode.LIMITED and token.email is None
    with db(portal_server) as session:
        audited = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.action == "end_user.erase", AuditEntry.end_user_id == found["id"])).all()
    assert audited == ["portal"]


def test_erasure_on_user_seats_limits_only_the_own_seat(portal_server: InProcessServer,
                                                        api: Api, mailbox: Mailbox) -> None:
    held, email, _, keys = _registered(portal_server, api, mailbox, seat_mode="user")
    other = add_seat(portal_server, api, mailbox, held,
                     f"bo-{secrets.token_hex(4)}@example.com", machine="m2")
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        page = user.get("erase")
        assert "only your own seats" in page.text
        assert user.post("erase").status_code == 303
        assert 'id="license-mode">Limited' in user.get("license").text
    mine = api.validate(held.activations[0]["activation_id"],
                        held.activations[0]["activation_secret"], machine="m1")
    theirs = api.validate(other["activation_id"], other["activation_secret"], machine="m2")
    assert check_token(mine.json()["token"], keys, held.product_id).mode is Mode.LIMITED
    assert check_token(theirs.json()["token"], keys, held.product_id).mode is Mode.FULL
