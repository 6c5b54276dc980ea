"""The role matrix over every panel route: each role gets exactly what its permission allows.

Every route of the app under ``/panel`` is enumerated (``app.routes``) and its
permission read off its ``viewer`` / ``poster`` dependency (tests/panel/routes.py);
a route with neither fails unless it is listed as public (the sign-in pages).
Then, in-process on real SQLite, for every role:

- a page (GET) answers 200 to a role allowed its permission and 403 to the
  others; signed out, it sends to the sign-in page;
- an action (POST) is refused (403) without the CSRF field, with a made-up
  one, with another session's, and signed out; with a valid one it is refused
  (403) to a role without the permission; and none of these refusals changes
  a single row of the database (every table compared before and after, the
  audit log included); a role with the permission is not refused.

Path parameters are filled with the ids of real rows made for the test
(:class:`Samples`: license, activation, end user, product, signing key, staff
member, admin API key, trial, test code, renewal code, webhook); each action
gets fresh ones, since an allowed post may revoke or erase them.  Pages added
to the panel are picked up without a change here; a parameter this file cannot
fill fails with a message that says where to add it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from software_dna.server.domain.roles import Role, allows
from software_dna.server.models.base import Base
from software_dna.server.panel import ROUTERS
from software_dna.server.services.admin import admin_key_row, create_admin_key
from software_dna.server.services.staff import get_staff
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, add_staff, db
from tests.panel.routes import PanelPage, panel_pages
from tests.server.helpers import Api, fingerprint, nonce

#: The panel's routes as the code declares them (the parametrization); the first test
#: checks the app serves exactly these.
PAGES = panel_pages(route for router in ROUTERS for route in router.routes)
GETS = [page for page in PAGES if page.method == "GET" and not page.public]
POSTS = [page for page in PAGES if page.method == "POST" and not page.public]

#: A path parameter's sample by the path segment before it (``/licenses/{id}``) ...
BY_SEGMENT = {
    "products": "product", "licenses": "license", "activations": "activation",
    "end-users": "end_user", "keys": "key", "staff": "staff", "trials": "trial",
    "test-codes": "test_code", "renewal-codes": "renewal_code", "webhooks": "webhook",
}
#: ... and by the parameter's name (see :func:`kind_of` for which wins).
BY_NAME = {
    "product_id": "product", "license_id": "license", "activation_id": "activation",
    "end_user_id": "end_user", "kid": "key", "signing_key_id": "key", "staff_id": "staff",
    "member_id": "staff", "admin_key_id": "admin_key", "api_key_id": "admin_key",
    "trial_id": "trial", "test_code_id": "test_code", "renewal_code_id": "renewal_code",
    "webhook_id": "webhook", "endpoint_id": "webhook",
}
#: Kinds whose rows are rows of another kind (a test code is a license).
SPECIALISES = {"test_code": "license"}
#: What every post sends besides the CSRF field: a confirmed action with plausible
#: values, so that a post let through by mistake would change something.
FORM = {"confirm": "yes", "role": "owner", "seats": "99", "notes": "matrix", "days": "30",
        "email": "matrix@vendor.example", "name": "Matrix"}


@pytest.fixture(scope="module")
def inprocess_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """This module's server: sign-in is not throttled (every role signs in again and again)."""
    with InProcessServer(tmp_path_factory.mktemp("role-matrix"),
                         env={"SOFTWARE_DNA_PANEL_SIGN_IN_ATTEMPTS": "100000"}) as srv:
        yield srv


def kind_of(page: PanelPage, param: str) -> str:
    """Which sample a path parameter takes (see :data:`BY_NAME`, :data:`BY_SEGMENT`)."""
    segments = page.path.strip("/").split("/")
    at = segments.index("{" + param + "}")
    before = segments[at - 1] if at > 0 else ""
    if before == "keys" and at > 1 and segments[at - 2] == "staff":
        return "admin_key"
    by_segment, by_name = BY_SEGMENT.get(before), BY_NAME.get(param)
    # The name wins (/keys/{product_id} takes a product), unless the collection is a kind
    # of what the name says (/test-codes/{license_id} takes a test code, a license).
    if by_segment is not None and by_name is not None:
        return by_segment if SPECIALISES.get(by_segment) == by_name else by_name
    if by_name is not None or by_segment is not None:
        return by_name or by_segment or ""
    pytest.fail(f"{page}: no sample row for the path parameter {param!r}; add its kind to "
                "BY_NAME or BY_SEGMENT and a maker to Samples in tests/panel/test_role_matrix.py",
                pytrace=False)


