"""End users in the panel: find, view (audited), export (the API's export), erase (no trace).

Personal data is given the real way, by an SDK client activating with an
email address and registration details; the erasure is then checked in the
database files themselves (SQLite, and PostgreSQL where it answers).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text

from software_dna import LicenseClient
from software_dna.server.crypto import DecryptionError
from software_dna.server.db import checkpoint_job
from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, EndUser, StaffMember
from software_dna.server.testing import InProcessServer
from software_dna.testing import SimulatedMachine
from tests.panel.helpers import PanelUser, add_staff, db


def activate_with_data(server: InProcessServer, folder: Path, email: str,
                       registration: dict[str, str]) -> tuple[str, str, str]:
    """A machine activates with personal data; returns (end user id, license id, activation)."""
    product = "pe-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, features=["export"], limited_features=[])
    issued = server.admin.issue_license(product, seats=1)
    client = LicenseClient(product=product, public_keys=keys,
                           machine=SimulatedMachine(folder / "m"),
                           transport=server.transport())
    held = client.activate(issued["license_key"], email=email, registration=registration,
                           consent=True)
    found = server.admin.find_end_users(email)
    assert len(found) == 1
    return str(found[0]["id"]), str(issued["id"]), held.activation_id


def views(server: InProcessServer, end_user_id: str) -> list[tuple[str | None, Any]]:
    with db(server) as session:
        return [(e.actor_id, e.detail) for e in session.query(AuditEntry).filter_by(
            action="end_user.viewed", end_user_id=end_user_id).order_by(AuditEntry.id)]


def staff_id(server: InProcessServer, email: str) -> str:
    with db(server) as session:
        return str(session.query(StaffMember).filter_by(email=email).one().id)


def test_find_and_view_are_audited(inprocess_server: InProcessServer,
                                   users: dict[Role, PanelUser], tmp_path: Path) -> None:
    email = f"ada.{secrets.token_hex(3)}@example.com"
    end_user_id, license_id, activation_id = activate_with_data(
        inprocess_server, tmp_path, email, {"company": "Analytical <Engines>"})
    support = users[Role.SUPPORT]
    found = support.post("/panel/end-users", {"email": email.upper()})
    assert found.status_code == 200 and end_user_id in found.text
    assert email not in found.text  # the list shows ids only
    assert views(inprocess_server, end_user_id) == []  # a search decrypts nothing
    page = support.get(f"/panel/end-users/{end_user_id}")
    assert page.status_code == 200
    assert email in page.text and "Analytical &lt;Engines&gt;" in page.text
    assert activation_id in page.text and license_id in page.text
    support.get(f"/panel/end-users/{end_user_id}")
    me = staff_id(inprocess_server, support.email)
    assert views(inprocess_server, end_user_id) == [(me, {"view": "page"})] * 2
    with db(inprocess_server) as session:
        entry = session.query(AuditEntry).filter_by(action="end_user.viewed",
                                                    end_user_id=end_user_id).first()
        assert entry.actor == "panel" and email not in json.dumps(entry.detail)
    forged = support.post("/panel/end-users", {"email": email}, csrf="")
    assert forged.status_code == 403 and end_user_id not in forged.text
    bad = support.post("/panel/end-users", {"email": "not an address"})
    assert bad.status_code == 400 and 'id="e-email"' in bad.text


def test_export_is_the_admin_apis_export(inprocess_server: InProcessServer,
                                         users: dict[Role, PanelUser], tmp_path: Path) -> None:
    email = f"grace.{secrets.token_hex(3)}@example.com"
    end_user_id, _, _ = activate_with_data(inprocess_server, tmp_path, email, {"team": "Navy"})
    download = users[Role.ADMIN].get(f"/panel/end-users/{end_user_id}/export.json")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == (
        f'attachment; filename="{end_user_id}.json"')
    assert download.headers["content-type"].startswith("application/json")
    exported = download.json()
    assert exported == inprocess_server.admin.export_end_user(end_user_id)
    assert exported["email"] == email and exported["registration"] == {"team": "Navy"}
    me = staff_id(inprocess_server, users[Role.ADMIN].email)
    panel, api = views(inprocess_server, end_user_id)
    assert panel == (me, {"view": "export"})  # the panel's download, then the API's export
    assert api[1] == {"view": "export"} and (api[0] or "").startswith("adk_")


def test_roles_without_personal_data_see_nothing(inprocess_server: InProcessServer,
                                                 users: dict[Role, PanelUser],
                                                 tmp_path: Path) -> None:
    email = f"alan.{secrets.token_hex(3)}@example.com"
    end_user_id, _, _ = activate_with_data(inprocess_server, tmp_path, email, {"k": "v"})
    for role in (Role.DEVELOPER, Role.READ_ONLY):
        user = users[role]
        assert user.post("/panel/end-users", {"email": email}).status_code == 403
        for path in ("/panel/end-users", f"/panel/end-users/{end_user_id}",
                     f"/panel/end-users/{end_user_id}/export.json",
                     f"/panel/end-users/{end_user_id}/erase"):
            answer = user.get(path)
            assert answer.status_code == 403, path
            assert email not in answer.text
        assert user.post(f"/panel/end-users/{end_user_id}/erase").status_code == 403
        nav = user.get("/panel/").text
        assert 'href="/panel/end-users"' not in nav
    assert views(inprocess_server, end_user_id) == []
    with db(inprocess_server) as session:
        assert session.get(EndUser, end_user_id).erased_at is None


def database_text(server: InProcessServer) -> bytes:
    """Every byte of the database: the SQLite files after the erasure's checkpoint, or
    every PostgreSQL row as text; plus every value of every table, decrypted where the
    end users' associated data opens it."""
    state = server.app.state.sdna
    chunks: list[bytes] = []
    if server.database_url.startswith("sqlite"):
        assert checkpoint_job(state.engine).flush()
        path = Path(server.database_url.removeprefix("sqlite:///"))
        chunks += [Path(str(path) + s).read_bytes() for s in ("", "-wal", "-journal")
                   if Path(str(path) + s).exists()]
    with state.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')).mappings():
                for value in row.values():
                    if isinstance(value, (bytes, memoryview)):
                        blob = bytes(value)
                        chunks.append(blob)
                        for aad in (f"end_user:{row.get('id')}:email",
                                    f"end_user:{row.get('id')}:registration"):
                            try:
                                chunks.append(state.ctx.vault.decrypt_field(blob, aad=aad))
                            except (DecryptionError, ValueError):  # not this kind of blob
                                continue
                    elif value is not None:
                        chunks.append(str(value).encode())
    return b"\n".join(chunks)


