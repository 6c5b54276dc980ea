"""Attacks on the control panel after the first pass's fixes (issue 16, second pass).

Each test is one attack that worked against the build it was written on; its
docstring states the invariant the product promises and the attack broke.
They run in-process (the real app, no socket), with the panel's helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import unquote

import pytest

from software_dna.server.domain.roles import Role
from software_dna.server.models import StaffSession
from software_dna.server.services.admin import create_admin_key
from software_dna.server.testing import InProcessServer
from software_dna.wire.times import parse_rfc3339
from tests.panel.helpers import PASSWORD, PanelUser, add_staff, db
from tests.server.helpers import Api, nonce


@pytest.fixture
def inprocess_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """A server of each test's own (sign-in limits are counted per server)."""
    with InProcessServer(tmp_path_factory.mktemp("panel-attacks-2")) as srv:
        yield srv


@contextmanager
def _from(server: InProcessServer, address: str) -> Iterator[None]:
    """Requests made inside come from ``address`` (the peer the app sees)."""
    target = server._target
    assert target is not None
    before = target.client
    target.client = (address, 40000)
    try:
        yield
    finally:
        target.client = before


def _key(server: InProcessServer, role: Role) -> str:
    with db(server) as session:
        return create_admin_key(session, server.app.state.sdna.ctx, role=role, name=role.value)


def _sign_in(server: InProcessServer, email: str, password: str) -> int:
    with server.session() as http:
        return http.post(server.url + "/panel/sign-in",
                         data={"email": email, "password": password, "next": "/panel/"},
                         allow_redirects=False).status_code


def test_a_stranger_cannot_lock_the_owner_out_of_the_panel(
        inprocess_server: InProcessServer) -> None:
    """Failed sign-ins from someone else's network do not refuse the owner's right password.

    The per-account counter is hit before the password is checked and only a
    good sign-in refunds it, so anyone on the internet who knows the owner's
    address (it is the vendor's, often public) sends 10 wrong passwords every
    15 minutes and the owner -- from their own network, with the right
    password -- gets 429 "Too many failed sign-ins" for as long as the
    attacker keeps it up. No account, no token, no CSRF needed. The owner's
    right password from a network that did not fail must still sign in.
    """
    owner = add_staff(inprocess_server, Role.OWNER)
    limit = inprocess_server.app.state.sdna.settings.panel_sign_in_attempts
    with _from(inprocess_server, "198.51.100.66"):
        answers = [_sign_in(inprocess_server, owner, f"guess {n}") for n in range(limit + 1)]
    assert answers[-1] == 429, answers  # the attacker is limited, as documented
    with _from(inprocess_server, "203.0.113.10"):
        owner_answer = _sign_in(inprocess_server, owner, PASSWORD)
    assert owner_answer == 303, f"the owner is locked out by a stranger: {owner_answer}"


def test_cross_site_sign_in_without_sec_fetch_site_is_refused(
        inprocess_server: InProcessServer) -> None:
    """Login CSRF is refused from browsers that send ``Origin`` but no ``Sec-Fetch-Site``.

    The first pass's fix looks only at ``Sec-Fetch-Site``; the sign-in form
    has no CSRF token, so for a browser that does not send that header
    (Safari before 16.4, older Chromium/Firefox, embedded web views) nothing
    is left: a page on evil.example posts the form with the attacker's staff
    credentials and the victim's browser is signed into the attacker's
    account. Such browsers do send ``Origin`` on a cross-site POST: an
    ``Origin`` that is not the panel's own must be refused (403), no session.
    """
    email = add_staff(inprocess_server, Role.READ_ONLY)
    with db(inprocess_server) as session:
        before = session.query(StaffSession).count()
    with inprocess_server.session() as http:
        answer = http.post(inprocess_server.url + "/panel/sign-in",
                           data={"email": email, "password": PASSWORD, "next": "/panel/"},
                           headers={"Origin": "https://evil.example",
                                    "Referer": "https://evil.example/login-csrf.html"},
                           allow_redirects=False)
    with db(inprocess_server) as session:
        after = session.query(StaffSession).count()
    assert answer.status_code == 403, (answer.status_code, answer.headers.get("set-cookie"))
    assert after == before


