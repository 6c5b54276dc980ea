"""Every page of the license portal, in English and in German, in a real browser.

Each page passes the panel's checks (every control labelled, one heading,
nothing loaded from elsewhere, no browser error: a Content-Security-Policy
violation is one) and says its language in ``<html lang>``.  The language
comes from the browser (``Accept-Language``), a link's ``?lang=``, or the
language the end user picks in the header (a cookie set only then).
The pictures of docs/portal.md are taken here.
"""

from __future__ import annotations

import gettext
import re
import secrets
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from software_dna import LicenseClient
from software_dna.i18n import translation
from tests.panel.browser.helpers import browser_log, click_and_wait, open_page, text_of
from tests.portal.browser.conftest import _PAGE_4XX, Holder, Portal, Vendor, foreign_loads
from tests.portal.browser.helpers import DOCS_SCREENSHOTS, PICTURES, fill, press, status_of

pytestmark = pytest.mark.browser

#: The cookies docs/portal.md lists (over HTTP: without the ``__Host-`` prefix).
_NECESSARY = {"sdna_portal_session", "sdna_portal_browser", "sdna_portal_notice",
              "sdna_portal_lang"}
#: The headings each language's tour saw, by page (the German test compares them).
_HEADINGS: dict[str, dict[str, str]] = {}


def _german_catalogue() -> bool:
    """True when the portal's German catalogue is installed (compiled); without it the
    pages fall back to English and only their ``lang`` can be checked."""
    return isinstance(translation("de", "portal"), gettext.GNUTranslations)


class Tour:
    """Walks the portal in one language, checking each page and keeping its heading."""

    def __init__(self, portal: Portal, language: str, shoot: Callable[[str], Path]) -> None:
        self.portal = portal
        self.language = language
        self.shoot = shoot
        self.headings: dict[str, str] = {}
        self.statuses: dict[str, int] = {}

    def seen(self, name: str, status: int = 200, picture: str | None = None) -> None:
        """Check the page shown and keep its heading under ``name``."""
        driver = self.portal.driver
        assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == \
            self.language, f"{name}: {driver.current_url}"
        assert status_of(driver) == status, f"{name}: {driver.current_url}"
        self.portal.check()
        self.headings[name] = self.portal.h1
        self.statuses[name] = status
        if picture and self.language != "en":  # English: the flows' own pictures
            self.shoot(f"{picture}-{self.language}")


def _tour(portal: Portal, vendor: Vendor, language: str,
          shoot: Callable[[str], Path]) -> Tour:
    email = f"tour.{secrets.token_hex(4)}@example.org"
    held: Holder = vendor.holder(email=email, machines=2, air_gapped=True,
                                 portal_release_limit=2)
    pid = held.product
    tour = Tour(portal, language, shoot)
    driver = portal.driver
    if language != "en":  # the app's link says the language: kept for the next pages
        portal.page(pid, f"?lang={language}")
    portal.open("/portal/")
    tour.seen("no product", 404)
    portal.open("/portal/no-such-product/")
    tour.seen("unknown product", 404)
    portal.page(pid)
    tour.seen("sign in", picture="sign-in")
    portal.sign_in(pid, held.key, "wrong password")
    tour.seen("sign in refused", 401)
    portal.page(pid, "link/not-a-link")
    tour.seen("link page")
    press(driver, "main form button[type=submit]")
    tour.seen("link refused", 401)

    link = portal.mailed_link(email, portal.ask_link(pid, email))
    tour.seen("link sent")
    open_page(driver, link)
    tour.seen("link open")
    press(driver, "main form button[type=submit]")
    tour.seen("license", picture="license")
    computer = driver.find_element(By.CSS_SELECTOR, "main table a").get_attribute("href")
    open_page(driver, str(computer))
    tour.seen("release")
    for page in ("password", "email", "data", "erase", "offline"):
        portal.page(pid, page)
        tour.seen(page)
    portal.page(pid, "activations/act_nothing/release")
    tour.seen("computer not found", 404)
    portal.page(pid, "license")
    portal.sign_out()
    tour.seen("signed out")

    portal.sign_in(pid, held.key)
    portal.page(pid, "data")
    tour.seen("personal page refused", 403)
    portal.page(pid, "license")
    portal.sign_out()
    browser_log(driver)
    # Only the strictly necessary cookies, all HttpOnly and SameSite=Strict.
    cookies = driver.get_cookies()
    assert {c["name"] for c in cookies} <= _NECESSARY, cookies
    assert all(c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies), cookies
    return tour


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_page_in_both_languages(portal: Portal, vendor: Vendor, language: str,
                                      portal_screenshot: Callable[[str], Path]) -> None:
    tour = _tour(portal, vendor, language, portal_screenshot)
    _HEADINGS[language] = tour.headings
    if language == "en":
        assert tour.headings["license"] == "Your license"
        assert tour.headings["sign in"] == "Manage your Acme Editor license"
        return
    english = _HEADINGS.get("en")
    if english is None:  # run alone: walk the English pages too
        portal.driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
        english = _tour(portal, vendor, "en", portal_screenshot).headings
    assert tour.headings.keys() == english.keys()
    if _german_catalogue():
        same = [name for name in english if english[name] == tour.headings[name]]
        assert not same, f"pages not translated: {same}"


