"""Signing in to the license portal in a real browser: the key and the password, or a
link mailed through a real SMTP server; what a link may not do; what no page reveals.

The end user's app is the real SDK on a simulated machine; the mails come from the
server's own outbox worker through aiosmtpd; the database is read here to check what
the server kept and, for an expired link, to move its expiry into the past.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from sqlalchemy import select

from software_dna.server.models import AuditEntry, PortalLink, PortalSession
from software_dna.server.services.common import utcnow
from software_dna.server.testing import LocalServer
from tests.panel.browser.helpers import (
    browser_log,
    click_and_wait,
    open_page,
    require_browser,
    start_browser,
    text_of,
)
from tests.portal.browser.conftest import PASSWORD, Portal, Vendor
from tests.portal.browser.helpers import status_of

pytestmark = pytest.mark.browser

_WRONG = ("The license key or the activation password is wrong. A license without an "
          "activation password is reached with a link sent by email.")
_LINK_FAILED = ("This sign-in link cannot be used: it was used already, it expired, or it "
                "was opened in another browser than the one that asked for it. Ask for a "
                "new link from this browser.")


def _email() -> str:
    return f"holder.{secrets.token_hex(4)}@example.org"


def _cookies(driver: WebDriver) -> dict[str, dict[str, object]]:
    return {str(c["name"]): c for c in driver.get_cookies()}


@pytest.fixture(scope="module")
def other_browser() -> Iterator[WebDriver]:
    """A second Chromium (its own profile: none of the first one's cookies)."""
    driver = start_browser(require_browser())
    try:
        yield driver
    finally:
        driver.quit()


def test_sign_in_with_the_key_and_the_password(portal: Portal, vendor: Vendor,
                                               portal_screenshot: Callable[[str], Path]
                                               ) -> None:
    held = vendor.holder(machines=2)
    portal.page(held.product)
    portal.check()
    assert portal.h1 == "Manage your Acme Editor license"
    portal_screenshot("sign-in")
    # Signed out, the license page sends the browser to the sign-in page.
    portal.page(held.product, "license")
    assert portal.path == f"/portal/{held.product}/"

    # The key as the end user might type it: lower case, with spaces around.
    portal.sign_in(held.product, f"  {held.key.lower()} ")
    assert portal.path == f"/portal/{held.product}/license", portal.text
    portal.check()
    assert portal.h1 == "Your license"
    assert held.license["key_hint"] in text_of(portal.driver, "dl.facts")
    rows = portal.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(rows) == 2
    # A password session reaches no personal page: the navigation offers none.
    nav = text_of(portal.driver, "header nav")
    assert "License" in nav and "My data" not in nav and "Email" not in nav
    portal_screenshot("license")

    # The only cookie: the session, HttpOnly and SameSite=Strict, for the portal's paths.
    cookies = _cookies(portal.driver)
    assert set(cookies) == {"sdna_portal_session"}
    session_cookie = cookies["sdna_portal_session"]
    assert session_cookie["httpOnly"] is True and session_cookie["sameSite"] == "Strict"
    assert session_cookie["path"] == "/portal"
    assert "expiry" not in session_cookie  # ends with the browser (and on the server)
    with portal.db.sessions() as session:
        rows_ = session.scalars(select(PortalSession).where(
            PortalSession.license_id == held.license_id)).all()
        assert [r.method for r in rows_] == ["password"]
        # Only the token's keyed hash is kept.
        assert rows_[0].id != session_cookie["value"]

    portal.sign_out()
    assert portal.path == f"/portal/{held.product}/"
    assert text_of(portal.driver, "p.notice") == "You are signed out."
    with portal.db.sessions() as session:
        assert not session.scalars(select(PortalSession).where(
            PortalSession.license_id == held.license_id)).all()
    portal.page(held.product, "license")
    assert portal.path == f"/portal/{held.product}/"


def test_sign_in_with_a_mailed_link(portal: Portal, vendor: Vendor,
                                    portal_server: LocalServer,
                                    portal_screenshot: Callable[[str], Path]) -> None:
    email = _email()
    held = vendor.holder(email=email, password=None)
    before = portal.ask_link(held.product, email)
    portal.check()
    assert "only in this browser" in portal.text
    portal_screenshot("link-sent")
    link = portal.mailed_link(email, before)
    # The link opens on this server (its public URL).
    assert link.startswith(portal_server.url + f"/portal/{held.product}/link/")
    assert "sdna_portal_browser" in _cookies(portal.driver)

    open_page(portal.driver, link)
    portal.check()
    assert portal.h1 == "Sign in to the license portal"
    portal_screenshot("link-open")
    with portal.db.sessions() as session:  # opening the page used nothing
        assert session.scalars(select(PortalLink).where(
            PortalLink.license_id == held.license_id)).one().used_at is None
    click_and_wait(portal.driver, portal.driver.find_element(By.CSS_SELECTOR,
                                                             "main form button"))
    assert portal.path == f"/portal/{held.product}/license"
    portal.check()
    nav = text_of(portal.driver, "header nav")
    assert "Email" in nav and "My data" in nav  # a link reaches the personal pages
    cookies = _cookies(portal.driver)
    assert set(cookies) == {"sdna_portal_session", "sdna_portal_browser"}
    assert all(c["httpOnly"] is True and c["sameSite"] == "Strict" for c in cookies.values())
    with portal.db.sessions() as session:
        row = session.scalars(select(PortalSession).where(
            PortalSession.license_id == held.license_id)).one()
        assert row.method == "link" and row.end_user_id is not None
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.license_id == held.license_id,
            AuditEntry.action == "portal.sign_in")).one()
        assert entry.actor == "portal" and entry.detail == {"method": "link"}


