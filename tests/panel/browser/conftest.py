"""Fixtures of the browser tests: the real server on a socket, its database, staff, Chromium.

- ``panel_server``: :class:`LocalServer` (uvicorn in a subprocess, SQLite), one per module.
- ``panel_db``: the same database opened here (the server's settings and master key), to
  create staff and rows and to check what a page did.
- ``staff``: one staff member per role (password :data:`PASSWORD`).
- ``browser``: headless Chromium, one per module (skipped without the browser, except
  when ``CI=true``).
- ``panel``: a :class:`Panel` of the module's browser on the module's server, its cookies
  cleared before each test.
- ``screenshot``: ``screenshot(name)`` saves the page (docs/panel/ when ``SDNA_SCREENSHOTS=1``).

One server and one browser per module keep the tests fast under
``pytest -n 3 --dist loadscope`` (a module runs on one worker).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry
from software_dna.server.services.common import Context
from software_dna.server.services.staff import create_staff
from software_dna.server.testing import LocalServer
from tests.panel.browser.helpers import (
    browser_log,
    check_page,
    open_page,
    require_browser,
    save_screenshot,
    sign_in,
    sign_out,
    start_browser,
)
from tests.panel.helpers import PASSWORD

__all__ = ["NAMES", "PASSWORD", "Panel", "PanelDb"]

#: The display names of the ``staff`` fixture's members (shown in the header).
NAMES = {Role.OWNER: "Olive Owner", Role.ADMIN: "Adam Admin", Role.SUPPORT: "Sam Support",
         Role.DEVELOPER: "Dev Developer", Role.READ_ONLY: "Rita Reader"}


class PanelDb:
    """The database of a :class:`LocalServer`, opened in the test process.

    Attributes:
        sessions: a session factory (``with panel_db.sessions() as session: ...``).
        ctx: the service context (settings and master key of the server).
    """

    def __init__(self, server: LocalServer) -> None:
        self._engine = make_engine(server.settings)
        self.sessions: sessionmaker[Session] = make_session_factory(self._engine)
        self.ctx = Context.from_settings(server.settings)

    def close(self) -> None:
        """Close the connections."""
        self._engine.dispose()

    def add_staff(self, role: Role | str, *, email: str | None = None,
                  password: str = PASSWORD, name: str = "") -> str:
        """Create a staff member (services.staff.create_staff); returns the address."""
        address = email or f"{Role(role).value}-{secrets.token_hex(4)}@vendor.example"
        with self.sessions() as session:
            create_staff(session, email=address, password=password, role=role, name=name)
        return address

    def count(self, model: Any) -> int:
        """How many rows ``model``'s table holds."""
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model)) or 0

    def audit_length(self) -> int:
        """How many audit entries there are."""
        return self.count(AuditEntry)


@dataclass
class Panel:
    """The module's browser on the module's server, with the steps every page test takes."""

    driver: WebDriver
    url: str
    db: PanelDb

    def open(self, path: str) -> None:
        """Load a panel path (``/panel/...``) and wait for it."""
        open_page(self.driver, self.url + path)

    def sign_in(self, email: str, password: str = PASSWORD) -> None:
        """Sign in through the form (see :func:`helpers.sign_in`)."""
        sign_in(self.driver, self.url, email, password)

    def sign_out(self) -> None:
        """Press "Sign out"."""
        sign_out(self.driver)

    def check(self) -> None:
        """:func:`helpers.check_page` on the page shown."""
        check_page(self.driver)

    @property
    def path(self) -> str:
        """The path (and query) of the page shown."""
        return self.driver.current_url.removeprefix(self.url)


@pytest.fixture(scope="module")
def panel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The license server over a real socket (uvicorn in a subprocess, SQLite), per module.

    Sign-in attempts are not throttled here (a module signs in many times from
    127.0.0.1); the rate limit has its own in-process tests.
    """
    with LocalServer(tmp_path_factory.mktemp("panel-server"),
                     env={"SOFTWARE_DNA_PANEL_SIGN_IN_ATTEMPTS": "10000"}) as server:
        yield server


@pytest.fixture(scope="module")
def panel_db(panel_server: LocalServer) -> Iterator[PanelDb]:
    """The server's database, opened in the test process."""
    database = PanelDb(panel_server)
    yield database
    database.close()


@pytest.fixture(scope="module")
def staff(panel_db: PanelDb) -> dict[Role, str]:
    """One staff member per role (password :data:`PASSWORD`): their addresses."""
    return {role: panel_db.add_staff(role, name=NAMES[role]) for role in Role}


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    """Headless Chromium for the module (skipped when missing, failing when ``CI=true``)."""
    driver = start_browser(require_browser())
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def panel(browser: WebDriver, panel_server: LocalServer, panel_db: PanelDb) -> Panel:
    """The module's browser on the module's server, signed out (cookies cleared)."""
    browser.execute_cdp_cmd("Network.clearBrowserCookies", {})
    browser_log(browser)  # drop what earlier tests left in the console
    return Panel(driver=browser, url=panel_server.url, db=panel_db)


@pytest.fixture
def screenshot(browser: WebDriver, tmp_path: Path) -> Callable[[str], Path]:
    """``screenshot(name)``: a PNG of the page (docs/panel/ when ``SDNA_SCREENSHOTS=1``)."""
    return lambda name: save_screenshot(browser, name, tmp_path)
