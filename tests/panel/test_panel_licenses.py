"""The panel's license pages: search, issue (one and bulk, keys shown once), revoke with a
confirmation, roles, and what a forged form field can and cannot do (in-process, no browser)."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterator
from contextlib import nullcontext
from datetime import datetime, timedelta, timezone

import pytest

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, License, StaffMember
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db

_KEY = re.compile(r'<code class="license-key">([A-Z0-9-]+)</code>')


@pytest.fixture(scope="module")
def product(inprocess_server: InProcessServer) -> str:
    pid = "pl-" + secrets.token_hex(4)
    inprocess_server.admin.setup_product(pid, features=["pro", "export"],
                                         limited_features=["view"])
    return pid


@pytest.fixture(scope="module")
def staff(inprocess_server: InProcessServer,
          staff_emails: dict[Role, str]) -> Iterator[dict[Role, PanelUser]]:
    """One signed-in session per role for the whole module (sign-ins are rate limited)."""
    users: dict[Role, PanelUser] = {}
    for role in (Role.OWNER, Role.SUPPORT, Role.DEVELOPER, Role.READ_ONLY):
        users[role] = PanelUser(inprocess_server, staff_emails[role])
        assert users[role].sign_in().status_code == 303
    yield users
    for user in users.values():
        user.close()


@pytest.fixture
def owner(staff: dict[Role, PanelUser]) -> PanelUser:
    """The module's signed-in owner."""
    return staff[Role.OWNER]


def license_row(server: InProcessServer, license_id: str) -> License:
    with db(server) as session:
        row: License | None = session.get(License, license_id)
        assert row is not None
        session.expunge(row)
        return row


def test_search_by_full_key_hint_reference_and_email(
        inprocess_server: InProcessServer, owner: PanelUser, product: str) -> None:
    ref = "CUST-" + secrets.token_hex(3).upper()
    buyer = f"buyer-{secrets.token_hex(3)}@example.com"
    issued = inprocess_server.admin.issue_license(product, customer_ref=ref,
                                                  order_ref="ord-" + ref.lower(), email=buyer)
    other = inprocess_server.admin.issue_license(product)
    key, lid = issued["license_key"], issued["id"]
    # A full key, typed in lower case with spaces: straight to its license, never in a URL.
    found = owner.post("/panel/licenses/search", {"q": " " + key.lower().replace("-", " ")})
    assert found.status_code == 303 and found.headers["location"] == f"/panel/licenses/{lid}"
    assert key not in found.headers["location"]
    page = owner.get(found.headers["location"])
    assert page.status_code == 200 and ref in page.text and key not in page.text
    # A wrong key: a clear "not found", nothing listed.
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    missing = owner.post("/panel/licenses/search", {"q": wrong})
    assert missing.status_code == 404 and "no license has this key" in missing.text
    assert lid not in missing.text
    # The hint (last four), with or without the "…-" prefix.
    for hint in (key[-4:], "\u2026-" + key[-4:], key[-4:].lower()):
        listed = owner.get("/panel/licenses", params={"q": hint})
        assert listed.status_code == 200 and lid in listed.text, hint
    # Customer and order references: case-insensitive prefix.
    by_ref = owner.get("/panel/licenses", params={"q": ref[:7].lower()})
    assert lid in by_ref.text and other["id"] not in by_ref.text
    assert lid in owner.get("/panel/licenses", params={"q": "ORD-" + ref[:6]}).text
    # The buyer's email address (keyed index: any case), posted: never in an address.
    assert owner.get("/panel/licenses", params={"q": buyer}).status_code == 400
    by_email = owner.post("/panel/licenses/search", {"q": buyer.upper()})
    assert by_email.status_code == 200
    assert lid in by_email.text and other["id"] not in by_email.text
    assert buyer not in by_email.text.replace(buyer.upper(), "")  # only the query echoed
    # A full key in the address bar is refused (it would stay in logs), never echoed.
    via_get = owner.get("/panel/licenses", params={"q": key})
    assert via_get.status_code == 400 and key not in via_get.text