def test_a_link_works_once(portal: Portal, vendor: Vendor,
                           portal_screenshot: Callable[[str], Path]) -> None:
    email = _email()
    held = vendor.holder(email=email)
    link = portal.sign_in_by_link(held.product, email)
    assert portal.path == f"/portal/{held.product}/license"
    portal.sign_out()
    portal.use_link(link)  # the same browser, the same link, a second time
    assert portal.h1 == "Link not valid"
    assert status_of(portal.driver) == 401
    assert text_of(portal.driver, "[role=alert]") == _LINK_FAILED
    portal.check()
    portal_screenshot("link-failed")
    portal.page(held.product, "license")
    assert portal.path == f"/portal/{held.product}/"  # not signed in


def test_an_expired_link_fails(portal: Portal, vendor: Vendor) -> None:
    email = _email()
    held = vendor.holder(email=email)
    link = portal.mailed_link(email, portal.ask_link(held.product, email))
    token = urlsplit(link).path.rsplit("/", 1)[1]
    with portal.db.sessions() as session:
        row = session.scalars(select(PortalLink).where(
            PortalLink.token_hash == portal.db.ctx.vault.portal_hash("links", token))).one()
        # The server's own lifetime (15 minutes by default), then one second past it.
        assert timedelta(minutes=14) < row.expires_at - row.created_at <= timedelta(minutes=15)
        row.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    portal.use_link(link)
    assert portal.h1 == "Link not valid"
    assert text_of(portal.driver, "[role=alert]") == _LINK_FAILED
    portal.check()
    with portal.db.sessions() as session:
        assert not session.scalars(select(PortalSession).where(
            PortalSession.license_id == held.license_id)).all()
    # A new link from the same browser works: only the expiry refused the first.
    portal.sign_in_by_link(held.product, email)
    assert portal.path == f"/portal/{held.product}/license"


def test_a_link_does_not_work_in_another_browser(portal: Portal, vendor: Vendor,
                                                 other_browser: WebDriver) -> None:
    email = _email()
    held = vendor.holder(email=email)
    link = portal.mailed_link(email, portal.ask_link(held.product, email))

    # The mail is read on another computer (or forwarded, or intercepted).
    open_page(other_browser, link)
    click_and_wait(other_browser, other_browser.find_element(By.CSS_SELECTOR,
                                                             "main form button"))
    assert text_of(other_browser, "h1") == "Link not valid"
    assert text_of(other_browser, "[role=alert]") == _LINK_FAILED
    open_page(other_browser, f"{portal.url}/portal/{held.product}/license")
    assert text_of(other_browser, "h1") == "Manage your Acme Editor license"
    browser_log(other_browser)
    with portal.db.sessions() as session:
        assert not session.scalars(select(PortalSession).where(
            PortalSession.license_id == held.license_id)).all()

    # The browser that asked still can, once.
    portal.use_link(link)
    assert portal.path == f"/portal/{held.product}/license"
    portal.check()


def _sign_in_page_source(portal: Portal, product: str, key: str, password: str,
                         typed_as: str) -> str:
    portal.sign_in(product, key, password)
    assert portal.path == f"/portal/{product}/sign-in"
    assert status_of(portal.driver) == 401
    assert text_of(portal.driver, "[role=alert]") == f"Error: {_WRONG}"
    portal.check()
    # The password typed is not sent back; the key is.
    assert portal.driver.find_element(By.ID, "f-password").get_attribute("value") == ""
    source = str(portal.driver.page_source)
    return source.replace(key, typed_as)


def test_no_page_tells_a_wrong_key_from_a_wrong_password(portal: Portal,
                                                         vendor: Vendor) -> None:
    held = vendor.holder()
    other = vendor.holder()  # another product's license, with the same password
    unknown = "-".join(secrets.token_hex(2).upper() for _ in range(5))
    pages = {
        "wrong password": _sign_in_page_source(portal, held.product, held.key,
                                               "not the password", "KEY"),
        "unknown key": _sign_in_page_source(portal, held.product, unknown, "not the password",
                                            "KEY"),
        "another product's key": _sign_in_page_source(portal, held.product, other.key,
                                                      PASSWORD, "KEY"),
    }
    assert len(set(pages.values())) == 1, pages.keys()

    # Asking for a link: the same page for an address on file and for any other.
    email = _email()
    on_file = vendor.holder(email=email)
    portal.ask_link(on_file.product, email)
    known = str(portal.driver.page_source)
    portal.ask_link(on_file.product, _email())
    assert str(portal.driver.page_source) == known


def test_a_session_of_one_product_is_nothing_on_another(portal: Portal,
                                                        vendor: Vendor) -> None:
    first, second = vendor.holder(), vendor.holder()
    portal.sign_in(first.product, first.key)
    assert portal.path == f"/portal/{first.product}/license"
    portal.page(second.product, "license")
    assert portal.path == f"/portal/{second.product}/"
    assert portal.h1 == "Manage your Acme Editor license"
    # The key of the first product does not open the second one's portal either.
    portal.sign_in(second.product, first.key)
    assert status_of(portal.driver) == 401
