"""The end user's own pages in a real browser: password, email, their data (download,
erasure), air-gapped answers, and forms another site forges.

The app is the real SDK on simulated machines; mails come through aiosmtpd from the
server's outbox worker; downloads land in a folder Chromium is told to use; what the
server kept is read from its database (rows, and the raw bytes of its SQLite files).
"""

from __future__ import annotations

import html
import json
import secrets
import time
from base64 import b64encode
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from sqlalchemy import func, select

from software_dna import LicenseClient, WrongPassword
from software_dna.server.models import (
    Activation,
    AuditEntry,
    EndUser,
    License,
    PortalLink,
    PortalSession,
)
from software_dna.server.testing import LocalServer
from tests.panel.browser.helpers import browser_log, click_and_wait, open_page, text_of
from tests.portal.browser.conftest import PASSWORD, Holder, Portal, Vendor, next_mail
from tests.portal.browser.helpers import (
    allow_downloads,
    fill,
    link_in,
    press,
    status_of,
    wait_for_download,
)
from tests.smtp import LINK_RE

pytestmark = pytest.mark.browser

#: The erasure's WAL checkpoint runs at once (its bytes leave the files soon after).
SERVER_ENV = {"SOFTWARE_DNA_ERASURE_CHECKPOINT_INTERVAL": "0"}


def _email(name: str = "holder") -> str:
    return f"{name}.{secrets.token_hex(4)}@example.org"


def _end_user_id(portal: Portal, app: LicenseClient) -> str:
    activation_id = str(app.check().activation_id)
    with portal.db.sessions() as session:
        end_user_id = session.get_one(Activation, activation_id).end_user_id
    assert end_user_id is not None
    return end_user_id


def _nav(portal: Portal, label: str) -> None:
    click_and_wait(portal.driver, portal.driver.find_element(
        By.XPATH, f"//header//nav//a[normalize-space()='{label}']"))
    portal.check()


def _error(portal: Portal, field: str) -> str:
    """The error shown next to a field (the macro's ``e-<field>``), and the field points
    to it (``aria-describedby``)."""
    described = portal.driver.find_element(By.ID, f"f-{field}").get_attribute(
        "aria-describedby") or ""
    assert f"e-{field}" in described.split()
    return text_of(portal.driver, f"#e-{field}")


# --------------------------------------------------------------------------- password


def test_change_the_password_never_to_the_current_one(
        portal: Portal, vendor: Vendor, portal_server: LocalServer,
        apps: Callable[..., LicenseClient],
        portal_screenshot: Callable[[str], Path]) -> None:
    held = vendor.holder(machines=1)
    # Another browser signed in with the same password (signed out by the change).
    other = requests.Session()
    signed = other.post(f"{portal_server.url}/portal/{held.product}/sign-in",
                        data={"license_key": held.key, "password": PASSWORD},
                        allow_redirects=False, timeout=30)
    assert signed.status_code == 303
    portal.sign_in(held.product, held.key)
    _nav(portal, "Password")
    assert portal.path == f"/portal/{held.product}/password"
    portal_screenshot("password")

    fill(portal.driver, {"current": "not it", "password": "brand new", "repeat": "brand new"})
    press(portal.driver, "main form button[type=submit]")
    assert status_of(portal.driver) == 400
    assert _error(portal, "current") == "Error: The current activation password is wrong."
    portal.check()
    fill(portal.driver, {"current": PASSWORD, "password": PASSWORD, "repeat": PASSWORD})
    press(portal.driver, "main form button[type=submit]")
    assert status_of(portal.driver) == 400
    assert _error(portal, "password") == \
        "Error: Choose a password other than the current one."
    portal.check()
    fill(portal.driver, {"current": PASSWORD, "password": "brand new", "repeat": "brand nwe"})
    press(portal.driver, "main form button[type=submit]")
    assert status_of(portal.driver) == 400
    assert "differ" in _error(portal, "repeat")
    portal.check()
    with portal.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.license_id == held.license_id,
            AuditEntry.action.like("%password%"))) == 0

    fill(portal.driver, {"current": PASSWORD, "password": "brand new", "repeat": "brand new"})
    press(portal.driver, "main form button[type=submit]")
    assert portal.path == f"/portal/{held.product}/license"
    assert "The activation password is changed." in text_of(portal.driver, "p.notice")
    portal.check()
    # The other browser's password session ended; this one goes on.
    ended = other.get(f"{portal_server.url}/portal/{held.product}/license",
                      allow_redirects=False, timeout=30)
    assert ended.status_code == 303
    other.close()

    # The app: the old password no longer activates a computer, the new one does; the
    # computer activated before keeps working.
    with pytest.raises(WrongPassword):
        apps(held.product, held.keys).activate(held.key, password=PASSWORD)
    assert apps(held.product, held.keys).activate(
        held.key, password="brand new").license_id == held.license_id
    assert held.apps[0].refresh().license_id == held.license_id
    # And the portal: only the new one signs in.
    portal.sign_out()
    portal.sign_in(held.product, held.key, PASSWORD)
    assert status_of(portal.driver) == 401
    portal.sign_in(held.product, held.key, "brand new")
    assert portal.path == f"/portal/{held.product}/license"
    # Changing it back to what it is now is refused again.
    _nav(portal, "Password")
    fill(portal.driver, {"current": "brand new", "password": "brand new",
                         "repeat": "brand new"})
    press(portal.driver, "main form button[type=submit]")
    assert _error(portal, "password") == \
        "Error: Choose a password other than the current one."


