"""Every panel page a role can reach, in the browser: allowed, labelled, self-contained.

Each role signs in and follows every link the panel shows it (the navigation,
lists, detail pages, confirmation pages: GET only; downloads are not opened),
so pages added to the panel are checked without a change here.  On every page:
the answer is 200 (a link the panel shows never leads to "Not allowed"), every
form control has a label, nothing is loaded from elsewhere, the browser logged
no error.  The owner's tour saves a screenshot of each main page (docs/panel/
with ``SDNA_SCREENSHOTS=1``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

from software_dna.server.domain.roles import Permission, Role, allows
from software_dna.server.panel import ROUTERS
from software_dna.server.testing import LocalServer
from tests.panel.browser.conftest import Panel
from tests.panel.browser.helpers import text_of
from tests.panel.routes import find_route, panel_pages
from tests.server.helpers import Api

pytestmark = pytest.mark.browser

#: At most this many pages per role (the tour stops there).
MAX_PAGES = 80
#: Links that are not pages to look at: downloads.
_DOWNLOADS = (".csv", ".json", ".png", ".svg", ".txt", ".zip")
#: The panel's pages (the same code the server runs).
PAGES = panel_pages(route for router in ROUTERS for route in router.routes)
#: Sections the navigation links to while they are being built: skipped as long as no
#: route serves them (then visited like every page). Any other link to nowhere fails.
PENDING = frozenset({"/panel/licenses", "/panel/activations", "/panel/end-users",
                     "/panel/products", "/panel/keys", "/panel/offline", "/panel/audit",
                     "/panel/staff", "/panel/account"})


@pytest.fixture(scope="module")
def seeded(panel_server: LocalServer) -> Iterator[dict[str, str]]:
    """A product with a key, licenses and an activation with an end user (the admin API)."""
    product = f"tour-{secrets.token_hex(3)}"
    admin = panel_server.admin
    admin.setup_product(product, name="Tour Editor", features=["pro", "export"])
    issued = admin.issue_license(product, seats=2)
    admin.issue_license(product, seats=1)
    api = Api(panel_server.url, requests.Session())
    try:
        answer = api.activate(product, issued["license_key"], email="tour@example.org",
                              consent=True)
        assert answer.status_code in (200, 201), answer.text
    finally:
        api.close()
    yield {"product": product, "license": str(issued.get("id") or issued.get("license_id"))}


def _status(panel: Panel) -> int:
    status = panel.driver.execute_script(
        "const n = performance.getEntriesByType('navigation')[0];"
        "return n ? n.responseStatus : 0;")
    return int(status or 0)


def _links(panel: Panel) -> list[tuple[str, bool]]:
    """``(path, in the navigation)`` of every panel link on the page."""
    found: list[tuple[str, bool]] = []
    for link in panel.driver.find_elements(By.CSS_SELECTOR, "a[href]"):
        href = link.get_attribute("href") or ""
        absolute = urljoin(panel.driver.current_url, href)
        parts = urlsplit(absolute)
        assert absolute.startswith(panel.url + "/"), f"a link to elsewhere: {href}"
        in_nav = bool(
            panel.driver.execute_script("return !!arguments[0].closest('header nav')", link))
        if parts.path.startswith("/panel") and link.get_dom_attribute("download") is None \
                and not parts.path.endswith(_DOWNLOADS) and "/export" not in parts.path:
            found.append((parts.path + (f"?{parts.query}" if parts.query else ""), in_nav))
    return found


def _tour(panel: Panel, shoot: Callable[[str], Path] | None) -> dict[str, int]:
    """Visit every page reachable by links from the dashboard; returns {path: status}."""
    seen: dict[str, int] = {}
    todo = ["/panel/"]
    nav: set[str] = set()
    while todo and len(seen) < MAX_PAGES:
        path = todo.pop(0)
        if path in seen:
            continue
        bare = urlsplit(path).path
        if find_route(PAGES, "GET", bare) is None:
            assert bare in PENDING, f"a link to a page that does not exist: {path}"
            continue
        panel.open(path)
        status = seen[path] = _status(panel)
        assert status == 200, f"{path}: {status} ({text_of(panel.driver, 'h1')})"
        assert not panel.path.startswith("/panel/sign-in"), f"{path}: signed out"
        panel.check()
        for link, in_nav in _links(panel):
            if in_nav:
                nav.add(link)
            if link not in seen and link not in todo:
                todo.append(link)
        if shoot is not None and path in nav | {"/panel/"}:
            shoot(path.removeprefix("/panel/").strip("/").replace("/", "-") or "dashboard")
    return seen


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_every_page_a_role_is_shown_works(panel: Panel, staff: dict[Role, str],
                                          seeded: dict[str, str], role: Role,
                                          screenshot: Callable[[str], Path]) -> None:
    panel.sign_in(staff[role])
    seen = _tour(panel, screenshot if role is Role.OWNER else None)
    assert "/panel/" in seen, seen
    # The sections a role may not use are not offered.
    panel.open("/panel/")
    nav = {(a.get_attribute("href") or "").removeprefix(panel.url)
           for a in panel.driver.find_elements(By.CSS_SELECTOR, "header nav a")}
    assert ("/panel/end-users" in nav) == allows(role, Permission.PERSONAL_DATA)
    assert ("/panel/staff" in nav) == allows(role, Permission.STAFF)
    assert ("/panel/offline" in nav) == allows(role, Permission.OFFLINE)


@pytest.mark.parametrize("role", [r for r in Role if r is not Role.OWNER],
                         ids=[r.value for r in Role if r is not Role.OWNER])
def test_a_forbidden_page_says_so_in_words(panel: Panel, staff: dict[Role, str],
                                           role: Role) -> None:
    forbidden = [page for page in PAGES if page.method == "GET" and not page.params
                 and page.permission is not None and not allows(role, page.permission)]
    if not forbidden:
        pytest.skip(f"no page yet needs a permission the {role.value} role lacks")
    panel.sign_in(staff[role])
    for page in forbidden:
        panel.open(page.path)
        assert _status(panel) == 403, page
        assert text_of(panel.driver, "h1") == "Not allowed"
        assert f"Your role ({role.value})" in text_of(panel.driver, "[role=alert]")
        panel.check()
