"""Activations in the panel: filters, the mode the token really has, removal (in-process).

The machines are real SDK clients (simulated machines) activating against the
in-process server; the mode shown is checked against the mode of the token
the machine holds, and against the admin API and ``software-dna activations list``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import pytest

from software_dna import LicenseClient
from software_dna.server.cli import main
from software_dna.server.domain.roles import Role
from software_dna.server.models import Activation, AuditEntry, License
from software_dna.server.services.common import utcnow
from software_dna.server.testing import InProcessServer
from software_dna.testing import SimulatedMachine
from tests.panel.helpers import PanelUser, db


class Fleet:
    """A product with three licenses: one full, one erased (limited), one air-gapped."""

    def __init__(self, server: InProcessServer, folder: Path) -> None:
        self.server = server
        self.product = "pa-" + secrets.token_hex(4)
        self.keys = server.admin.setup_product(self.product, features=["export", "print"],
                                               limited_features=["print"], air_gapped=True)
        self.folder = folder

    def client(self, name: str) -> LicenseClient:
        return LicenseClient(product=self.product, public_keys=self.keys,
                             machine=SimulatedMachine(self.folder / name),
                             transport=self.server.transport())

    def issue(self) -> dict[str, Any]:
        issued: dict[str, Any] = self.server.admin.issue_license(self.product, seats=2)
        return issued


def row(page: str, activation_id: str) -> str:
    """The table row of an activation on a list page."""
    start = page.index(f'<a href="/panel/activations/{activation_id}">')
    return page[start:page.index("</tr>", start)]


def test_the_list_shows_the_mode_the_token_has(inprocess_server: InProcessServer,
                                               users: dict[Role, PanelUser],
                                               tmp_path: Path) -> None:
    fleet = Fleet(inprocess_server, tmp_path)
    full_lic, erased_lic, airgap_lic = fleet.issue(), fleet.issue(), fleet.issue()
    full = fleet.client("full").activate(full_lic["license_key"])
    eraser = fleet.client("erased")
    eraser.activate(erased_lic["license_key"], email="someone@example.com", consent=True)
    limited = eraser.request_erasure()
    assert (full.mode.value, limited.mode.value) == ("full", "limited")
    request = fleet.client("airgapped").create_activation_request(airgap_lic["license_key"])
    answered = inprocess_server.admin.offline_respond(request)
    airgapped_id = answered["activation_id"]

    page = users[Role.READ_ONLY].get(f"/panel/activations?product={fleet.product}")
    assert page.status_code == 200
    assert "full" in row(page.text, full.activation_id)
    assert "limited" not in row(page.text, full.activation_id)
    assert "limited (after erasure)" in row(page.text, limited.activation_id)
    assert "air-gapped" in row(page.text, airgapped_id)
    # The admin API and the panel say the same.
    for lic, activation_id, mode in ((full_lic, full.activation_id, "full"),
                                     (erased_lic, limited.activation_id, "limited"),
                                     (airgap_lic, airgapped_id, "full")):
        seen = inprocess_server.admin.list_activations(lic["id"])
        assert [(a["id"], a["mode"]) for a in seen] == [(activation_id, mode)]
    assert inprocess_server.admin.list_activations(airgap_lic["id"])[0]["offline"]

    # Filters: mode, license, product.
    only_limited = users[Role.READ_ONLY].get(
        f"/panel/activations?product={fleet.product}&mode=limited")
    assert limited.activation_id in only_limited.text
    assert full.activation_id not in only_limited.text and airgapped_id not in only_limited.text
    only_full = users[Role.READ_ONLY].get(f"/panel/activations?product={fleet.product}&mode=full")
    assert full.activation_id in only_full.text and limited.activation_id not in only_full.text
    only_offline = users[Role.READ_ONLY].get(
        f"/panel/activations?product={fleet.product}&mode=offline")
    assert airgapped_id in only_offline.text and full.activation_id not in only_offline.text
    one = users[Role.READ_ONLY].get(f"/panel/activations?license={full_lic['id']}")
    assert full.activation_id in one.text and limited.activation_id not in one.text

    # Restoring the erased license: the panel shows full again, as the next token will be.
    inprocess_server.admin.restore_license(erased_lic["id"])
    page = users[Role.READ_ONLY].get(f"/panel/activations/{limited.activation_id}")
    assert "limited" not in page.text.split("Mode of its tokens", 1)[1].split("</dd>", 1)[0]
    assert eraser.refresh().mode.value == "full"


def test_flagged_and_removed_filters(inprocess_server: InProcessServer,
                                     users: dict[Role, PanelUser], tmp_path: Path) -> None:
    fleet = Fleet(inprocess_server, tmp_path)
    lic = fleet.issue()
    shared = fleet.client("one").activate(lic["license_key"])
    honest = fleet.client("two").activate(lic["license_key"])
    with db(inprocess_server) as session:  # what the sharing detection records
        row_ = session.get(Activation, shared.activation_id)
        row_.shared_at, row_.shared_reason = utcnow(), "copied_secret"
        session.commit()
    flagged = users[Role.DEVELOPER].get(
        f"/panel/activations?product={fleet.product}&shared=on")
    assert shared.activation_id in flagged.text and honest.activation_id not in flagged.text
    assert "flagged: copied_secret" in flagged.text
    inprocess_server.admin.remove_activation(honest.activation_id)
    live = users[Role.DEVELOPER].get(f"/panel/activations?product={fleet.product}")
    assert honest.activation_id not in live.text
    removed = users[Role.DEVELOPER].get(
        f"/panel/activations?product={fleet.product}&state=removed")
    assert honest.activation_id in removed.text and shared.activation_id not in removed.text
    assert "removed by the vendor" in removed.text


def test_remove_asks_first_and_only_allowed_roles_can(inprocess_server: InProcessServer,
                                                      users: dict[Role, PanelUser],
                                                      tmp_path: Path) -> None:
    fleet = Fleet(inprocess_server, tmp_path)
    lic = fleet.issue()
    held = fleet.client("m").activate(lic["license_key"])
    path = f"/panel/activations/{held.activation_id}/remove"

    def live() -> bool:
        with db(inprocess_server) as session:
            activation = session.get(Activation, held.activation_id)
            return activation is not None and activation.deactivated_at is None

    for role in (Role.DEVELOPER, Role.READ_ONLY):
        assert users[role].get(path).status_code == 403
        assert users[role].post(path).status_code == 403
    for token in ("", "a" * 64):
        assert users[Role.SUPPORT].post(path, csrf=token).status_code == 403
    assert live()
    confirm = users[Role.SUPPORT].get(path)
    assert confirm.status_code == 200 and "seat it holds" in confirm.text
    assert live()
    done = users[Role.SUPPORT].post(path)
    assert done.status_code == 303 and not live()
    assert done.headers["location"] == f"/panel/activations/{held.activation_id}"
    with db(inprocess_server) as session:
        entry = session.query(AuditEntry).filter_by(action="activation.remove",
                                                    activation_id=held.activation_id).one()
        assert entry.actor == "panel" and (entry.actor_id or "").startswith("stf_")
    assert users[Role.SUPPORT].get("/panel/activations/act_nope/remove").status_code == 404


def test_cli_list_shows_the_real_mode(inprocess_server: InProcessServer, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    fleet = Fleet(inprocess_server, tmp_path)
    lic = fleet.issue()
    machine = fleet.client("c")
    held = machine.activate(lic["license_key"])
    # The whole license erased by the vendor: the activation row itself is not marked, the
    # license is; the token says limited, and so must the CLI.
    with db(inprocess_server) as session:
        row_ = session.get(License, lic["id"])
        row_.erased = True
        session.query(Activation).filter_by(license_id=row_.id).update({"erased": False})
        session.commit()
    assert machine.refresh().mode.value == "limited"
    for name in list(os.environ):
        if name.startswith("SOFTWARE_DNA_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    for name, value in inprocess_server.settings.to_env().items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        code = main(["activations", "list", lic["id"]])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr().out
    assert code == 0, out
    line = next(line for line in out.splitlines() if held.activation_id in line)
    assert " limited " in f" {line} " and " full " not in f" {line} "