# --------------------------------------------------------------------------- email


def test_change_the_email_address_with_a_confirmation(
        portal: Portal, vendor: Vendor, portal_screenshot: Callable[[str], Path]) -> None:
    old, new = _email("old"), _email("new")
    held = vendor.holder(email=old)
    portal.sign_in_by_link(held.product, old)
    _nav(portal, "Email")
    assert text_of(portal.driver, "#email-on-file") == old
    assert text_of(portal.driver, "#email-confirmed") == "Yes"
    portal_screenshot("email")

    fill(portal.driver, {"email": "not an address"})
    press(portal.driver, "form[action$='/email'] button[type=submit]")
    assert status_of(portal.driver) == 400
    assert _error(portal, "email").startswith("Error: Enter a whole email address")
    portal.check()

    before = len(portal.mailbox.messages)
    fill(portal.driver, {"email": new})
    press(portal.driver, "form[action$='/email'] button[type=submit]")
    assert portal.path == f"/portal/{held.product}/email"
    assert "Open the link we mailed to it" in text_of(portal.driver, "p.notice")
    assert text_of(portal.driver, "#email-on-file") == new
    assert text_of(portal.driver, "#email-confirmed").startswith("No")
    portal.check()
    # The confirmation goes to the new address; the end user opens it in the browser.
    confirm = link_in(next_mail(portal.mailbox, before, to=new, contains=LINK_RE), LINK_RE)
    open_page(portal.driver, confirm)
    assert text_of(portal.driver, "h1") == "Confirm your email address"
    click_and_wait(portal.driver, portal.driver.find_element(By.CSS_SELECTOR,
                                                             "form button"))
    assert text_of(portal.driver, "h1") == "Email address confirmed"
    portal.page(held.product, "email")
    assert text_of(portal.driver, "#email-confirmed") == "Yes"

    # The old address reaches nothing now; the new one signs in.
    with portal.db.sessions() as session:
        links_before = session.scalar(select(func.count()).select_from(PortalLink).where(
            PortalLink.license_id == held.license_id))
    portal.page(held.product, "license")
    portal.sign_out()
    portal.ask_link(held.product, old)
    with portal.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(PortalLink).where(
            PortalLink.license_id == held.license_id)) == links_before
    portal.sign_in_by_link(held.product, new)
    assert portal.path == f"/portal/{held.product}/license"

    # Remove it: no address on file, the session goes on.
    _nav(portal, "Email")
    press(portal.driver, "form[action$='/email/remove'] button[type=submit]")
    assert portal.path == f"/portal/{held.product}/email"
    assert text_of(portal.driver, "#email-on-file") == "None"
    portal.check()
    with portal.db.sessions() as session:
        person = session.get_one(EndUser, _end_user_id(portal, held.apps[0]))
        assert person.email_ciphertext is None and person.email_index is None


