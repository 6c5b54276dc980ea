"""Signing in and out of the panel in a real browser, with the mouse and with the keyboard."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from software_dna.server.domain.roles import Role
from software_dna.server.models import StaffSession
from tests.panel.browser.conftest import PASSWORD, Panel
from tests.panel.browser.helpers import text_of, wait_for

pytestmark = pytest.mark.browser


def test_the_sign_in_page_is_labelled_and_self_contained(
        panel: Panel, screenshot: Callable[[str], Path]) -> None:
    panel.open("/panel/sign-in")
    panel.check()
    assert text_of(panel.driver, "h1") == "Sign in to the control panel"
    labels = {label.get_attribute("for"): label.text
              for label in panel.driver.find_elements(By.CSS_SELECTOR, "label")}
    assert labels["f-email"].startswith("Email address")
    assert labels["f-password"].startswith("Password")
    screenshot("sign-in")


def test_a_wrong_password_is_refused_with_a_message(panel: Panel,
                                                    staff: dict[Role, str]) -> None:
    sessions = panel.db.count(StaffSession)
    panel.sign_in(staff[Role.SUPPORT], "not the password at all")
    assert panel.path == "/panel/sign-in"
    assert text_of(panel.driver, "[role=alert]") == "Error: Wrong email address or password."
    # What was typed stays (the address), the password does not.
    assert panel.driver.find_element(By.ID, "f-email").get_attribute("value") == \
        staff[Role.SUPPORT]
    assert panel.driver.find_element(By.ID, "f-password").get_attribute("value") == ""
    panel.check()
    assert panel.db.count(StaffSession) == sessions
    panel.open("/panel/")
    assert panel.path.startswith("/panel/sign-in?next=")


def test_the_right_password_reaches_the_dashboard(panel: Panel,
                                                  staff: dict[Role, str]) -> None:
    panel.sign_in(staff[Role.OWNER])
    assert panel.path == "/panel/"
    assert text_of(panel.driver, "h1") == "Dashboard"
    assert "(owner)" in text_of(panel.driver, "header .who")
    panel.check()


def test_a_page_asked_for_before_signing_in_is_shown_after(panel: Panel,
                                                           staff: dict[Role, str]) -> None:
    panel.open("/panel/account/password")
    assert panel.path == "/panel/sign-in?next=%2Fpanel%2Faccount%2Fpassword"
    panel.driver.find_element(By.ID, "f-email").send_keys(staff[Role.READ_ONLY])
    panel.driver.find_element(By.ID, "f-password").send_keys(PASSWORD, Keys.ENTER)
    wait_for(panel.driver, lambda d: d.current_url.endswith("/panel/account/password"))
    panel.check()


def test_signing_in_with_the_keyboard_only(panel: Panel, staff: dict[Role, str]) -> None:
    panel.open("/panel/sign-in")
    driver = panel.driver
    # The address field has the focus when the page opens; TAB moves to the password,
    # ENTER sends the form: no mouse.
    assert driver.switch_to.active_element.get_attribute("id") == "f-email"
    ActionChains(driver).send_keys(staff[Role.DEVELOPER]).send_keys(Keys.TAB) \
        .send_keys(PASSWORD).send_keys(Keys.ENTER).perform()
    wait_for(driver, lambda d: d.current_url.endswith("/panel/"), message="not signed in")
    assert text_of(driver, "h1") == "Dashboard"
    # The first TAB on a page reaches the "Skip to content" link.
    panel.open("/panel/")
    ActionChains(driver).send_keys(Keys.TAB).perform()
    assert driver.switch_to.active_element.text == "Skip to content"


def test_signing_out_ends_the_session(panel: Panel, staff: dict[Role, str]) -> None:
    panel.sign_in(staff[Role.ADMIN])
    assert panel.path == "/panel/"
    sessions = panel.db.count(StaffSession)
    panel.sign_out()
    assert panel.path == "/panel/sign-in"
    assert text_of(panel.driver, "[role=status]") == "Signed out."
    assert panel.db.count(StaffSession) == sessions - 1
    panel.open("/panel/")
    assert panel.path == "/panel/sign-in?next=%2Fpanel%2F"
