"""``LicenseClient(app_version=...)``: the app's version reaches the server and stays current.

The SDK sends it with the client facts at activation, trial start, in an
air-gapped request and at online validation; the server stores it on the
activation and updates it when a validation brings another one, on the fast
path (services/hotpath.py) and on the ORM path (a re-bind) alike.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from software_dna import LicenseClient
from software_dna.fingerprint import Fingerprint
from software_dna.server.models import Activation, AuditEntry

from .inprocess import InProcessServer
from .server.helpers import fingerprint, nonce


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


class Machine:
    """One computer: its fingerprint components (changeable) and its store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.parts: dict[str, object] = {
            n: secrets.token_urlsafe(32)[:43] for n in ("machine_id", "os_arch", "cpu")}
        self.parts["mac"] = [secrets.token_urlsafe(32)[:43]]

    def fingerprint(self, _product: str) -> Fingerprint:
        return Fingerprint.from_components(self.parts)


@pytest.fixture
def client_for(server: InProcessServer,
               tmp_path: Path) -> Iterator[Callable[..., LicenseClient]]:
    made: list[LicenseClient] = []

    def make(product: str, keys: list[str], machine: Machine, **kw: Any) -> LicenseClient:
        client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                               store_path=machine.folder, transport=server.transport(),
                               fingerprint=machine.fingerprint, timeout=5.0, **kw)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def _product(server: InProcessServer, **policy: Any) -> tuple[str, list[str]]:
    product = "av-" + secrets.token_hex(4)
    return product, server.admin.setup_product(product, name="Versions", **policy)


def _stored(server: InProcessServer, activation_id: str) -> str | None:
    with server.app.state.sdna.sessions() as session:
        value: str | None = session.scalar(
            select(Activation.app_version).where(Activation.id == activation_id))
        return value


def _rebinds(server: InProcessServer, activation_id: str) -> int:
    with server.app.state.sdna.sessions() as session:
        return len(session.scalars(select(AuditEntry).where(
            AuditEntry.activation_id == activation_id,
            AuditEntry.action.like("%rebind%"))).all())


def test_activation_stores_it_and_validations_update_it(
        server: InProcessServer, client_for: Callable[..., LicenseClient],
        tmp_path: Path) -> None:
    product, keys = _product(server, fingerprint_tolerance=1)
    key = server.admin.issue_license(product)["license_key"]
    machine = Machine(tmp_path / "m")
    lic = client_for(product, keys, machine, app_version="1.4.2").activate(key)
    activation = lic.activation_id
    assert _stored(server, activation) == "1.4.2"
    listed = server.admin.list_activations(lic.license_id)
    assert listed[0]["client"]["app_version"] == "1.4.2"

    # The app updated: the next validation (the fast path: nothing else changed) says so.
    client_for(product, keys, machine, app_version="1.5.0").refresh()
    assert _stored(server, activation) == "1.5.0"
    assert _rebinds(server, activation) == 0

    # A network card replaced (a re-bind: the ORM path) and another version at once.
    machine.parts["mac"] = [secrets.token_urlsafe(32)[:43]]
    client_for(product, keys, machine, app_version="2.0.0").refresh()
    assert _stored(server, activation) == "2.0.0"
    assert _rebinds(server, activation) >= 1

    # An app that does not say (an older SDK, or no app_version given): kept as it was.
    client_for(product, keys, machine).refresh()
    assert _stored(server, activation) == "2.0.0"


def test_trial_start_and_air_gapped_request_carry_it(
        server: InProcessServer, client_for: Callable[..., LicenseClient],
        tmp_path: Path) -> None:
    product, keys = _product(server, trial_days=14, air_gapped=True)
    trial = client_for(product, keys, Machine(tmp_path / "t"), app_version="0.9b1").start_trial()
    assert _stored(server, trial.activation_id) == "0.9b1"

    key = server.admin.issue_license(product)["license_key"]
    offline = client_for(product, keys, Machine(tmp_path / "o"), app_version="3.1")
    answer = server.admin.offline_respond(offline.create_activation_request(key))
    lic = offline.activate_offline(str(answer["response"]))
    assert _stored(server, lic.activation_id) == "3.1"


@pytest.mark.parametrize("bad", ["", "x" * 33, "1.0\n", "1.0\x00", 5, b"1.0"])
def test_a_malformed_app_version_is_refused_at_construction(bad: object,
                                                           tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="app_version"):
        LicenseClient(product="p", public_keys=["k4.public." + "A" * 43],
                      store_path=tmp_path, app_version=bad)  # type: ignore[arg-type]


def test_the_server_bounds_what_a_client_sends(server: InProcessServer) -> None:
    """A forged body: an over-long or control-character app_version is a 400, not stored."""
    product, _ = _product(server)
    key = server.admin.issue_license(product)["license_key"]
    with server.session() as http:
        for bad in ("9" * 33, "1.0\u0007"):
            answer = http.post(f"{server.url}/v1/activations", json={
                "product": product, "license_key": key, "fingerprint": fingerprint("x"),
                "nonce": nonce(), "idempotency_key": nonce(),
                "client": {"app_version": bad}}, timeout=30)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "invalid_request"
        made = http.post(f"{server.url}/v1/activations", json={
            "product": product, "license_key": key, "fingerprint": fingerprint("x"),
            "nonce": nonce(), "idempotency_key": nonce(),
            "client": {"app_version": "7.0"}}, timeout=30).json()
        refused = http.post(
            f"{server.url}/v1/activations/{made['activation_id']}/validate",
            json={"fingerprint": fingerprint("x"), "nonce": nonce(),
                  "client": {"app_version": "x" * 40}},
            headers={"Authorization": f"Bearer {made['activation_secret']}"}, timeout=30)
        assert refused.status_code == 400
    assert _stored(server, made["activation_id"]) == "7.0"