# --------------------------------------------------------------------------- data


def test_the_download_equals_the_vendor_s_export(
        portal: Portal, vendor: Vendor, portal_server: LocalServer, tmp_path: Path,
        portal_screenshot: Callable[[str], Path]) -> None:
    email = _email("ada")
    registration = {"name": f"Ada {secrets.token_hex(3)}", "company": "Engines Ltd"}
    held = vendor.holder(email=email, registration=registration, machines=1)
    end_user_id = _end_user_id(portal, held.apps[0])
    portal.sign_in_by_link(held.product, email)
    _nav(portal, "My data")
    page = portal.text
    assert email in page and registration["name"] in page
    portal_screenshot("data")

    downloads = tmp_path / "downloads"
    allow_downloads(portal.driver, downloads)
    portal.driver.find_element(By.CSS_SELECTOR,
                               "form[action$='/data/export'] button").click()
    got = json.loads(wait_for_download(downloads, "*.json").read_bytes())
    vendor_export = portal_server.admin.export_end_user(end_user_id)
    assert got == vendor_export
    assert email in json.dumps(got) and registration["name"] in json.dumps(got)
    with portal.db.sessions() as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.end_user_id == end_user_id, AuditEntry.actor == "portal",
            AuditEntry.action.like("%export%"))).one()
        assert entry.actor == "portal"


def _database_bytes(server: LocalServer) -> bytes:
    path = Path(server.database_url.removeprefix("sqlite:///"))
    return b"".join(Path(str(path) + suffix).read_bytes() for suffix in ("", "-wal", "-journal")
                    if Path(str(path) + suffix).exists())


def _left_after(server: LocalServer, needles: dict[str, bytes],
                timeout: float = 30.0) -> list[str]:
    """The needles still in the database files once the erasure's checkpoint ran (it runs
    off the request path: the files are read until none is left or ``timeout``)."""
    ends = time.monotonic() + timeout
    while True:
        data = _database_bytes(server)
        left = [name for name, needle in needles.items() if needle in data]
        if not left or time.monotonic() > ends:
            return left
        time.sleep(0.2)


def test_erasure_leaves_no_trace_and_the_app_goes_limited(
        portal: Portal, vendor: Vendor, portal_server: LocalServer,
        portal_screenshot: Callable[[str], Path]) -> None:
    email = _email("erin")
    registration = {"name": f"Erin Q{secrets.token_hex(3)}",
                    "company": f"Q{secrets.token_hex(4)} Works"}
    held = vendor.holder(email=email, registration=registration, machines=1,
                         features=["export", "print"], limited_features=["print"])
    app = held.apps[0]
    assert app.refresh().has_feature("export")
    end_user_id = _end_user_id(portal, app)
    with portal.db.sessions() as session:
        person = session.get_one(EndUser, end_user_id)
        assert person.email_ciphertext and person.registration_ciphertext
        assert person.email_index
        needles = {"email": email.encode(), "name": registration["name"].encode(),
                   "company": registration["company"].encode(),
                   "email index": person.email_index.encode(),
                   # The link requests' counter is keyed by the index's first half.
                   "email index (rate limit)": person.email_index[:32].encode(),
                   "email ciphertext": bytes(person.email_ciphertext)[-24:],
                   "registration ciphertext": bytes(person.registration_ciphertext)[-24:]}

    portal.sign_in_by_link(held.product, email)
    _nav(portal, "My data")
    click_and_wait(portal.driver, portal.driver.find_element(
        By.CSS_SELECTOR, f"main a[href='/portal/{held.product}/erase']"))
    portal.check()
    statement = portal.text
    assert "limited mode" in statement and "print" in statement
    portal_screenshot("erase")
    with portal.db.sessions() as session:
        assert session.get_one(EndUser, end_user_id).erased_at is None  # not yet

    press(portal.driver, "main form button.danger")
    assert portal.path == f"/portal/{held.product}/license"
    assert "erased" in text_of(portal.driver, "p.notice")
    assert text_of(portal.driver, "#license-mode") == "Limited"
    assert "In limited mode the app offers: print." in text_of(portal.driver, ".warning")
    portal.check()
    portal_screenshot("license-limited")
    # The personal pages are gone for this session: nothing personal is left to reach.
    nav = text_of(portal.driver, "header nav")
    assert "My data" not in nav and "Email" not in nav
    portal.page(held.product, "data")
    assert status_of(portal.driver) == 403
    browser_log(portal.driver)

    with portal.db.sessions() as session:
        person = session.get_one(EndUser, end_user_id)
        assert person.erased_at is not None
        assert person.email_ciphertext is None and person.registration_ciphertext is None
        assert session.get_one(License, held.license_id).erased
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.end_user_id == end_user_id,
            AuditEntry.action.like("%eras%"))).first()
        assert entry is not None and entry.actor == "portal"
    assert _left_after(portal_server, needles) == []
    assert portal_server.admin.find_end_users(email) == []

    # The app's next refresh is limited: only the limited features.
    limited = app.refresh()
    assert limited.mode.value == "limited"
    assert limited.has_feature("print") and not limited.has_feature("export")