def test_the_language_the_end_user_picks_is_kept(portal: Portal, vendor: Vendor) -> None:
    held = vendor.holder()
    driver = portal.driver
    portal.page(held.product)
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert "sdna_portal_lang" not in {c["name"] for c in driver.get_cookies()}
    english = portal.h1

    Select(driver.find_element(By.ID, "lang-choice")).select_by_value("de")
    press(driver, "header form.lang button[type=submit]")
    assert portal.path == f"/portal/{held.product}/"
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    portal.check()
    cookie = {c["name"]: c for c in driver.get_cookies()}["sdna_portal_lang"]
    assert cookie["value"] == "de" and cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict" and "expiry" in cookie
    if _german_catalogue():
        assert portal.h1 != english

    # The next pages, signed in, stay German; the selector shows the choice.
    fill(driver, {"license_key": held.key, "password": "correct horse"})
    press(driver, "form[action$='/sign-in'] button[type=submit]")
    assert portal.path == f"/portal/{held.product}/license"
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    assert Select(driver.find_element(By.ID, "lang-choice")).first_selected_option \
        .get_attribute("value") == "de"
    portal.check()
    # Back to English, on the page where it was picked.
    Select(driver.find_element(By.ID, "lang-choice")).select_by_value("en")
    press(driver, "header form.lang button[type=submit]")
    assert portal.path == f"/portal/{held.product}/license"
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    assert text_of(driver, "h1") == "Your license"


def test_a_language_picked_elsewhere_than_the_portal_is_not_followed(portal: Portal,
                                                                     vendor: Vendor) -> None:
    """The selector's ``next`` is the client's: only a page of this product's portal."""
    held = vendor.holder()
    portal.page(held.product)
    form = portal.driver.find_element(By.CSS_SELECTOR, "header form.lang")
    for target in ("https://evil.example/", "//evil.example/x", f"/portal/{held.product}//x"):
        portal.page(held.product)
        form = portal.driver.find_element(By.CSS_SELECTOR, "header form.lang")
        portal.driver.execute_script(
            "arguments[0].querySelector('input[name=next]').value = arguments[1]", form, target)
        click_and_wait(portal.driver, form.find_element(By.CSS_SELECTOR, "button"))
        assert portal.path == f"/portal/{held.product}/", target


def test_the_page_check_tells_a_refused_page_from_a_missing_asset() -> None:
    """:meth:`Portal.check` lets a refused page through, never a stylesheet or logo."""
    line = "{} - Failed to load resource: the server responded with a status of {}"
    base = "http://127.0.0.1:8000/portal/p-1"
    assert _PAGE_4XX.match(line.format(f"{base}/sign-in", "401 (Unauthorized)"))
    assert _PAGE_4XX.match(line.format(f"{base}/data", "403 (Forbidden)"))
    assert not _PAGE_4XX.match(line.format(f"{base}/brand.css", "404 (Not Found)"))
    assert not _PAGE_4XX.match(line.format(f"{base}/logo?v=abc", "404 (Not Found)"))
    assert not _PAGE_4XX.match(line.format("http://127.0.0.1:8000/static/portal/portal.css",
                                           "404 (Not Found)"))
    assert not _PAGE_4XX.match(line.format(f"{base}/license", "500 (Internal Server Error)"))


