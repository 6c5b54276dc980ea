"""Fixtures of the portal's browser tests: the real server mailing to a real SMTP server,
its database, the app on simulated machines, and headless Chromium.

- ``mailbox``: an aiosmtpd server on 127.0.0.1 (tests/smtp.py), one per module.
- ``portal_server``: :class:`LocalServer` (uvicorn in a subprocess, SQLite, its own
  outbox worker thread) mailing to ``mailbox``, with ``SOFTWARE_DNA_PUBLIC_URL`` its own
  address (a fixed free port, so the links in the mails open on it).  A module sets
  ``SERVER_ENV`` (a dict) to add or override settings, e.g. a small sign-in limit.
- ``portal_db``: the same database opened here (the panel tests' :class:`PanelDb`).
- ``browser``: headless Chromium, one per module; ``portal``: a :class:`Portal` of it,
  its cookies cleared before each test.
- ``apps``: ``apps(product, keys)`` is the vendor's app (the real SDK) on a new
  simulated machine, talking to ``portal_server``.
- ``vendor``: a :class:`Vendor` making products and licenses through the admin API.
- ``portal_screenshot``: ``portal_screenshot(name)`` saves the page (docs/portal/ with
  ``SDNA_SCREENSHOTS=1``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from software_dna import LicenseClient
from software_dna.server.testing import LocalServer, free_port
from software_dna.testing import SimulatedMachine
from tests.panel.browser.conftest import PanelDb
from tests.panel.browser.helpers import (
    browser_log,
    console_errors,
    form_controls_without_label,
    open_page,
    require_browser,
    start_browser,
    text_of,
)
from tests.portal.browser.helpers import (
    PORTAL_LINK,
    body_text,
    fill,
    link_in,
    press,
    save_portal_screenshot,
)
from tests.smtp import LINK_RE, Mailbox

__all__ = ["PASSWORD", "SENDER", "Holder", "Portal", "Vendor", "foreign_loads", "next_mail"]

#: The activation password of the licenses :class:`Vendor` issues.
PASSWORD = "correct horse"  # a test's password
#: The server's sender address.
SENDER = "licenses@vendor.example"
#: The browser's log line for a portal page (not an asset) answered with a 4xx.
_PAGE_4XX = re.compile(r"^https?://[^/]+/portal/(?!\S*(?:/brand\.css|/logo)\b)\S* - "
                       r"Failed to load resource: the server responded with a status of "
                       r"4\d\d\b")


def next_mail(box: Mailbox, after: int, *, to: str, contains: re.Pattern[str] | None = None,
              timeout: float = 20.0) -> Any:
    """The first mail after the ``after`` first ones that went to ``to`` (and whose text
    ``contains`` matches), waiting for the server's outbox worker to deliver it."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        with box.lock:
            found = list(zip(box.messages[after:], box.recipients[after:], strict=True))
        for message, recipients in found:
            if recipients != [to]:
                continue
            body = message.get_body(("plain",))
            if contains is None or (body is not None and contains.search(body.get_content())):
                return message
        time.sleep(0.05)
    raise AssertionError(f"no mail to {to} after the first {after} ({len(box.messages)} in all)")


def foreign_loads(driver: WebDriver) -> list[str]:
    """Addresses the page loaded, or would load, from another origin than its own: every
    resource the browser fetched, and every ``src`` and ``<link href>`` of the page.

    Unlike the panel's check, a *link* to elsewhere (``<a href>``: the vendor's privacy
    policy, a ``mailto:`` support address) is not a load: nothing is fetched until the
    end user follows it.
    """
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(driver.current_url))
    loaded: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".concat(Array.from(document.querySelectorAll('[src], link[href]'))"
        ".map((e) => e.src || e.href).filter((u) => /^[a-z]+:/.test(u)))")
    return [url for url in loaded
            if not (url.startswith(origin + "/") or url.startswith(("data:", "about:")))]


@dataclass
class Holder:
    """A license and the app activated with it.

    Attributes: ``product`` (id), ``keys`` (the product's public keys), ``license``
    (the admin API's answer: ``id``, ``license_key``, ...), ``email`` (confirmed, or
    None), ``apps`` (an SDK client per machine, activated in order).
    """

    product: str
    keys: list[str]
    license: dict[str, Any]
    email: str | None
    apps: list[LicenseClient] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The license key."""
        return str(self.license["license_key"])

    @property
    def license_id(self) -> str:
        """The license's id."""
        return str(self.license["id"])