# --------------------------------------------------------------------------- air-gapped


def test_answer_an_air_gapped_request_for_the_own_license(
        portal: Portal, vendor: Vendor, apps: Callable[..., LicenseClient], tmp_path: Path,
        portal_screenshot: Callable[[str], Path]) -> None:
    held = vendor.holder(machines=0, air_gapped=True, features=["export"],
                         limited_features=[])
    other: Holder = vendor.holder(machines=0, product=(held.product, held.keys))
    app = apps(held.product, held.keys)  # a computer without network
    request_text = app.create_activation_request(held.key)
    foreign = apps(held.product, held.keys).create_activation_request(other.key)

    portal.sign_in(held.product, held.key)
    _nav(portal, "Air-gapped activation")
    # Another license's request: refused next to the field, nothing activated.
    fill(portal.driver, {"request": foreign})
    if portal.driver.find_elements(By.ID, "f-password"):
        fill(portal.driver, {"password": PASSWORD})
    press(portal.driver, "main form button[value=show]")
    assert status_of(portal.driver) >= 400
    assert _error(portal, "request").startswith("Error:")
    portal.check()
    with portal.db.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Activation).where(
            Activation.license_id == other.license_id)) == 0

    # The own request: the answer shown, and as a file.
    portal.page(held.product, "offline")
    fill(portal.driver, {"request": request_text})
    if portal.driver.find_elements(By.ID, "f-password"):
        fill(portal.driver, {"password": PASSWORD})
    portal_screenshot("offline")
    downloads = tmp_path / "downloads"
    allow_downloads(portal.driver, downloads)
    portal.driver.find_element(By.CSS_SELECTOR, "main form button[value=download]").click()
    response_text = wait_for_download(downloads, "*.txt").read_text(encoding="utf-8")
    assert response_text.startswith("-----BEGIN SOFTWARE_DNA ACTIVATION RESPONSE-----")

    lic = app.activate_offline(response_text)
    assert lic.license_id == held.license_id and lic.has_feature("export")
    assert app.check().license_id == held.license_id
    with portal.db.sessions() as session:
        rows = session.scalars(select(Activation).where(
            Activation.license_id == held.license_id)).all()
        assert [r.id for r in rows] == [lic.activation_id] and rows[0].offline
    # The license page lists the air-gapped computer.
    portal.page(held.product, "license")
    assert "air-gapped" in text_of(portal.driver, "main table")


def test_no_air_gapped_page_where_the_product_does_not_allow_it(portal: Portal,
                                                                vendor: Vendor) -> None:
    held = vendor.holder(machines=1)  # air_gapped off by default
    portal.sign_in(held.product, held.key)
    assert "Air-gapped" not in text_of(portal.driver, "header nav")
    portal.page(held.product, "offline")
    assert status_of(portal.driver) == 404
    browser_log(portal.driver)


