"""Driving the control panel in headless Chromium (Selenium): start, sign in, wait, check, shoot.

The browser is Debian's ``chromium`` with its ``chromedriver`` (packages
``chromium`` and ``chromium-driver``; ``make browser`` installs them as root
on Debian).  Without them the browser tests are skipped with a message that
says how to install them -- unless ``CI`` is ``true``: then they fail.

Every wait is a :class:`WebDriverWait` on a condition (a page replaced, an
element present), never a fixed sleep.  Call :func:`check_page` after each
page load: it checks that every form control has a label, that every button
has a name, that the page loaded nothing from elsewhere and that the browser
logged no error (a Content-Security-Policy violation is one).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

__all__ = [
    "DOCS_PICTURES",
    "DOCS_SCREENSHOTS",
    "INSTALL_HINT",
    "WAIT",
    "browser_log",
    "browser_paths",
    "check_page",
    "click_and_wait",
    "console_errors",
    "form_controls_without_label",
    "foreign_resources",
    "open_page",
    "require_browser",
    "save_screenshot",
    "sign_in",
    "sign_out",
    "start_browser",
    "text_of",
    "wait_for",
]

#: Seconds any wait may take before the test fails.
WAIT = 15.0
#: Where the screenshots of the documentation go (with ``SDNA_SCREENSHOTS=1``).
DOCS_SCREENSHOTS = Path(__file__).resolve().parents[3] / "docs" / "panel"
#: The screenshots docs/panel.md shows, with the most of each page they keep (pixels high,
#: so that each file stays small): only these go to docs/panel/ (the others to the
#: test's tmp_path), so a run with ``SDNA_SCREENSHOTS=1`` leaves no unused picture there.
DOCS_PICTURES: dict[str, int] = {
    "sign-in": 900, "dashboard": 1200, "licenses": 1000, "license": 1100,
    "license-revoke": 900, "import-errors": 1000, "end-user": 1000, "end-user-erase": 900,
    "offline-answer": 760, "account-totp": 900, "keys": 1000, "audit": 900,
}
#: How to get the browser, for the skip / failure message.
INSTALL_HINT = ("on Debian or Ubuntu: `sudo apt-get install chromium chromium-driver` "
                "(`make browser` does it when run as root); elsewhere set SDNA_CHROMIUM and "
                "SDNA_CHROMEDRIVER to a Chromium and its matching chromedriver")
_CHROMIUMS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
_DRIVERS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")

T = TypeVar("T")
_OWN_STATUS = r"{} - Failed to load resource: the server responded with a status of 4\d\d\b"


def _first(env: str, candidates: tuple[str, ...], name: str) -> str | None:
    given = os.environ.get(env)
    if given:
        return given if os.access(given, os.X_OK) else None
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    return shutil.which(name)


def browser_paths() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` executables, or None when either is missing.

    ``SDNA_CHROMIUM`` / ``SDNA_CHROMEDRIVER`` name them explicitly; otherwise
    Debian's paths, then ``PATH``.
    """
    chromium = _first("SDNA_CHROMIUM", _CHROMIUMS, "chromium")
    driver = _first("SDNA_CHROMEDRIVER", _DRIVERS, "chromedriver")
    return (chromium, driver) if chromium and driver else None


def require_browser() -> tuple[str, str]:
    """The browser's paths; skips the test when missing (fails when ``CI=true``)."""
    found = browser_paths()
    if found is not None:
        return found
    message = f"Chromium or chromedriver not found: {INSTALL_HINT}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (the browser tests are required when CI=true)", pytrace=False)
    pytest.skip(message + "; browser tests skipped")


def start_browser(paths: tuple[str, str]) -> WebDriver:
    """Headless Chromium driven by its chromedriver (quit it at the end).

    The browser's console is logged (read by :func:`console_errors`); the
    window is 1280x900; no sandbox (containers run the tests as root).
    """
    chromium, driver_path = paths
    options = Options()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--window-size=1280,900", "--disable-dev-shm-usage",
                     "--disable-extensions", "--no-first-run", "--lang=en-US",
                     "--disable-background-networking", "--disable-sync",
                     "--disable-component-update", "--disable-default-apps"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(30)
    return driver


def wait_for(driver: WebDriver, condition: Callable[[WebDriver], T | bool],
             timeout: float = WAIT, message: str = "") -> T:
    """Wait until ``condition(driver)`` is truthy; returns its value (TimeoutException if not)."""
    return cast(T, WebDriverWait(driver, timeout).until(condition, message))


def open_page(driver: WebDriver, url: str) -> None:
    """Load ``url`` and wait for the document to be complete."""
    driver.get(url)
    wait_for(driver, lambda d: d.execute_script("return document.readyState") == "complete",
             message=f"{url} did not finish loading")


_NEW_PAGE = "return window.sdnaOldPage === undefined && document.readyState === 'complete'"


def click_and_wait(driver: WebDriver, element: WebElement) -> None:
    """Click ``element`` (a link or a submit button) and wait for the next page to load.

    The old page is marked (a property of its window); the wait ends when a
    complete document without the mark is shown.  Errors of the browser while
    it swaps documents are retried, not raised.
    """
    driver.execute_script("window.sdnaOldPage = true")
    element.click()
    WebDriverWait(driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(_NEW_PAGE), "the page was not replaced")


