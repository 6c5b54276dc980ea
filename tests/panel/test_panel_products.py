"""Products in the panel: list, create, change settings; who may, and forged posts (in-process)."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, Product, ProductLogo, StaffMember
from software_dna.server.panel.pages.products import _form_values
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db
from tests.portal.helpers import PortalUser, setup_license
from tests.server.helpers import Api
from tests.server.images import GIF, SVG, png


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
    ("portal_release_limit", "1001", "portal_release_limit must be 0 to 1000"),
    ("portal_release_limit", "many", "Enter a whole number (or leave it blank)."),
    ("portal_release_days", "0", "portal_release_days must be 1 to 366"),
    ("portal_release_days", "", "Enter a whole number."),
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


def test_portal_settings_in_the_form(inprocess_server: InProcessServer,
                                     users: dict[Role, PanelUser]) -> None:
    pid = product_id()
    inprocess_server.admin.create_product(pid)
    page = users[Role.READ_ONLY].get(f"/panel/products/{pid}")
    for name in ("portal_release_limit", "portal_release_days"):
        assert f'for="f-{name}"' in page.text and f'id="f-{name}"' in page.text
    assert f'href="/portal/{pid}/"' in page.text  # the product's license portal
    form = settings_of(inprocess_server, pid)
    assert (form["portal_release_limit"], form["portal_release_days"]) == ("3", "30")
    form.update({"portal_release_limit": "0", "portal_release_days": "90"})
    assert users[Role.DEVELOPER].post(f"/panel/products/{pid}", form).status_code == 303
    seen = inprocess_server.admin.get_product(pid)
    assert (seen["portal_release_limit"], seen["portal_release_days"]) == (0, 90)
    form = settings_of(inprocess_server, pid)
    form["portal_release_limit"] = ""  # blank: no limit
    assert users[Role.DEVELOPER].post(f"/panel/products/{pid}", form).status_code == 303
    assert inprocess_server.admin.get_product(pid)["portal_release_limit"] is None
    # Roles without the products permission change nothing.
    form["portal_release_limit"] = "5"
    for role in (Role.SUPPORT, Role.READ_ONLY):
        assert users[role].post(f"/panel/products/{pid}", form).status_code == 403
    assert inprocess_server.admin.get_product(pid)["portal_release_limit"] is None


def _logo_of(server: InProcessServer, pid: str) -> bytes | None:
    with db(server) as session:
        row = session.get(ProductLogo, pid)
        return None if row is None else bytes(row.data)


def test_logo_upload_preview_and_removal(inprocess_server: InProcessServer,
                                         users: dict[Role, PanelUser]) -> None:
    pid = product_id()
    inprocess_server.admin.create_product(pid, name="Logo Product")
    developer = users[Role.DEVELOPER]
    page = developer.get(f"/panel/products/{pid}")
    assert 'enctype="multipart/form-data"' in page.text and 'for="f-logo"' in page.text
    assert "No logo" in page.text and "Remove logo" not in page.text
    image = png()
    # The file's name and declared type are not believed: these bytes are a PNG.
    answer = developer.post(f"/panel/products/{pid}/logo",
                            files={"logo": ("logo.svg", image, "image/svg+xml")})
    assert answer.status_code == 303, answer.text
    assert _logo_of(inprocess_server, pid) == image
    page = developer.get(f"/panel/products/{pid}")
    assert f'src="/portal/{pid}/logo?v=' in page.text and 'alt="The current logo of' in page.text
    assert "Remove logo" in page.text and "image/png" in page.text
    served = developer.http.get(inprocess_server.url + f"/portal/{pid}/logo")
    assert served.content == image and served.headers["x-content-type-options"] == "nosniff"
    for name, data, says in [("evil.png", SVG, "PNG, JPEG or WebP"),
                             ("anim.png", GIF, "PNG, JPEG or WebP"),
                             ("huge.png", png(300 * 1024), "256 KiB"),
                             ("empty.png", b"", "Choose a PNG, JPEG or WebP image")]:
        answer = developer.post(f"/panel/products/{pid}/logo",
                                files={"logo": (name, data, "image/png")})
        assert answer.status_code == 400, name
        assert 'id="e-logo"' in answer.text and says in answer.text
        assert f'src="/portal/{pid}/logo?v=' in answer.text  # the stored one is still shown
    assert _logo_of(inprocess_server, pid) == image
    # Without a file at all.
    answer = developer.post(f"/panel/products/{pid}/logo")
    assert answer.status_code == 400 and 'id="e-logo"' in answer.text
    # Roles without the products permission: no form, and a post is refused.
    for role in (Role.SUPPORT, Role.READ_ONLY):
        user = users[role]
        assert 'action="/panel/products/' + pid + '/logo"' not in user.get(
            f"/panel/products/{pid}").text
        assert user.post(f"/panel/products/{pid}/logo",
                         files={"logo": ("x.png", png(), "image/png")}).status_code == 403
        assert user.post(f"/panel/products/{pid}/logo/remove").status_code == 403
    # A forged post (no CSRF token) changes nothing either.
    assert developer.post(f"/panel/products/{pid}/logo/remove", csrf="").status_code == 403
    assert _logo_of(inprocess_server, pid) == image
    answer = developer.post(f"/panel/products/{pid}/logo/remove")
    assert answer.status_code == 303
    assert _logo_of(inprocess_server, pid) is None
    assert developer.http.get(inprocess_server.url + f"/portal/{pid}/logo").status_code == 404
    assert "No logo" in developer.get(f"/panel/products/{pid}").text
    with db(inprocess_server) as session:
        actions = [e.action for e in session.query(AuditEntry).filter_by(product_id=pid)]
    assert actions.count("product.logo_set") == 1 and actions.count("product.logo_remove") == 1


def test_an_activation_freed_in_the_portal_is_named_so(inprocess_server: InProcessServer,
                                                        users: dict[Role, PanelUser]) -> None:
    api = Api.for_server(inprocess_server)
    made = setup_license(inprocess_server, api, None, machines=2)
    freed = made.activations[0]["activation_id"]
    with PortalUser(inprocess_server, made.product_id) as holder:
        assert holder.sign_in(made.key).status_code == 303
        answer = holder.post(f"activations/{freed}/release")
        assert answer.status_code == 303, answer.text
    says = "freed by the license holder in the portal"
    viewer = users[Role.READ_ONLY]
    assert says in viewer.get(f"/panel/activations/{freed}").text
    assert says in viewer.get(f"/panel/activations?product={made.product_id}&state=removed").text
    detail = viewer.get(f"/panel/licenses/{made.license['id']}").text
    assert detail.count(says) == 1  # the other machine is still active
