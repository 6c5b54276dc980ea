"""The logo of a product's license portal, in the browser: chosen, uploaded, shown, removed.

A developer picks the file with the form's own file control (a real
multipart post by Chromium), the preview then shows the stored image (loaded
from this server, under the panel's Content-Security-Policy), a refused file
is named next to its field, and "Remove logo" takes it away.
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By

from software_dna.server.domain.roles import Role
from software_dna.server.testing import LocalServer
from tests.panel.browser.conftest import Panel
from tests.panel.browser.helpers import click_and_wait, text_of, wait_for
from tests.server.images import SVG, png

pytestmark = pytest.mark.browser


def _upload(panel: Panel, path: Path) -> None:
    panel.driver.find_element(By.ID, "f-logo").send_keys(str(path))
    button = panel.driver.find_element(
        By.CSS_SELECTOR, "form[action$='/logo'] button[type='submit']")
    click_and_wait(panel.driver, button)


def test_upload_preview_refusal_and_removal(panel: Panel, panel_server: LocalServer,
                                            tmp_path: Path) -> None:
    pid = "logo-" + secrets.token_hex(4)
    panel_server.admin.create_product(pid, name="Logo in the browser")
    panel.sign_in(panel.db.add_staff(Role.DEVELOPER))
    panel.open(f"/panel/products/{pid}")
    panel.check()
    assert "No logo" in text_of(panel.driver, "section[aria-labelledby='logo-heading']")
    portal = panel.driver.find_element(By.LINK_TEXT, "License portal")
    assert portal.get_attribute("href") == f"{panel_server.url}/portal/{pid}/"

    image = tmp_path / "logo.png"
    image.write_bytes(png())
    _upload(panel, image)
    assert panel.path == f"/panel/products/{pid}"
    panel.check()
    preview = panel.driver.find_element(By.CSS_SELECTOR, "img.logo-preview")
    # The browser decoded the stored image (a 2x2 PNG) from this server.
    wait_for(panel.driver, lambda d: d.execute_script(
        "return arguments[0].complete && arguments[0].naturalWidth", preview) == 2,
        message="the logo preview did not load")
    served = requests.get(f"{panel_server.url}/portal/{pid}/logo", timeout=30)
    assert served.content == image.read_bytes()

    evil = tmp_path / "evil.png"  # an SVG with a script, named as a PNG
    evil.write_bytes(SVG)
    _upload(panel, evil)
    assert "PNG, JPEG or WebP" in text_of(panel.driver, "#e-logo")
    assert panel.driver.find_element(By.ID, "f-logo").get_attribute("aria-invalid") == "true"
    panel.check()
    assert requests.get(f"{panel_server.url}/portal/{pid}/logo",
                        timeout=30).content == image.read_bytes()

    click_and_wait(panel.driver, panel.driver.find_element(
        By.XPATH, "//button[normalize-space()='Remove logo']"))
    panel.check()
    assert "No logo" in text_of(panel.driver, "section[aria-labelledby='logo-heading']")
    assert requests.get(f"{panel_server.url}/portal/{pid}/logo", timeout=30).status_code == 404