def text_of(driver: WebDriver, css: str) -> str:
    """The visible text of the first element matching ``css`` (waits for it)."""
    element: WebElement = wait_for(driver, ec.presence_of_element_located((By.CSS_SELECTOR, css)),
                                   message=f"no {css!r} on {driver.current_url}")
    return str(element.text)


def sign_in(driver: WebDriver, base_url: str, email: str, password: str) -> None:
    """Fill in and send the sign-in form; waits for the answer (the dashboard or the form).

    The caller checks where it landed (``driver.current_url``, :func:`text_of`).
    """
    open_page(driver, base_url + "/panel/sign-in")
    driver.find_element(By.ID, "f-email").send_keys(email)
    driver.find_element(By.ID, "f-password").send_keys(password)
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, "main form button[type=submit]"))


def sign_out(driver: WebDriver) -> None:
    """Press the header's "Sign out" button and wait for the sign-in page."""
    click_and_wait(driver, driver.find_element(
        By.CSS_SELECTOR, "header form[action='/panel/sign-out'] button"))


# The accessible-name rule of form controls and buttons, run in the page.
_UNLABELLED = """
const named = (el) => {
  if ((el.getAttribute('aria-label') || '').trim()) return true;
  const by = (el.getAttribute('aria-labelledby') || '').split(/\\s+/).filter(Boolean);
  if (by.some((id) => { const t = document.getElementById(id);
                        return t && t.textContent.trim(); })) return true;
  if (el.labels && Array.from(el.labels).some((l) => l.textContent.trim())) return true;
  return false;
};
const skip = new Set(['hidden', 'submit', 'button', 'reset', 'image']);
const bad = [];
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.tagName === 'INPUT' && skip.has((el.getAttribute('type') || 'text').toLowerCase()))
    continue;
  if (!named(el)) bad.push(el.outerHTML.slice(0, 160));
}
for (const el of document.querySelectorAll(
    'button, input[type=submit], input[type=button], input[type=reset]')) {
  const text = el.tagName === 'BUTTON' ? el.textContent : el.value;
  if (!(text || '').trim() && !named(el)) bad.push(el.outerHTML.slice(0, 160));
}
return bad;
"""


def form_controls_without_label(driver: WebDriver) -> list[str]:
    """The page's form controls with no accessible name, as HTML snippets.

    An input, select or textarea needs a ``<label for>`` (or an enclosing
    label), ``aria-label`` or ``aria-labelledby``; a button needs text or one
    of those.  Hidden inputs are not controls.
    """
    found: list[str] = driver.execute_script(_UNLABELLED)
    return found


def foreign_resources(driver: WebDriver) -> list[str]:
    """Addresses the page loaded from another origin than its own (the panel must load none)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(driver.current_url))
    loaded: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
        ".concat(Array.from(document.querySelectorAll('[src],[href]'))"
        ".map((e) => e.src || e.href).filter((u) => /^[a-z]+:/.test(u)))")
    return [url for url in loaded
            if not (url.startswith(origin + "/") or url.startswith(("data:", "about:")))]


def browser_log(driver: WebDriver) -> list[dict[str, Any]]:
    """The browser console's entries since the last call (and forgets them)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def console_errors(driver: WebDriver) -> list[str]:
    """Errors the browser logged since the last call (CSP violations, script errors, 5xx).

    Not errors: the browser's own request for ``/favicon.ico`` (404: the panel
    has none), and the page itself answering 4xx (a form shown again with its
    error, a 403 page): its status is the test's to check.
    """
    entries = browser_log(driver)
    own = _OWN_STATUS.format(re.escape(driver.current_url))
    return [message for message in (str(entry.get("message", "")) for entry in entries
                                    if entry.get("level") == "SEVERE")
            if "favicon.ico" not in message and not re.match(own, message)]


def check_page(driver: WebDriver) -> None:
    """The checks every panel page passes: labelled controls, local assets, no browser error.

    Raises:
        AssertionError: naming the page and what is wrong.
    """
    where = driver.current_url
    unlabelled = form_controls_without_label(driver)
    assert not unlabelled, f"{where}: controls without a label: {unlabelled}"
    foreign = foreign_resources(driver)
    assert not foreign, f"{where}: loaded from elsewhere: {foreign}"
    errors = console_errors(driver)
    assert not errors, f"{where}: browser errors: {errors}"
    assert driver.find_elements(By.TAG_NAME, "h1"), f"{where}: no heading"


def save_screenshot(driver: WebDriver, name: str, fallback: Path) -> Path:
    """Save a PNG of the whole page as ``<name>.png``; returns its path.

    With ``SDNA_SCREENSHOTS=1`` a picture of :data:`DOCS_PICTURES` goes to
    docs/panel/ (the documentation's pictures, cut at the height given there);
    the others, and every picture without it, go to ``fallback`` (a test's
    tmp_path).
    """
    for_docs = os.environ.get("SDNA_SCREENSHOTS") == "1" and name in DOCS_PICTURES
    folder = DOCS_SCREENSHOTS if for_docs else fallback
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    width, height = driver.get_window_size()["width"], driver.get_window_size()["height"]
    full = int(driver.execute_script("return document.documentElement.scrollHeight"))
    tallest = DOCS_PICTURES.get(name, 3000) if for_docs else 3000
    driver.set_window_size(width, min(max(height, full + 120), tallest))
    try:
        assert driver.save_screenshot(str(path)), f"no screenshot of {driver.current_url}"
    finally:
        driver.set_window_size(width, height)
    return path
