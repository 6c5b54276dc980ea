"""CSV in the panel: the exports (content, filters, formula cells, no personal data) and the
licenses import (every row reported, all or nothing, keys shown once, roles, CSRF)."""

from __future__ import annotations

import csv
import io
import re
import secrets
from datetime import datetime, timedelta, timezone
from html import unescape
from typing import Any

import pytest
from sqlalchemy import func, select

from software_dna.server import services as service
from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, License
from software_dna.server.services import csvio
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db
from tests.server.helpers import Api


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _licenses_of(server: InProcessServer, product: str) -> int:
    with db(server) as session:
        return int(session.scalar(select(func.count()).select_from(License)
                                  .where(License.product_id == product)) or 0)


@pytest.fixture(scope="module")
def product(inprocess_server: InProcessServer) -> str:
    product_id = "csv-" + secrets.token_hex(3)
    with db(inprocess_server) as session:
        service.create_product(session, product_id=product_id, features=["pro", "export"])
        service.generate_key(session, inprocess_server.app.state.sdna.ctx, product_id)
    return product_id


@pytest.fixture
def reader(inprocess_server: InProcessServer, staff_emails: dict[Role, str]) -> Any:
    with PanelUser(inprocess_server, staff_emails[Role.READ_ONLY]) as user:
        assert user.sign_in().status_code == 303
        yield user


