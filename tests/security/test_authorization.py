"""Authorization matrix: every route of the server x every kind of credential.

The routes are enumerated from the FastAPI app itself (and cross-checked
against its OpenAPI document), and each must be classified in :data:`RULES`:

- ``public``: needs no credential (health, activation, trials, offline
  activation and deactivation, password resets, the API documents); a
  credential sent along changes nothing.
- ``owner``: an end user's route under ``/v1/activations/{activation_id}``;
  only that activation's own secret gets through.  The admin key is not an
  activation secret (the vendor has admin routes for the same things).
- ``admin``: under ``/v1/admin``; only a usable admin API key gets through.

A route the table does not know fails the test, so a new route cannot be
forgotten.  The credentials tried on each protected route: none, another
activation's secret (same license, and another product), the secret of a
removed activation and of an activation whose license was revoked, the
admin key, a wrong admin key, and the owner's secret.  Refused means exactly
401 ``unauthorized`` with the protocol's JSON error body; afterwards nothing
was changed (the owner still validates, the license is still active, ...).
Then the owner and the admin call every route they may call and get through
(any answer but 401/403/5xx; destructive calls last, on their own objects).
"""

from __future__ import annotations

import base64
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from fastapi.routing import iter_route_contexts

from software_dna.server.app import create_app
from software_dna.server.testing import LocalServer
from software_dna.wire import airgap
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases
from tests.security._family import Scale, Tally
from tests.server.helpers import Api, fingerprint, nonce
from tests.server.images import png

# --------------------------------------------------------------------------- the world


@dataclass
class Activation:
    """An activation's id and secret, and the machine seed of its fingerprint."""

    id: str
    secret: str
    machine: str


@dataclass
class World:
    """The objects the matrix calls the routes on (made fresh for each run)."""

    product: str
    other_product: str
    license_id: str
    license_key: str
    spare_key: str  # a license with free seats, for the public activation route
    owner: Activation
    sibling: Activation  # same license, another machine
    stranger: Activation  # another product
    removed: Activation  # removed by the vendor
    revoked: Activation  # its license was revoked
    end_user_id: str
    email: str
    trial_id: str
    spare_kid: str  # a trusted, not active key: retire it
    victim_license_id: str  # destructive admin calls go here, not to license_id
    test_code_id: str
    victim_activation_id: str
    victim_end_user_id: str
    renewal_code: str
    offline_receipt: str
    admin_key: str
    made: list[str] = field(default_factory=list)
    store_connector_id: str = ""  # a connected store and one of its price mappings
    store_mapping_id: int = 0
    webhook_id: str = ""  # an outbound webhook endpoint
    webhook_item_id: str = ""  # a message to it that may be sent again (cancelled)
    staff_id: str = ""  # a staff account (role change, reset, removal)
    api_key_id: str = ""  # a scoped admin API key to revoke (not the admin key)

    def fresh_product_id(self) -> str:
        """A product id nobody used yet (POST /v1/admin/products)."""
        name = "authz-new-" + secrets.token_hex(4)
        self.made.append(name)
        return name


def _activate(api: Api, product: str, key: str, machine: str, **extra: Any) -> Activation:
    answer = api.activate(product, key, machine=machine, **extra)
    assert answer.status_code in (200, 201), answer.text
    body = answer.json()
    return Activation(body["activation_id"], body["activation_secret"], machine)