class Vendor:
    """The vendor's side: products and licenses through the admin API, settings in the DB."""

    def __init__(self, server: LocalServer, db: PanelDb, box: Mailbox,
                 apps: Callable[..., LicenseClient]) -> None:
        self.server = server
        self.db = db
        self.box = box
        self.apps = apps

    def product(self, *, name: str = "Acme Editor", **fields: Any) -> tuple[str, list[str]]:
        """A new product (``fields``: the admin API's, e.g. ``portal_release_limit``,
        ``portal_release_days``, ``branding``); returns its id and public keys."""
        pid = "p-" + secrets.token_hex(4)
        fields.setdefault("features", ["export", "print"])
        fields.setdefault("limited_features", ["print"])
        return pid, self.server.admin.setup_product(pid, name=name, **fields)

    def activate_with_email(self, app: LicenseClient, key: str, *, password: str | None,
                            email: str, registration: dict[str, str] | None = None,
                            label: str | None = None) -> None:
        """Activate ``app`` giving ``email`` (and ``registration``, the computer's
        ``label``) with consent, then confirm the address through the link the server
        mails (as the end user would)."""
        before = len(self.box.messages)
        app.activate(key, password=password, email=email, registration=registration,
                     label=label, consent=True)
        confirm = link_in(next_mail(self.box, before, to=email, contains=LINK_RE), LINK_RE)
        answer = requests.post(confirm, timeout=30)
        assert answer.status_code == 200, answer.text

    def holder(self, *, email: str | None = None, machines: int = 1,
               password: str | None = PASSWORD, seats: int = 3,
               registration: dict[str, str] | None = None,
               product: tuple[str, list[str]] | None = None, **product_fields: Any) -> Holder:
        """A license activated by the app on ``machines`` simulated machines; with
        ``email`` (and ``registration``), the first activation gives it with consent and
        the end user confirms it through the mailed link."""
        pid, keys = product or self.product(**product_fields)
        extra: dict[str, Any] = {"seats": seats}
        if password is not None:
            extra["password"] = password
        issued = self.server.admin.issue_license(pid, **extra)
        held = Holder(product=pid, keys=keys, license=issued, email=email)
        for n in range(machines):
            app = self.apps(pid, keys)
            if email and n == 0:
                self.activate_with_email(app, held.key, password=password, email=email,
                                         registration=registration)
            else:
                app.activate(held.key, password=password)
            held.apps.append(app)
        return held


