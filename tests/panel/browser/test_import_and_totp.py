"""CSV import and two-step sign-in in the browser.

- Import: a CSV with bad rows imports nothing (the database says so) and the
  page names each row and field; the corrected file, uploaded, imports every
  row and shows the keys once.
- TOTP: enrol on the account page with the secret it shows, sign out, sign in
  with the password and then a code (RFC 6238, computed with cryptography's TOTP).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from selenium.webdriver.common.by import By
from sqlalchemy import func, select

from software_dna.server import services
from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, License, StaffMember
from software_dna.server.testing import LocalServer
from tests.panel.browser.conftest import NAMES, Panel
from tests.panel.browser.helpers import click_and_wait, text_of
from tests.panel.routes import needs_pages

pytestmark = pytest.mark.browser


def _licenses_of(panel: Panel, product: str) -> int:
    with panel.db.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(License)
                                  .where(License.product_id == product)) or 0)


def _submit(panel: Panel, form: str) -> None:
    click_and_wait(panel.driver, panel.driver.find_element(
        By.CSS_SELECTOR, f"main form[action='{form}'] button[type=submit]"))


@needs_pages("GET /panel/licenses/import", "POST /panel/licenses/import")
def test_import_a_bad_csv_then_a_good_one(panel: Panel, staff: dict[Role, str],
                                          panel_server: LocalServer, tmp_path: Path,
                                          screenshot: Callable[[str], Path]) -> None:
    product = f"csv-{secrets.token_hex(3)}"
    panel_server.admin.setup_product(product, name="Batch Editor", features=["pro", "export"])
    driver = panel.driver
    panel.sign_in(staff[Role.SUPPORT])
    panel.open("/panel/licenses/import")
    panel.check()

    bad = ("product,seats,expires,features,customer_ref,order_ref\n"
           f"{product},5,2031-06-30,pro;export,ACME,ORD-1\n"      # row 2: fine
           f"{product},none,,,ACME,ORD-2\n"                        # row 3: seats
           f"no-such-product,1,,,ACME,ORD-3\n"                     # row 4: product
           f"{product},1,2031-02-30,,ACME,ORD-4\n")                # row 5: no such date
    driver.find_element(By.ID, "f-text").send_keys(bad)
    _submit(panel, "/panel/licenses/import")
    panel.check()
    assert panel.path == "/panel/licenses/import"
    assert text_of(driver, "#errors-heading").startswith("Nothing was imported: 3 problems")
    named = [tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td"))[:2]
             for row in driver.find_elements(By.CSS_SELECTOR, ".import-errors tbody tr")]
    assert named == [("3", "seats"), ("4", "product"), ("5", "expires")], named
    # Nothing half-imported: not even the good row 2.
    assert _licenses_of(panel, product) == 0
    # What was pasted is kept, to be corrected in place.
    assert "ORD-4" in (driver.find_element(By.ID, "f-text").get_attribute("value") or "")
    screenshot("import-errors")

    # The corrected file, uploaded (a chosen file wins over the pasted text).
    good = tmp_path / "licenses.csv"
    good.write_text("product,seats,expires,features,customer_ref,order_ref,notes\n"
                    f"{product},5,2031-06-30,pro;export,ACME,ORD-1,Reseller batch\n"
                    f"{product},1,,,ACME,ORD-2,\n"
                    f"{product},2,2031-02-28,pro,ACME,ORD-4,\n", encoding="utf-8")
    driver.find_element(By.ID, "f-file").send_keys(str(good))
    _submit(panel, "/panel/licenses/import")
    panel.check()
    assert text_of(driver, "h1") == "3 licenses imported"
    keys = [code.text for code in driver.find_elements(By.CSS_SELECTOR, "code.key")]
    assert len(keys) == 3 and len(set(keys)) == 3
    screenshot("import-done")
    assert _licenses_of(panel, product) == 3
    with panel.db.sessions() as session:
        first = services.find_license_by_key(session, panel.db.ctx, keys[0])
        assert first is not None and first.product_id == product
        assert (first.seats, first.order_ref, first.notes) == (5, "ORD-1", "Reseller batch")
        assert first.features == ["export", "pro"]
        actors = set(session.scalars(select(AuditEntry.actor_id).where(
            AuditEntry.action == "license.issue",
            AuditEntry.license_id.in_(select(License.id).where(
                License.product_id == product)))))
        assert len(actors) == 1 and actors.pop().startswith("stf_")  # type: ignore[union-attr]

    # Shown once: neither the import page nor the list shows a key again.
    for path in ("/panel/licenses/import", f"/panel/licenses?product={product}"):
        panel.open(path)
        page = driver.find_element(By.TAG_NAME, "body").text
        assert not any(key in page for key in keys), path


def _code(secret: str, at: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return TOTP(key, 6, SHA1(), 30, enforce_key_length=True).generate(at).decode()


@needs_pages("GET /panel/account", "POST /panel/account/totp/begin",
             "POST /panel/account/totp/confirm", "POST /panel/sign-in/code")
def test_enrol_totp_and_sign_in_with_a_code(panel: Panel,
                                            screenshot: Callable[[str], Path]) -> None:
    email = panel.db.add_staff(Role.SUPPORT, name=NAMES[Role.SUPPORT])
    driver = panel.driver
    panel.sign_in(email)
    panel.open("/panel/account")
    panel.check()
    _submit(panel, "/panel/account/totp/begin")
    panel.check()
    secret = next(match for code in driver.find_elements(By.CSS_SELECTOR, "dl.facts code")
                  if (match := re.fullmatch(r"[A-Z2-7]{32}", code.text.strip())))[0]
    screenshot("account-totp")
    # A wrong code is refused next to the field; two-step sign-in stays off.
    now = time.time()
    wrong = next(c for c in ("000000", "111111", "222222", "333333")
                 if c not in {_code(secret, now + d) for d in (-30, 0, 30, 60)})
    driver.find_element(By.ID, "f-code").send_keys(wrong)
    _submit(panel, "/panel/account/totp/confirm")
    panel.check()
    assert "That code is wrong" in text_of(driver, "#e-code")
    driver.find_element(By.ID, "f-code").send_keys(_code(secret, time.time()))
    _submit(panel, "/panel/account/totp/confirm")
    panel.check()
    assert text_of(driver, "p.notice") == "Two-step sign-in is on."
    with panel.db.sessions() as session:
        member = session.query(StaffMember).filter_by(email=email).one()
        assert member.totp_confirmed_at is not None
        used_step = member.totp_last_step
    assert used_step is not None
    panel.sign_out()

    # The password alone leads to the code page, and nowhere else.
    panel.sign_in(email)
    assert panel.path.startswith("/panel/sign-in/code"), panel.path
    panel.check()
    panel.open("/panel/licenses")
    assert panel.path.startswith("/panel/sign-in/code"), panel.path
    # The code that turned it on is used up.
    driver.find_element(By.ID, "f-code").send_keys(_code(secret, used_step * 30))
    _submit(panel, "/panel/sign-in/code")
    panel.check()
    assert "wrong or was used" in text_of(driver, "#e-code")
    # The app's next code signs in.
    driver.find_element(By.ID, "f-code").send_keys(_code(secret, (used_step + 1) * 30))
    _submit(panel, "/panel/sign-in/code")
    panel.check()
    assert panel.path == "/panel/", panel.path
    assert NAMES[Role.SUPPORT] in text_of(driver, "header")
    with panel.db.sessions() as session:
        member = session.query(StaffMember).filter_by(email=email).one()
        actions = list(session.scalars(select(AuditEntry.action).where(
            AuditEntry.actor_id == member.id, AuditEntry.action.like("staff.%"))))
    assert "staff.totp_on" in actions and "staff.second_factor" in actions