def build_world(server: LocalServer) -> World:
    """A product with every kind of object the routes take, plus a second product."""
    admin = server.admin
    tag = secrets.token_hex(3)
    product, other = f"authz-{tag}", f"authz-other-{tag}"
    admin.setup_product(product, features=["pro"], limited_features=["view"], trial_days=7,
                        protection="mandatory", air_gapped=True,
                        lease_duration=300)
    admin.setup_product(other)
    spare_kid = str(admin.generate_key(product)["kid"])  # trusted, not active
    lic = admin.issue_license(product, seats=5, expires_after_days=365)
    spare = admin.issue_license(product, seats=1000)
    victim = admin.issue_license(product, seats=2, expires_after_days=30, subscription=True)
    doomed = admin.issue_license(product, seats=1)
    test_code = admin.issue_test_code(product)
    api = Api(server.url)
    try:
        email = f"authz.{tag}@example.org"
        owner = _activate(api, product, lic["license_key"], "owner-" + tag, email=email,
                          consent=True, registration={"name": "Owner " + tag})
        sibling = _activate(api, product, lic["license_key"], "sibling-" + tag)
        stranger = _activate(api, other, admin.issue_license(other)["license_key"],
                             "stranger-" + tag)
        removed = _activate(api, product, lic["license_key"], "removed-" + tag)
        admin.remove_activation(removed.id)
        revoked = _activate(api, product, doomed["license_key"], "revoked-" + tag)
        admin.revoke_license(doomed["id"])
        victim_email = f"victim.{tag}@example.org"
        victim_activation = _activate(api, product, victim["license_key"], "victim-" + tag,
                                      email=victim_email, consent=True)
        # A machine that deactivated: its signed receipt is what the offline route takes.
        gone = _activate(api, product, spare["license_key"], "gone-" + tag)
        receipt = api.deactivate(gone.id, gone.secret).json()["receipt"]
        trial = api.http.post(f"{server.url}/v1/trials", timeout=30, json={
            "product": product, "fingerprint": fingerprint("trial-" + tag), "nonce": nonce()})
        assert trial.status_code == 201, trial.text
    finally:
        api.close()
    (end_user,) = admin.find_end_users(email)
    (victim_user,) = admin.find_end_users(victim_email)
    (trial_row,) = admin.list_trials(product)
    (code,) = admin.issue_renewal_codes(30, product_id=product)
    connector = admin.connect_store("stripe", "whsec_authz_" + tag)
    mapping = admin.map_price(connector["id"], "price_authz_" + tag, product)
    hook = admin.webhook_create("https://hooks.example.invalid/in", ["license.revoked"],
                                product=product)["endpoint"]["id"]
    dropped = admin.webhook_create("https://hooks.example.invalid/gone",
                                   ["license.revoked"])["endpoint"]["id"]
    ping = admin.webhook_test(dropped)["id"]
    admin.webhook_remove(dropped)  # its ping is cancelled: it may be sent again
    staff_id = admin.add_staff(f"authz.staff.{tag}@vendor.example", role="support")["staff"]["id"]
    api_key_id = admin.create_api_key(role="read_only", name="authz " + tag)["api_key"]["id"]
    return World(
        product=product, other_product=other, license_id=lic["id"],
        license_key=lic["license_key"], spare_key=spare["license_key"], owner=owner,
        sibling=sibling, stranger=stranger, removed=removed, revoked=revoked,
        end_user_id=end_user["id"], email=email, trial_id=trial_row["id"], spare_kid=spare_kid,
        victim_license_id=victim["id"], test_code_id=test_code["id"],
        victim_activation_id=victim_activation.id,
        victim_end_user_id=victim_user["id"], renewal_code=code, offline_receipt=receipt,
        admin_key=server.admin_key,
        store_connector_id=connector["id"], store_mapping_id=mapping["id"],
        webhook_id=hook, webhook_item_id=ping, staff_id=staff_id, api_key_id=api_key_id,
    )


# --------------------------------------------------------------------------- the table

Body = Callable[[World], Any]
Params = Callable[[World], dict[str, str]]


@dataclass(frozen=True)
class Rule:
    """How one route is protected, and a valid request to it.

    ``access``: ``public`` / ``owner`` / ``admin``.  ``body`` and ``query``
    build a request that would succeed with the right credential; ``params``
    fills the path (default: the world's objects); ``phase`` orders the calls
    that get through (0 read, 1 change, 2 destroy).
    """

    access: str
    body: Body | None = None
    query: Callable[[World], dict[str, str]] | None = None
    params: Params | None = None
    phase: int = 0
    #: A raw body instead of JSON: ``(content type, bytes)`` (a product's logo).
    raw: Callable[[World], tuple[str, bytes]] | None = None


def _validate_body(w: World) -> dict[str, Any]:
    return {"fingerprint": fingerprint(w.owner.machine), "nonce": nonce()}


def _nonce_body(_: World) -> dict[str, Any]:
    return {"nonce": nonce()}


def _activation_body(w: World) -> dict[str, Any]:
    return {"product": w.product, "license_key": w.spare_key,
            "fingerprint": fingerprint("public-" + secrets.token_hex(4)), "nonce": nonce(),
            "idempotency_key": secrets.token_urlsafe(18)}


def _trial_body(w: World) -> dict[str, Any]:
    return {"product": w.product, "fingerprint": fingerprint("trial-" + secrets.token_hex(4)),
            "nonce": nonce()}


def _offline_request(w: World) -> dict[str, Any]:
    # Armored but meaningless: the route is public, its refusal is a 4xx of its own.
    junk = base64.b64encode(secrets.token_bytes(96)).decode()
    return {"request": f"-----BEGIN SOFTWARE_DNA ACTIVATION REQUEST-----\n{junk}\n"
                       "-----END SOFTWARE_DNA ACTIVATION REQUEST-----\n"}