def _png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A plain PNG image of one colour (no image library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def test_the_vendor_s_branding_served_by_the_server_itself(
        portal: Portal, vendor: Vendor, portal_screenshot: Callable[[str], Path]) -> None:
    branding = {"vendor_name": "Acme Software GmbH", "support_email": "help@acme.example",
                "colour": "#7a1f5c", "privacy_url": "https://acme.example/privacy"}
    held = vendor.holder(branding=branding)
    vendor.server.admin.set_product_logo(held.product, _png(120, 40, (122, 31, 92)))
    driver = portal.driver
    portal.page(held.product)
    portal.check()  # nothing from elsewhere: the logo and the colour are the server's
    image = driver.find_element(By.CSS_SELECTOR, "header .brand img")
    assert image.get_attribute("alt") == "Acme Software GmbH"
    assert str(image.get_attribute("src")).startswith(f"{portal.url}/portal/{held.product}/logo")
    assert driver.execute_script("return arguments[0].naturalWidth", image) == 120
    assert driver.find_element(By.TAG_NAME, "h1").value_of_css_property("color") in (
        "rgba(122, 31, 92, 1)", "rgb(122, 31, 92)")
    footer = driver.find_element(By.TAG_NAME, "footer")
    assert "Acme Software GmbH" in footer.text
    support = footer.find_element(By.CSS_SELECTOR, "a[href^='mailto:']")
    assert support.text == "help@acme.example"
    privacy = footer.find_element(By.CSS_SELECTOR, "a[href^='https://acme.example/']")
    assert "noreferrer" in str(privacy.get_attribute("rel"))
    portal_screenshot("branded")


def test_the_page_check_finds_a_load_from_elsewhere(portal: Portal, vendor: Vendor) -> None:
    """:func:`foreign_loads` sees an image of another origin (put in the page here: another
    address of this machine), and lets links to elsewhere through."""
    held = vendor.holder(branding={"privacy_url": "https://acme.example/privacy"})
    portal.page(held.product)
    assert foreign_loads(portal.driver) == []
    portal.driver.execute_script(
        "const i = document.createElement('img'); i.alt = 'x';"
        "i.src = 'http://127.0.0.2:9/pixel.png'; document.body.appendChild(i);")
    assert "http://127.0.0.2:9/pixel.png" in foreign_loads(portal.driver)
    browser_log(portal.driver)  # the image could not load (no network): expected


def test_the_app_s_link_opens_its_portal_in_its_language(
        portal: Portal, vendor: Vendor, apps: Callable[..., LicenseClient]) -> None:
    held = vendor.holder()
    driver = portal.driver
    open_page(driver, held.apps[0].portal_url())
    assert portal.path == f"/portal/{held.product}/"
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    portal.check()
    assert "sdna_portal_lang" not in {c["name"] for c in driver.get_cookies()}

    german = apps(held.product, held.keys, language="de")
    url = german.portal_url()
    assert url == f"{portal.url}/portal/{held.product}/?lang=de"
    open_page(driver, url)
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
    portal.check()
    # The language stays for the next pages (a cookie: the link chose it).
    portal.page(held.product)
    assert driver.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"


def test_docs_show_each_picture_the_tests_take_for_them() -> None:
    """docs/portal.md and :data:`PICTURES` name the same pictures (none missing, none
    written to docs/portal/ for nothing)."""
    shown = set(re.findall(r"\]\(portal/([a-z0-9-]+)\.png\)",
                           (DOCS_SCREENSHOTS.parent / "portal.md").read_text(encoding="utf-8")))
    assert shown == set(PICTURES)
