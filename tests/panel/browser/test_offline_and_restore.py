"""Support in the browser: answer an air-gapped request, restore full mode after an erasure.

The end user's side is the real SDK (a simulated machine each): the request
comes from ``create_activation_request``, the response the page shows goes
back through ``activate_offline``; the restored license reaches the app at
its next refresh.  The database is read at the end to check what the pages did.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from software_dna import LicenseClient
from software_dna.server.domain.roles import Role
from software_dna.server.models import Activation, AuditEntry, License
from software_dna.server.testing import LocalServer
from software_dna.testing import SimulatedMachine
from tests.panel.browser.conftest import Panel
from tests.panel.browser.helpers import browser_log, click_and_wait, text_of
from tests.panel.routes import needs_pages

pytestmark = pytest.mark.browser


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[Callable[..., LicenseClient]]:
    """``apps(product, keys, server_url=None)``: the vendor's app on a new simulated machine."""
    made: list[LicenseClient] = []

    def make(product: str, keys: list[str], server_url: str | None = None) -> LicenseClient:
        machine = SimulatedMachine(tmp_path / f"machine-{len(made)}")
        client = LicenseClient(product=product, public_keys=keys, server_url=server_url,
                               machine=machine, app_version="3.2.0", timeout=10.0)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@needs_pages("GET /panel/offline", "POST /panel/offline")
def test_answer_an_air_gapped_request(panel: Panel, staff: dict[Role, str],
                                      panel_server: LocalServer,
                                      apps: Callable[..., LicenseClient],
                                      screenshot: Callable[[str], Path]) -> None:
    product = f"field-{secrets.token_hex(3)}"
    keys = panel_server.admin.setup_product(product, name="Field Station", features=["export"],
                                            air_gapped=True, password_required=True)
    issued = panel_server.admin.issue_license(product, seats=1, password="open sesame",
                                              customer_ref="CUST-7731")
    app = apps(product, keys)  # no server: the machine has no network
    request = app.create_activation_request(issued["license_key"])
    assert request.startswith("-----BEGIN SOFTWARE_DNA ACTIVATION REQUEST-----")

    driver = panel.driver
    panel.sign_in(staff[Role.SUPPORT])
    panel.open("/panel/offline")
    panel.check()
    # Pasted as it came, inside the end user's mail: the text around the block is ignored.
    driver.find_element(By.ID, "f-request").send_keys(f"Hello,\nhere is our file:\n\n{request}"
                                                       "\n\nThanks, the field team")
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR,
                                               "main form[action='/panel/offline'] button"))
    panel.check()
    assert panel.path == "/panel/offline"
    assert "a new activation" in text_of(driver, "section [role=status]")
    response = driver.find_element(By.ID, "response").get_attribute("value") or ""
    assert response.startswith("-----BEGIN SOFTWARE_DNA ACTIVATION RESPONSE-----"), response
    # The picture shows the answer (the pasted request above it is long).
    driver.execute_script("document.querySelector('main form button').scrollIntoView()")
    screenshot("offline-answer")

    # The machine installs the response: the license, offline, with its features.
    lic = app.activate_offline(response)
    assert lic.license_id == issued["id"]
    assert lic.has_feature("export")
    assert app.check().license_id == issued["id"]
    with panel.db.sessions() as session:
        rows = session.query(Activation).filter_by(license_id=issued["id"]).all()
        assert len(rows) == 1 and rows[0].deactivated_at is None
        assert rows[0].id == lic.activation_id
        entry = session.query(AuditEntry).filter_by(license_id=issued["id"]).filter(
            AuditEntry.action.like("activation.%")).one()
        # The activation is answered in the panel, by this staff member.
        assert entry.actor == "panel" and (entry.actor_id or "").startswith("stf_")
        assert entry.detail is not None and entry.detail["by_staff"] is True


@needs_pages("GET /panel/licenses/x", "GET /panel/licenses/x/restore",
             "POST /panel/licenses/x/restore")
def test_support_restores_full_mode_after_an_erasure(panel: Panel, staff: dict[Role, str],
                                                     panel_server: LocalServer,
                                                     apps: Callable[..., LicenseClient],
                                                     screenshot: Callable[[str], Path]) -> None:
    product = f"restore-{secrets.token_hex(3)}"
    keys = panel_server.admin.setup_product(product, name="Restore Editor",
                                            features=["export", "print"],
                                            limited_features=["print"])
    issued = panel_server.admin.issue_license(product, seats=1)
    license_id = issued["id"]
    app = apps(product, keys, panel_server.url)
    app.activate(issued["license_key"], email=f"erin.{secrets.token_hex(3)}@example.org",
                 consent=True)
    limited = app.request_erasure()  # the end user's own erasure: limited until restored
    assert limited.mode.value == "limited" and not limited.has_feature("export")

    driver = panel.driver
    # A developer may not restore: no button, and the page itself says no.
    panel.sign_in(staff[Role.DEVELOPER])
    panel.open(f"/panel/licenses/{license_id}")
    panel.check()
    assert not driver.find_elements(By.PARTIAL_LINK_TEXT, "Restore full mode")
    panel.open(f"/panel/licenses/{license_id}/restore")
    assert text_of(driver, "h1") == "Not allowed"
    browser_log(driver)  # the 403 the browser logged was the point
    panel.open("/panel/")
    panel.sign_out()

    panel.sign_in(staff[Role.SUPPORT])
    panel.open(f"/panel/licenses/{license_id}")
    panel.check()
    facts = text_of(driver, "dl.facts")
    assert "limited (personal data erased" in facts
    activations = text_of(driver, "main table")
    assert "limited (erased)" in activations
    click_and_wait(driver, driver.find_element(By.PARTIAL_LINK_TEXT, "Restore full mode"))
    panel.check()
    assert panel.path == f"/panel/licenses/{license_id}/restore"
    assert "What happens:" in text_of(driver, ".confirm")
    with panel.db.sessions() as session:
        assert session.get_one(License, license_id).erased  # not yet
    click_and_wait(driver, driver.find_element(By.CSS_SELECTOR, ".confirm button.danger"))
    panel.check()
    assert panel.path == f"/panel/licenses/{license_id}"
    assert text_of(driver, "p.notice") == "Full mode restored."
    assert "limited" not in text_of(driver, "dl.facts").split("Mode", 1)[1].split("\n")[1]
    assert "limited" not in text_of(driver, "main table")
    screenshot("license-restored")

    with panel.db.sessions() as session:
        assert not session.get_one(License, license_id).erased
        entry = session.query(AuditEntry).filter_by(action="license.restore",
                                                    license_id=license_id).one()
        assert entry.actor == "panel" and (entry.actor_id or "").startswith("stf_")
    # The app gets a full token at its next contact; the erased data stays erased.
    restored = app.refresh()
    assert restored.mode.value == "full" and restored.has_feature("export")