def test_an_email_search_with_many_results_keeps_the_address_out_of_links(
        inprocess_server: InProcessServer) -> None:
    """An end user's email address is not written into URLs (proxy logs, browser history).

    The first pass's fix answers a search by email on the POST itself instead
    of redirecting to ``?q=<address>``, but when the address holds more
    licenses than one page shows (a reseller, a company buyer: 51+), the
    page's "next page" links are ``/panel/licenses?page=2&q=<address>``:
    one click and the address is in the proxy's access log and the browser's
    history again. No link of that page may carry the address.
    """
    buyer = "reseller.person@example.com"
    admin = inprocess_server.admin
    admin.setup_product("many-licenses", features=["export"])
    for _ in range(51):
        admin.issue_license("many-licenses", email=buyer)
    with PanelUser(inprocess_server, add_staff(inprocess_server, Role.SUPPORT)) as user:
        assert user.sign_in().status_code == 303
        answer = user.post("/panel/licenses/search", {"q": buyer})
    assert answer.status_code == 200, answer.status_code
    hrefs = re.findall(r'href="([^"]*)"', answer.text)
    leaking = [h for h in hrefs if "reseller.person" in unquote(h).replace("&amp;", "&")]
    assert not leaking, f"links carrying the end user's address: {leaking}"


def test_developer_key_cannot_rebrand_the_key_mail(inprocess_server: InProcessServer) -> None:
    """"Only these two [owner, admin] run commerce (stores, webhooks, mail templates, branding)".

    (``domain/roles.py``; ``Permission.COMMERCE``: "the mails' branding".)
    The first pass guarded only ``branding.support_email``: a developer key
    still sets the product's ``logo_url`` (loaded from the attacker's host
    by every buyer who opens the key mail: their IP address and the time,
    personal data, leave the server), ``privacy_url`` (a link to the
    attacker's page in every key mail the vendor sends) and ``vendor_name``.
    Changing the mails' branding needs ``commerce`` (403), the product's
    branding left as it was.
    """
    owner = inprocess_server.admin
    owner.setup_product("rebrand", features=["export"])
    developer = _key(inprocess_server, Role.DEVELOPER)
    with inprocess_server.session() as http:
        answer = http.patch(inprocess_server.url + "/v1/admin/products/rebrand",
                            headers={"Authorization": f"Bearer {developer}"},
                            json={"branding": {"vendor_name": "Acme Billing",
                                               "logo_url": "https://evil.example/l.png",
                                               "privacy_url": "https://evil.example/p"}})
    assert answer.status_code == 403, (answer.status_code, answer.text[:300])


def test_a_test_code_cannot_be_made_long_lived_through_a_patch(
        inprocess_server: InProcessServer) -> None:
    """Test codes "run 1 to 7 days", "cannot be converted to perpetual" (docs/trials.md).

    ``POST …/perpetual`` refuses a test code (409 "Test codes stay
    short-lived; issue a license instead"), but ``PATCH /v1/admin/licenses/{id}``
    with ``{"expires_at": null}`` (or ``"2036-01-01"``, or ``extend``) is
    answered 200 and, with ``{"seats": 500}``, turns a developer's
    ``TEST-…`` code into a perpetual 500-seat license that never shows up as
    a sale, keeps its ``test`` kind (no reminders, no renewal) and still
    counts as a test code. A test code's end and seats stay a test code's:
    such changes are refused (409) and the code is left as it was.
    """
    admin = inprocess_server.admin
    admin.setup_product("long-test-code", features=["export"])
    developer = {"Authorization": f"Bearer {_key(inprocess_server, Role.DEVELOPER)}"}
    support = {"Authorization": f"Bearer {_key(inprocess_server, Role.SUPPORT)}"}
    url = inprocess_server.url + "/v1/admin"
    with inprocess_server.session() as http:
        code = http.post(url + "/products/long-test-code/test-codes", headers=developer,
                         json={"days": 7})
        assert code.status_code == 201, code.text
        lic = code.json()["id"]
        assert http.post(f"{url}/licenses/{lic}/perpetual", headers=support).status_code == 409
        answers = {
            "expires_at null": http.patch(f"{url}/licenses/{lic}", headers=support,
                                          json={"expires_at": None}).status_code,
            "expires_at 2036": http.patch(f"{url}/licenses/{lic}", headers=support,
                                          json={"expires_at": "2036-01-01"}).status_code,
            "extend 3650 days": http.post(f"{url}/licenses/{lic}/extend", headers=support,
                                          json={"days": 3650}).status_code,
            "seats 500": http.patch(f"{url}/licenses/{lic}", headers=support,
                                    json={"seats": 500}).status_code,
        }
        now = http.get(f"{url}/licenses/{lic}", headers=support).json()
    assert now["kind"] == "test"
    assert all(status == 409 for status in answers.values()), (answers, now)