# --------------------------------------------------------------------------- CSRF


def _attack(portal: Portal, action: str, fields: dict[str, str]) -> None:
    """Open another site's page (a ``data:`` URL) whose form posts ``fields`` to ``action``,
    and press its button, as the signed-in end user would."""
    inputs = "".join(f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                     for k, v in fields.items())
    page = (f'<!doctype html><title>Win a prize</title><h1>Win a prize</h1>'
            f'<form method="post" action="{html.escape(action)}">{inputs}'
            f'<button type="submit" id="go">Claim</button></form>')
    portal.driver.get("data:text/html;base64," + b64encode(page.encode()).decode())
    assert text_of(portal.driver, "h1") == "Win a prize"
    click_and_wait(portal.driver, portal.driver.find_element(By.ID, "go"))


def _state(portal: Portal, held: Holder, end_user_id: str) -> tuple[object, ...]:
    with portal.db.sessions() as session:
        person = session.get_one(EndUser, end_user_id)
        lic = session.get_one(License, held.license_id)
        return (person.erased_at, person.email_index, lic.password_hash,
                session.scalar(select(func.count()).select_from(AuditEntry)),
                session.scalar(select(func.count()).select_from(PortalSession)),
                session.scalar(select(func.count()).select_from(Activation).where(
                    Activation.deactivated_at.is_(None))))


@pytest.mark.parametrize("token", ["forged", "copied"])
def test_forged_forms_from_another_site_are_refused(portal: Portal, vendor: Vendor,
                                                    token: str) -> None:
    email = _email("csrf")
    held = vendor.holder(email=email, machines=1)
    end_user_id = _end_user_id(portal, held.apps[0])
    activation_id = str(held.apps[0].check().activation_id)
    portal.sign_in_by_link(held.product, email)
    real = portal.csrf()
    csrf = real if token == "copied" else "0" * 64
    base = f"{portal.url}/portal/{held.product}"
    before = _state(portal, held, end_user_id)
    for action, fields in ((f"{base}/erase", {}),
                           (f"{base}/password", {"password": "attacker", "repeat": "attacker"}),
                           (f"{base}/email", {"email": "attacker@evil.example"}),
                           (f"{base}/activations/{activation_id}/release", {}),
                           (f"{base}/sign-out", {})):
        _attack(portal, action, {"csrf": csrf, **fields})
        assert text_of(portal.driver, "h1") == "Form refused", action
        assert status_of(portal.driver) == 403
        assert _state(portal, held, end_user_id) == before, action
    # A sign-in another site sends (to sign the victim in to the attacker's license).
    _attack(portal, f"{base}/sign-in", {"license_key": held.key, "password": PASSWORD})
    assert text_of(portal.driver, "h1") == "Form refused"
    assert _state(portal, held, end_user_id) == before
    browser_log(portal.driver)
    # Still signed in, nothing changed.
    portal.page(held.product, "license")
    assert portal.path == f"/portal/{held.product}/license"


def test_a_wrong_csrf_token_from_the_portal_itself_is_refused(portal: Portal,
                                                              vendor: Vendor) -> None:
    email = _email("token")
    held = vendor.holder(email=email, machines=1)
    end_user_id = _end_user_id(portal, held.apps[0])
    portal.sign_in_by_link(held.product, email)
    portal.page(held.product, "erase")
    before = _state(portal, held, end_user_id)
    for value in ("0" * 64, "", "x" * 5000):
        portal.page(held.product, "erase")
        field = portal.driver.find_element(By.CSS_SELECTOR, "main form input[name=csrf]")
        portal.driver.execute_script("arguments[0].value = arguments[1]", field, value)
        press(portal.driver, "main form button.danger")
        assert status_of(portal.driver) == 403, value[:10]
        assert _state(portal, held, end_user_id) == before
    browser_log(portal.driver)
