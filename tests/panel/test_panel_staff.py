"""Staff accounts and admin API keys in the panel (owners only; in-process, no browser)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from software_dna.server.adminclient import AdminClient, AdminError
from software_dna.server.domain.roles import Role
from software_dna.server.models import AdminApiKey, StaffMember, StaffSession
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PASSWORD, PanelUser, add_staff, db

_SECRET = re.compile(r'<code class="secret">([^<]+)</code>')


@pytest.fixture(scope="module")
def inprocess_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """This module signs in more often than the sign-in limit (one client address) allows."""
    with InProcessServer(tmp_path_factory.mktemp("panel-staff"),
                         env={"SOFTWARE_DNA_PANEL_SIGN_IN_ATTEMPTS": "500"}) as srv:
        yield srv


def _member(server: InProcessServer, email: str) -> StaffMember:
    with db(server) as session:
        row: StaffMember = session.query(StaffMember).filter_by(email=email).one()
        session.expunge(row)
        return row


def test_only_owners_reach_staff_pages_and_actions(inprocess_server: InProcessServer,
                                                   staff_emails: dict[Role, str]) -> None:
    target = _member(inprocess_server, staff_emails[Role.READ_ONLY])
    for role in (Role.ADMIN, Role.SUPPORT, Role.DEVELOPER, Role.READ_ONLY):
        with PanelUser(inprocess_server, staff_emails[role]) as user:
            user.sign_in()
            for path in ("/panel/staff", "/panel/staff/new", f"/panel/staff/{target.id}",
                         "/panel/staff/keys", f"/panel/staff/{target.id}/remove"):
                assert user.get(path).status_code == 403, (role, path)
            # Direct posts with a valid CSRF token: refused, nothing changes.
            me = _member(inprocess_server, staff_emails[role])
            posts = [("/panel/staff/new", {"email": f"x-{secrets.token_hex(3)}@v.example",
                                           "role": "owner", "password": PASSWORD}),
                     (f"/panel/staff/{me.id}/role", {"role": "owner"}),
                     (f"/panel/staff/{target.id}/reset", {}),
                     (f"/panel/staff/{target.id}/remove", {}),
                     ("/panel/staff/keys", {"name": "mine", "role": "owner"})]
            for path, data in posts:
                assert user.post(path, data).status_code == 403, (role, path)
            assert _member(inprocess_server, staff_emails[role]).role == role.value
    assert _member(inprocess_server, target.email).disabled_at is None
    with db(inprocess_server) as session:
        assert session.query(AdminApiKey).filter_by(name="mine").count() == 0
        assert session.query(StaffMember).filter(StaffMember.email.like("x-%")).count() == 0


def test_a_forged_csrf_token_is_refused(inprocess_server: InProcessServer,
                                        owner: PanelUser) -> None:
    email = f"forged-{secrets.token_hex(3)}@vendor.example"
    for token in ("", "f" * 64):
        answer = owner.post("/panel/staff/new", {"email": email, "role": "owner"}, csrf=token)
        assert answer.status_code == 403
    with db(inprocess_server) as session:
        assert session.query(StaffMember).filter_by(email=email).count() == 0


def test_add_with_a_generated_password_shown_once(inprocess_server: InProcessServer,
                                                  owner: PanelUser) -> None:
    email = f"new-{secrets.token_hex(3)}@vendor.example"
    form = owner.get("/panel/staff/new").text
    assert 'for="f-email"' in form and 'for="f-role"' in form and 'for="f-password"' in form
    answer = owner.post("/panel/staff/new", {"email": email, "name": "New <b>One</b>",
                                             "role": "support", "password": ""})
    assert answer.status_code == 200
    found = _SECRET.search(answer.text)
    assert found is not None and len(found.group(1)) >= 20
    password = found.group(1)
    listing = owner.get("/panel/staff").text
    assert email in listing and "New &lt;b&gt;One&lt;/b&gt;" in listing
    assert password not in listing and password not in owner.get("/panel/account").text
    with PanelUser(inprocess_server, email, password) as newcomer:
        first = newcomer.http.post(newcomer.url("/panel/sign-in"), data={
            "email": email, "password": password, "next": "/panel/"}, allow_redirects=False)
        assert first.status_code == 303
        page = newcomer.get("/panel/")
        assert page.status_code == 303 and page.headers["location"] == "/panel/account/password"


def test_add_refusals_keep_what_was_typed(owner: PanelUser,
                                          staff_emails: dict[Role, str]) -> None:
    short = owner.post("/panel/staff/new", {"email": "short@vendor.example", "name": "Shorty",
                                            "role": "developer", "password": "short"})
    assert short.status_code == 400 and "at least 12 characters" in short.text
    assert 'value="short@vendor.example"' in short.text and 'value="Shorty"' in short.text
    taken = owner.post("/panel/staff/new", {"email": staff_emails[Role.SUPPORT].upper(),
                                            "role": "support", "password": PASSWORD})
    assert taken.status_code == 400 and "exists" in taken.text
    bad_role = owner.post("/panel/staff/new", {"email": "role@vendor.example",
                                               "role": "superuser", "password": PASSWORD})
    assert bad_role.status_code == 400 and "Unknown role" in bad_role.text


def test_role_change_reset_and_remove(inprocess_server: InProcessServer,
                                      owner: PanelUser) -> None:
    email = add_staff(inprocess_server, Role.SUPPORT)
    member = _member(inprocess_server, email)
    with PanelUser(inprocess_server, email) as victim:
        victim.sign_in()
        assert victim.get("/panel/").status_code == 200
        assert owner.post(f"/panel/staff/{member.id}/role",
                          {"role": "read_only"}).status_code == 303
        assert _member(inprocess_server, email).role == "read_only"
        # Reset: a confirmation page first, then a new password shown once; sessions end.
        confirm = owner.get(f"/panel/staff/{member.id}/reset")
        assert confirm.status_code == 200 and "is signed out" in confirm.text
        reset = owner.post(f"/panel/staff/{member.id}/reset")
        assert reset.status_code == 200
        found = _SECRET.search(reset.text)
        assert found is not None
        assert victim.get("/panel/").status_code == 303  # signed out
    with PanelUser(inprocess_server, email) as old:
        assert old.sign_in().status_code == 400  # the old password is gone
    with PanelUser(inprocess_server, email, found.group(1)) as again:
        assert again.http.post(again.url("/panel/sign-in"), data={
            "email": email, "password": found.group(1), "next": "/panel/"},
            allow_redirects=False).status_code == 303
        assert again.get("/panel/").headers["location"] == "/panel/account/password"
        assert again.get("/panel/account/password").status_code == 200
        confirm = owner.get(f"/panel/staff/{member.id}/remove")
        assert confirm.status_code == 200 and "can no longer sign in" in confirm.text
        assert owner.post(f"/panel/staff/{member.id}/remove").status_code == 303
        gone = again.get("/panel/account/password")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/panel/sign-in")
    assert _member(inprocess_server, email).disabled_at is not None
    listing = owner.get("/panel/staff").text
    assert f"{email} removed." in listing  # the notice
    assert f'href="/panel/staff/{member.id}"' not in listing
    assert f'href="/panel/staff/{member.id}"' in owner.get("/panel/staff?show=all").text


def test_the_last_owner_stays(inprocess_server: InProcessServer, owner: PanelUser,
                              staff_emails: dict[Role, str]) -> None:
    with db(inprocess_server) as session:
        owners = session.query(StaffMember).filter_by(role="owner", disabled_at=None).all()
        for row in owners:
            if row.email != staff_emails[Role.OWNER]:
                row.role = "admin"
        session.commit()
    me = _member(inprocess_server, staff_emails[Role.OWNER])
    demote = owner.post(f"/panel/staff/{me.id}/role", {"role": "admin"})
    assert demote.status_code == 409 and "last owner" in demote.text
    remove = owner.post(f"/panel/staff/{me.id}/remove")
    assert remove.status_code == 409 and "last owner" in remove.text
    assert _member(inprocess_server, me.email).role == "owner"
    assert _member(inprocess_server, me.email).disabled_at is None


def test_admin_api_keys_made_shown_once_and_revoked(inprocess_server: InProcessServer,
                                                    owner: PanelUser) -> None:
    name = f"billing {secrets.token_hex(2)}"
    unnamed = owner.post("/panel/staff/keys", {"name": "", "role": "support"})
    assert unnamed.status_code == 400 and "Name the key" in unnamed.text
    made = owner.post("/panel/staff/keys", {"name": name, "role": "support"})
    assert made.status_code == 200
    found = _SECRET.search(made.text)
    assert found is not None and found.group(1).startswith("sdna_admin_")
    key = found.group(1)
    listing = owner.get("/panel/staff/keys").text
    assert name in listing and key not in listing
    with db(inprocess_server) as session:
        row = session.query(AdminApiKey).filter_by(name=name).one()
        assert row.role == "support" and key not in row.key_hash
        key_id = row.id
    client = AdminClient(inprocess_server.url, key, session=inprocess_server.session())
    assert isinstance(client.audit(), list)
    try:
        client.create_product("nope-" + secrets.token_hex(2))
        raise AssertionError("a support key made a product")
    except AdminError as exc:
        assert exc.status == 403
    confirm = owner.get(f"/panel/staff/keys/{key_id}/revoke")
    assert confirm.status_code == 200 and "refused from now on" in confirm.text
    done = owner.post(f"/panel/staff/keys/{key_id}/revoke")
    assert done.status_code == 303 and done.headers["location"] == "/panel/staff/keys"
    try:
        client.audit()
        raise AssertionError("a revoked key still works")
    except AdminError as exc:
        assert exc.status == 401
    with db(inprocess_server) as session:
        assert session.query(StaffSession).count() >= 1