def test_filters_and_pagination(inprocess_server: InProcessServer, owner: PanelUser,
                                product: str) -> None:
    lid = inprocess_server.admin.issue_license(product)["id"]
    inprocess_server.admin.suspend_license(lid)
    page = owner.get("/panel/licenses", params={"product": product, "status": "suspended"})
    assert page.status_code == 200 and lid in page.text
    assert "suspended" in page.text  # the status as a word, not a colour only
    assert lid not in owner.get("/panel/licenses", params={"product": product,
                                                           "status": "revoked"}).text
    assert "Page 1 of" in page.text


def test_issue_one_shows_the_key_once(inprocess_server: InProcessServer, owner: PanelUser,
                                      product: str) -> None:
    form = owner.get("/panel/licenses/new")
    assert form.status_code == 200 and 'for="f-customer_ref"' in form.text
    assert "Not personal data" in form.text
    through = (datetime.now(timezone.utc) + timedelta(days=30)).date()
    answer = owner.post("/panel/licenses/new", {
        "product": product, "count": "1", "seats": "3", "kind": "full",
        "expires": through.isoformat(), "default_features": "on", "customer_ref": "C-42",
        "order_ref": "O-42", "notes": "renewal of 2025\nline two"})
    assert answer.status_code == 200, answer.text
    (key,) = _KEY.findall(answer.text)
    with db(inprocess_server) as session:
        lic = session.query(License).filter(License.customer_ref == "C-42").one()
        assert lic.seats == 3 and lic.order_ref == "O-42" and lic.notes.endswith("line two")
        # Valid through the date typed: it ends at the next day's 00:00 UTC.
        assert lic.expires_at.replace(tzinfo=timezone.utc) == datetime(
            through.year, through.month, through.day, tzinfo=timezone.utc) + timedelta(days=1)
        lid = lic.id
    detail = owner.get(f"/panel/licenses/{lid}")
    assert detail.status_code == 200 and key not in detail.text and key[-4:] in detail.text
    assert key not in owner.get("/panel/licenses").text


def test_bulk_issue_and_the_csv_of_new_keys(inprocess_server: InProcessServer,
                                            owner: PanelUser, product: str) -> None:
    ref = "BULK-" + secrets.token_hex(3)
    answer = owner.post("/panel/licenses/new", {
        "product": product, "count": "3", "seats": "1", "kind": "full",
        "default_features": "on", "order_ref": ref})
    assert answer.status_code == 200
    keys = _KEY.findall(answer.text)
    assert len(set(keys)) == 3
    ids = re.findall(r'name="license_id" value="(lic_[^"]+)"', answer.text)
    download = owner.post("/panel/licenses/new/keys.csv",
                          {"license_id": ids, "license_key": keys})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["license_key"] for r in rows] == keys and {r["order_ref"] for r in rows} == {ref}
    # The download echoes only keys the server issued to those licenses.
    forged = owner.post("/panel/licenses/new/keys.csv",
                        {"license_id": [ids[0]], "license_key": ["=cmd|' /C calc'!A0"]})
    assert forged.status_code == 400 and "calc" not in forged.text
    swapped = owner.post("/panel/licenses/new/keys.csv",
                         {"license_id": [ids[0]], "license_key": [keys[1]]})
    assert swapped.status_code == 400


