"""Signing keys in the panel: generate, rotate, retire (confirmed), the public keys to copy."""

from __future__ import annotations

import html
import secrets

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, SigningKey
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, db


def new_product(server: InProcessServer) -> str:
    pid = "pk-" + secrets.token_hex(4)
    server.admin.create_product(pid)
    return pid


def statuses(server: InProcessServer, pid: str) -> dict[str, str]:
    with db(server) as session:
        return {k.kid: k.status for k in session.query(SigningKey).filter_by(product_id=pid)}


def test_generate_rotate_and_copy_the_public_keys(inprocess_server: InProcessServer,
                                                  users: dict[Role, PanelUser]) -> None:
    developer = users[Role.DEVELOPER]
    pid = new_product(inprocess_server)
    page = developer.get(f"/panel/keys?product={pid}")
    assert page.status_code == 200 and "No signing key yet" in page.text
    assert developer.post(f"/panel/keys/{pid}/generate").status_code == 303
    assert developer.post(f"/panel/keys/{pid}/generate").status_code == 303
    keys = statuses(inprocess_server, pid)
    assert sorted(keys.values()) == ["active", "trusted"]
    published = inprocess_server.admin.public_keys(pid)
    page = users[Role.READ_ONLY].get(f"/panel/keys?product={pid}")
    assert page.status_code == 200
    # The keys to build into the app, in a read-only text area, in the API's order.
    area = page.text.split("readonly", 1)[1].split(">", 1)[1].split("</textarea>", 1)[0]
    assert html.unescape(area).split("\n") == published
    assert "Generate a key" not in page.text and "Retire…" not in page.text
    download = users[Role.READ_ONLY].get(f"/panel/keys/{pid}/public-keys.txt")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    assert download.text.splitlines() == published
    # Rotating to the trusted key: a confirmation first, which names the key.
    trusted = next(kid for kid, status in keys.items() if status == "trusted")
    confirm = developer.get(f"/panel/keys/{pid}/rotate?kid={trusted}")
    assert confirm.status_code == 200 and trusted in confirm.text
    assert statuses(inprocess_server, pid) == keys  # a GET changes nothing
    assert developer.post(f"/panel/keys/{pid}/rotate", {"kid": trusted}).status_code == 303
    assert statuses(inprocess_server, pid)[trusted] == "active"
    with db(inprocess_server) as session:
        entry = session.query(AuditEntry).filter_by(action="key.rotate", product_id=pid).one()
        assert entry.actor == "panel" and entry.kid == trusted
        assert entry.actor_id is not None and entry.actor_id.startswith("stf_")


def test_rotate_to_a_new_key_warns_that_old_apps_break(inprocess_server: InProcessServer,
                                                       users: dict[Role, PanelUser]) -> None:
    admin = users[Role.ADMIN]
    pid = new_product(inprocess_server)
    inprocess_server.admin.generate_key(pid)
    confirm = admin.get(f"/panel/keys/{pid}/rotate")
    assert "Apps built without it cannot verify" in confirm.text
    before = statuses(inprocess_server, pid)
    assert admin.post(f"/panel/keys/{pid}/rotate", {"kid": ""}).status_code == 303
    after = statuses(inprocess_server, pid)
    assert len(after) == 2 and after[next(iter(before))] == "trusted"


def test_retire_asks_first_and_never_retires_the_active_key(
        inprocess_server: InProcessServer, users: dict[Role, PanelUser]) -> None:
    developer = users[Role.DEVELOPER]
    pid = new_product(inprocess_server)
    active = inprocess_server.admin.generate_key(pid)["kid"]
    trusted = inprocess_server.admin.generate_key(pid)["kid"]
    confirm = developer.get(f"/panel/keys/{pid}/{trusted}/retire")
    assert confirm.status_code == 200
    assert "Apps that trust only this key stop verifying new tokens" in confirm.text
    assert f'action="/panel/keys/{pid}/{trusted}/retire"' in confirm.text
    assert statuses(inprocess_server, pid)[trusted] == "trusted"
    # A forged post for the active key is refused by the service's rule.
    refused = developer.post(f"/panel/keys/{pid}/{active}/retire")
    assert refused.status_code == 409 and "rotate" in refused.text
    # Another product's key through this product's URL: not found, unchanged.
    other = new_product(inprocess_server)
    foreign = inprocess_server.admin.generate_key(other)["kid"]
    assert developer.post(f"/panel/keys/{pid}/{foreign}/retire").status_code == 404
    assert developer.post(f"/panel/keys/{pid}/{trusted}/retire").status_code == 303
    assert statuses(inprocess_server, pid) == {active: "active", trusted: "retired"}
    assert statuses(inprocess_server, other) == {foreign: "active"}
    assert len(inprocess_server.admin.public_keys(pid)) == 1


def test_who_may_change_keys(inprocess_server: InProcessServer,
                             users: dict[Role, PanelUser]) -> None:
    pid = new_product(inprocess_server)
    active = inprocess_server.admin.generate_key(pid)["kid"]
    trusted = inprocess_server.admin.generate_key(pid)["kid"]
    before = statuses(inprocess_server, pid)
    for role in (Role.SUPPORT, Role.READ_ONLY):
        user = users[role]
        assert user.get(f"/panel/keys?product={pid}").status_code == 200
        assert user.post(f"/panel/keys/{pid}/generate").status_code == 403
        assert user.get(f"/panel/keys/{pid}/rotate").status_code == 403
        assert user.post(f"/panel/keys/{pid}/rotate", {"kid": trusted}).status_code == 403
        assert user.get(f"/panel/keys/{pid}/{trusted}/retire").status_code == 403
        assert user.post(f"/panel/keys/{pid}/{trusted}/retire").status_code == 403
    for token in ("", "f" * 64):
        developer = users[Role.DEVELOPER]
        assert developer.post(f"/panel/keys/{pid}/generate", csrf=token).status_code == 403
        assert developer.post(f"/panel/keys/{pid}/rotate", {"kid": trusted},
                              csrf=token).status_code == 403
        assert developer.post(f"/panel/keys/{pid}/{trusted}/retire",
                              csrf=token).status_code == 403
    assert statuses(inprocess_server, pid) == before == {active: "active", trusted: "trusted"}
