"""Scoped admin API keys: every ``/v1/admin`` route asks the role matrix, for every role.

The matrix is read off the app itself (every route under ``/v1/admin``), so a
route added later without a permission fails here; each route is then called
with a key of every role: the roles the permission allows get past the check
(any answer but 401/403), the others get 403 ``forbidden`` and change nothing.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import pytest
import requests
from fastapi.routing import APIRoute
from sqlalchemy import select

from software_dna.server.adminclient import AdminClient, AdminError
from software_dna.server.app import ROUTERS
from software_dna.server.domain.roles import Permission, Role, allows
from software_dna.server.models import AuditEntry
from software_dna.server.services.admin import create_admin_key, revoke_admin_key
from software_dna.server.testing import InProcessServer
from tests.server.helpers import error_code

#: Sample values for the path parameters of the admin routes (none exists: 404 when allowed).
_PARAMS = {"product": "no-such-product", "name": "license_key", "mapping_id": "999999",
           "kid": "k4.pid." + "A" * 43}


def _admin_routes(server: InProcessServer) -> list[APIRoute]:
    """Every admin route of the app's routers (their paths carry the ``/v1/admin`` prefix)."""
    routes = [r for router in ROUTERS for r in router.routes
              if isinstance(r, APIRoute) and r.path.startswith("/v1/admin")]
    # The app serves no admin operation that these routers do not hold.
    served = {(method.upper(), path) for path, ops in server.app.openapi()["paths"].items()
              if path.startswith("/v1/admin") for method in ops}
    assert served == {(m, r.path) for r in routes for m in _methods(r)}
    return routes


def _methods(route: APIRoute) -> list[str]:
    return sorted(route.methods or ())


def _permissions(route: APIRoute) -> tuple[Permission, ...]:
    """The permissions the route's ``require`` dependency names (() when it has none)."""
    found: list[Permission] = []
    for dep in route.dependant.dependencies:
        found.extend(getattr(dep.call, "permissions", ()))
    return tuple(found)


def _url(route: APIRoute) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: _PARAMS.get(m.group(1), "nothing_here_1"), route.path)


def _key(server: InProcessServer, role: Role) -> tuple[str, str]:
    """A new admin API key of ``role``: ``(key, its id)``."""
    with server.app.state.sdna.sessions() as session:
        key = create_admin_key(session, server.app.state.sdna.ctx, role=role, name=role.value)
        row = session.scalars(select(AuditEntry).where(AuditEntry.action == "admin_key.create")
                              .order_by(AuditEntry.id.desc())).first()
        assert row is not None and row.detail is not None
        return key, str(row.detail["id"])


@pytest.fixture(scope="module")
def keys(inprocess_server: InProcessServer) -> dict[Role, tuple[str, str]]:
    return {role: _key(inprocess_server, role) for role in Role}