def test_issue_refusals_keep_what_was_typed(inprocess_server: InProcessServer,
                                            owner: PanelUser, product: str) -> None:
    past = (datetime.now(timezone.utc) - timedelta(days=3)).date().isoformat()
    ref = "PAST-" + secrets.token_hex(3)
    refused = owner.post("/panel/licenses/new", {
        "product": product, "count": "1", "seats": "1", "kind": "full", "expires": past,
        "default_features": "on", "customer_ref": ref})
    assert refused.status_code == 400
    assert "in the past" in refused.text and 'id="e-expires"' in refused.text
    assert f'value="{ref}"' in refused.text
    with db(inprocess_server) as session:
        assert session.query(License).filter(License.customer_ref == ref).count() == 0
    confirmed = owner.post("/panel/licenses/new", {
        "product": product, "count": "1", "seats": "1", "kind": "full", "expires": past,
        "allow_past": "on", "default_features": "on", "customer_ref": ref})
    assert confirmed.status_code == 200 and len(_KEY.findall(confirmed.text)) == 1
    for fields, name in (({"count": "101"}, "count"), ({"seats": "0"}, "seats"),
                         ({"expires": "2030-02-30"}, "expires"),
                         ({"customer_ref": "x" * 101}, "customer_ref")):
        body = {"product": product, "count": "1", "seats": "1", "kind": "full",
                "default_features": "on", **fields}
        answer = owner.post("/panel/licenses/new", body)
        assert answer.status_code == 400 and f'id="e-{name}"' in answer.text, name
    nope = owner.post("/panel/licenses/new", {"product": "no-such-product", "count": "1",
                                              "seats": "1"})
    assert nope.status_code == 400 and 'id="e-product"' in nope.text


def test_revoke_needs_the_confirmation_post_with_csrf(
        inprocess_server: InProcessServer, staff: dict[Role, PanelUser], product: str) -> None:
    lid = inprocess_server.admin.issue_license(product)["id"]
    with nullcontext(staff[Role.SUPPORT]) as support:
        confirm = support.get(f"/panel/licenses/{lid}/revoke")
        assert confirm.status_code == 200
        assert "every app using it stops at its next check; this cannot be undone" \
            in confirm.text.lower()
        assert license_row(inprocess_server, lid).status == "active"  # the GET changes nothing
        for token in ("", "0" * 64):
            assert support.post(f"/panel/licenses/{lid}/revoke", csrf=token).status_code == 403
        assert license_row(inprocess_server, lid).status == "active"
        done = support.post(f"/panel/licenses/{lid}/revoke")
        assert done.status_code == 303 and done.headers["location"] == f"/panel/licenses/{lid}"
        assert license_row(inprocess_server, lid).status == "revoked"
        page = support.get(f"/panel/licenses/{lid}")
        assert "License revoked." in page.text and "revoked" in page.text
        staff_id = _staff_id(inprocess_server, staff[Role.SUPPORT].email)
    with db(inprocess_server) as session:
        entry = session.query(AuditEntry).filter(AuditEntry.license_id == lid,
                                                 AuditEntry.action == "license.revoke").one()
        assert entry.actor == "panel" and entry.actor_id == staff_id


def _staff_id(server: InProcessServer, email: str) -> str:
    with db(server) as session:
        return str(session.query(StaffMember).filter(StaffMember.email == email).one().id)


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.READ_ONLY])
def test_searching_by_email_needs_personal_data(
        inprocess_server: InProcessServer, staff: dict[Role, PanelUser], role: Role) -> None:
    with nullcontext(staff[role]) as user:
        refused = user.post("/panel/licenses/search", {"q": "someone@example.com"})
        assert refused.status_code == 403 and "personal-data" in refused.text
        assert user.get("/panel/licenses", params={"q": "ABCD"}).status_code == 200
    with nullcontext(staff[Role.SUPPORT]) as support:
        assert support.post("/panel/licenses/search",
                            {"q": "someone@example.com"}).status_code == 200


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.READ_ONLY])
def test_roles_without_licenses_cannot_change_anything(
        inprocess_server: InProcessServer, staff: dict[Role, PanelUser], product: str,
        role: Role) -> None:
    lid = inprocess_server.admin.issue_license(product, customer_ref="keep")["id"]
    posts = {"revoke": {}, "suspend": {}, "resume": {}, "rekey": {}, "seats": {"seats": "9"},
             "expiry": {"expires": ""}, "extend": {"days": "3"},
             "features": {"features": "pro"}, "password": {"password": "pw"},
             "refs": {"customer_ref": "changed"}, "renewal-codes": {"code_days": "5"},
             "lockouts": {}, "restore": {}}
    with nullcontext(staff[role]) as user:
        assert user.get(f"/panel/licenses/{lid}").status_code == 200  # reading is fine
        for page in ("revoke", "suspend", "rekey", "restore"):
            assert user.get(f"/panel/licenses/{lid}/{page}").status_code == 403, page
        assert user.get("/panel/licenses/new").status_code == 403
        for action, body in posts.items():
            assert user.post(f"/panel/licenses/{lid}/{action}", body).status_code == 403, action
        answer = user.post("/panel/licenses/new", {"product": product, "count": "1",
                                                   "seats": "1"})
        assert answer.status_code == 403
    row = license_row(inprocess_server, lid)
    assert (row.status, row.seats, row.customer_ref, row.expires_at) == ("active", 1, "keep",
                                                                          None)


