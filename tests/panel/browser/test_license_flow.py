"""A support day in the browser: issue a license, find it by its key, revoke it with confirmation.

Runs when the build has the license pages (skipped with a message until then).
Everything is done with the forms, as a staff member would; the database is
read at the end to check what the pages did.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, License
from software_dna.server.testing import LocalServer
from tests.panel.browser.conftest import Panel
from tests.panel.browser.helpers import click_and_wait, text_of
from tests.panel.routes import needs_pages

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def product(panel_server: LocalServer) -> str:
    """A product with a signing key."""
    product_id = f"flow-{secrets.token_hex(3)}"
    panel_server.admin.setup_product(product_id, name="Flow Editor", features=["pro"])
    return product_id


@needs_pages("GET /panel/licenses/new", "POST /panel/licenses/search",
             "GET /panel/licenses/x/revoke", "POST /panel/licenses/x/revoke")
def test_issue_find_by_key_and_revoke_with_confirmation(
        panel: Panel, staff: dict[Role, str], product: str,
        screenshot: Callable[[str], Path]) -> None:
    driver = panel.driver
    panel.sign_in(staff[Role.SUPPORT])
    customer = f"CUST-{secrets.token_hex(3).upper()}"

    # Issue one license through the form.
    panel.open("/panel/licenses/new")
    panel.check()
    Select(driver.find_element(By.ID, "f-product")).select_by_value(product)
    seats = driver.find_element(By.ID, "f-seats")
    seats.clear()
    seats.send_keys("3")
    driver.find_element(By.ID, "f-customer_ref").send_keys(customer)
    screenshot("license-issue")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))
    panel.check()
    key = text_of(driver, "code.license-key")
    assert len(key.replace("-", "")) >= 16
    screenshot("license-issued")

    # Find it again by its full key in the search box (the key stays out of the address).
    panel.open("/panel/licenses")
    driver.find_element(By.ID, "f-q").send_keys(key)
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form[role=search] button"))
    assert key not in driver.current_url
    assert panel.path.startswith("/panel/licenses/lic_")
    license_id = panel.path.removeprefix("/panel/licenses/")
    assert customer in driver.find_element(By.TAG_NAME, "main").text
    panel.check()
    screenshot("license")

    # Revoke: a confirmation page says what happens; only its button does it.
    click_and_wait(driver, driver.find_element(By.LINK_TEXT, "Revoke…"))
    panel.check()
    assert "What happens:" in text_of(driver, ".confirm")
    with panel.db.sessions() as session:
        assert session.get_one(License, license_id).status == "active"  # not yet
    screenshot("license-revoke")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, ".confirm button.danger"))
    panel.check()
    with panel.db.sessions() as session:
        assert session.get_one(License, license_id).status == "revoked"
        entry = session.query(AuditEntry).filter_by(
            action="license.revoke", license_id=license_id).one()
        assert entry.actor == "panel" and (entry.actor_id or "").startswith("stf_")
