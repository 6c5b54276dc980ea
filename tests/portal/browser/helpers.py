"""Driving the end user's license portal in headless Chromium: pages, forms, mail, pictures.

The browser machinery (start, wait, :func:`check_page`) is the panel's
(tests/panel/browser/helpers.py); this module adds what the portal needs:
its forms, the sign-in link read from a real mailbox, the app on simulated
machines (the real SDK against the real server), downloads, and the
documentation's pictures (docs/portal/ with ``SDNA_SCREENSHOTS=1``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests.panel.browser.helpers import click_and_wait, text_of
from tests.smtp import Mailbox

__all__ = [
    "DOCS_SCREENSHOTS",
    "PICTURES",
    "PORTAL_LINK",
    "allow_downloads",
    "body_text",
    "fill",
    "link_in",
    "save_portal_screenshot",
    "press",
    "status_of",
    "wait_for_download",
    "wait_for_mail",
]

#: Where docs/portal.md's pictures go (with ``SDNA_SCREENSHOTS=1``).
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "portal"
#: The pictures docs/portal.md shows, with the most of each page they keep (pixels high).
#: Only these go to docs/portal/; any other name goes to the test's tmp_path.
PICTURES: dict[str, int] = {
    "sign-in": 900, "link-sent": 700, "link-open": 600,
    "license": 1000, "license-de": 1000, "release": 800, "release-limit": 700,
    "locked": 900, "link-failed": 600, "password": 800, "email": 800, "data": 900,
    "erase": 900, "license-limited": 1000, "offline": 1000, "personal-refused": 600,
    "branded": 800,
}
#: A portal sign-in link in a mail's text.
PORTAL_LINK = re.compile(r"(\S+/portal/[^/\s]+/link/[A-Za-z0-9_-]+)")


def wait_for_mail(box: Mailbox, count: int, *, to: str | None = None,
                  timeout: float = 20.0) -> Any:
    """The ``count``-th mail ``box`` received (1-based), waiting for the server's
    outbox worker (it polls about every second); ``to``: its recipient must be this."""
    message = box.wait_for(count, timeout=timeout)[count - 1]
    if to is not None:
        assert box.recipients[count - 1] == [to], box.recipients[count - 1]
    return message


def link_in(message: Any, pattern: re.Pattern[str] = PORTAL_LINK) -> str:
    """The first link ``pattern`` finds in a mail's plain text (AssertionError if none)."""
    body = message.get_body(("plain",))
    assert body is not None
    found = pattern.search(body.get_content())
    assert found, body.get_content()
    return found[1]


def fill(driver: WebDriver, fields: dict[str, str]) -> None:
    """Type into the form fields named by their ids (``f-<name>``), clearing them first."""
    for name, value in fields.items():
        element = driver.find_element(By.ID, f"f-{name}")
        element.clear()
        element.send_keys(value)


def press(driver: WebDriver, css: str) -> None:
    """Click the element ``css`` finds (a button or a link) and wait for the next page."""
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, css))


def body_text(driver: WebDriver) -> str:
    """The visible text of the page's ``main``."""
    return text_of(driver, "main")


def status_of(driver: WebDriver) -> int:
    """The HTTP status of the page shown (the Navigation Timing entry's ``responseStatus``)."""
    return int(driver.execute_script(
        "return performance.getEntriesByType('navigation')[0].responseStatus"))


def allow_downloads(driver: WebDriver, folder: Path) -> None:
    """Save the browser's downloads to ``folder`` without asking (Chrome DevTools Protocol)."""
    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                           {"behavior": "allow", "downloadPath": str(folder),
                            "eventsEnabled": False})


def wait_for_download(folder: Path, pattern: str = "*", timeout: float = 20.0) -> Path:
    """The one finished download in ``folder`` matching ``pattern`` (waits for it)."""
    ends = time.monotonic() + timeout
    while time.monotonic() < ends:
        done = [p for p in folder.glob(pattern) if not p.name.endswith(".crdownload")]
        partial = list(folder.glob("*.crdownload"))
        if done and not partial:
            assert len(done) == 1, done
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no download in {folder}: {list(folder.iterdir())}")


def save_portal_screenshot(driver: WebDriver, name: str, fallback: Path) -> Path:
    """Save a PNG of the whole page as ``<name>.png``; returns its path.

    With ``SDNA_SCREENSHOTS=1`` a picture named in :data:`PICTURES` goes to
    docs/portal/ (cut at the height given there); every other picture goes to
    ``fallback`` (a test's tmp_path), so the test still takes it.
    """
    for_docs = os.environ.get("SDNA_SCREENSHOTS") == "1" and name in PICTURES
    folder = DOCS_SCREENSHOTS if for_docs else fallback
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    size = driver.get_window_size()
    width, height = size["width"], size["height"]
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    tallest = PICTURES.get(name, 3000) if for_docs else 3000
    driver.set_window_size(width, min(max(height, full + 120), tallest))
    try:
        assert driver.save_screenshot(str(path)), f"no screenshot of {driver.current_url}"
    finally:
        driver.set_window_size(width, height)
    return path

