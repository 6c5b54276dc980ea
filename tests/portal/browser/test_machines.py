"""Freeing a lost computer in the portal, and the app on it learning so at its next check.

The app runs on simulated machines (the real SDK, over HTTP to the real server).
The end user frees one of them in the portal; that machine's next validation is
refused with the server's signed ``activation_released`` and the SDK says the
license holder freed it.  The product's limit on freed computers per period is
counted by the server from what it recorded.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import select

from software_dna import ActivationReleased, LicenseClient, NotActivated
from software_dna.server.models import Activation, AuditEntry, EndUser
from tests.panel.browser.helpers import browser_log, click_and_wait, text_of
from tests.portal.browser.conftest import Portal, Vendor
from tests.portal.browser.helpers import status_of

pytestmark = pytest.mark.browser

_FREED = "The computer was freed. The app on it stops using the license at its next check."


def _activation_id(app: LicenseClient) -> str:
    return str(app.check().activation_id)


def _release_link(portal: Portal, product: str, activation_id: str) -> str:
    return f"/portal/{product}/activations/{activation_id}/release"


def _free(portal: Portal, product: str, activation_id: str) -> None:
    """Press the computer's "Free" link on the license page, then "Free this computer"."""
    link = portal.driver.find_element(
        By.CSS_SELECTOR, f"main table a[href='{_release_link(portal, product, activation_id)}']")
    click_and_wait(portal.driver, link)
    assert portal.h1 == "Free a computer"
    portal.check()
    click_and_wait(portal.driver, portal.driver.find_element(
        By.CSS_SELECTOR, "main form button.danger"))


def _live(portal: Portal, activation_id: str) -> bool:
    with portal.db.sessions() as session:
        return session.get_one(Activation, activation_id).deactivated_at is None


def test_free_a_lost_computer_and_the_app_there_learns_it(
        portal: Portal, vendor: Vendor, portal_screenshot: Callable[[str], Path]) -> None:
    held = vendor.holder(machines=2, portal_release_limit=3)
    kept, lost = held.apps
    lost_id = _activation_id(lost)
    portal.sign_in(held.product, held.key)
    assert len(portal.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")) == 2
    assert "You may free 3 more computer(s) now: at most 3 every 30 days." in portal.text

    click_and_wait(portal.driver, portal.driver.find_element(
        By.CSS_SELECTOR, f"main table a[href='{_release_link(portal, held.product, lost_id)}']"))
    portal.check()
    assert "says the license holder freed it" in portal.text
    portal_screenshot("release")
    assert _live(portal, lost_id)  # the confirmation page changed nothing
    click_and_wait(portal.driver, portal.driver.find_element(
        By.CSS_SELECTOR, "main form button.danger"))
    assert portal.path == f"/portal/{held.product}/license"
    assert text_of(portal.driver, "p.notice") == _FREED
    portal.check()
    assert len(portal.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")) == 1
    assert "You may free 2 more computer(s) now" in portal.text
    with portal.db.sessions() as session:
        row = session.get_one(Activation, lost_id)
        assert row.deactivated_at is not None and row.deactivated_by == "license_holder"
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.activation_id == lost_id,
            AuditEntry.action == "activation.release")).one()
        assert entry.actor == "portal" and entry.detail == {"method": "password"}

    # The app on the lost computer learns it at its next validation, from the server's
    # signed answer, and keeps knowing it (stored).
    with pytest.raises(ActivationReleased, match="license holder") as raised:
        lost.refresh()
    assert isinstance(raised.value, NotActivated)
    with pytest.raises(ActivationReleased, match="license holder"):
        lost.check()
    # The other computer is untouched.
    assert kept.refresh().license_id == held.license_id


def test_the_release_limit(portal: Portal, vendor: Vendor,
                           portal_screenshot: Callable[[str], Path]) -> None:
    held = vendor.holder(machines=3, portal_release_limit=1, portal_release_days=7)
    first, second = (_activation_id(app) for app in held.apps[1:])
    portal.sign_in(held.product, held.key)
    assert "You may free 1 more computer(s) now: at most 1 every 7 days." in portal.text
    _free(portal, held.product, first)
    assert text_of(portal.driver, "p.notice") == _FREED
    assert "You may free 0 more computer(s) now: at most 1 every 7 days." in portal.text

    # No "Free" link is offered any more; a page opened before still has its form,
    # and the server counts and refuses.
    assert not portal.driver.find_elements(
        By.CSS_SELECTOR, f"main table a[href='{_release_link(portal, held.product, second)}']")
    portal.open(_release_link(portal, held.product, second))
    assert portal.h1 == "Free a computer"
    click_and_wait(portal.driver, portal.driver.find_element(
        By.CSS_SELECTOR, "main form button.danger"))
    assert status_of(portal.driver) == 429
    assert portal.h1 == "Limit reached"
    assert "Contact support to free another one." in portal.text
    portal.check()
    portal_screenshot("release-limit")
    assert _live(portal, second)
    assert held.apps[2].refresh().license_id == held.license_id

    # Signing in again (a new session) does not reset the count: it is the license's.
    portal.open(f"/portal/{held.product}/license")
    portal.sign_out()
    portal.sign_in(held.product, held.key)
    assert "You may free 0 more computer(s) now" in portal.text