def test_a_renewal_code_does_not_stretch_a_test_code(inprocess_server: InProcessServer) -> None:
    """A test code runs 1 to 7 days after its first activation (docs/trials.md).

    Renewal codes are sold to extend a customer's license; a product-wide
    code is checked only for the product, not for the license's kind, so it
    is redeemed on a ``TEST-…`` code (issued by a developer with whatever
    features they typed, even ones the product does not sell) and the test
    code runs 365 more days: a developer's tool plus one renewal turns into a
    year-long full-featured license that never was a sale. The renewal must
    be refused (409 ``renewal_not_applicable``) and the test code keep its end.
    """
    admin = inprocess_server.admin
    admin.setup_product("renew-test-code", features=["export"])
    developer = {"Authorization": f"Bearer {_key(inprocess_server, Role.DEVELOPER)}"}
    with inprocess_server.session() as http:
        code = http.post(inprocess_server.url + "/v1/admin/products/renew-test-code/test-codes",
                         headers=developer, json={"days": 7,
                                                  "features": ["export", "enterprise"]})
    assert code.status_code == 201, code.text
    api = Api.for_server(inprocess_server)
    try:
        activated = api.activate("renew-test-code", code.json()["license_key"])
        assert activated.status_code in (200, 201), activated.text
        body = activated.json()
        before = parse_rfc3339(admin.get_license(code.json()["id"])["expires_at"])
        (renewal,) = admin.issue_renewal_codes(365, product_id="renew-test-code")
        answer = api.http.post(
            f"{api.url}/v1/activations/{body['activation_id']}/renewal",
            json={"code": renewal, "nonce": nonce()},
            headers={"Authorization": f"Bearer {body['activation_secret']}"}, timeout=30)
    finally:
        api.close()
    after = parse_rfc3339(admin.get_license(code.json()["id"])["expires_at"])
    assert after - before < timedelta(days=7) and answer.status_code == 409, (
        answer.status_code, before, after)


@pytest.mark.parametrize("row", ["²", "9" * 5000], ids=["superscript-digit", "5000-digits"])
def test_the_import_keys_download_does_not_fail_on_a_malformed_row_number(
        inprocess_server: InProcessServer, row: str) -> None:
    """A malformed form field is a 4xx (or is ignored), never a 500.

    ``POST /panel/licenses/import/keys.csv`` reads each ``row`` with
    ``int(row) if row.isdigit() else 0``: ``"²".isdigit()`` is true but
    ``int("²")`` raises, as does a 5,000-digit number (Python's 4,300-digit
    limit), so any signed-in support member gets 500 ``internal_error``
    (and an error-level log with a traceback) from one form field.
    """
    with PanelUser(inprocess_server, add_staff(inprocess_server, Role.SUPPORT)) as user:
        assert user.sign_in().status_code == 303
        answer = user.post("/panel/licenses/import/keys.csv", {
            "row": row, "license_id": "lic_x", "product": "p", "license_key": "k"})
    assert answer.status_code < 500, (answer.status_code, answer.text[:200])


@pytest.mark.parametrize("text", ["product,seats\nimport-digits,²",
                                  "product,kind,expires_after_days\nimport-digits,evaluation,²",
                                  "product,seats\nimport-digits," + "9" * 5000],
                         ids=["seats-superscript", "days-superscript", "seats-5000-digits"])
def test_a_csv_import_with_an_odd_number_is_a_row_error_not_a_500(
        inprocess_server: InProcessServer, text: str) -> None:
    """Every bad cell of an import is reported on its row (400), never a 500.

    ``csvio`` checks ``seats`` and ``expires_after_days`` with ``isdigit()``
    then ``int()``: a superscript digit passes the first and fails the second
    (ValueError), as does a number past Python's 4,300-digit limit, so the
    import page answers 500 ``internal_error`` instead of listing the row's
    problem (a vendor's spreadsheet with "²" typed for 2 seats is enough).
    """
    inprocess_server.admin.setup_product("import-digits", features=["export"])
    with PanelUser(inprocess_server, add_staff(inprocess_server, Role.SUPPORT)) as user:
        assert user.sign_in().status_code == 303
        answer = user.post("/panel/licenses/import", {"text": text})
    assert answer.status_code == 400, (answer.status_code, answer.text[:200])