class Samples:
    """Real rows for path parameters, made on first use (through the admin API and services).

    ``parent``: a module-wide :class:`Samples` whose product carries the licenses
    made here (so a fresh license costs no new signing key).
    """

    def __init__(self, server: InProcessServer, parent: Samples | None = None) -> None:
        self.server = server
        self.parent = parent
        self.made: dict[str, str] = {}

    def get(self, kind: str) -> str:
        """The id of this set's row of ``kind`` (made now if needed)."""
        if kind not in self.made:
            maker = getattr(self, f"_make_{kind}", None)
            assert maker is not None, f"no maker for {kind!r}"
            maker()
        return self.made[kind]

    def path(self, page: PanelPage) -> str:
        """``page``'s path with every parameter filled in."""
        path = page.path
        for param in page.params:
            path = path.replace("{" + param + "}", self.get(kind_of(page, param)))
        return path

    def _home_product(self) -> str:
        return self.parent.get("product") if self.parent is not None else self.get("product")

    def _make_product(self) -> None:
        product = f"mx-{secrets.token_hex(4)}"
        self.server.admin.setup_product(product, name="Matrix Editor", features=["pro"])
        self.server.admin.update_product(product, trial_days=14)
        self.made["product"] = product

    def _make_key(self) -> None:
        self.made["key"] = str(self.server.admin.list_keys(self.get("product"))[0]["kid"])

    def _make_license(self) -> None:
        issued = self.server.admin.issue_license(self._home_product(), seats=2)
        self.made["license"] = str(issued["id"])
        self.made["license_key"] = str(issued["license_key"])

    def _make_activation(self) -> None:
        email = f"end-user-{secrets.token_hex(4)}@example.org"
        product = self._home_product()
        issued = self.server.admin.issue_license(product, seats=2)
        with self.server.session() as http:
            answer = Api(self.server.url, http).activate(
                product, issued["license_key"], machine=secrets.token_hex(4), email=email,
                consent=True)
        assert answer.status_code == 201, answer.text
        self.made["activation"] = str(answer.json()["activation_id"])
        (user,) = self.server.admin.find_end_users(email)
        self.made["end_user"] = str(user["id"])

    _make_end_user = _make_activation

    def _make_staff(self) -> None:
        email = add_staff(self.server, Role.READ_ONLY)
        with db(self.server) as session:
            self.made["staff"] = get_staff(session, email).id

    def _make_admin_key(self) -> None:
        with db(self.server) as session:
            ctx = self.server.app.state.sdna.ctx
            key = create_admin_key(session, ctx, role=Role.SUPPORT, name="matrix")
            row = admin_key_row(session, ctx, key)
            assert row is not None
            self.made["admin_key"] = row.id

    def _make_trial(self) -> None:
        product = self._home_product()
        with self.server.session() as http:
            answer = http.post(f"{self.server.url}/v1/trials", json={
                "product": product, "fingerprint": fingerprint(secrets.token_hex(4)),
                "nonce": nonce()}, timeout=30)
        assert answer.status_code == 201, answer.text
        trials = self.server.admin.list_trials(product)
        self.made["trial"] = str(trials[-1]["id"])

    def _make_test_code(self) -> None:
        self.made["test_code"] = str(self.server.admin.issue_test_code(self._home_product())["id"])

    def _make_renewal_code(self) -> None:
        (code,) = self.server.admin.make_renewal_codes(30, product_id=self._home_product())
        self.made["renewal_code"] = str(code["id"])

    def _make_webhook(self) -> None:
        made = self.server.admin.webhook_create("https://hooks.vendor.example/sdna",
                                                ["license.revoked"])
        self.made["webhook"] = str(made["endpoint"]["id"])


class Team:
    """One signed-in :class:`PanelUser` per role, signed in again when a post ended it."""

    def __init__(self, server: InProcessServer, emails: dict[Role, str]) -> None:
        self.users = {role: PanelUser(server, email) for role, email in emails.items()}
        for user in self.users.values():
            assert user.sign_in().status_code == 303

    def __getitem__(self, role: Role) -> PanelUser:
        return self.users[role]

    def ensure(self, role: Role) -> None:
        """Sign ``role`` in again if its session ended (an allowed sign-out, a reset)."""
        user = self.users[role]
        if user.get("/panel/").status_code != 200:
            assert user.sign_in().status_code == 303, f"{role.value} cannot sign in again"

    def close(self) -> None:
        """Close every user's HTTP session."""
        for user in self.users.values():
            user.close()


@pytest.fixture(scope="module")
def team(inprocess_server: InProcessServer,
         staff_emails: dict[Role, str]) -> Iterator[Team]:
    """Every role, signed in."""
    members = Team(inprocess_server, staff_emails)
    yield members
    members.close()


@pytest.fixture(scope="module")
def samples(inprocess_server: InProcessServer) -> Samples:
    """The module's sample rows (pages only read them)."""
    return Samples(inprocess_server)


def snapshot(server: InProcessServer) -> dict[str, list[str]]:
    """Every row of every table, as sorted text (a session's last-seen time left out:
    the server moves it on once a minute whatever the request)."""
    rows: dict[str, list[str]] = {}
    with db(server) as session:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns
                       if not (table.name == "staff_sessions" and c.name == "last_seen_at")]
            rows[table.name] = sorted(repr(tuple(row)) for row in session.execute(
                select(*columns)))
    return rows


