"""Support and the dashboard in the browser: erase an end user for good, charts drawn with data.

Each test runs when the build has its pages (skipped with a message until then).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By

from software_dna.server.domain.roles import Role
from software_dna.server.models import EndUser
from software_dna.server.testing import LocalServer
from tests.panel.browser.conftest import Panel
from tests.panel.browser.helpers import click_and_wait, text_of
from tests.panel.routes import needs_pages
from tests.server.helpers import Api

pytestmark = pytest.mark.browser


def _activate(server: LocalServer, email: str | None = None) -> str:
    """A new product, license and activation (with ``email``); returns the product id."""
    product = f"sup-{secrets.token_hex(3)}"
    server.admin.setup_product(product, name="Support Editor", features=["pro"])
    issued = server.admin.issue_license(product, seats=2)
    api = Api(server.url, requests.Session())
    try:
        extra: dict[str, Any] = {"email": email, "consent": True} if email else {}
        answer = api.activate(product, issued["license_key"], machine=secrets.token_hex(4),
                              **extra)
        assert answer.status_code == 201, answer.text
    finally:
        api.close()
    return product


def _database_bytes(server: LocalServer) -> bytes:
    path = Path(server.database_url.removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


@needs_pages("GET /panel/end-users", "GET /panel/end-users/x",
             "GET /panel/end-users/x/erase", "POST /panel/end-users/x/erase")
def test_erase_an_end_user_and_nothing_is_left(panel: Panel, staff: dict[Role, str],
                                               panel_server: LocalServer,
                                               screenshot: Callable[[str], Path]) -> None:
    email = f"grace.{secrets.token_hex(4)}@example.org"
    _activate(panel_server, email)
    driver = panel.driver
    panel.sign_in(staff[Role.SUPPORT])
    panel.open("/panel/end-users")
    panel.check()
    driver.find_element(By.ID, "f-email").send_keys(email)
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "form[role=search] button"))
    panel.check()
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR,
                                               "main a[href^='/panel/end-users/eu_']"))
    end_user_id = panel.path.removeprefix("/panel/end-users/")
    assert email in driver.find_element(By.TAG_NAME, "main").text  # decrypted for support
    panel.check()
    screenshot("end-user")

    click_and_wait(driver, driver.find_element(By.PARTIAL_LINK_TEXT, "Erase"))
    panel.check()
    with panel.db.sessions() as session:
        assert session.get_one(EndUser, end_user_id).erased_at is None  # not yet
    screenshot("end-user-erase")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "main form button.danger"))
    panel.check()

    with panel.db.sessions() as session:
        row = session.get_one(EndUser, end_user_id)
        assert row.erased_at is not None
        assert row.email_ciphertext is None and row.email_index is None
        assert row.registration_ciphertext is None
    assert email.encode() not in _database_bytes(panel_server)
    assert panel_server.admin.find_end_users(email) == []


@needs_pages("GET /panel/")
def test_the_dashboard_draws_its_charts_with_data(panel: Panel, staff: dict[Role, str],
                                                  panel_server: LocalServer,
                                                  screenshot: Callable[[str], Path]) -> None:
    _activate(panel_server)
    panel.sign_in(staff[Role.READ_ONLY])
    panel.open("/panel/")
    panel.check()
    charts = panel.driver.find_elements(By.CSS_SELECTOR, "main svg.chart")
    if not charts:
        pytest.skip("this build's dashboard has no charts yet")
    for chart in charts:
        # Each has a name a screen reader reads (its title and description).
        labelled = chart.get_attribute("aria-labelledby") or chart.get_attribute("aria-label")
        assert labelled, (chart.get_attribute("outerHTML") or "")[:200]
        assert chart.size["width"] > 100, (chart.get_attribute("outerHTML") or "")[:200]
    # With an activation today, at least one chart draws something (bars, lines).
    drawn = [chart for chart in charts
             if chart.find_elements(By.CSS_SELECTOR, "rect, path, polyline, circle, line")]
    assert drawn, "no chart draws the data"
    assert int(text_of(panel.driver, "#fig-active")) >= 1
    screenshot("dashboard-charts")