def _staff_offline_request(w: World) -> dict[str, Any]:
    # A real request from a new machine: the vendor's staff answer it without a password.
    return {"request": airgap.build_request(
        product=w.product, license_key=w.spare_key, fingerprint=fingerprint(nonce()),
        nonce=nonce(), created_at=datetime.now(timezone.utc))}


VICTIM_LICENSE: Params = lambda w: {"license_id": w.victim_license_id}  # noqa: E731
MAIL_TEMPLATE: Params = lambda w: {"name": "license_key"}  # noqa: E731
HOOK: Params = lambda w: {"endpoint_id": w.webhook_id}  # noqa: E731

#: Every route of the app: (method, path) -> rule.  Keep in step with the server.
RULES: dict[tuple[str, str], Rule] = {
    # -- public: documents and health
    ("GET", "/openapi.json"): Rule("public"),
    ("GET", "/docs"): Rule("public"),
    ("GET", "/docs/oauth2-redirect"): Rule("public"),
    ("GET", "/redoc"): Rule("public"),
    ("GET", "/v1/health"): Rule("public"),
    ("GET", "/v1/ready"): Rule("public"),
    # -- public: the SDK's routes that start from a license key, a machine or a receipt
    ("POST", "/v1/activations"): Rule("public", _activation_body),
    ("POST", "/v1/trials"): Rule("public", _trial_body),
    ("POST", "/v1/offline/activations"): Rule("public", _offline_request),
    ("POST", "/v1/offline/deactivations"): Rule(
        "public", lambda w: {"receipt": w.offline_receipt}),
    ("POST", "/v1/password-resets"): Rule(
        "public", lambda w: {"product": w.product, "license_key": w.license_key}),
    ("POST", "/v1/password-resets/confirm"): Rule(
        "public", lambda w: {"product": w.product, "license_key": w.license_key,
                             "code": "ABCD-EFGH-JKLM", "new_password": "new one"}),
    # -- public: email confirmation links (a token nobody was mailed: 404 for every caller)
    ("GET", "/v1/email-confirmations/{token}"): Rule(
        "public", lambda w: {}, params=lambda w: {"token": "A" * 43}),
    ("POST", "/v1/email-confirmations/{token}"): Rule(
        "public", lambda w: {}, params=lambda w: {"token": "A" * 43}),
    # -- public: one-click unsubscribe (a forged token: 400 for every caller)
    ("GET", "/v1/unsubscribe/{token}"): Rule(
        "public", params=lambda w: {"token": "lic_x.AAAA.AAAA"}),
    ("POST", "/v1/unsubscribe/{token}"): Rule(
        "public", lambda w: {}, params=lambda w: {"token": "lic_x.AAAA.AAAA"}),
    # -- owner: one activation's secret
    ("POST", "/v1/activations/{activation_id}/validate"): Rule("owner", _validate_body),
    ("POST", "/v1/activations/{activation_id}/checkout"): Rule("owner", _validate_body),
    ("POST", "/v1/activations/{activation_id}/checkin"): Rule("owner", _validate_body, phase=1),
    ("GET", "/v1/activations/{activation_id}/settings"): Rule("owner"),
    ("PUT", "/v1/activations/{activation_id}/settings"): Rule(
        "owner", lambda w: {"settings": {"theme": "dark"}}, phase=1),
    ("POST", "/v1/activations/{activation_id}/renewal"): Rule(
        "owner", lambda w: {"code": w.renewal_code, "nonce": nonce()}, phase=1),
    ("POST", "/v1/activations/{activation_id}/erasure"): Rule("owner", _nonce_body, phase=2),
    ("POST", "/v1/activations/{activation_id}/deactivate"): Rule("owner", _nonce_body, phase=3),
    # -- public: payment providers' webhooks (signed by the provider, not by a credential)
    ("POST", "/v1/stores/{provider}/webhook"): Rule(
        "public", lambda w: {"id": "evt_authz", "type": "invoice.paid"},
        params=lambda w: {"provider": "stripe"}),
    # -- admin: store connectors and price mappings
    ("POST", "/v1/admin/stores/connectors"): Rule(
        "admin", lambda w: {"provider": "paddle", "secret": "pdl_ntfset_authz"}, phase=1),
    ("GET", "/v1/admin/stores/connectors"): Rule("admin"),
    ("DELETE", "/v1/admin/stores/connectors/{connector_id}"): Rule(
        "admin", params=lambda w: {"connector_id": w.store_connector_id}, phase=3),
    ("POST", "/v1/admin/stores/mappings"): Rule(
        "admin", lambda w: {"connector_id": w.store_connector_id,
                            "price_ref": "price_" + secrets.token_hex(4),
                            "product": w.product}, phase=1),
    ("GET", "/v1/admin/stores/mappings"): Rule("admin"),
    ("DELETE", "/v1/admin/stores/mappings/{mapping_id}"): Rule(
        "admin", params=lambda w: {"mapping_id": str(w.store_mapping_id)}, phase=2),
    # -- admin: products and keys
    ("POST", "/v1/admin/products"): Rule("admin", lambda w: {"id": w.fresh_product_id()},
                                         phase=1),
    ("GET", "/v1/admin/products"): Rule("admin"),
    ("GET", "/v1/admin/products/{product}"): Rule("admin"),
    ("PATCH", "/v1/admin/products/{product}"): Rule("admin", lambda w: {"name": "Renamed"},
                                                    phase=1),
    ("PUT", "/v1/admin/products/{product}/logo"): Rule(
        "admin", phase=1, raw=lambda w: ("image/png", png())),
    ("DELETE", "/v1/admin/products/{product}/logo"): Rule("admin", phase=2),
    ("POST", "/v1/admin/products/{product}/keys"): Rule("admin", phase=1),
    ("GET", "/v1/admin/products/{product}/keys"): Rule("admin"),
    ("POST", "/v1/admin/products/{product}/keys/rotate"): Rule("admin", phase=2),
    ("POST", "/v1/admin/products/{product}/keys/{kid}/retire"): Rule("admin", phase=3),
    ("GET", "/v1/admin/products/{product}/public-keys"): Rule("admin"),
    ("POST", "/v1/admin/products/{product}/test-codes"): Rule("admin", lambda w: {"days": 1},
                                                              phase=1),
    ("GET", "/v1/admin/products/{product}/test-codes"): Rule("admin"),
    ("GET", "/v1/admin/products/{product}/trials"): Rule("admin"),
    ("DELETE", "/v1/admin/trials/{trial_id}"): Rule("admin", phase=2),
    # -- admin: licenses
    ("POST", "/v1/admin/licenses"): Rule("admin", lambda w: {"product": w.product}, phase=1),
    ("GET", "/v1/admin/licenses"): Rule("admin", query=lambda w: {"product": w.product}),
    ("GET", "/v1/admin/licenses/{license_id}"): Rule("admin"),
    ("POST", "/v1/admin/licenses/lookup"): Rule("admin", lambda w: {"key": w.license_key}),
    ("PATCH", "/v1/admin/licenses/{license_id}"): Rule(
        "admin", lambda w: {"seats": 6}, params=VICTIM_LICENSE, phase=1),
    ("POST", "/v1/admin/licenses/{license_id}/suspend"): Rule(
        "admin", params=VICTIM_LICENSE, phase=1),
    ("POST", "/v1/admin/licenses/{license_id}/resume"): Rule(
        "admin", params=VICTIM_LICENSE, phase=1),
    ("POST", "/v1/admin/licenses/{license_id}/revoke"): Rule(
        "admin", params=VICTIM_LICENSE, phase=3),
    ("PUT", "/v1/admin/licenses/{license_id}/password"): Rule(
        "admin", lambda w: {"password": "vendor set"}, params=VICTIM_LICENSE, phase=1),
    ("GET", "/v1/admin/licenses/{license_id}/activations"): Rule("admin"),
    ("POST", "/v1/admin/licenses/{license_id}/extend"): Rule(
        "admin", lambda w: {"days": 3}, params=VICTIM_LICENSE, phase=1),
    ("POST", "/v1/admin/licenses/{license_id}/perpetual"): Rule(
        "admin", params=VICTIM_LICENSE, phase=2),
    ("POST", "/v1/admin/licenses/{license_id}/restore"): Rule(
        "admin", params=VICTIM_LICENSE, phase=2),
    ("POST", "/v1/admin/licenses/{license_id}/cancel"): Rule(
        "admin", params=VICTIM_LICENSE, phase=2),
    ("POST", "/v1/admin/licenses/{license_id}/rekey"): Rule(
        "admin", lambda w: {}, params=VICTIM_LICENSE, phase=2),
    ("POST", "/v1/admin/licenses/{license_id}/reset"): Rule(
        "admin", params=lambda w: {"license_id": w.test_code_id}, phase=2),
    ("GET", "/v1/admin/licenses/{license_id}/leases"): Rule("admin"),
    ("GET", "/v1/admin/licenses/{license_id}/lockout"): Rule("admin"),
    ("POST", "/v1/admin/offline/activations"): Rule("admin", _staff_offline_request, phase=1),
    ("POST", "/v1/admin/lockouts/reset"): Rule(
        "admin", lambda w: {"license_id": w.victim_license_id}, phase=1),
    ("POST", "/v1/admin/renewal-codes"): Rule("admin", lambda w: {"days": 5,
                                                                  "product": w.product},
                                              phase=1),
    ("GET", "/v1/admin/renewal-codes"): Rule("admin"),
    # -- admin: activations, end users, audit
    ("DELETE", "/v1/admin/activations/{activation_id}"): Rule(
        "admin", params=lambda w: {"activation_id": w.victim_activation_id}, phase=2),
    ("GET", "/v1/admin/end-users"): Rule("admin", query=lambda w: {"email": w.email}),
    ("GET", "/v1/admin/end-users/{end_user_id}"): Rule("admin"),
    ("POST", "/v1/admin/end-users/{end_user_id}/erase"): Rule(
        "admin", params=lambda w: {"end_user_id": w.victim_end_user_id}, phase=2),
    ("GET", "/v1/admin/audit"): Rule("admin"),
    # -- admin: mail templates and the sent log
    ("GET", "/v1/admin/mail-templates"): Rule("admin"),
    ("GET", "/v1/admin/mail-templates/{name}"): Rule("admin", params=MAIL_TEMPLATE),
    ("PUT", "/v1/admin/mail-templates/{name}"): Rule(
        "admin", lambda w: {"subject": "Key", "text": "{{ license_key }}\n"},
        params=MAIL_TEMPLATE, phase=1),
    ("DELETE", "/v1/admin/mail-templates/{name}"): Rule("admin", params=MAIL_TEMPLATE,
                                                         phase=2),
    ("POST", "/v1/admin/mail-templates/{name}/preview"): Rule(
        "admin", lambda w: {}, params=MAIL_TEMPLATE),
    ("GET", "/v1/admin/mail-log"): Rule("admin"),

    # -- admin: outbound webhooks
    ("POST", "/v1/admin/webhooks"): Rule(
        "admin", lambda w: {"url": "https://hooks.example.invalid/new",
                            "events": ["license.issued"]}, phase=1),
    ("GET", "/v1/admin/webhooks"): Rule("admin"),
    ("GET", "/v1/admin/webhooks/deliveries"): Rule("admin"),
    ("GET", "/v1/admin/webhooks/{endpoint_id}"): Rule("admin", params=HOOK),
    ("PATCH", "/v1/admin/webhooks/{endpoint_id}"): Rule(
        "admin", lambda w: {"description": "authz"}, params=HOOK, phase=1),
    ("POST", "/v1/admin/webhooks/{endpoint_id}/rotate-secret"): Rule(
        "admin", params=HOOK, phase=1),
    ("POST", "/v1/admin/webhooks/{endpoint_id}/test"): Rule("admin", params=HOOK, phase=1),
    ("POST", "/v1/admin/webhooks/deliveries/{item_id}/resend"): Rule(
        "admin", params=lambda w: {"item_id": w.webhook_item_id}, phase=1),
    ("DELETE", "/v1/admin/webhooks/{endpoint_id}"): Rule("admin", params=HOOK, phase=2),

    # -- admin: staff accounts and scoped admin API keys (tests/server/test_scoped_keys.py
    # checks each route against every role)
    ("GET", "/v1/admin/staff"): Rule("admin"),
    ("POST", "/v1/admin/staff"): Rule(
        "admin", lambda w: {"email": f"authz.{secrets.token_hex(4)}@vendor.example",
                            "role": "read_only"}, phase=1),
    ("PATCH", "/v1/admin/staff/{staff_id}"): Rule(
        "admin", lambda w: {"role": "developer"}, params=lambda w: {"staff_id": w.staff_id},
        phase=1),
    ("POST", "/v1/admin/staff/{staff_id}/reset"): Rule(
        "admin", lambda w: {"clear_totp": True}, params=lambda w: {"staff_id": w.staff_id},
        phase=1),
    ("DELETE", "/v1/admin/staff/{staff_id}"): Rule(
        "admin", params=lambda w: {"staff_id": w.staff_id}, phase=2),
    ("GET", "/v1/admin/api-keys"): Rule("admin"),
    ("POST", "/v1/admin/api-keys"): Rule(
        "admin", lambda w: {"role": "read_only", "name": "authz"}, phase=1),
    ("DELETE", "/v1/admin/api-keys/{key_id}"): Rule(
        "admin", params=lambda w: {"key_id": w.api_key_id}, phase=2),
}