def changed(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[str]:
    """The tables whose rows differ."""
    return [name for name in sorted(before.keys() | after.keys())
            if before.get(name) != after.get(name)]


def _audit_length(state: dict[str, list[str]]) -> int:
    return len(state["audit_log"])


def test_the_app_serves_exactly_the_panel_routes(inprocess_server: InProcessServer) -> None:
    served = {(p.method, p.path) for p in panel_pages(inprocess_server.app.routes)}
    assert served == {(p.method, p.path) for p in PAGES}
    assert GETS and POSTS


def test_every_panel_route_names_a_permission(inprocess_server: InProcessServer) -> None:
    pages = panel_pages(inprocess_server.app.routes)
    missing = [str(page) for page in pages if page.permission is None and not page.public]
    assert not missing, ("panel routes without viewer(Permission.X) / poster(Permission.X), "
                         f"and not listed in PUBLIC (tests/panel/routes.py): {missing}")
    guarded = [str(page) for page in pages if page.public and page.permission is not None]
    assert not guarded, f"listed as public but guarded: {guarded}"


def test_the_public_pages_need_no_session(inprocess_server: InProcessServer) -> None:
    present = {(p.method, p.path) for p in PAGES if p.public}
    assert ("GET", "/panel/sign-in") in present and ("POST", "/panel/sign-in") in present
    with inprocess_server.session() as http:
        page = http.get(inprocess_server.url + "/panel/sign-in", allow_redirects=False)
        assert page.status_code == 200 and 'name="password"' in page.text
        empty = http.post(inprocess_server.url + "/panel/sign-in", data={},
                          allow_redirects=False)
        assert empty.status_code == 400


@pytest.mark.parametrize("page", GETS, ids=str)
def test_a_page_shows_to_exactly_the_roles_allowed(inprocess_server: InProcessServer,
                                                   team: Team, samples: Samples,
                                                   page: PanelPage) -> None:
    assert page.permission is not None, f"{page} names no permission"
    path = samples.path(page)
    with inprocess_server.session() as stranger:
        answer = stranger.get(inprocess_server.url + path, allow_redirects=False)
    assert answer.status_code == 303, (page, answer.status_code)
    assert answer.headers["location"].startswith("/panel/sign-in?next=")
    for role in Role:
        # An allowed view may write (a view of personal data is audited); a refused one not.
        before = snapshot(inprocess_server)
        answer = team[role].get(path)
        if allows(role, page.permission):
            assert answer.status_code in (200, 303), (role.value, path, answer.status_code,
                                                      answer.text[:500])
            if answer.status_code == 303:
                assert not answer.headers["location"].startswith("/panel/sign-in"), role
        else:
            assert answer.status_code == 403, (role.value, path, answer.status_code)
            assert "Not allowed" in answer.text
            assert changed(before, snapshot(inprocess_server)) == [], (role.value, path)


def _refused(answer: requests.Response, who: str, path: str) -> None:
    assert answer.status_code == 403, (who, path, answer.status_code, answer.text[:300])


@pytest.mark.parametrize("page", POSTS, ids=str)
def test_an_action_is_done_by_exactly_the_roles_allowed(inprocess_server: InProcessServer,
                                                        team: Team, samples: Samples,
                                                        page: PanelPage) -> None:
    assert page.permission is not None, f"{page} names no permission"
    fresh = Samples(inprocess_server, parent=samples)
    path = fresh.path(page)
    for role in Role:
        team.ensure(role)
    before = snapshot(inprocess_server)

    # Signed out: refused, whatever the form says.
    with inprocess_server.session() as stranger:
        for token in (None, secrets.token_hex(32), team[Role.OWNER].csrf):
            form: dict[str, Any] = dict(FORM) | ({"csrf": token} if token else {})
            _refused(stranger.post(inprocess_server.url + path, data=form,
                                   allow_redirects=False), "signed out", path)
    # Every role, the owner included: no CSRF field, a made-up one, another session's.
    for role in Role:
        other = team[Role.READ_ONLY if role is not Role.READ_ONLY else Role.OWNER].csrf
        for token in ("", secrets.token_hex(32), other or ""):
            answer = team[role].post(path, FORM, csrf=token)
            _refused(answer, f"{role.value} with csrf {token[:8]!r}", path)
            assert "no longer valid" in answer.text
    # A valid CSRF token, a role without the permission.
    for role in Role:
        if not allows(role, page.permission):
            answer = team[role].post(path, FORM)
            _refused(answer, role.value, path)
            assert "Not allowed" in answer.text
    after = snapshot(inprocess_server)
    assert changed(before, after) == [], f"{page}: a refused post changed these tables"
    assert _audit_length(after) == _audit_length(before)

    # The roles with the permission get past the check (the action may still refuse
    # the form's values, or find it done already by the role before).
    for role in Role:
        if allows(role, page.permission):
            answer = team[role].post(path, FORM)
            gated = answer.status_code == 403 and (
                "Not allowed" in answer.text or "no longer valid" in answer.text)
            assert not gated, (role.value, path, answer.text[:300])
            assert answer.status_code < 500, (role.value, path, answer.status_code)
            team.ensure(role)