def test_erase_asks_first_then_leaves_no_trace(inprocess_any_server: InProcessServer,
                                               tmp_path: Path) -> None:
    server = inprocess_any_server
    email = f"Barbara.{secrets.token_hex(4)}@Example.com"
    company = f"Liskov-{secrets.token_hex(4)}"
    end_user_id, license_id, _ = activate_with_data(server, tmp_path, email,
                                                    {"company": company})
    index = server.app.state.sdna.ctx.vault.email_index(email)
    before = database_text(server)
    assert index.encode() in before and email.encode() in before  # (decrypted) held
    with PanelUser(server, add_staff(server, Role.SUPPORT)) as support:
        assert support.sign_in().status_code == 303
        confirm = support.get(f"/panel/end-users/{end_user_id}/erase")
        assert confirm.status_code == 200
        assert "limited mode" in confirm.text and "cannot be undone" in confirm.text
        assert email not in confirm.text
        for token in ("", "0" * 64):
            refused = support.post(f"/panel/end-users/{end_user_id}/erase", csrf=token)
            assert refused.status_code == 403
        with db(server) as session:
            assert session.get(EndUser, end_user_id).erased_at is None
        done = support.post(f"/panel/end-users/{end_user_id}/erase")
        assert done.status_code == 303
        assert f"End user {end_user_id} erased" in support.get("/panel/end-users").text
        again = support.post("/panel/end-users", {"email": email}).text
        assert end_user_id not in again and "No end user has this address" in again
    after = database_text(server)
    for needle in (email, email.lower(), company, index):
        assert needle.encode() not in after, needle
    assert server.admin.get_license(license_id)["erased"] is True
    with db(server) as session:
        entry = session.query(AuditEntry).filter_by(action="end_user.erase",
                                                    end_user_id=end_user_id).one()
        assert entry.actor == "panel" and (entry.actor_id or "").startswith("stf_")