def test_license_export_content_and_formula_cells(inprocess_server: InProcessServer,
                                                  product: str, reader: PanelUser) -> None:
    ctx = inprocess_server.app.state.sdna.ctx
    expiry = datetime(2040, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with db(inprocess_server) as session:
        lic, key = service.issue_license(session, ctx, product_id=product, seats=3,
                                         expires_at=expiry, features=["pro"],
                                         buyer_email="buyer@example.com")
        lic = session.get(License, lic.id)
        assert lic is not None
        lic.customer_ref, lic.order_ref = "=HYPERLINK(\"http://evil\")", "@SUM(A1)"
        session.commit()
    answer = reader.get(f"/panel/licenses/export.csv?product={product}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert "attachment" in answer.headers["content-disposition"]
    rows = _rows(answer.text)
    assert tuple(rows[0]) == csvio.LICENSE_COLUMNS
    mine = next(r for r in rows if r["id"] == lic.id)
    assert mine["product"] == product and mine["seats"] == "3" and mine["status"] == "active"
    assert mine["key_hint"] == "\u2026" + key[-4:] and key not in answer.text
    assert mine["expires_at"] == "2040-01-02T03:04:05Z"
    assert mine["features"] == "pro"
    assert mine["customer_ref"] == "'=HYPERLINK(\"http://evil\")"  # neutralised
    assert mine["order_ref"] == "'@SUM(A1)"
    assert "buyer@example.com" not in answer.text  # no personal data
    # The filters: another status leaves it out.
    revoked = _rows(reader.get(f"/panel/licenses/export.csv?product={product}&status=revoked")
                    .text)
    assert all(r["id"] != lic.id for r in revoked)


def test_activation_export(inprocess_server: InProcessServer, product: str,
                           reader: PanelUser) -> None:
    ctx = inprocess_server.app.state.sdna.ctx
    with db(inprocess_server) as session:
        lic, key = service.issue_license(session, ctx, product_id=product)
    api = Api.for_server(inprocess_server)
    made = api.activate(product, key, machine="e1", email="ann@example.com", consent=True,
                        client={"sdk_version": "0.9.0", "os": "-cmd|' /C calc'!A0",
                                "app_version": "+1.2"}).json()
    api.close()
    answer = reader.get(f"/panel/activations/export.csv?license={lic.id}&state=live")
    assert answer.status_code == 200
    rows = _rows(answer.text)
    assert len(rows) == 1 and tuple(rows[0]) == csvio.ACTIVATION_COLUMNS
    row = rows[0]
    assert row["id"] == made["activation_id"] and row["license"] == lic.id
    assert row["product"] == product and row["mode"] == "full"
    assert row["app_version"] == "'+1.2" and row["os"].startswith("'-cmd")
    assert row["sdk_version"] == "0.9.0" and row["removed_at"] == ""
    assert "ann@example.com" not in answer.text
    removed = _rows(reader.get(f"/panel/activations/export.csv?license={lic.id}&state=removed")
                    .text)
    assert removed == []


def test_export_streams_many_rows_in_batches(inprocess_server: InProcessServer,
                                             reader: PanelUser) -> None:
    """More rows than one batch: every one once, in id order."""
    product_id = "big-" + secrets.token_hex(3)
    ctx = inprocess_server.app.state.sdna.ctx
    with db(inprocess_server) as session:
        service.create_product(session, product_id=product_id)
    result = csvio.import_licenses(inprocess_server.app.state.sdna.engine, ctx,
                                   "product\n" + f"{product_id}\n" * 1100)
    assert result.ok and len(result.licenses) == 1100
    rows = _rows(reader.get(f"/panel/licenses/export.csv?product={product_id}").text)
    ids = [r["id"] for r in rows]
    assert len(ids) == 1100 and ids == sorted(set(ids))


def test_import_with_bad_rows_imports_nothing_and_names_each(
        inprocess_server: InProcessServer, product: str, owner: PanelUser) -> None:
    before = _licenses_of(inprocess_server, product)
    past = (datetime.now(timezone.utc) - timedelta(days=2)).date().isoformat()
    text = ("product,kind,seats,expires,features,customer_ref\n"
            f"{product},full,2,2031-06-30,pro;export,C-1\n"        # row 2: fine
            f"{product},full,zero,,,C-2\n"                           # row 3: seats
            f"no-such-product,full,1,,,C-3\n"                        # row 4: product
            f"{product},full,1,{past},,C-5\n"                        # row 5: expires
            f"{product},test,1,,,C-6\n")                             # row 6: kind
    answer = owner.post("/panel/licenses/import", {"text": text})
    assert answer.status_code == 400
    found = {(int(r), f) for r, f, _ in re.findall(
        r"<tr><td>(\d+)</td><td>([a-z_]+)</td><td>([^<]*)</td></tr>", answer.text)}
    assert found == {(3, "seats"), (4, "product"), (5, "expires"), (6, "kind")}
    assert "Nothing was imported" in answer.text
    assert _licenses_of(inprocess_server, product) == before
    assert "C-1" in unescape(answer.text)  # what was pasted is kept in the form


def test_a_good_import_shows_the_keys_once(inprocess_server: InProcessServer, product: str,
                                           staff_emails: dict[Role, str]) -> None:
    ctx = inprocess_server.app.state.sdna.ctx
    before = _licenses_of(inprocess_server, product)
    text = ("product,seats,expires,features,customer_ref,order_ref,notes,password\r\n"
            f"{product},5,2032-12-31,pro export,ACME,ORD-1,\"Reseller, batch 1\",\r\n"
            f"{product},1,2032-12-31T10:00:00Z,,ACME,ORD-2,,s3cret-pass\r\n")
    with PanelUser(inprocess_server, staff_emails[Role.SUPPORT]) as support:
        assert support.sign_in().status_code == 303
        answer = support.http.post(
            support.url("/panel/licenses/import"), data={"csrf": support.csrf, "text": ""},
            files={"file": ("licenses.csv", text.encode("utf-8-sig"), "text/csv")},
            allow_redirects=False)
        assert answer.status_code == 200, answer.text
        assert answer.headers["cache-control"] == "no-store"
        keys = re.findall(r'<code class="key">([^<]+)</code>', answer.text)
        assert len(keys) == 2
        # The download of the keys, from the page's own form.
        fields = re.findall(r'<input type="hidden" name="(row|license_id|product|license_key)"'
                            r' value="([^"]*)">', answer.text)
        download = support.http.post(support.url("/panel/licenses/import/keys.csv"),
                                     data=[("csrf", support.csrf), *fields],
                                     allow_redirects=False)
        assert download.status_code == 200
        assert [r["license_key"] for r in _rows(download.text)] == keys
        # Shown once: the import page does not show them again.
        again = support.get("/panel/licenses/import").text
        assert all(k not in again for k in keys)
    assert _licenses_of(inprocess_server, product) == before + 2
    with db(inprocess_server) as session:
        first = service.find_license_by_key(session, ctx, keys[0])
        second = service.find_license_by_key(session, ctx, keys[1])
        assert first is not None and second is not None
        assert (first.seats, first.features, first.customer_ref, first.order_ref,
                first.notes) == (5, ["export", "pro"], "ACME", "ORD-1", "Reseller, batch 1")
        assert first.expires_at == datetime(2033, 1, 1, tzinfo=timezone.utc)  # through 2032-12-31
        assert second.password_hash is not None and first.password_hash is None
        actors = session.scalars(select(AuditEntry.actor).where(
            AuditEntry.license_id == first.id, AuditEntry.action == "license.issue")).all()
        assert actors == ["panel"]


def test_roles_and_csrf_guard_the_import(inprocess_server: InProcessServer, product: str,
                                         staff_emails: dict[Role, str],
                                         owner: PanelUser) -> None:
    before = _licenses_of(inprocess_server, product)
    text = f"product\n{product}\n"
    for role in (Role.READ_ONLY, Role.DEVELOPER):
        with PanelUser(inprocess_server, staff_emails[role]) as user:
            assert user.sign_in().status_code == 303
            assert user.get("/panel/licenses/import").status_code == 403
            assert user.post("/panel/licenses/import", {"text": text}).status_code == 403
            assert user.post("/panel/licenses/import/keys.csv", {}).status_code == 403
            # Exports are for every role (no personal data).
            assert user.get("/panel/licenses/export.csv").status_code == 200
    for forged in ("", "0" * 64):
        assert owner.post("/panel/licenses/import", {"text": text},
                          csrf=forged).status_code == 403
    assert _licenses_of(inprocess_server, product) == before
    with inprocess_server.session() as anonymous:
        assert anonymous.get(inprocess_server.url + "/panel/licenses/export.csv",
                             allow_redirects=False).status_code == 303


def test_import_bounds(inprocess_server: InProcessServer, product: str,
                       owner: PanelUser) -> None:
    before = _licenses_of(inprocess_server, product)
    too_many = "product\n" + f"{product}\n" * (csvio.MAX_IMPORT_ROWS + 1)
    answer = owner.post("/panel/licenses/import", {"text": too_many})
    assert answer.status_code == 400 and "At most 10000 rows" in answer.text
    header = owner.post("/panel/licenses/import", {"text": "product,email\nx,a@b.example\n"})
    assert header.status_code == 400 and "Unknown column(s): email" in header.text
    ragged = owner.post("/panel/licenses/import", {"text": f"product,seats\n{product},1,9\n"})
    assert ragged.status_code == 400 and "3 cells" in ragged.text
    empty = owner.post("/panel/licenses/import", {"text": "  "})
    assert empty.status_code == 400
    binary = owner.http.post(owner.url("/panel/licenses/import"), data={"csrf": owner.csrf},
                             files={"file": ("x.csv", b"\xff\xfe\x00bad", "text/csv")},
                             allow_redirects=False)
    assert binary.status_code == 400 and "not UTF-8" in binary.text
    assert _licenses_of(inprocess_server, product) == before


def test_safe_cell() -> None:
    assert [csvio.safe_cell(v) for v in ("=1+1", "+1", "-1", "@x", "\tx", "ok", None, 3)] \
        == ["'=1+1", "'+1", "'-1", "'@x", "'\tx", "ok", "", "3"]


def test_import_issues_evaluation_keys_with_their_term(inprocess_server: InProcessServer,
                                                       users: dict[Role, PanelUser]) -> None:
    """An evaluation key needs its days: the import takes them (the API's name), refuses
    bad ones with the row named, and a plain-date expiry means the same as everywhere."""
    product = inprocess_server.admin.create_product(
        f"eval-{secrets.token_hex(3)}", name="Eval")["id"]
    bad = users[Role.OWNER].post("/panel/licenses/import", {"text": (
        "product,kind,expires_after_days\n"
        f"{product},evaluation,30\n"
        f"{product},evaluation,zero\n")})
    assert bad.status_code == 400 and "expires_after_days" in bad.text
    good = users[Role.OWNER].post("/panel/licenses/import", {"text": (
        "product,kind,expires_after_days\n"
        f"{product},evaluation,30\n")})
    assert good.status_code == 200
    listed = inprocess_server.admin.list_licenses(product)
    assert [(lic["kind"], lic["expires_after_days"]) for lic in listed] == [("evaluation", 30)]