def test_detail_actions_and_ids(inprocess_server: InProcessServer, owner: PanelUser,
                                product: str) -> None:
    lid = inprocess_server.admin.issue_license(product, seats=2)["id"]
    assert owner.post(f"/panel/licenses/{lid}/seats", {"seats": "5"}).status_code == 303
    assert owner.post(f"/panel/licenses/{lid}/refs", {
        "customer_ref": " ACME ", "order_ref": "", "notes": "<script>x</script>"}
    ).status_code == 303
    row = license_row(inprocess_server, lid)
    assert (row.seats, row.customer_ref, row.order_ref) == (5, "ACME", None)
    page = owner.get(f"/panel/licenses/{lid}").text
    assert "<script>x" not in page and "&lt;script&gt;x" in page
    # A past end is refused next to its field, unless confirmed.
    refused = owner.post(f"/panel/licenses/{lid}/expiry", {"expires": "2001-01-01"})
    assert refused.status_code == 400 and 'id="e-expires"' in refused.text
    assert "in the past" in refused.text
    assert owner.post(f"/panel/licenses/{lid}/expiry",
                      {"expires": "2001-01-01", "allow_past": "on"}).status_code == 303
    assert license_row(inprocess_server, lid).expires_at is not None
    # Suspend (confirmed) and resume.
    assert owner.post(f"/panel/licenses/{lid}/suspend").status_code == 303
    assert license_row(inprocess_server, lid).status == "suspended"
    assert owner.post(f"/panel/licenses/{lid}/resume").status_code == 303
    # Renewal codes are shown once.
    made = owner.post(f"/panel/licenses/{lid}/renewal-codes", {"code_days": "30",
                                                               "code_count": "2"})
    codes = _KEY.findall(made.text)
    assert made.status_code == 200 and len(codes) == 2
    assert not any(code in owner.get(f"/panel/licenses/{lid}").text for code in codes)
    # Rekey: the new key once, the old one no longer finds the license.
    rekeyed = owner.post(f"/panel/licenses/{lid}/rekey")
    (new_key,) = _KEY.findall(rekeyed.text)
    found = owner.post("/panel/licenses/search", {"q": new_key})
    assert found.headers["location"] == f"/panel/licenses/{lid}"
    # Another product's license is fine to show (the panel is vendor-wide); a missing id: 404.
    other = "pl-" + secrets.token_hex(4)
    inprocess_server.admin.setup_product(other)
    foreign = inprocess_server.admin.issue_license(other)["id"]
    assert owner.get(f"/panel/licenses/{foreign}").status_code == 200
    for path in ("/panel/licenses/lic_missing", "/panel/licenses/lic_missing/revoke"):
        missing = owner.get(path)
        assert missing.status_code == 404 and "No such license" in missing.text
    assert owner.post("/panel/licenses/lic_missing/revoke").status_code == 404