_ROUTES: dict[str, set[tuple[str, str]]] = {}


def app_routes(server: LocalServer) -> set[tuple[str, str]]:
    """Every (method, path) the server's app serves (HEAD folded into GET).

    From the FastAPI app built on the server's own settings, and every
    operation of the OpenAPI document the running server publishes.
    """
    if server.url not in _ROUTES:
        _ROUTES[server.url] = _app_routes(server)
    return set(_ROUTES[server.url])


#: What this matrix leaves to others: the control panel's pages (their role matrix is
#: tests/panel/test_role_matrix.py), the license portal's pages (their reach matrix is
#: tests/portal/test_portal_reach.py), the static files and the metrics (their own token:
#: tests/server/test_metrics.py).
NOT_API = ("/panel", "/portal", "/static", "/metrics")


def _app_routes(server: LocalServer) -> set[tuple[str, str]]:
    app = create_app(server.settings)
    try:
        found: set[tuple[str, str]] = set()
        for route in iter_route_contexts(app.routes):
            path = route.path
            assert isinstance(path, str), route
            if path.startswith(NOT_API):
                continue
            for method in route.methods or {"GET"}:
                if method != "HEAD":
                    found.add((method, path))
    finally:
        app.state.sdna.engine.dispose()
    document = requests.get(f"{server.url}/openapi.json", timeout=30).json()
    for path, operations in document["paths"].items():
        for method in operations:
            found.add((method.upper(), path))
    return found


