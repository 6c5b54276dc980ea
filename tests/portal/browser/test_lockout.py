"""Wrong passwords lock the portal after the limit, not the app; the lock tells nothing.

This module's server allows three failed portal sign-ins per window (its own
counters, per license key and per client network); the app's activations
have their own limits, which the portal's failures do not touch.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from sqlalchemy import func, select

from software_dna import LicenseClient
from software_dna.server.models import AuditEntry, PortalSession
from tests.panel.browser.helpers import text_of
from tests.portal.browser.conftest import PASSWORD, Portal, Vendor
from tests.portal.browser.helpers import status_of

pytestmark = pytest.mark.browser

#: Three failed portal sign-ins per 15 minutes.
SERVER_ENV = {"SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS": "3",
              "SOFTWARE_DNA_PORTAL_SIGN_IN_WINDOW": "900"}
_LOCKED = "Error: Too many attempts. Try again in 15 minutes."


def test_wrong_passwords_lock_the_portal_and_not_the_app(
        portal: Portal, vendor: Vendor, apps: Callable[..., LicenseClient],
        portal_screenshot: Callable[[str], Path]) -> None:
    held = vendor.holder(machines=1, seats=3)
    for _ in range(3):
        portal.sign_in(held.product, held.key, "a guess")
        assert status_of(portal.driver) == 401
        assert "is wrong" in text_of(portal.driver, "[role=alert]")
    # The right password, now: the portal refuses it too, for the window.
    portal.sign_in(held.product, held.key, PASSWORD)
    assert status_of(portal.driver) == 429
    assert portal.path == f"/portal/{held.product}/sign-in"
    assert text_of(portal.driver, "[role=alert]") == _LOCKED
    portal.check()
    portal_screenshot("locked")
    locked_page = str(portal.driver.page_source).replace(held.key, "KEY")
    with portal.db.sessions() as session:
        assert not session.scalars(select(PortalSession).where(
            PortalSession.license_id == held.license_id)).all()
        failures = session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.license_id == held.license_id,
            AuditEntry.action == "portal.sign_in_failed"))
        assert failures == 3  # the refused fourth try checked no password

    # A key nobody holds gets the very same page: the lock says nothing about the key.
    unknown = "-".join(secrets.token_hex(2).upper() for _ in range(5))
    portal.sign_in(held.product, unknown, PASSWORD)
    assert status_of(portal.driver) == 429
    assert str(portal.driver.page_source).replace(unknown, "KEY") == locked_page

    # The app is not locked: its machine refreshes, and a new machine activates with
    # the right password at once.
    assert held.apps[0].refresh().license_id == held.license_id
    app = apps(held.product, held.keys)
    activated = app.activate(held.key, password=PASSWORD)
    assert activated.license_id == held.license_id
    assert portal.driver.find_element(By.ID, "f-license_key").get_attribute("value") == unknown
