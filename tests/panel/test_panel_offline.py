"""Air-gapped answers in the panel: a real SDK request in, a response the SDK accepts out."""

from __future__ import annotations

import html
import secrets
from collections.abc import Callable

import pytest

from software_dna.server.domain.roles import Role
from software_dna.server.models import Activation, AuditEntry
from software_dna.server.testing import InProcessServer
from tests.airgapped import AirGapped
from tests.panel.helpers import PanelUser, db


def product(server: InProcessServer, **policy: object) -> tuple[str, list[str]]:
    pid = "po-" + secrets.token_hex(4)
    policy.setdefault("air_gapped", True)
    return pid, server.admin.setup_product(pid, features=["export"], **policy)


def response_of(page: str) -> str:
    """The response block shown in the page's read-only text area."""
    area = page.split('id="response" readonly', 1)[1].split(">", 1)[1]
    return html.unescape(area.split("</textarea>", 1)[0])


def activations_of(server: InProcessServer, license_id: str) -> int:
    with db(server) as session:
        return int(session.query(Activation).filter_by(license_id=license_id).count())


def test_answer_a_real_request(inprocess_server: InProcessServer, users: dict[Role, PanelUser],
                               machine: Callable[..., AirGapped]) -> None:
    pid, keys = product(inprocess_server, password_required=True)
    issued = inprocess_server.admin.issue_license(pid, seats=1, password="open sesame")
    app = machine(pid, keys)
    request = app.client.create_activation_request(issued["license_key"])
    support = users[Role.SUPPORT]
    assert support.get("/panel/offline").status_code == 200
    # Text around the block (a mail's greeting) is ignored; staff need no password.
    answer = support.post("/panel/offline", {"request": f"Hello,\n\n{request}\nThanks"})
    assert answer.status_code == 200, answer.text
    response = response_of(answer.text)
    assert response.startswith("-----BEGIN SOFTWARE_DNA ACTIVATION RESPONSE-----")
    assert "a new activation" in answer.text
    lic = app.client.activate_offline(response)
    assert lic.license_id == issued["id"] and lic.has_feature("export")
    assert app.restart().check().license_id == issued["id"]
    # The download: the same request answered again, as a file; no second seat.
    download = support.post("/panel/offline", {"request": request, "download": "yes"})
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith('attachment; filename="')
    assert download.text.startswith("-----BEGIN SOFTWARE_DNA ACTIVATION RESPONSE-----")
    assert activations_of(inprocess_server, issued["id"]) == 1
    with db(inprocess_server) as session:
        entry = session.query(AuditEntry).filter_by(license_id=issued["id"]).filter(
            AuditEntry.action.like("activation.%")).order_by(AuditEntry.id).first()
        assert entry is not None and entry.actor_id is not None
        assert entry.actor_id.startswith("stf_")


@pytest.mark.parametrize("case", ["damaged", "not allowed", "revoked", "empty"])
def test_refusals_are_shown_next_to_the_field(inprocess_server: InProcessServer,
                                              users: dict[Role, PanelUser],
                                              machine: Callable[..., AirGapped],
                                              case: str) -> None:
    pid, keys = product(inprocess_server, air_gapped=case != "not allowed")
    issued = inprocess_server.admin.issue_license(pid, seats=1)
    request = machine(pid, keys).client.create_activation_request(issued["license_key"])
    if case == "damaged":
        lines = request.splitlines()
        lines[2] = lines[2][:-4] + ("AAAA" if not lines[2].endswith("AAAA") else "BBBB")
        request = "\n".join(lines)
    elif case == "revoked":
        inprocess_server.admin.revoke_license(issued["id"])
    elif case == "empty":
        request = "   "
    answer = users[Role.ADMIN].post("/panel/offline", {"request": request})
    assert answer.status_code == 400
    assert 'id="e-request"' in answer.text and 'aria-invalid="true"' in answer.text
    assert 'id="response"' not in answer.text
    assert activations_of(inprocess_server, issued["id"]) == 0


def test_who_may_answer(inprocess_server: InProcessServer, users: dict[Role, PanelUser],
                        machine: Callable[..., AirGapped]) -> None:
    pid, keys = product(inprocess_server)
    issued = inprocess_server.admin.issue_license(pid, seats=1)
    request = machine(pid, keys).client.create_activation_request(issued["license_key"])
    for role in (Role.DEVELOPER, Role.READ_ONLY):
        assert users[role].get("/panel/offline").status_code == 403
        assert users[role].post("/panel/offline", {"request": request}).status_code == 403
    for token in ("", "9" * 64):
        assert users[Role.SUPPORT].post("/panel/offline", {"request": request},
                                        csrf=token).status_code == 403
    assert activations_of(inprocess_server, issued["id"]) == 0