def classification_problems(routes: set[tuple[str, str]]) -> list[str]:
    """Routes the table does not classify, and table entries the server does not serve."""
    problems = [f"route {m} {p} is not classified in RULES (public, owner or admin): add it"
                for m, p in sorted(routes - set(RULES))]
    problems += [f"RULES names {m} {p}, which the server does not serve"
                 for m, p in sorted(set(RULES) - routes)]
    return problems


def _path(path: str, rule: Rule, w: World) -> str:
    values = {"activation_id": w.owner.id, "product": w.product, "license_id": w.license_id,
              "kid": w.spare_kid, "end_user_id": w.end_user_id, "trial_id": w.trial_id}
    if rule.params is not None:
        values.update(rule.params(w))
    return path.format(**values)


# --------------------------------------------------------------------------- the calls


@dataclass(frozen=True)
class Credential:
    """A value for the Authorization header (None: none sent), and who it is."""

    name: str
    header: str | None


def credentials(w: World, *, extra: bool) -> list[Credential]:
    """The callers that must be refused on protected routes (admin key: owner routes only)."""
    wrong_admin = "sdna_admin_" + base64.urlsafe_b64encode(
        secrets.token_bytes(32)).rstrip(b"=").decode()
    found = [
        Credential("no credentials", None),
        Credential("another activation's secret (same license)", f"Bearer {w.sibling.secret}"),
        Credential("another product's activation secret", f"Bearer {w.stranger.secret}"),
        Credential("a removed activation's secret", f"Bearer {w.removed.secret}"),
        Credential("a revoked license's activation secret", f"Bearer {w.revoked.secret}"),
        Credential("a wrong admin key", f"Bearer {wrong_admin}"),
        Credential("the admin key", f"Bearer {w.admin_key}"),
        Credential("the owner's secret", f"Bearer {w.owner.secret}"),
    ]
    if extra:  # malformed and near-miss headers
        found += [
            Credential("empty header", ""),
            Credential("bare scheme", "Bearer"),
            Credential("Basic scheme with the admin key", f"Basic {w.admin_key}"),
            Credential("the admin key with a changed last character",
                       f"Bearer {w.admin_key[:-1]}{'A' if w.admin_key[-1] != 'A' else 'B'}"),
            Credential("the owner's secret with a changed last character",
                       f"Bearer {w.owner.secret[:-1]}"
                       f"{'A' if w.owner.secret[-1] != 'A' else 'B'}"),
            Credential("the owner's secret, truncated", f"Bearer {w.owner.secret[:-4]}"),
            Credential("the owner's secret, lower-cased", f"Bearer {w.owner.secret.lower()}"),
            Credential("the admin key with junk appended", f"Bearer {w.admin_key}%00"),
            Credential("a 10 KB credential", "Bearer " + "A" * 10_000),
        ]
    return found


