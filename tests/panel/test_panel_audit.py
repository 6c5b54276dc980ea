"""The audit log in the panel: filters, newest first, who did it (staff email, key name)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

from software_dna.server.adminclient import AdminClient
from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, StaffMember
from software_dna.server.services.admin import create_admin_key
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db


def rows(page: str) -> list[str]:
    """The table rows of the log, in order."""
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0] if "<tbody>" in page else ""
    return body.split("<tr>")[1:]


def test_filters_and_who(inprocess_server: InProcessServer,
                         users: dict[Role, PanelUser]) -> None:
    developer = users[Role.DEVELOPER]
    pid = "pl-" + secrets.token_hex(4)
    # A change made in the panel by a staff member...
    assert developer.post("/panel/products/new", {
        "id": pid, "protection": "opportunistic", "refresh_interval": "86400",
        "offline_grace_period": "604800", "fingerprint_tolerance": "1",
        "test_code_limit": "5", "lease_duration": "900", "reactivation_period": "2592000",
        "rebind_limit": "3", "rebind_period": "2592000", "air_gapped_token_days": "365",
        "payment_grace_days": "14", "sharing_policy": "flag",
        "portal_release_days": "30"}).status_code == 303
    assert developer.post(f"/panel/keys/{pid}/generate").status_code == 303
    # ... and one through the admin API with a named key.
    with db(inprocess_server) as session:
        key = create_admin_key(session, inprocess_server.app.state.sdna.ctx,
                               role=Role.ADMIN, name="billing-bot")
    bot = AdminClient(inprocess_server.url, key, session=inprocess_server.session())
    bot.update_product(pid, name="Renamed by the bot")

    reader = users[Role.READ_ONLY]
    page = reader.get(f"/panel/audit?product={pid}")
    assert page.status_code == 200
    found = rows(page.text)
    assert [r.split("<code>", 1)[1].split("</code>", 1)[0] for r in found] == [
        "product.update", "key.generate", "product.create"]  # newest first
    assert "API key billing-bot (admin)" in found[0]
    assert developer.email in found[1] and developer.email in found[2]
    assert "panel" in found[2] and "T" in found[2] and "Z</time>" in found[2]
    with db(inprocess_server) as session:
        member = session.query(StaffMember).filter_by(email=developer.email).one()
    by_developer = rows(reader.get(f"/panel/audit?product={pid}&who={member.id}").text)
    assert len(by_developer) == 2
    keys_only = rows(reader.get(f"/panel/audit?product={pid}&action=key.").text)
    assert len(keys_only) == 1 and "key.generate" in keys_only[0]
    # A prefix is a prefix: SQL wildcards typed into it match nothing.
    assert rows(reader.get(f"/panel/audit?product={pid}&action=%25").text) == []
    today = datetime.now(timezone.utc).date()
    assert len(rows(reader.get(f"/panel/audit?product={pid}&since={today}&until={today}"
                               ).text)) == 3
    tomorrow = today + timedelta(days=1)
    assert rows(reader.get(f"/panel/audit?product={pid}&since={tomorrow}").text) == []
    yesterday = today - timedelta(days=1)
    assert rows(reader.get(f"/panel/audit?product={pid}&until={yesterday}").text) == []
    bad = reader.get(f"/panel/audit?product={pid}&since=3/12/2026")
    assert bad.status_code == 400 and 'id="e-since"' in bad.text


def test_license_filter_and_pages(inprocess_server: InProcessServer,
                                  users: dict[Role, PanelUser]) -> None:
    license_id = "lic_" + secrets.token_hex(6)
    now = datetime.now(timezone.utc)
    with db(inprocess_server) as session:
        for n in range(60):
            session.add(AuditEntry(at=now, actor="cli", action="license.note",
                                   license_id=license_id, detail={"n": n}))
        session.commit()
    reader = users[Role.SUPPORT]
    first = reader.get(f"/panel/audit?license={license_id}")
    assert "Page 1 of 2 (60 in all)" in first.text
    assert f'href="/panel/audit?page=2&amp;license={license_id}"' in first.text
    assert '{"n": 59}' in rows(first.text)[0]
    second = reader.get(f"/panel/audit?license={license_id}&page=2")
    assert len(rows(second.text)) == 10 and '{"n": 0}' in rows(second.text)[-1]


def test_detail_is_escaped(inprocess_server: InProcessServer,
                           users: dict[Role, PanelUser]) -> None:
    with db(inprocess_server) as session:
        session.add(AuditEntry(at=datetime.now(timezone.utc), actor="cli",
                               action="<script>alert(1)</script>",
                               detail={"x": "</code><script>alert(2)</script>"}))
        session.commit()
    page = users[Role.OWNER].get("/panel/audit").text
    assert "<script>" not in page