@dataclass
class Portal:
    """The module's browser on the module's server, with the steps the portal's tests take."""

    driver: WebDriver
    url: str
    db: PanelDb
    mailbox: Mailbox

    def open(self, path: str) -> None:
        """Load a path of the server (``/portal/...``) and wait for it."""
        open_page(self.driver, self.url + path)

    def page(self, product: str, path: str = "") -> None:
        """Load a page of ``product``'s portal (``path`` after ``/portal/<product>/``)."""
        self.open(f"/portal/{product}/{path}")

    def check(self) -> None:
        """The panel's checks (every control labelled, nothing from elsewhere, no browser
        error, one heading), and the page says its language.

        A 4xx of a portal *page* the test went through (a refused form shown again, a
        403 page) is the test's to check, not a browser error; a 4xx of an asset
        (stylesheet, logo) and every 5xx are errors.
        """
        driver = self.driver
        where = driver.current_url
        unlabelled = form_controls_without_label(driver)
        assert not unlabelled, f"{where}: controls without a label: {unlabelled}"
        foreign = foreign_loads(driver)
        assert not foreign, f"{where}: loaded from elsewhere: {foreign}"
        errors = [m for m in console_errors(driver) if not _PAGE_4XX.match(m)]
        assert not errors, f"{where}: browser errors: {errors}"
        lang = self.driver.find_element(By.TAG_NAME, "html").get_attribute("lang")
        assert lang in ("en", "de"), f"{self.driver.current_url}: html lang {lang!r}"
        assert len(self.driver.find_elements(By.TAG_NAME, "h1")) == 1

    @property
    def path(self) -> str:
        """The path (and query) of the page shown."""
        return str(self.driver.current_url).removeprefix(self.url)

    @property
    def h1(self) -> str:
        """The page's heading."""
        return text_of(self.driver, "h1")

    @property
    def text(self) -> str:
        """The visible text of the page's ``main``."""
        return body_text(self.driver)

    def sign_in(self, product: str, key: str, password: str = PASSWORD) -> None:
        """Type the key and the password on the sign-in page and press "Sign in"."""
        self.page(product)
        fill(self.driver, {"license_key": key, "password": password})
        press(self.driver, "form[action$='/sign-in'] button[type=submit]")

    def ask_link(self, product: str, email: str) -> int:
        """Ask for a sign-in link on the sign-in page; returns how many mails the mailbox
        held before (for :meth:`mailed_link`)."""
        before = len(self.mailbox.messages)
        self.page(product)
        fill(self.driver, {"email": email})
        press(self.driver, "form[action$='/link'] button[type=submit]")
        assert self.path == f"/portal/{product}/link", self.text
        return before

    def mailed_link(self, email: str, after: int) -> str:
        """The sign-in link of the first portal mail to ``email`` after ``after`` mails."""
        return link_in(next_mail(self.mailbox, after, to=email, contains=PORTAL_LINK))

    def use_link(self, link: str) -> None:
        """Open a mailed link in this browser and press "Continue"."""
        open_page(self.driver, link)
        press(self.driver, "main form button[type=submit]")

    def sign_in_by_link(self, product: str, email: str) -> str:
        """Ask for a link, read the mail, open the link here; returns the link."""
        link = self.mailed_link(email, self.ask_link(product, email))
        self.use_link(link)
        return link

    def sign_out(self) -> None:
        """Press the header's "Sign out"."""
        press(self.driver, "header form[action$='/sign-out'] button")

    def csrf(self) -> str:
        """The page's CSRF token (the header's sign-out form)."""
        token = self.driver.find_element(
            By.CSS_SELECTOR, "header form input[name=csrf]").get_attribute("value")
        assert token and len(token) == 64
        return str(token)


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping every mail, per module."""
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def portal_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[LocalServer]:
    """The license server over a real socket, mailing to ``mailbox``, per module.

    Its public URL is its own address (a port chosen before it starts).  Portal
    sign-ins are not throttled unless the module's ``SERVER_ENV`` says so (the
    tests sign in many times from 127.0.0.1).
    """
    port = free_port()
    env = {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(mailbox.port),
           "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": SENDER,
           "SOFTWARE_DNA_PUBLIC_URL": f"http://127.0.0.1:{port}",
           "SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS": "1000"}
    env.update(getattr(request.module, "SERVER_ENV", {}))
    with LocalServer(tmp_path_factory.mktemp("portal-server"), port=port, env=env) as server:
        yield server


@pytest.fixture(scope="module")
def portal_db(portal_server: LocalServer) -> Iterator[PanelDb]:
    """The server's database, opened in the test process."""
    database = PanelDb(portal_server)
    yield database
    database.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium for the module (skipped when missing, failing when ``CI=true``)."""
    driver = start_browser(require_browser())
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def portal(browser: WebDriver, portal_server: LocalServer, portal_db: PanelDb,
           mailbox: Mailbox) -> Portal:
    """The module's browser on the module's server, signed out (cookies cleared)."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser_log(browser)  # drop what earlier tests left in the console
    return Portal(driver=browser, url=portal_server.url, db=portal_db, mailbox=mailbox)


@pytest.fixture
def apps(tmp_path: Path, portal_server: LocalServer) -> Iterator[Callable[..., LicenseClient]]:
    """``apps(product, keys, **options)``: the vendor's app (the real SDK, ``options`` for
    its ``LicenseClient``) on a new simulated machine."""
    made: list[LicenseClient] = []

    def make(product: str, keys: list[str], **options: Any) -> LicenseClient:
        machine = SimulatedMachine(tmp_path / f"machine-{len(made)}")
        client = LicenseClient(product=product, public_keys=keys, server_url=portal_server.url,
                               machine=machine, app_version="3.2.0", timeout=10.0, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def vendor(portal_server: LocalServer, portal_db: PanelDb, mailbox: Mailbox,
           apps: Callable[..., LicenseClient]) -> Vendor:
    """The vendor: products and licenses, activated by the app on simulated machines."""
    return Vendor(portal_server, portal_db, mailbox, apps)


@pytest.fixture
def portal_screenshot(browser: WebDriver, tmp_path: Path) -> Callable[[str], Path]:
    """``portal_screenshot(name)``: a PNG of the page (docs/portal/ when
    ``SDNA_SCREENSHOTS=1``)."""
    return lambda name: save_portal_screenshot(browser, name, tmp_path)