def allowed(access: str, credential: Credential, w: World) -> bool:
    """Does ``credential`` get through on a route of ``access``, by design?"""
    if access == "public":
        return True
    if access == "owner":
        return credential.header == f"Bearer {w.owner.secret}"
    return credential.header == f"Bearer {w.admin_key}"


def call(http: requests.Session, url: str, method: str, path: str, rule: Rule, w: World,
         credential: Credential) -> requests.Response:
    """One request to ``path`` (already filled) with ``credential``."""
    headers = {} if credential.header is None else {"Authorization": credential.header}
    body = rule.body(w) if rule.body is not None else None
    query = rule.query(w) if rule.query is not None else None
    if rule.raw is not None:
        kind, data = rule.raw(w)
        return http.request(method, url + path, data=data, params=query,
                            headers={**headers, "Content-Type": kind}, timeout=30)
    return http.request(method, url + path, json=body, params=query, headers=headers,
                        timeout=30)


def _is_unauthorized(answer: requests.Response) -> bool:
    if answer.status_code != 401 or not answer.headers.get("content-type", "").startswith(
            "application/json"):
        return False
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and set(body) == {"error"} and \
        body["error"].get("code") == "unauthorized"


def _intact(server: LocalServer, w: World, http: requests.Session, tally: Tally) -> None:
    """Nothing the refused calls could have changed was changed."""
    api = Api(server.url)
    api.http = http
    for who in (w.owner, w.sibling):
        answer = api.validate(who.id, who.secret, machine=who.machine)
        tally.check(answer.status_code == 200,
                    f"after the refused calls {who.machine} validates: HTTP {answer.status_code}")
    admin = server.admin
    lic = admin.get_license(w.license_id)
    tally.check(lic["status"] == "active" and lic["seats"] == 5,
                f"after the refused calls the license is {lic['status']}, {lic['seats']} seats")
    victim = admin.get_license(w.victim_license_id)
    tally.check(victim["status"] == "active" and not victim["password_set"],
                f"after the refused calls the victim license changed: {victim}")
    statuses = {k["kid"]: k["status"] for k in admin.list_keys(w.product)}
    tally.check(statuses.get(w.spare_kid) == "trusted" and len(statuses) == 2,
                f"after the refused calls the keys changed: {statuses}")
    user = admin.export_end_user(w.end_user_id)
    tally.check(user["email"] == w.email and user["erased_at"] is None,
                "after the refused calls the end user was erased")
    tally.check(len(admin.list_trials(w.product)) == 1, "after the refused calls a trial is gone")
    names = {p["id"] for p in admin.list_products()}
    tally.check(not names & set(w.made), "a product was created by a refused call")
    settings = api.get_settings(w.owner.id, w.owner.secret).json()["settings"]
    tally.check(settings == {}, f"the owner's settings were changed: {settings}")


