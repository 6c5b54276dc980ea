"""A page on another site posting to the panel (cross-site request forgery) changes nothing.

The attacker's page is a local file or a ``data:`` URL (another origin than
the panel's), opened in the browser of a signed-in staff member.  Its forms
post to the panel with a made-up CSRF token, and with the real one copied from
the panel (the worst case). The browser says where the form comes from
(``Sec-Fetch-Site: cross-site``) and the panel refuses it before anything
else; behind that, the session cookie is SameSite=Strict, so the browser does
not send it from there, and the CSRF check would refuse the post.
"""

from __future__ import annotations

import html
from base64 import b64encode
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from software_dna.server.domain.roles import Role
from software_dna.server.models import StaffMember, StaffSession
from tests.panel.browser.conftest import PASSWORD, Panel
from tests.panel.browser.helpers import browser_log, click_and_wait, text_of

pytestmark = pytest.mark.browser


def _attack_page(action: str, fields: dict[str, str]) -> str:
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    return (f'<!doctype html><title>Win a prize</title><h1>Win a prize</h1>'
            f'<form method="post" action="{html.escape(action)}">{inputs}'
            f'<button type="submit" id="go">Claim</button></form>')


def _open_attack(panel: Panel, where: str, page: str, tmp_path: Path) -> None:
    if where == "file":
        path = tmp_path / "prize.html"
        path.write_text(page, encoding="utf-8")
        panel.driver.get(path.as_uri())
    else:
        panel.driver.get("data:text/html;base64," + b64encode(page.encode()).decode())
    assert panel.driver.find_element(By.TAG_NAME, "h1").text == "Win a prize"


def _csrf(panel: Panel) -> str:
    panel.open("/panel/")
    token = panel.driver.find_element(
        By.CSS_SELECTOR, "header form input[name=csrf]").get_attribute("value")
    assert token and len(token) == 64
    return token


def _snapshot(panel: Panel, email: str) -> tuple[int, int, str]:
    with panel.db.sessions() as session:
        member = session.query(StaffMember).filter_by(email=email).one()
        hashed = member.password_hash
    return panel.db.audit_length(), panel.db.count(StaffSession), hashed


@pytest.mark.parametrize("where", ["file", "data"])
@pytest.mark.parametrize("token", ["forged", "copied"])
def test_a_cross_site_sign_out_is_refused(panel: Panel, staff: dict[Role, str],
                                          tmp_path: Path, where: str, token: str) -> None:
    panel.sign_in(staff[Role.OWNER])
    real = _csrf(panel)
    before = _snapshot(panel, staff[Role.OWNER])
    _open_attack(panel, where, _attack_page(panel.url + "/panel/sign-out", {
        "csrf": real if token == "copied" else "0" * 64}), tmp_path)
    click_and_wait(panel.driver, panel.driver.find_element(By.ID, "go"))
    assert text_of(panel.driver, "h1") == "Form refused"
    assert "from another site" in text_of(panel.driver, "[role=alert]")
    assert _snapshot(panel, staff[Role.OWNER]) == before
    panel.open("/panel/")  # still signed in
    assert text_of(panel.driver, "h1") == "Dashboard"


def test_a_cross_site_password_change_is_refused(panel: Panel, tmp_path: Path) -> None:
    email = panel.db.add_staff(Role.SUPPORT)
    panel.sign_in(email)
    real = _csrf(panel)
    before = _snapshot(panel, email)
    _open_attack(panel, "file", _attack_page(panel.url + "/panel/account/password", {
        "csrf": real, "current": PASSWORD, "new": "the attacker's password"}), tmp_path)
    click_and_wait(panel.driver, panel.driver.find_element(By.ID, "go"))
    assert text_of(panel.driver, "h1") == "Form refused"
    assert _snapshot(panel, email) == before
    # The old password still works after signing out.
    panel.open("/panel/")
    panel.sign_out()
    panel.sign_in(email)
    assert panel.path == "/panel/"


def test_the_panel_cannot_be_framed_by_another_site(panel: Panel, staff: dict[Role, str],
                                                    tmp_path: Path) -> None:
    panel.sign_in(staff[Role.OWNER])
    page = tmp_path / "frame.html"
    page.write_text(f'<!doctype html><title>Frame</title><h1>Frame</h1>'
                    f'<iframe id="f" title="panel" src="{panel.url}/panel/"></iframe>',
                    encoding="utf-8")
    panel.driver.get(page.as_uri())
    frame = panel.driver.find_element(By.ID, "f")
    panel.driver.switch_to.frame(frame)
    try:
        # Refused by X-Frame-Options / frame-ancestors: the frame holds no panel page.
        assert not panel.driver.find_elements(By.CSS_SELECTOR, "header.top")
    finally:
        panel.driver.switch_to.default_content()
    browser_log(panel.driver)  # the refusal is logged as an error: expected here
