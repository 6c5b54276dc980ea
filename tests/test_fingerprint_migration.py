"""A 0.1 activation (algorithm-1 set, algorithm-1 token) migrates at its next validation.

Real server and database in this process (tests/inprocess.py). The activation
is made a 0.1 one the way migration 0005 leaves it: its only binding is the
algorithm-1 set of this machine's legacy form, and the SDK holds a token
the server signed for that set.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, select

from software_dna import LicenseClient
from software_dna.client.transport import Response, Transport
from software_dna.fingerprint import Fingerprint, LegacyFingerprint
from software_dna.server.models import Activation
from software_dna.server.models.binding import MachineBinding
from software_dna.server.services import bindings
from software_dna.server.services.tokens import issue_for
from software_dna.wire import identity
from tests.identity_cases import h, machine

from .inprocess import InProcessServer
from .test_client_e2e import new_product


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


def legacy_of(name: str) -> LegacyFingerprint:
    components = {n: h(f"v1-{n}-{name}") for n in ("machine_id", "os_arch", "mac", "hostname",
                                                   "cpu")}
    return LegacyFingerprint(f"fp1.machine_id.{components['machine_id']}", components)


HERE = Fingerprint.from_components(identity.to_json(machine("here")), legacy=legacy_of("here"))


class Recording(Transport):
    """The in-process transport, keeping every request body."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.bodies: list[tuple[str, Mapping[str, Any] | None]] = []

    def request(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
                bearer: str | None = None, retry: bool = False,
                deadline: float | None = None) -> Response:
        self.bodies.append((path, json_body))
        return self.inner.request(method, path, json_body=json_body, bearer=bearer,
                                  retry=retry, deadline=deadline)


def make_0_1(server: InProcessServer, activation_id: str, legacy: LegacyFingerprint) -> str:
    """Bind the activation to ``legacy`` only (as migration 0005 does); a v1 token for it."""
    state = server.app.state.sdna
    now = datetime.now(timezone.utc)
    with state.sessions() as session:
        activation = session.get(Activation, activation_id)
        assert activation is not None
        activation.binding_id = None
        session.flush()
        session.execute(delete(MachineBinding).where(
            MachineBinding.activation_id == activation_id))
        bindings.bind(session, state.ctx, activation, activation.license.product_id,
                      algorithm=identity.LEGACY_ALGORITHM, components=legacy.components, now=now)
        token = issue_for(session, state.ctx, activation, nonce="migration-test-nonce", now=now)
        session.commit()
    return token


def algorithms(server: InProcessServer, activation_id: str) -> list[int]:
    with server.app.state.sdna.sessions() as session:
        return sorted(session.scalars(select(MachineBinding.algorithm).where(
            MachineBinding.activation_id == activation_id)))


def test_a_0_1_activation_migrates_at_its_next_validation(server: InProcessServer,
                                                          tmp_path: Path) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product)["license_key"]
    transport = Recording(server.transport())
    args: dict[str, Any] = {"product": product, "public_keys": keys, "server_url": server.url,
                            "store_path": tmp_path, "transport": transport,
                            "fingerprint": lambda _p: HERE}
    client = LicenseClient(**args)
    activation_id = client.activate(key).activation_id
    v1_token = make_0_1(server, activation_id, legacy_of("here"))
    state = client._state
    secret = state.read()["activation_secret"]
    state.save_activation(v1_token, state.verifier.verify(v1_token), activation_id, secret)
    client.close()

    # A new start of the app with this SDK: the stored 0.1 token still checks offline ...
    client = LicenseClient(**args)
    assert client.check().fingerprint_algorithm == identity.LEGACY_ALGORITHM
    # ... and the next validation sends the old set once; the answer is algorithm 2.
    transport.bodies.clear()
    fresh = client.refresh()
    (_path, body), = transport.bodies
    assert body is not None and body["previous"] == legacy_of("here").to_wire()
    assert body["fingerprint"] == HERE.to_wire()
    assert fresh.fingerprint_algorithm == identity.ALGORITHM
    assert dict(fresh.fingerprint) == dict(HERE.components)
    assert algorithms(server, activation_id) == [identity.ALGORITHM]  # host-name hashes gone

    transport.bodies.clear()
    assert client.refresh().fingerprint_algorithm == identity.ALGORITHM
    (_path, body), = transport.bodies
    assert body is not None and "previous" not in body
    client.close()
