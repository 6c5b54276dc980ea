"""Who reaches what, over every portal route: signed out, by password, by link, and by the
session of another end user, another license or another product.

Every route of the app under ``/portal`` is enumerated (the portal's ``ROUTERS``, checked
against ``app.routes``) and its guard read off its dependency: :func:`holder` for a page,
:func:`poster` for a form post, each with its ``personal`` flag.  A route with neither
fails unless it is listed in :data:`PUBLIC`.  Then, in-process on real SQLite:

- a page answers a redirect to the sign-in page signed out or signed in to another
  product, 403 to a password session when it is personal, 200 to a link session; another
  license's session sees its own license only (an activation of this one: 404);
- a form post is refused signed out, without the CSRF field, with a made-up one, with
  another session's, sent cross-site (``Sec-Fetch-Site`` or ``Origin``), from another
  product's session, by a password session when personal, and by another license's
  session for this license's activation; none of these refusals changes a row of any
  table; with the right session and CSRF field it is not refused.

Path parameters are filled from :class:`Scene`; a parameter this file cannot fill fails
with a message saying where to add it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts

from software_dna.server.portal import ROUTERS
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import (
    PASSWORD,
    ROOMY,
    PortalLicense,
    PortalUser,
    airgap_request,
    setup_license,
    tables,
)
from tests.server.helpers import Api
from tests.server.mailing import mail_env
from tests.smtp import Mailbox

#: The routes anyone may use: the portal's root, signing in and the product's look.
PUBLIC = frozenset({
    ("GET", "/portal/"),
    ("GET", "/portal/{product_id}/"),
    ("POST", "/portal/{product_id}/sign-in"),
    ("POST", "/portal/{product_id}/link"),
    ("GET", "/portal/{product_id}/link/{token}"),
    ("POST", "/portal/{product_id}/link/{token}"),
    ("POST", "/portal/{product_id}/language"),
    ("GET", "/portal/{product_id}/logo"),
    ("GET", "/portal/{product_id}/brand.css"),
})
#: The routes that reach personal data: a link session's only (``personal=True``).
PERSONAL = frozenset({
    ("GET", "/portal/{product_id}/email"),
    ("POST", "/portal/{product_id}/email"),
    ("POST", "/portal/{product_id}/email/remove"),
    ("GET", "/portal/{product_id}/data"),
    ("POST", "/portal/{product_id}/data/export"),
    ("GET", "/portal/{product_id}/erase"),
    ("POST", "/portal/{product_id}/erase"),
})
#: Columns any request may move on (once a minute), left out of the snapshots.
MOVING = {"portal_sessions": {"last_seen_at"}}


@dataclass(frozen=True)
class Route:
    """One method of one portal route and its guard (``holder``, ``poster`` or None)."""

    method: str
    path: str
    guard: str | None
    personal: bool
    route: APIRoute

    @property
    def public(self) -> bool:
        """True when listed in :data:`PUBLIC`."""
        return (self.method, self.path) in PUBLIC

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _guard(dependant: Dependant) -> tuple[str | None, bool]:
    found = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        personal = getattr(current.call, "personal", None)
        if isinstance(personal, bool):
            found.add((current.call.__qualname__.split(".")[0], personal))  # type: ignore[union-attr]
        todo.extend(current.dependencies)
    assert len(found) <= 1, f"{dependant.path}: several guards {found}"
    return next(iter(found)) if found else (None, False)


def _routes() -> list[Route]:
    made: list[Route] = []
    for router in ROUTERS:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            guard, personal = _guard(route.dependant)
            made.extend(Route(method, route.path, guard, personal, route)
                        for method in sorted(route.methods or ()) if method != "HEAD")
    return made


ROUTES = _routes()
GETS = [r for r in ROUTES if r.method == "GET" and not r.public]
POSTS = [r for r in ROUTES if r.method == "POST" and not r.public]


def test_the_app_serves_exactly_these_routes_each_guarded(
        portal_server: InProcessServer) -> None:
    served = {(method, context.path) for context in iter_route_contexts(
                  list(portal_server.app.routes))
              if (context.path or "").startswith("/portal")
              for method in context.methods or () if method != "HEAD"}
    assert served == {(r.method, r.path) for r in ROUTES}
    for route in ROUTES:
        if route.public:
            continue
        want = "holder" if route.method == "GET" else "poster"
        assert route.guard == want, f"{route}: guarded by {route.guard}, not {want}()"
        personal = (route.method, route.path) in PERSONAL
        assert route.personal == personal, f"{route}: personal={route.personal}"
    assert {(r.method, r.path) for r in ROUTES} >= PUBLIC | PERSONAL, "a route is gone"


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """This module's server: every request comes from one address, so its limits are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-reach"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


