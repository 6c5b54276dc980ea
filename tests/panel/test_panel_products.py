"""Products in the panel: list, create, change settings; who may, and forged posts (in-process)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, Product, StaffMember
from software_dna.server.panel.pages.products import _form_values
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db


def product_id() -> str:
    return "pp-" + secrets.token_hex(4)


def settings_of(server: InProcessServer, pid: str) -> dict[str, str]:
    """The form's fields as the panel would fill them for the stored product."""
    with db(server) as session:
        product = session.get(Product, pid)
        assert product is not None
        values = _form_values(product)
    return {k: v for k, v in values.items() if v != ""}


def stored(server: InProcessServer, pid: str) -> Product | None:
    with db(server) as session:
        product: Product | None = session.get(Product, pid)
        if product is not None:
            session.expunge(product)
        return product


def test_create_a_product_and_see_it_listed(inprocess_server: InProcessServer,
                                            users: dict[Role, PanelUser]) -> None:
    developer = users[Role.DEVELOPER]
    form = developer.get("/panel/products/new")
    assert form.status_code == 200
    assert 'for="f-refresh_interval"' in form.text and 'id="f-refresh_interval"' in form.text
    pid = product_id()
    fields = {
        "id": pid, "name": "Acme <Editor>", "protection": "mandatory",
        "features": "export, print", "limited_features": "print",
        "refresh_interval": "3600", "offline_grace_period": "600",
        "fingerprint_tolerance": "1", "trial_days": "", "test_code_limit": "5",
        "lease_duration": "900", "reactivation_limit": "", "reactivation_period": "2592000",
        "address_activation_limit": "", "rebind_limit": "3", "rebind_period": "2592000",
        "air_gapped_token_days": "30", "payment_grace_days": "14", "reminder_days": "7, 1",
        "sharing_policy": "suspend", "air_gapped": "on", "portal_release_limit": "",
        "portal_release_days": "7"}
    answer = developer.post("/panel/products/new", {**fields, "branding_colour": "#112233"})
    # The mails' branding is commerce (owner, admin): refused at its field, nothing made.
    assert answer.status_code == 400 and 'id="e-branding_colour"' in answer.text
    assert stored(inprocess_server, pid) is None
    answer = developer.post("/panel/products/new", fields)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"/panel/products/{pid}"
    product = stored(inprocess_server, pid)
    assert product is not None
    assert (product.name, product.protection, product.features, product.limited_features) == (
        "Acme <Editor>", "mandatory", ["export", "print"], ["print"])
    assert (product.refresh_interval, product.air_gapped, product.air_gapped_token_days,
            product.reminder_days, product.sharing_policy, product.trial_days) == (
        3600, True, 30, [7, 1], "suspend", None)
    assert product.branding == {} and not product.password_required
    assert (product.portal_release_limit, product.portal_release_period) == (None, 7 * 86400)
    listing = users[Role.READ_ONLY].get("/panel/products")
    assert listing.status_code == 200
    assert pid in listing.text and "Acme &lt;Editor&gt;" in listing.text
    with db(inprocess_server) as session:
        entry = session.query(AuditEntry).filter_by(action="product.create",
                                                    product_id=pid).one()
        member = session.query(StaffMember).filter_by(email=developer.email).one()
        assert entry.actor == "panel" and entry.actor_id == member.id


def test_settings_change_as_the_admin_api_sees_it(inprocess_server: InProcessServer,
                                                  users: dict[Role, PanelUser]) -> None:
    pid = product_id()
    inprocess_server.admin.create_product(pid, features=["a"])
    form = settings_of(inprocess_server, pid)
    form.update({"offline_grace_period": "0", "features": "a b c", "password_required": "on",
                 "rebind_limit": "", "trial_days": "14", "protection": "offline"})
    answer = users[Role.ADMIN].post(f"/panel/products/{pid}", form)
    assert answer.status_code == 303, answer.text
    seen: dict[str, Any] = inprocess_server.admin.get_product(pid)
    assert (seen["offline_grace_period"], seen["features"], seen["password_required"],
            seen["rebind_limit"], seen["trial_days"], seen["protection"]) == (
        0, ["a", "b", "c"], True, None, 14, "offline")
    # Unticked boxes turn a setting off: the form always carries every setting.
    form = settings_of(inprocess_server, pid)
    form.pop("password_required")
    assert users[Role.OWNER].post(f"/panel/products/{pid}", form).status_code == 303
    assert inprocess_server.admin.get_product(pid)["password_required"] is False


@pytest.mark.parametrize(("field", "value", "says"), [
    ("refresh_interval", "10", "refresh_interval must be 60 seconds"),
    ("refresh_interval", "an hour", "Enter a whole number"),
    ("reminder_days", "7, 7", "reminder_days"),
    ("features", "ok bad/name", "Bad name in features"),
    ("branding_logo_url", "http://insecure.example/logo.png", "branding.logo_url"),
])
def test_a_refused_value_is_shown_next_to_its_field(
        inprocess_server: InProcessServer, users: dict[Role, PanelUser],
        field: str, value: str, says: str) -> None:
    pid = product_id()
    inprocess_server.admin.create_product(pid)
    before = stored(inprocess_server, pid)
    form = settings_of(inprocess_server, pid)
    form[field] = value
    # (The mails' branding is the admins': a developer's is refused before it is checked.)
    who = Role.ADMIN if field.startswith("branding_") else Role.DEVELOPER
    answer = users[who].post(f"/panel/products/{pid}", form)
    assert answer.status_code == 400
    assert f'id="e-{field}"' in answer.text and says in answer.text
    assert 'aria-invalid="true"' in answer.text
    assert f'value="{value}"' in answer.text  # what was typed is kept
    after = stored(inprocess_server, pid)
    assert before is not None and after is not None
    assert after.updated_at == before.updated_at  # nothing changed


def test_a_taken_id_is_refused(inprocess_server: InProcessServer,
                               users: dict[Role, PanelUser]) -> None:
    pid = product_id()
    inprocess_server.admin.create_product(pid, name="First")
    form = settings_of(inprocess_server, pid)
    form.update({"id": pid, "name": "Second"})
    answer = users[Role.OWNER].post("/panel/products/new", form)
    assert answer.status_code == 400 and "already exists" in answer.text
    assert 'id="e-id"' in answer.text
    product = stored(inprocess_server, pid)
    assert product is not None and product.name == "First"


def test_who_may_change_products(inprocess_server: InProcessServer,
                                 users: dict[Role, PanelUser]) -> None:
    pid = product_id()
    inprocess_server.admin.create_product(pid, name="Kept")
    form = settings_of(inprocess_server, pid)
    form["name"] = "Changed"
    for role in (Role.SUPPORT, Role.READ_ONLY):
        user = users[role]
        assert user.get("/panel/products/new").status_code == 403
        assert user.post(f"/panel/products/{pid}", form).status_code == 403
        assert user.post("/panel/products/new", {**form, "id": product_id()}).status_code == 403
        page = user.get(f"/panel/products/{pid}")
        assert page.status_code == 200
        assert "<fieldset disabled>" in page.text and "Save settings" not in page.text
    # Without the CSRF token (or with a forged one) an allowed role changes nothing either.
    for token in ("", "0" * 64):
        answer = users[Role.DEVELOPER].post(f"/panel/products/{pid}", form, csrf=token)
        assert answer.status_code == 403
    product = stored(inprocess_server, pid)
    assert product is not None and product.name == "Kept"


def test_unknown_product_is_not_found(users: dict[Role, PanelUser]) -> None:
    assert users[Role.OWNER].get("/panel/products/no-such-product").status_code == 404