def test_a_product_whose_vendor_frees_computers_itself(portal: Portal, vendor: Vendor) -> None:
    held = vendor.holder(machines=1, portal_release_limit=0)
    portal.sign_in(held.product, held.key)
    assert "Computers of this product are freed by the vendor's support only." in portal.text
    assert not portal.driver.find_elements(By.CSS_SELECTOR, "main table a")
    # Typing the address of the confirmation page and pressing its button: refused.
    activation_id = _activation_id(held.apps[0])
    portal.open(_release_link(portal, held.product, activation_id))
    click_and_wait(portal.driver, portal.driver.find_element(
        By.CSS_SELECTOR, "main form button.danger"))
    assert status_of(portal.driver) == 429
    assert _live(portal, activation_id)
    browser_log(portal.driver)


def test_no_session_reaches_another_license_s_computers(portal: Portal,
                                                        vendor: Vendor) -> None:
    """The activation id is the client's to send: the server decides it is not this
    session's, on the confirmation page and on the post (its form retargeted)."""
    mine = vendor.holder(machines=1)
    theirs = vendor.holder(machines=1, product=(mine.product, mine.keys))
    their_id = _activation_id(theirs.apps[0])
    my_id = _activation_id(mine.apps[0])
    portal.sign_in(mine.product, mine.key)
    assert their_id not in str(portal.driver.page_source)
    portal.open(_release_link(portal, mine.product, their_id))
    assert status_of(portal.driver) == 404
    assert portal.h1 == "Computer not found"
    portal.check()

    portal.open(_release_link(portal, mine.product, my_id))
    form = portal.driver.find_element(By.CSS_SELECTOR, "main form")
    portal.driver.execute_script(
        "arguments[0].action = arguments[1]", form,
        portal.url + _release_link(portal, mine.product, their_id))
    click_and_wait(portal.driver, form.find_element(By.CSS_SELECTOR, "button.danger"))
    assert status_of(portal.driver) == 404
    assert portal.h1 == "Computer not found"
    assert _live(portal, their_id) and _live(portal, my_id)
    assert theirs.apps[0].refresh().license_id == theirs.license_id
    browser_log(portal.driver)


def test_a_password_session_reaches_no_end_user_s_data(portal: Portal, vendor: Vendor,
                                                       portal_screenshot: Callable[[str], Path]
                                                       ) -> None:
    """On a user-seat license two end users hold a seat each: the key and the password
    show the seats, never a label or a personal page; each end user's link shows only
    their own seat."""
    pid, keys = vendor.product(name="Acme Editor")
    issued = vendor.server.admin.issue_license(pid, seats=3, seat_mode="user",
                                               password="shared secret")
    people = [f"seat.{n}.{secrets.token_hex(3)}@example.org" for n in range(2)]
    apps = []
    for n, email in enumerate(people):
        app = vendor.apps(pid, keys)
        # The app names the computer (with the end user's consent): personal data.
        vendor.activate_with_email(app, issued["license_key"], password="shared secret",
                                   email=email, label=f"Laptop of person {n}")
        apps.append(app)
    ids = [_activation_id(app) for app in apps]
    with portal.db.sessions() as session:
        stored = [session.get_one(Activation, i) for i in ids]
        assert all(r.label_ciphertext for r in stored)  # kept encrypted
        assert len({r.end_user_id for r in stored}) == 2
        assert session.get(EndUser, stored[0].end_user_id) is not None

    portal.sign_in(pid, issued["license_key"], "shared secret")
    assert len(portal.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")) == 2
    page = str(portal.driver.page_source)
    assert "Laptop of person" not in page
    assert not any(email in page for email in people)
    for path in ("email", "data", "erase"):
        portal.page(pid, path)
        assert status_of(portal.driver) == 403, path
        assert portal.h1 == "Sign in with an email link"
    portal.check()
    portal_screenshot("personal-refused")
    portal.page(pid, "license")
    portal.sign_out()

    # Each end user's link: their own seat and its label only.
    portal.sign_in_by_link(pid, people[0])
    rows = portal.driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")
    assert len(rows) == 1 and "Laptop of person 0" in rows[0].text
    page = str(portal.driver.page_source)
    assert "Laptop of person 1" not in page and ids[1] not in page
    portal.open(_release_link(portal, pid, ids[1]))
    assert status_of(portal.driver) == 404
    assert _live(portal, ids[1])
    browser_log(portal.driver)
