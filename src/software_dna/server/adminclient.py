"""The one HTTP client of a license server's admin API (``/v1/admin``).

Used by the ``software-dna`` CLI when it works through a running server
(``--server-url``) and by the tests and demos::

    with AdminClient("https://licenses.example.com", admin_key) as admin:
        admin.create_product("acme-editor", features=["pro"])
        admin.generate_key("acme-editor")
        key = admin.issue_license("acme-editor", seats=2)["license_key"]

Every method returns the server's decoded JSON answer (the shapes of
docs/protocol.md) and raises :class:`AdminError` for an error answer, or
``requests.RequestException`` when the server cannot be reached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import requests

from software_dna.wire.codes import Code

__all__ = ["AdminClient", "AdminError", "JSONDict"]

#: A JSON object of the admin API.
JSONDict = dict[str, Any]


class AdminError(Exception):
    """The server refused a request.

    Attributes:
        status: the HTTP status (int).
        code: the protocol error code (a :class:`~software_dna.wire.codes.Code`
            member when the code is known, else the string sent).
        message: the server's sentence.
        details: structured facts the server sent (e.g. ``{"kind": "product"}``
            with ``not_found``), or None.
    """

    def __init__(self, status: int, code: str, message: str,
                 details: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code: str = _code(code)
        self.message = message
        self.details = dict(details) if details is not None else None


_CODES: dict[str, Code] = {code.value: code for code in Code}


def _code(text: str) -> str:
    return _CODES.get(text, text)


def _time(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seg(value: str) -> str:
    """One URL path segment, every reserved character escaped."""
    return quote(value, safe="")


class AdminClient:
    """A client of the admin API authenticated with an admin API key.

    Args:
        url: the server's base URL (``http://`` or ``https://``).
        admin_key: the admin API key (``sdna_admin_…``).
        timeout: seconds to wait for each answer.
        session: the ``requests.Session`` to send with (tests mount an in-process
            transport adapter on one); a new one by default. The client sets
            its ``Authorization`` header and closes it in :meth:`close`.
        ca_file: a CA bundle (PEM path) that alone is trusted for an https URL; None:
            the system's (and ``REQUESTS_CA_BUNDLE``, as requests does). Verification is
            never switched off.
    """

    def __init__(self, url: str, admin_key: str, *, timeout: float = 30.0,
                 session: requests.Session | None = None, ca_file: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        # Per request: requests lets REQUESTS_CA_BUNDLE override a session's ``verify``.
        self._verify: str | bool = ca_file if ca_file is not None else True
        self._session = session if session is not None else requests.Session()
        self._session.headers["Authorization"] = f"Bearer {admin_key}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Call ``/v1/admin<path>``; returns the JSON body; raises :class:`AdminError`."""
        return self._call(method, f"/v1/admin{path}", json=json, params=params)

    def _call(self, method: str, path: str, *, json: Any = None,
              params: Mapping[str, Any] | None = None,
              headers: Mapping[str, str | None] | None = None,
              data: bytes | None = None) -> Any:
        answer = self._session.request(method, f"{self.url}{path}", json=json, params=params,
                                       headers=headers, data=data, timeout=self.timeout,
                                       verify=self._verify)
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code >= 400:
            error = body.get("error") if isinstance(body, dict) else None
            error = error if isinstance(error, dict) else {}
            details = error.get("details")
            raise AdminError(answer.status_code, str(error.get("code", "http_error")),
                             str(error.get("message", answer.text[:200])),
                             details if isinstance(details, dict) else None)
        return body

    def _obj(self, method: str, path: str, *, json: Any = None,
             params: Mapping[str, Any] | None = None) -> JSONDict:
        result: JSONDict = self.request(method, path, json=json, params=params)
        return result

    def _list(self, path: str, field: str,
              params: Mapping[str, Any] | None = None) -> list[JSONDict]:
        result: list[JSONDict] = self.request("GET", path, params=params)[field]
        return result

    # -- products

    def create_product(self, product_id: str, **fields: Any) -> JSONDict:
        """Create a product (fields as in ``POST /v1/admin/products``)."""
        return self._obj("POST", "/products", json={"id": product_id, **fields})

    def setup_product(self, product_id: str, **fields: Any) -> list[str]:
        """Create a product and its first signing key; returns its ``k4.public`` keys."""
        self.create_product(product_id, **fields)
        self.generate_key(product_id)
        return self.public_keys(product_id)

    def list_products(self) -> list[JSONDict]:
        """Every product."""
        return self._list("/products", "products")

    def get_product(self, product_id: str) -> JSONDict:
        """One product."""
        return self._obj("GET", f"/products/{_seg(product_id)}")

    def update_product(self, product_id: str, **fields: Any) -> JSONDict:
        """Change a product's settings."""
        return self._obj("PATCH", f"/products/{_seg(product_id)}", json=fields)

    def set_product_logo(self, product_id: str, data: bytes) -> JSONDict:
        """Upload the product's logo for its license portal (``PUT .../logo``).

        Args:
            data: the image file's bytes (PNG, JPEG or WebP, at most 256 KiB); the
                server reads the type from them.

        Returns:
            ``{"product", "content_type", "size", "sha256", "url", "updated_at"}``.
        """
        result: JSONDict = self._call(
            "PUT", f"/v1/admin/products/{_seg(product_id)}/logo", data=data,
            headers={"Content-Type": "application/octet-stream"})
        return result

    def remove_product_logo(self, product_id: str) -> JSONDict:
        """Remove the product's logo (``{"ok": true}``; 404 ``not_found`` when it has none)."""
        return self._obj("DELETE", f"/products/{_seg(product_id)}/logo")

    # -- keys

    def generate_key(self, product_id: str) -> JSONDict:
        """Generate a signing key (the first becomes active)."""
        return self._obj("POST", f"/products/{_seg(product_id)}/keys")

    def list_keys(self, product_id: str) -> list[JSONDict]:
        """Every key of the product with its status."""
        return self._list(f"/products/{_seg(product_id)}/keys", "keys")

    def rotate_key(self, product_id: str, kid: str | None = None) -> JSONDict:
        """Rotate to a new key (or to the trusted key ``kid``); returns the new active key."""
        body = {"kid": kid} if kid is not None else None
        return self._obj("POST", f"/products/{_seg(product_id)}/keys/rotate", json=body)

    def retire_key(self, product_id: str, kid: str) -> JSONDict:
        """Retire a (non-active) key."""
        return self._obj("POST", f"/products/{_seg(product_id)}/keys/{_seg(kid)}/retire")

    def public_keys(self, product_id: str) -> list[str]:
        """The ``k4.public`` keys to build into the app, active first."""
        result: list[str] = self.request(
            "GET", f"/products/{_seg(product_id)}/public-keys")["public_keys"]
        return result

    # -- licenses

    def issue_license(
        self,
        product_id: str,
        *,
        seats: int = 1,
        expires_at: datetime | str | None = None,
        features: Iterable[str] | None = None,
        password: str | None = None,
        key_prefix: str | None = None,
        **terms: Any,
    ) -> JSONDict:
        """Issue a license; the answer's ``license_key`` is the only copy of the key.

        ``terms``: more fields of ``POST /v1/admin/licenses``, e.g. ``kind``,
        ``expires_after_days``, ``subscription``, ``seat_mode``, ``rollover``.
        """
        body: JSONDict = {"product": product_id, "seats": seats, **terms}
        if expires_at is not None:
            body["expires_at"] = _time(expires_at)
        if features is not None:
            body["features"] = list(features)
        if password is not None:
            body["password"] = password
        if key_prefix is not None:
            body["key_prefix"] = key_prefix
        return self._obj("POST", "/licenses", json=body)

    def list_licenses(self, product_id: str | None = None, **params: Any) -> list[JSONDict]:
        """Licenses, newest first (``limit``)."""
        query = dict(params)
        if product_id is not None:
            query["product"] = product_id
        return self._list("/licenses", "licenses", params=query)

    def get_license(self, license_id: str) -> JSONDict:
        """One license (the key only as its hint)."""
        return self._obj("GET", f"/licenses/{_seg(license_id)}")

    def lookup_license(self, license_key: str) -> JSONDict:
        """The license of a full key (sent in the body, never in the URL); 404 when none."""
        return self._obj("POST", "/licenses/lookup", json={"key": license_key})

    def search_licenses(self, q: str, **params: Any) -> list[JSONDict]:
        """Licenses matching ``q`` (key hint, customer / order reference prefix, license id,
        email address), newest first; ``product``, ``status``, ``kind``, ``limit``.

        A full key is refused by the server: use :meth:`lookup_license`.
        """
        return self._list("/licenses", "licenses", params={"q": q, **params})

    def update_license(self, license_id: str, **fields: Any) -> JSONDict:
        """Set ``seats``, ``expires_at`` (None: perpetual), ``features``, seat mode, roll-over."""
        if "expires_at" in fields:
            fields["expires_at"] = _time(fields["expires_at"])
        if "features" in fields and fields["features"] is not None:
            fields["features"] = list(fields["features"])
        return self._obj("PATCH", f"/licenses/{_seg(license_id)}", json=fields)

    def suspend_license(self, license_id: str) -> JSONDict:
        """Suspend a license."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/suspend")

    def resume_license(self, license_id: str) -> JSONDict:
        """Resume a suspended license."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/resume")

    def revoke_license(self, license_id: str) -> JSONDict:
        """Revoke a license for good."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/revoke")

    def set_password(self, license_id: str, password: str | None) -> JSONDict:
        """Set (or with None remove) the activation password."""
        return self._obj("PUT", f"/licenses/{_seg(license_id)}/password",
                         json={"password": password})

    def extend_license(self, license_id: str, *, days: int | None = None,
                       until: datetime | str | None = None,
                       allow_past: bool = False) -> JSONDict:
        """Add ``days`` to a timed license, or move its end to ``until`` (a datetime, an
        RFC 3339 string or a plain date ``YYYY-MM-DD``: through that day, UTC); an end in
        the past needs ``allow_past``."""
        body: JSONDict = {"days": days} if days is not None else {"until": _time(until)}
        if allow_past:
            body["allow_past"] = True
        return self._obj("POST", f"/licenses/{_seg(license_id)}/extend", json=body)

    def make_perpetual(self, license_id: str) -> JSONDict:
        """Convert a license to perpetual."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/perpetual")

    def restore_license(self, license_id: str) -> JSONDict:
        """Lift the limits an erasure put on a license and its user seats."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/restore")

    def cancel_subscription(self, license_id: str) -> JSONDict:
        """Cancel a subscription (the license is suspended)."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/cancel")

    # -- renewal codes, test codes, trials

    def make_renewal_codes(self, days: int, *, product_id: str | None = None,
                           license_id: str | None = None, count: int = 1) -> list[JSONDict]:
        """Make renewal codes; returns them, each with its ``code`` (shown only here)."""
        body: JSONDict = {"days": days, "count": count}
        if product_id is not None:
            body["product"] = product_id
        if license_id is not None:
            body["license_id"] = license_id
        result: list[JSONDict] = self.request("POST", "/renewal-codes",
                                              json=body)["renewal_codes"]
        return result

    def issue_renewal_codes(self, days: int, *, product_id: str | None = None,
                            license_id: str | None = None, count: int = 1) -> list[str]:
        """Make renewal codes; returns the codes only."""
        return [str(c["code"]) for c in self.make_renewal_codes(
            days, product_id=product_id, license_id=license_id, count=count)]

    def list_renewal_codes(self, **params: Any) -> list[JSONDict]:
        """Renewal codes (``product``, ``license_id``, ``limit``)."""
        return self._list("/renewal-codes", "renewal_codes", params=params)

    def issue_test_code(self, product_id: str, *, days: int = 1, **fields: Any) -> JSONDict:
        """Issue a test code; the answer's ``license_key`` is the only copy."""
        return self._obj("POST", f"/products/{_seg(product_id)}/test-codes",
                         json={"days": days, **fields})

    def list_test_codes(self, product_id: str) -> list[JSONDict]:
        """The product's test codes."""
        return self._list(f"/products/{_seg(product_id)}/test-codes", "licenses")

    def reset_test_code(self, license_id: str) -> JSONDict:
        """Reset a test code (activations removed, its days start again)."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/reset")

    def list_trials(self, product_id: str) -> list[JSONDict]:
        """The machines that used the product's trial."""
        return self._list(f"/products/{_seg(product_id)}/trials", "trials")

    def remove_trial(self, trial_id: str) -> JSONDict:
        """Forget a trial machine (its trial license is revoked)."""
        return self._obj("DELETE", f"/trials/{_seg(trial_id)}")

    # -- activations, seats

    def list_activations(self, license_id: str) -> list[JSONDict]:
        """Activations of a license, removed ones included."""
        return self._list(f"/licenses/{_seg(license_id)}/activations", "activations")

    def remove_activation(self, activation_id: str) -> JSONDict:
        """Remove an activation (frees its seat)."""
        return self._obj("DELETE", f"/activations/{_seg(activation_id)}")

    def leases(self, license_id: str) -> JSONDict:
        """``{"license_id", "seats", "leases"}``: the live floating leases, earliest end first."""
        return self._obj("GET", f"/licenses/{_seg(license_id)}/leases")

    def list_leases(self, license_id: str) -> list[JSONDict]:
        """The live floating leases of a license, earliest end first."""
        result: list[JSONDict] = self.leases(license_id)["leases"]
        return result

    def lockout(self, license_id: str, *, address: str | None = None) -> JSONDict:
        """Every limit that applies to a license (and to ``address``'s network): each
        with its count, limit, window and ``locked_until`` (``limits``)."""
        return self._obj("GET", f"/licenses/{_seg(license_id)}/lockout",
                         params={"address": address} if address else None)

    def reset_lockout(self, *, license_id: str | None = None,
                      address: str | None = None) -> JSONDict:
        """Lift every limit of a license and/or a client network; says what was forgotten."""
        body = {k: v for k, v in (("license_id", license_id), ("address", address)) if v}
        return self._obj("POST", "/lockouts/reset", json=body)

    # -- air-gapped activation

    def offline_respond(self, request_text: str) -> JSONDict:
        """Answer an armored activation request as the vendor (admin route: no activation
        password needed); the answer holds the ``response`` block."""
        return self._obj("POST", "/offline/activations", json={"request": request_text})

    def offline_deactivate(self, receipt_text: str) -> JSONDict:
        """Take an armored deactivation receipt; frees the activation's seat."""
        result: JSONDict = self._call("POST", "/v1/offline/deactivations",
                                      json={"receipt": receipt_text},
                                      headers={"Authorization": None})
        return result

    # -- end users, audit

    def find_end_users(self, email: str) -> list[JSONDict]:
        """End users with this email (ids and dates only)."""
        return self._list("/end-users", "end_users", params={"email": email})

    def export_end_user(self, end_user_id: str) -> JSONDict:
        """Everything held about one end user."""
        return self._obj("GET", f"/end-users/{_seg(end_user_id)}")

    def erase_end_user(self, end_user_id: str) -> JSONDict:
        """Erase one end user's personal data."""
        return self._obj("POST", f"/end-users/{_seg(end_user_id)}/erase")

    def audit(self, **params: Any) -> list[JSONDict]:
        """The audit log, newest first (``limit``, ``before_id``, ``product``, ``license_id``)."""
        return self._list("/audit", "entries", params=params)

    # -- mail

    def list_mail_templates(self, product_id: str | None = None) -> JSONDict:
        """Every mail template and where the one in use comes from (product / vendor / builtin)."""
        params = {"product": product_id} if product_id is not None else None
        return self._obj("GET", "/mail-templates", params=params)

    def get_mail_template(self, name: str, product_id: str | None = None) -> JSONDict:
        """The template ``product_id`` uses (None: the vendor default's level)."""
        params = {"product": product_id} if product_id is not None else None
        return self._obj("GET", f"/mail-templates/{_seg(name)}", params=params)

    def set_mail_template(self, name: str, *, product_id: str | None = None, subject: str,
                          text: str, html: str | None = None) -> JSONDict:
        """Save the vendor's version of a template (400 if it does not render)."""
        params = {"product": product_id} if product_id is not None else None
        return self._obj("PUT", f"/mail-templates/{_seg(name)}", params=params,
                         json={"subject": subject, "text": text, "html": html})

    def reset_mail_template(self, name: str, product_id: str | None = None) -> JSONDict:
        """Drop the vendor's version at this level; returns the template now used."""
        params = {"product": product_id} if product_id is not None else None
        return self._obj("DELETE", f"/mail-templates/{_seg(name)}", params=params)

    def preview_mail_template(self, name: str, product_id: str | None = None,
                              context: JSONDict | None = None) -> JSONDict:
        """The template rendered with sample values (``subject``, ``text``, ``html``)."""
        params = {"product": product_id} if product_id is not None else None
        return self._obj("POST", f"/mail-templates/{_seg(name)}/preview", params=params,
                         json={"context": dict(context or {})})

    def mail_log(self, *, license_id: str | None = None, limit: int = 100) -> list[JSONDict]:
        """The sent log, newest first (the addresses are personal data)."""
        params: JSONDict = {"limit": limit}
        if license_id is not None:
            params["license"] = license_id
        return self._list("/mail-log", "mails", params=params)

    def connect_store(self, provider: str, secret: str, *, mode: str = "live",
                      refund_action: str = "revoke") -> JSONDict:
        """Connect a payment provider's store (or replace its secret / refund action)."""
        return self._obj("POST", "/stores/connectors",
                         json={"provider": provider, "secret": secret, "mode": mode,
                               "refund_action": refund_action})

    def list_stores(self) -> list[JSONDict]:
        """The connected stores (secrets are never shown)."""
        return self._list("/stores/connectors", "connectors")

    def disconnect_store(self, connector_id: str) -> JSONDict:
        """Disconnect a store that issued no license."""
        return self._obj("DELETE", f"/stores/connectors/{_seg(connector_id)}")

    def map_price(self, connector_id: str, price_ref: str, product_id: str,
                  **terms: Any) -> JSONDict:
        """Map a price / variant id to a license (``seats``, ``features``, ``kind``,
        ``subscription``, ``seat_mode``, ``duration_days``)."""
        return self._obj("POST", "/stores/mappings",
                         json={"connector_id": connector_id, "price_ref": price_ref,
                               "product": product_id, **terms})

    def list_mappings(self, connector_id: str | None = None) -> list[JSONDict]:
        """Price mappings, of one connector or all."""
        params = {"connector_id": connector_id} if connector_id is not None else None
        return self._list("/stores/mappings", "mappings", params=params)

    def unmap_price(self, mapping_id: int) -> JSONDict:
        """Remove a price mapping."""
        return self._obj("DELETE", f"/stores/mappings/{int(mapping_id)}")

    # -- outbound webhooks

    def webhook_create(self, url: str, events: list[str], **fields: Any) -> JSONDict:
        """Add an endpoint: ``{"endpoint", "secret"}`` (the secret is shown this once).

        ``fields``: ``product``, ``description``, ``personal_data``, ``enabled``.
        """
        return self._obj("POST", "/webhooks", json={"url": url, "events": events, **fields})

    def webhook_list(self, *, product: str | None = None) -> list[JSONDict]:
        """The endpoints (never their secrets)."""
        return self._list("/webhooks", "endpoints",
                          params={"product": product} if product else None)

    def webhook_update(self, endpoint_id: str, **changes: Any) -> JSONDict:
        """Change an endpoint (``url``, ``events``, ``product``, ``description``,
        ``personal_data``, ``enabled``)."""
        return self._obj("PATCH", f"/webhooks/{_seg(endpoint_id)}", json=changes)

    def webhook_rotate_secret(self, endpoint_id: str) -> JSONDict:
        """A new signing secret: ``{"endpoint", "secret"}``."""
        return self._obj("POST", f"/webhooks/{_seg(endpoint_id)}/rotate-secret")

    def webhook_remove(self, endpoint_id: str) -> JSONDict:
        """Remove an endpoint (its queued messages are cancelled)."""
        return self._obj("DELETE", f"/webhooks/{_seg(endpoint_id)}")

    def webhook_test(self, endpoint_id: str) -> JSONDict:
        """Queue a ``webhook.ping`` event to an endpoint: ``{"id", "status"}``."""
        return self._obj("POST", f"/webhooks/{_seg(endpoint_id)}/test")

    def webhook_deliveries(self, **params: Any) -> list[JSONDict]:
        """The delivery log, newest first (``endpoint``, ``status``, ``limit``, ``before``)."""
        return self._list("/webhooks/deliveries", "deliveries",
                          params={k: v for k, v in params.items() if v is not None})

    def webhook_resend(self, item_id: str) -> JSONDict:
        """Queue a delivered or failed message again, same webhook id: ``{"id", "status"}``."""
        return self._obj("POST", f"/webhooks/deliveries/{_seg(item_id)}/resend")

    # -- lost keys

    def rekey_license(self, license_id: str, *, email: str | None = None) -> JSONDict:
        """A new key for a license (the old one stops activating): the license's JSON with
        ``license_key`` (shown this once) and ``key_mailed``; ``email`` becomes the buyer."""
        body: JSONDict = {"email": email} if email is not None else {}
        return self._obj("POST", f"/licenses/{_seg(license_id)}/rekey", json=body)

    # -- staff accounts and scoped admin API keys (owner keys)

    def list_staff(self) -> list[JSONDict]:
        """The staff members (not removed ones), by email address."""
        return self._list("/staff", "staff")

    def add_staff(self, email: str, *, role: str, name: str = "",
                  password: str | None = None) -> JSONDict:
        """Add a staff member: ``{"staff", "password"}`` (a generated password, shown once;
        null when ``password`` was given)."""
        body: JSONDict = {"email": email, "role": role, "name": name}
        if password is not None:
            body["password"] = password
        return self._obj("POST", "/staff", json=body)

    def set_staff_role(self, staff_id: str, role: str) -> JSONDict:
        """Change a staff member's role (409 for the last owner)."""
        return self._obj("PATCH", f"/staff/{_seg(staff_id)}", json={"role": role})

    def reset_staff(self, staff_id: str, *, clear_totp: bool = False) -> JSONDict:
        """A new random password for a staff member: ``{"staff", "password"}`` (shown once)."""
        return self._obj("POST", f"/staff/{_seg(staff_id)}/reset",
                         json={"clear_totp": clear_totp})

    def remove_staff(self, staff_id: str) -> JSONDict:
        """Remove a staff member (disabled and signed out)."""
        return self._obj("DELETE", f"/staff/{_seg(staff_id)}")

    def create_api_key(self, *, role: str, name: str) -> JSONDict:
        """A new admin API key: ``{"api_key", "key"}`` (the key is shown this once)."""
        return self._obj("POST", "/api-keys", json={"role": role, "name": name})

    def list_api_keys(self) -> list[JSONDict]:
        """The usable admin API keys (never the keys themselves)."""
        return self._list("/api-keys", "api_keys")

    def revoke_api_key(self, key_id: str) -> JSONDict:
        """Revoke an admin API key."""
        return self._obj("DELETE", f"/api-keys/{_seg(key_id)}")