def run_matrix(server: LocalServer, *, extra: bool = False, family: str = "authorization",
               rounds: int = 1) -> Tally:
    """The whole matrix on ``server``: refusals, integrity, then the calls that get through."""
    tally = Tally(family)
    for problem in classification_problems(app_routes(server)):
        tally.check(False, problem)
    http = requests.Session()
    try:
        for _ in range(rounds):
            w = build_world(server)
            _refusals(server, w, http, tally, extra=extra)
            _intact(server, w, http, tally)
            _own_routes_refused(server, w, http, tally)
            _through(server, w, http, tally)
    finally:
        http.close()
    return tally


def _refusals(server: LocalServer, w: World, http: requests.Session, tally: Tally, *,
              extra: bool) -> None:
    for (method, template), rule in sorted(RULES.items()):
        path = _path(template, rule, w)
        for credential in credentials(w, extra=extra):
            if rule.access == "public":
                if rule.body is not None or "{" in template:
                    continue  # public routes that change things: checked in _through
                answer = call(http, server.url, method, path, rule, w, credential)
                tally.check(answer.status_code < 400,
                            f"public {method} {path} with {credential.name}: HTTP "
                            f"{answer.status_code}")
                continue
            if allowed(rule.access, credential, w):
                continue
            answer = call(http, server.url, method, path, rule, w, credential)
            tally.check(_is_unauthorized(answer),
                        f"{rule.access} route {method} {template} with {credential.name}: "
                        f"HTTP {answer.status_code} {answer.text[:160]}")


#: Owner routes that hand out a token: never to a removed or revoked activation.
TOKEN_ROUTES = {"/v1/activations/{activation_id}/validate",
                "/v1/activations/{activation_id}/checkout",
                "/v1/activations/{activation_id}/checkin",
                "/v1/activations/{activation_id}/renewal"}