class Scene:
    """A product (air-gapped activation allowed) with two licenses, each with a confirmed
    end user, and a license of another product; a browser signed in each way."""

    def __init__(self, srv: InProcessServer, api: Api, box: Mailbox) -> None:
        self.srv, self.api, self.box = srv, api, box
        self.email = f"ann-{secrets.token_hex(3)}@example.com"
        self.mine = setup_license(srv, api, box, email=self.email, machines=2,
                                  product={"air_gapped": True})
        self.pid = self.mine.product_id
        self.other_email = f"bob-{secrets.token_hex(3)}@example.com"
        self.other = setup_license(srv, api, box, email=self.other_email,
                                   product_id=self.pid)
        self.elsewhere_email = f"cid-{secrets.token_hex(3)}@example.com"
        self.elsewhere = setup_license(srv, api, box, email=self.elsewhere_email)
        self.signed_out = PortalUser(srv, self.pid)
        self.by_password = self.password_session(self.mine)
        self.by_link = self.link_session(self.mine, self.email)
        self.other_license = self.link_session(self.other, self.other_email)
        self.other_product = self.link_session(self.elsewhere, self.elsewhere_email)
        self.other_product.product_id = self.pid  # its cookie, on this product's pages

    def password_session(self, held: PortalLicense) -> PortalUser:
        """A browser signed in with ``held``'s key and password."""
        user = PortalUser(self.srv, held.product_id)
        assert user.sign_in(held.key).status_code == 303
        return user

    def link_session(self, held: PortalLicense, email: str) -> PortalUser:
        """A browser signed in with a link mailed to ``email``."""
        user = PortalUser(self.srv, held.product_id)
        assert user.sign_in_by_link(self.box, email).status_code == 303
        return user

    def path(self, route: Route, held: PortalLicense | None = None) -> str:
        """``route``'s path after ``/portal/{product_id}/``, its parameters filled."""
        held = held or self.mine
        path = route.path.removeprefix("/portal/{product_id}/")
        for param in route.route.param_convertors:
            if param == "product_id":
                continue
            if param == "activation_id":
                path = path.replace("{activation_id}", held.activations[0]["activation_id"])
                continue
            pytest.fail(f"{route}: no sample for the path parameter {param!r}; add one to "
                        "Scene.path in tests/portal/test_portal_reach.py", pytrace=False)
        return path

    def form(self, route: Route, held: PortalLicense | None = None) -> dict[str, str]:
        """Plausible fields for ``route``'s form, so a post let through would change
        something."""
        held = held or self.mine
        # The activation password beside an air-gapped request; a new one elsewhere.
        new = PASSWORD if route.path.endswith("/offline") else "reach " + secrets.token_hex(4)
        return {"current": PASSWORD, "password": new, "repeat": new,
                "email": f"new-{secrets.token_hex(3)}@example.com",
                "request": airgap_request(held.product_id, held.key,
                                          machine=secrets.token_hex(4)),
                "then": "show"}

    def close(self) -> None:
        """Close every browser."""
        for user in (self.signed_out, self.by_password, self.by_link, self.other_license,
                     self.other_product):
            user.close()


@pytest.fixture(scope="module")
def scene(portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> Iterator[Scene]:
    """The module's :class:`Scene`."""
    made = Scene(portal_server, api, mailbox)
    yield made
    made.close()


def _to_sign_in(answer: requests.Response, pid: str) -> bool:
    return answer.status_code == 303 and answer.headers["location"] == f"/portal/{pid}/"


@pytest.mark.parametrize("route", GETS, ids=str)
def test_a_page_is_shown_only_to_whom_it_belongs(scene: Scene, route: Route) -> None:
    path = scene.path(route)
    assert _to_sign_in(scene.signed_out.get(path), scene.pid)
    assert _to_sign_in(scene.other_product.get(path), scene.pid)
    by_password = scene.by_password.get(path)
    assert by_password.status_code == (403 if route.personal else 200), by_password.text
    by_link = scene.by_link.get(path)
    assert by_link.status_code == 200, by_link.text
    theirs = scene.other_license.get(path)
    if "{activation_id}" in route.path:
        assert theirs.status_code == 404
    else:
        assert theirs.status_code == 200
    for secret in (scene.email, *(a["activation_id"] for a in scene.mine.activations)):
        assert secret not in theirs.text


def _refusals(scene: Scene, route: Route) -> list[tuple[str, requests.Response]]:
    path, form = scene.path(route), scene.form(route)
    right = scene.by_link.csrf
    other_csrf = scene.other_license.csrf
    assert right and other_csrf
    who = scene.by_link
    answers = [
        ("signed out", scene.signed_out.post(path, form, csrf="")),
        ("signed out, made-up csrf", scene.signed_out.post(path, form, csrf="0" * 64)),
        ("no csrf", who.post(path, form, csrf="")),
        ("made-up csrf", who.post(path, form, csrf="0" * 64)),
        ("another session's csrf", who.post(path, form, csrf=other_csrf)),
        ("cross-site", who.post(path, form, headers={"Sec-Fetch-Site": "cross-site"})),
        ("other origin", who.post(path, form, headers={"Origin": "https://evil.example"})),
        ("another product's session", scene.other_product.post(path, form)),
        ("password session, link session's csrf", scene.by_password.post(path, form,
                                                                          csrf=right)),
    ]
    if route.personal:
        answers.append(("password session", scene.by_password.post(path, form)))
    if "{activation_id}" in route.path:
        answers.append(("another license's session", scene.other_license.post(path, form)))
    return answers


@pytest.mark.parametrize("route", POSTS, ids=str)
def test_a_refused_post_changes_nothing(scene: Scene, route: Route) -> None:
    before = tables(scene.srv, ignore=MOVING)
    for why, answer in _refusals(scene, route):
        want = 404 if why == "another license's session" else 403
        assert answer.status_code == want, f"{route}, {why}: {answer.status_code}"
    assert tables(scene.srv, ignore=MOVING) == before, route
    # The browsers are still signed in (a refused post signs nobody out).
    assert scene.by_link.get("license").status_code == 200
    assert scene.by_password.get("license").status_code == 200


@pytest.mark.parametrize("route", POSTS, ids=str)
def test_an_allowed_post_is_not_refused(portal_server: InProcessServer, api: Api,
                                        mailbox: Mailbox, scene: Scene, route: Route) -> None:
    email = f"eve-{secrets.token_hex(3)}@example.com"
    held = setup_license(portal_server, api, mailbox, email=email, product_id=scene.pid)
    with scene.link_session(held, email) as user:
        answer = user.post(scene.path(route, held), scene.form(route, held))
    assert answer.status_code in (200, 303), f"{route}: {answer.status_code} {answer.text}"