def test_test_codes_page_touches_only_test_codes(
        inprocess_server: InProcessServer, staff: dict[Role, PanelUser], product: str) -> None:
    full = inprocess_server.admin.issue_license(product)["id"]
    with nullcontext(staff[Role.DEVELOPER]) as dev:
        made = dev.post("/panel/test-codes", {"product": product, "days": "2"})
        assert made.status_code == 200
        (key,) = _KEY.findall(made.text)
        assert key.startswith("TEST-")
        with db(inprocess_server) as session:
            code = session.query(License).filter(License.kind == "test",
                                                 License.product_id == product).first()
            assert code is not None
            code_id = code.id
        assert key not in dev.get("/panel/test-codes").text
        # A full license's id posted to the test-code pages: not found, unchanged.
        assert dev.get(f"/panel/test-codes/{full}/revoke").status_code == 404
        assert dev.post(f"/panel/test-codes/{full}/revoke").status_code == 404
        assert license_row(inprocess_server, full).status == "active"
        assert "Revoke the test code" in dev.get(f"/panel/test-codes/{code_id}/revoke").text
        assert dev.post(f"/panel/test-codes/{code_id}/revoke").status_code == 303
        assert license_row(inprocess_server, code_id).status == "revoked"
        assert dev.get("/panel/trials").status_code == 200
    with nullcontext(staff[Role.SUPPORT]) as support:
        assert support.get("/panel/test-codes").status_code == 403
        assert support.post("/panel/test-codes", {"product": product}).status_code == 403


def test_restore_full_mode_says_what_it_does(inprocess_server: InProcessServer,
                                             staff: dict[Role, PanelUser],
                                             product: str) -> None:
    lid = inprocess_server.admin.issue_license(product)["id"]
    with db(inprocess_server) as session:  # as an erasure leaves it
        row = session.get(License, lid)
        assert row is not None
        row.erased = True
        session.commit()
    with nullcontext(staff[Role.SUPPORT]) as support:
        page = support.get(f"/panel/licenses/{lid}")
        assert "limited" in page.text and f"/panel/licenses/{lid}/restore" in page.text
        confirm = support.get(f"/panel/licenses/{lid}/restore")
        assert confirm.status_code == 200
        assert "full tokens again" in confirm.text and "stays erased" in confirm.text
        assert support.post(f"/panel/licenses/{lid}/restore", csrf="").status_code == 403
        assert license_row(inprocess_server, lid).erased
        assert support.post(f"/panel/licenses/{lid}/restore").status_code == 303
    assert not license_row(inprocess_server, lid).erased
    with db(inprocess_server) as session:
        assert session.query(AuditEntry).filter(AuditEntry.license_id == lid,
                                                AuditEntry.action == "license.restore"
                                                ).count() == 1


def test_list_links_to_export_and_import(owner: PanelUser, staff: dict[Role, PanelUser],
                                         product: str) -> None:
    page = owner.get("/panel/licenses", params={"product": product, "status": "active"})
    assert f'href="/panel/licenses/export.csv?product={product}&amp;status=active"' in page.text
    assert 'href="/panel/licenses/import"' in page.text
    assert owner.get(f"/panel/licenses/export.csv?product={product}").status_code == 200
    read_only = staff[Role.READ_ONLY].get("/panel/licenses").text
    assert "/panel/licenses/import" not in read_only and "/panel/licenses/new" not in read_only


def test_a_license_id_opens_its_license(inprocess_server: InProcessServer, owner: PanelUser,
                                        product: str) -> None:
    lid = inprocess_server.admin.issue_license(product)["id"]
    answer = owner.post("/panel/licenses/search", {"q": lid})
    assert answer.status_code == 303 and answer.headers["location"] == f"/panel/licenses/{lid}"
    unknown = owner.post("/panel/licenses/search", {"q": "lic_nothing_like_it"})
    assert unknown.status_code == 303
    assert unknown.headers["location"].startswith("/panel/licenses?")