def _own_routes_refused(server: LocalServer, w: World, http: requests.Session,
                        tally: Tally) -> None:
    """A removed activation gets 410 everywhere; a revoked license's activation no token.

    Its settings, erasure and deactivation stay open to it (the end user's own
    data and seat); deactivation runs last.
    """
    for who, refused in ((w.removed, {410}), (w.revoked, {403, 410})):
        own = World(**{**w.__dict__, "owner": who})
        credential = Credential("its own secret", f"Bearer {who.secret}")
        for (method, template), rule in sorted(RULES.items(),
                                               key=lambda kv: (kv[1].phase, kv[0])):
            if rule.access != "owner":
                continue
            answer = call(http, server.url, method, _path(template, rule, own), rule, own,
                          credential)
            # Erasure on a revoked license erases, then answers the signed refusal
            # (issue 12): a fresh token would let the app forget the revocation.
            erasure = who is w.revoked and template.endswith("/erasure")
            if who is w.removed or template in TOKEN_ROUTES or erasure:
                ok = answer.status_code in refused and "token" not in answer.json()
            else:
                ok = answer.status_code < 400
            tally.check(ok, f"{method} {template} of {who.machine} with its own secret: "
                            f"HTTP {answer.status_code} {answer.text[:160]}")


def _through(server: LocalServer, w: World, http: requests.Session, tally: Tally) -> None:
    """The owner and the admin get through every route of theirs; public routes take anyone."""
    owner = Credential("the owner's secret", f"Bearer {w.owner.secret}")
    admin = Credential("the admin key", f"Bearer {w.admin_key}")
    for (method, template), rule in sorted(RULES.items(), key=lambda kv: (kv[1].phase, kv[0])):
        path = _path(template, rule, w)
        if rule.access == "public":
            if rule.body is None:
                continue  # the plain GETs were called with every credential above
            # Any caller, any credential: the answer does not depend on the credential
            # (a refusal of its own, such as a wrong reset code, is the same for all).
            statuses: set[int] = set()
            for credential in (Credential("no credentials", None), owner, admin):
                answer = call(http, server.url, method, path, rule, w, credential)
                statuses.add(answer.status_code)
                tally.check(not _is_unauthorized(answer) and answer.status_code < 500,
                            f"public {method} {path} with {credential.name}: HTTP "
                            f"{answer.status_code} {answer.text[:160]}")
            tally.check(len(statuses) == 1 or statuses <= {200, 201},
                        f"public {method} {path}: the answer depends on the credential: "
                        f"{sorted(statuses)}")
            continue
        who = owner if rule.access == "owner" else admin
        answer = call(http, server.url, method, path, rule, w, who)
        tally.check(answer.status_code < 400,
                    f"{rule.access} route {method} {template} with {who.name}: HTTP "
                    f"{answer.status_code} {answer.text[:160]}")


# --------------------------------------------------------------------------- pytest


def test_every_route_is_classified(server: LocalServer) -> None:
    routes = app_routes(server)
    assert len(routes) >= 50
    assert classification_problems(routes) == []


def test_an_unclassified_route_is_reported(server: LocalServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The check that makes a new route impossible to forget can itself fail."""
    routes = app_routes(server)
    monkeypatch.delitem(RULES, ("GET", "/v1/admin/audit"))
    assert classification_problems(routes) == [
        "route GET /v1/admin/audit is not classified in RULES (public, owner or admin): add it"]
    monkeypatch.setitem(RULES, ("GET", "/v1/admin/gone"), Rule("admin"))
    assert len(classification_problems(routes)) == 2


def test_authorization_matrix(server: LocalServer) -> None:
    run_matrix(server).assert_clean()


def family(scale: Scale) -> Tally:
    """The matrix on SQLite (short); long: malformed credentials too, and on PostgreSQL."""
    tally = Tally("authorization")
    with tempfile.TemporaryDirectory(prefix="sdna-authz-") as folder, \
            LocalServer(Path(folder), log_level="warning") as srv:
        tally.merge(run_matrix(srv, extra=scale is Scale.LONG,
                               rounds=scale.pick(1, 3)))
    if scale is Scale.LONG:
        databases = PgDatabases(PG_ADMIN_URL)
        try:
            with tempfile.TemporaryDirectory(prefix="sdna-authz-pg-") as folder, \
                    LocalServer(Path(folder), database_url=databases.create(), workers=2,
                                log_level="warning") as srv:
                tally.merge(run_matrix(srv, extra=True, rounds=2))
        finally:
            databases.drop_all()
    return tally
