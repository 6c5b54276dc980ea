"""Every panel page a role can reach, in the browser: allowed, labelled, self-contained.

Each role signs in and follows every link the panel shows it (the navigation,
lists, detail pages, confirmation pages: GET only; downloads are not opened; at
most three pages of each route with an id), so pages added to the panel are
checked without a change here.  On every page:
the answer is 200 (a link the panel shows never leads to "Not allowed"), every
form control has a label, nothing is loaded from elsewhere, the browser logged
no error.  The owner's tour saves a screenshot of each main page (docs/panel/
with ``SDNA_SCREENSHOTS=1``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from selenium.webdriver.common.by import By

from software_dna import LicenseClient, LicenseError
from software_dna.server.domain.roles import Permission, Role, allows
from software_dna.server.panel import ROUTERS
from software_dna.server.services import usage
from software_dna.server.testing import LocalServer
from software_dna.testing import SimulatedMachine
from tests.panel.browser.conftest import Panel, PanelDb
from tests.panel.browser.helpers import text_of
from tests.panel.routes import find_route, panel_pages
from tests.server.helpers import Api

pytestmark = pytest.mark.browser

#: At most this many pages per role (the tour stops there).
MAX_PAGES = 80
#: At most this many pages of one route (three licenses, three activations, ...): the
#: others of a long list look the same, and the tour stays within the test's time.
PER_ROUTE = 3
#: Links that are not pages to look at: downloads.
_DOWNLOADS = (".csv", ".json", ".png", ".svg", ".txt", ".zip")
#: The panel's pages (the same code the server runs).
PAGES = panel_pages(route for router in ROUTERS for route in router.routes)
#: Sections the navigation links to while they are being built: skipped as long as no
#: route serves them (then visited like every page). Any other link to nowhere fails.
PENDING = frozenset({"/panel/licenses", "/panel/activations", "/panel/end-users",
                     "/panel/products", "/panel/keys", "/panel/offline", "/panel/audit",
                     "/panel/staff", "/panel/account"})


#: App versions of the tour's machines (the dashboard's spread of versions).
_APP_VERSIONS = ("2.4.1", "2.4.1", "2.4.1", "2.4.0", "2.3.2", "1.9.0")


def _history(product: str) -> dict[tuple[date, str, str, str], int]:
    """Usage counts of the 29 days before today, as the workers' flushes would have added."""
    today = datetime.now(timezone.utc).date()
    counts: dict[tuple[date, str, str, str], int] = {}
    for back in range(1, 30):
        day, wave = today - timedelta(days=back), (back * 7) % 11
        counts[(day, product, usage.ACTIVATION, usage.OK)] = 1 + wave // 3
        counts[(day, product, usage.VALIDATION, usage.OK)] = 40 + 3 * wave - back // 2
        if back % 4 == 0:
            counts[(day, product, usage.VALIDATION, "license_expired")] = 1 + back % 3
        if back % 9 == 0:
            counts[(day, product, usage.VALIDATION, "license_suspended")] = 2
        if back % 3 == 0:
            counts[(day, product, usage.TRIAL_STARTED, usage.OK)] = 1 + back % 2
        if back % 6 == 0:
            counts[(day, product, usage.TRIAL_CONVERTED, usage.OK)] = 1
    return counts


@pytest.fixture(scope="module")
def seeded(panel_server: LocalServer, panel_db: PanelDb,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A vendor at work, so that every list and chart has something to show.

    Two products (one with a rotated signing key and a trial), licenses with
    customer and order references (some expiring within the month, one
    suspended, one revoked), machines running different app versions that
    activated and validated with the real SDK, two trials (one converted), an
    activation with an end user's address, and the usage counts of the past
    weeks (services.usage.add_counts, as the server's flushes write them).
    """
    folder = tmp_path_factory.mktemp("tour-machines")
    product = f"tour-{secrets.token_hex(3)}"
    admin = panel_server.admin
    keys = admin.setup_product(product, name="Tour Editor", features=["pro", "export"],
                               limited_features=["export"], trial_days=14)
    admin.rotate_key(product)
    keys = admin.public_keys(product)
    other = f"field-{secrets.token_hex(3)}"
    admin.setup_product(other, name="Field Station", features=["sync"], air_gapped=True)
    now = datetime.now(timezone.utc)
    issued = admin.issue_license(product, seats=2, customer_ref="CUST-1042",
                                 order_ref="ORD-88120")
    team = admin.issue_license(product, seats=10, customer_ref="CUST-2210",
                               order_ref="ORD-88131", notes="Site licence, renew in spring")
    for days, ref in ((9, "CUST-3307"), (17, "CUST-3311"), (26, "CUST-3342")):
        admin.issue_license(product, seats=1, customer_ref=ref, order_ref=f"ORD-9{days:04d}",
                            expires_at=now + timedelta(days=days))
    suspended = admin.issue_license(product, seats=1, customer_ref="CUST-4001")
    revoked = admin.issue_license(product, seats=1, customer_ref="CUST-4002")
    admin.issue_license(other, seats=3, customer_ref="CUST-1042", order_ref="ORD-88121")
    api = Api(panel_server.url, requests.Session())
    clients: list[LicenseClient] = []

    def client(name: str, version: str) -> LicenseClient:
        made = LicenseClient(product=product, public_keys=keys, server_url=panel_server.url,
                             machine=SimulatedMachine(folder / name), app_version=version,
                             timeout=10.0)
        clients.append(made)
        return made

    try:
        answer = api.activate(product, issued["license_key"], email="tour@example.org",
                              consent=True)
        assert answer.status_code in (200, 201), answer.text
        for number, version in enumerate(_APP_VERSIONS):
            app = client(f"team-{number}", version)
            app.activate(team["license_key"])
            app.refresh()
        for name, lic in (("suspended", suspended), ("revoked", revoked)):
            client(name, "2.4.1").activate(lic["license_key"])
        admin.suspend_license(suspended["id"])
        admin.revoke_license(revoked["id"])
        for app in clients[-2:]:
            with pytest.raises(LicenseError):
                app.refresh()  # refused: counted under its code
        client("trial-1", "2.4.1").start_trial()
        converted = client("trial-2", "2.4.1")
        converted.start_trial()
        bought = admin.issue_license(product, seats=1, customer_ref="CUST-5120")
        converted.activate(bought["license_key"])
    finally:
        for app in clients:
            app.close()
        api.close()
    with panel_db.sessions() as session:
        usage.add_counts(session, _history(product))
        session.commit()
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
    per_route: dict[str, int] = {}
    todo = ["/panel/"]
    nav: set[str] = set()
    while todo and len(seen) < MAX_PAGES:
        path = todo.pop(0)
        if path in seen:
            continue
        bare = urlsplit(path).path
        route = find_route(PAGES, "GET", bare)
        if route is None:
            assert bare in PENDING, f"a link to a page that does not exist: {path}"
            continue
        if route.params:
            if per_route.get(route.path, 0) >= PER_ROUTE:
                continue
            per_route[route.path] = per_route.get(route.path, 0) + 1
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