def _call(http: requests.Session, server: InProcessServer, route: APIRoute, method: str,
          key: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body: Any = {} if method in ("POST", "PUT", "PATCH") else None
    return http.request(method, server.url + _url(route), json=body, headers=headers)


def test_every_admin_route_names_a_permission(inprocess_server: InProcessServer) -> None:
    routes = _admin_routes(inprocess_server)
    assert len(routes) > 50
    missing = [f"{_methods(r)} {r.path}" for r in routes if not _permissions(r)]
    assert missing == []


def _permission_of(server: InProcessServer, method: str, path: str) -> tuple[Permission, ...]:
    for route in _admin_routes(server):
        if route.path == path and method in _methods(route):
            return _permissions(route)
    raise AssertionError(f"no route {method} {path}")


def test_the_sensitive_routes_need_the_right_permission(inprocess_server: InProcessServer
                                                        ) -> None:
    # Personal data (decrypted addresses, registration details) needs PERSONAL_DATA.
    for method, path in [("GET", "/v1/admin/end-users"), ("GET", "/v1/admin/mail-log"),
                         ("GET", "/v1/admin/end-users/{end_user_id}")]:
        assert _permission_of(inprocess_server, method, path) == (Permission.PERSONAL_DATA,)
    assert _permission_of(inprocess_server, "POST", "/v1/admin/end-users/{end_user_id}/erase") \
        == (Permission.ERASE,)
    assert _permission_of(inprocess_server, "POST", "/v1/admin/licenses/{license_id}/restore") \
        == (Permission.ERASE,)
    for method, path in [("GET", "/v1/admin/staff"), ("POST", "/v1/admin/staff"),
                         ("PATCH", "/v1/admin/staff/{staff_id}"),
                         ("POST", "/v1/admin/staff/{staff_id}/reset"),
                         ("DELETE", "/v1/admin/staff/{staff_id}"),
                         ("GET", "/v1/admin/api-keys"), ("POST", "/v1/admin/api-keys"),
                         ("DELETE", "/v1/admin/api-keys/{key_id}")]:
        assert _permission_of(inprocess_server, method, path) == (Permission.STAFF,)
    assert _permission_of(inprocess_server, "POST", "/v1/admin/products/{product}/keys/rotate") \
        == (Permission.KEYS,)
    assert _permission_of(inprocess_server, "POST", "/v1/admin/licenses/{license_id}/revoke") \
        == (Permission.LICENSES,)
    # Every change needs more than READ: a read-only key changes nothing.  (A POST that
    # only reads: the key look-up, whose key travels in the body to stay out of logs.)
    reads = {"/v1/admin/licenses/lookup"}
    for route in _admin_routes(inprocess_server):
        if set(_methods(route)) & {"POST", "PUT", "PATCH", "DELETE"} and route.path not in reads:
            assert Permission.READ not in _permissions(route), route.path


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_role_matrix_over_every_admin_route(inprocess_server: InProcessServer,
                                            keys: dict[Role, tuple[str, str]],
                                            role: Role) -> None:
    key = keys[role][0]
    wrong: list[str] = []
    with inprocess_server.session() as http:
        for route in _admin_routes(inprocess_server):
            needed = _permissions(route)
            allowed = all(allows(role, p) for p in needed)
            for method in _methods(route):
                answer = _call(http, inprocess_server, route, method, key)
                if allowed and answer.status_code in (401, 403):
                    wrong.append(f"{role.value} refused {method} {route.path}: "
                                 f"{answer.status_code} {answer.text[:200]}")
                elif not allowed and (answer.status_code != 403
                                      or error_code(answer) != "forbidden"):
                    wrong.append(f"{role.value} let through {method} {route.path}: "
                                 f"{answer.status_code}")
    assert wrong == []


def test_no_key_a_wrong_key_and_a_revoked_key_get_401(inprocess_server: InProcessServer) -> None:
    key, key_id = _key(inprocess_server, Role.OWNER)
    with inprocess_server.app.state.sdna.sessions() as session:
        revoke_admin_key(session, key_id)
    forged = "sdna_admin_" + secrets.token_urlsafe(32)
    with inprocess_server.session() as http:
        for route in _admin_routes(inprocess_server):
            method = _methods(route)[0]
            for credential in (None, forged, key):
                answer = _call(http, inprocess_server, route, method, credential)
                assert answer.status_code == 401, (method, route.path, credential)
                assert error_code(answer) == "unauthorized"


def test_audit_entries_carry_the_key_id(inprocess_server: InProcessServer,
                                        keys: dict[Role, tuple[str, str]]) -> None:
    developer_key, developer_id = keys[Role.DEVELOPER]
    pid = "scoped-" + secrets.token_hex(3)
    developer = AdminClient(inprocess_server.url, developer_key,
                            session=inprocess_server.session())
    developer.create_product(pid, name="Scoped")
    # A developer may not issue a license: refused, nothing recorded.
    with pytest.raises(AdminError) as info:
        developer.issue_license(pid)
    assert info.value.status == 403 and info.value.code == "forbidden"
    support_key, support_id = keys[Role.SUPPORT]
    support = AdminClient(inprocess_server.url, support_key, session=inprocess_server.session())
    issued = support.issue_license(pid)
    with inprocess_server.app.state.sdna.sessions() as session:
        made = session.scalars(select(AuditEntry).where(
            AuditEntry.product_id == pid, AuditEntry.action == "product.create")).one()
        assert (made.actor, made.actor_id) == ("admin", developer_id)
        license_entries = list(session.scalars(select(AuditEntry).where(
            AuditEntry.license_id == issued["id"])))
        assert license_entries and {e.actor_id for e in license_entries} == {support_id}


def test_owner_keys_manage_keys_and_staff(inprocess_server: InProcessServer,
                                          keys: dict[Role, tuple[str, str]]) -> None:
    owner = AdminClient(inprocess_server.url, keys[Role.OWNER][0],
                        session=inprocess_server.session())
    made = owner.create_api_key(role="read_only", name="dashboards")
    assert made["key"].startswith("sdna_admin_") and made["api_key"]["role"] == "read_only"
    listed = owner.list_api_keys()
    assert made["api_key"]["id"] in [k["id"] for k in listed]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    reader = AdminClient(inprocess_server.url, made["key"], session=inprocess_server.session())
    assert isinstance(reader.list_products(), list)
    with pytest.raises(AdminError) as info:
        reader.create_api_key(role="owner", name="escalate")
    assert info.value.status == 403
    # An admin key may not make keys either (staff and keys are the owner's).
    admin = AdminClient(inprocess_server.url, keys[Role.ADMIN][0],
                        session=inprocess_server.session())
    with pytest.raises(AdminError) as info:
        admin.create_api_key(role="owner", name="escalate")
    assert info.value.status == 403
    with pytest.raises(AdminError) as info:
        admin.add_staff("sneaky@vendor.example", role="owner")
    assert info.value.status == 403
    revoked = owner.revoke_api_key(made["api_key"]["id"])
    assert revoked["revoked_at"] is not None
    with pytest.raises(AdminError) as info:
        reader.list_products()
    assert info.value.status == 401
    with pytest.raises(AdminError) as info:
        owner.create_api_key(role="superuser", name="x")
    assert info.value.status in (400, 422)

    address = f"ops-{secrets.token_hex(3)}@vendor.example"
    added = owner.add_staff(address, role="support", name="Ops")
    assert added["password"] and len(added["password"]) >= 12
    assert added["staff"]["role"] == "support" and added["staff"]["totp"] is False
    staff_id = added["staff"]["id"]
    assert owner.set_staff_role(staff_id, "developer")["role"] == "developer"
    reset = owner.reset_staff(staff_id, clear_totp=True)
    assert reset["password"] and reset["password"] != added["password"]
    assert address in [s["email"] for s in owner.list_staff()]
    assert owner.remove_staff(staff_id)["disabled_at"] is not None
    assert address not in [s["email"] for s in owner.list_staff()]
    given = owner.add_staff(f"own-{secrets.token_hex(3)}@vendor.example", role="admin",
                            password="a long enough password")
    assert given["password"] is None
    with pytest.raises(AdminError) as info:
        owner.add_staff(f"short-{secrets.token_hex(3)}@vendor.example", role="admin",
                        password="short")
    assert info.value.status == 400


def test_only_commerce_roles_configure_what_leaves_the_server(
        inprocess_server: InProcessServer, keys: dict[Role, tuple[str, str]]) -> None:
    """Webhooks, stores and mail templates can send keys and buyers' data out, or issue
    licenses: a developer key (products, keys) touches none of them; an admin key does."""
    developer = AdminClient(inprocess_server.url, keys[Role.DEVELOPER][0],
                            session=inprocess_server.session())
    admin = AdminClient(inprocess_server.url, keys[Role.ADMIN][0],
                        session=inprocess_server.session())
    with pytest.raises(AdminError) as info:
        developer.webhook_create("https://hooks.example.invalid/x", ["license.issued"])
    assert info.value.status == 403 and info.value.code == "forbidden"
    with pytest.raises(AdminError) as info:
        developer.set_mail_template("license_key", subject="Key", text="{{ x }}")
    assert info.value.status == 403 and info.value.code == "forbidden"
    made = admin.webhook_create("https://hooks.example.invalid/pd", ["license.issued"],
                                personal_data=True)
    endpoint = made["endpoint"]["id"]
    with pytest.raises(AdminError) as info:
        developer.webhook_update(endpoint, url="https://evil.example/hook")
    assert info.value.status == 403


def test_only_personal_data_roles_search_licenses_by_email(
        inprocess_server: InProcessServer, keys: dict[Role, tuple[str, str]]) -> None:
    """Whether an address holds a license is personal data: a search by email needs a role
    that may see it, while the same search by a reference stays open to readers."""
    for role in Role:
        with inprocess_server.session() as http:
            answer = http.get(inprocess_server.url + "/v1/admin/licenses",
                              params={"q": "someone@example.com"},
                              headers={"Authorization": f"Bearer {keys[role][0]}"})
            by_ref = http.get(inprocess_server.url + "/v1/admin/licenses",
                              params={"q": "ORDER-1"},
                              headers={"Authorization": f"Bearer {keys[role][0]}"})
        assert by_ref.status_code == 200, role
        if allows(role, Permission.PERSONAL_DATA):
            assert answer.status_code == 200, role
        else:
            assert answer.status_code == 403 and error_code(answer) == "forbidden", role


def test_only_commerce_roles_brand_the_mails(
        inprocess_server: InProcessServer, keys: dict[Role, tuple[str, str]]) -> None:
    """Buyers' replies go to the branding's support address and its logo loads in every mail
    opened: a developer makes products but does not choose either, at creation or later."""
    developer = AdminClient(inprocess_server.url, keys[Role.DEVELOPER][0],
                            session=inprocess_server.session())
    admin = AdminClient(inprocess_server.url, keys[Role.ADMIN][0],
                        session=inprocess_server.session())
    product = f"brand-{secrets.token_hex(3)}"
    with pytest.raises(AdminError) as info:
        developer.create_product(product, branding={"support_email": "me@evil.example"})
    assert info.value.status == 403
    developer.create_product(product)
    admin.update_product(product, branding={"colour": "#123456",
                                            "support_email": "help@vendor.example"})
    for branding in ({"colour": "#123456", "support_email": "me@evil.example"},
                     {"colour": "#123456", "support_email": "help@vendor.example",
                      "logo_url": "https://evil.example/pixel.png"},
                     {"colour": "#123456"}):  # dropping the address redirects replies too
        with pytest.raises(AdminError) as info:
            developer.update_product(product, branding=branding)
        assert info.value.status == 403
    same = developer.update_product(product, name="Renamed", branding={
        "colour": "#123456", "support_email": "help@vendor.example"})
    assert same["branding"]["support_email"] == "help@vendor.example"
