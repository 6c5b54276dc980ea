"""The SDK's "this machine?" decision and the fingerprint it sends.

The verifier is fed the shared case table (tests/identity_cases.CASES): a
token bound to set ``a`` (signed as the server signs it, tests/tokens.py)
is checked on a machine whose set is ``b``; the answer must be the table's.
Requests are recorded by a transport that answers nothing, so that the body
each feature sends is checked as it leaves the SDK.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from software_dna import LicenseClient
from software_dna.client.transport import Response, Transport
from software_dna.client.verifier import TokenVerifier
from software_dna.errors import InvalidToken, ServerUnreachable, WrongMachine
from software_dna.fingerprint import Fingerprint, LegacyFingerprint
from software_dna.license import verify_token
from software_dna.wire import airgap, identity
from software_dna.wire.claims import _sign_claims, verify_token_claims
from software_dna.wire.paseto import SecretKey
from tests.identity_cases import CASES, Case, h, machine
from tests.tokens import make_token

PRODUCT = "acme-editor"


@pytest.fixture(scope="module")
def key() -> SecretKey:
    return SecretKey.generate()


def legacy_of(name: str) -> LegacyFingerprint:
    """The algorithm-1 form of simulated machine ``name`` (host name included, as in 0.1)."""
    components = {n: h(f"v1-{n}-{name}") for n in ("machine_id", "os_arch", "mac", "hostname",
                                                   "cpu")}
    return LegacyFingerprint(f"fp1.machine_id.{components['machine_id']}", components)


def at(components: Mapping[str, Any], legacy: LegacyFingerprint | None = None) -> Fingerprint:
    return Fingerprint.from_components(identity.to_json(components), legacy=legacy)


def verifier(key: SecretKey, current: Fingerprint) -> TokenVerifier:
    return TokenVerifier(PRODUCT, {key.public_key.pid: key.public_key}, lambda _p: current)


# --------------------------------------------------------------------------- the case table


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_verifier_gives_the_tables_answer(key: SecretKey, case: Case) -> None:
    token = make_token(key, PRODUCT, at(case.a), tolerance=case.tolerance)
    if not identity.IDENTIFYING & {n for n, v in case.b.items() if v is not None}:
        # a machine with nothing identifying has no fingerprint at all (collect()
        # raises FingerprintUnavailable): it can never pass for machine a
        assert not case.same
        with pytest.raises(identity.InvalidFingerprint):
            at(case.b)
        return
    check = verifier(key, at(case.b))
    lic = check.verify(token)
    assert lic.fingerprint_algorithm == 2
    assert dict(lic.fingerprint) == identity.parse_components(identity.to_json(case.a))
    if case.same:
        check.check_machine(lic)
        assert check.accept(token, "test-nonce-0123456789") == lic
    else:
        with pytest.raises(WrongMachine):
            check.check_machine(lic)
        with pytest.raises(WrongMachine):
            check.accept(token, "test-nonce-0123456789")


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_offline_check_gives_the_tables_answer(key: SecretKey, case: Case,
                                               tmp_path: Path) -> None:
    """The same table through the public API: a stored token, ``check()`` on machine b."""
    token = make_token(key, PRODUCT, at(case.a), tolerance=case.tolerance)
    if not identity.IDENTIFYING & {n for n, v in case.b.items() if v is not None}:
        assert not case.same  # machine b has no fingerprint (see the test above)
        return
    client = LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                           store_path=tmp_path, fingerprint=lambda _p: at(case.b))
    if case.same:
        assert client.install_token(token).license_id == "lic_1"
        assert client.check().license_id == "lic_1"
    else:
        with pytest.raises(WrongMachine):
            client.install_token(token)
    client.close()


# --------------------------------------------------------------------------- algorithm-1 tokens


def test_v1_token_compared_with_the_legacy_form(key: SecretKey) -> None:
    here = at(machine("a"), legacy_of("a"))
    token = make_token(key, PRODUCT, here, algorithm=1)
    lic = verifier(key, here).verify(token)
    assert lic.fingerprint_algorithm == 1
    assert "hostname" in lic.fingerprint
    verifier(key, here).check_machine(lic)
    # another machine whose algorithm-2 set happens to be equal: v1 tokens compare v1 forms
    with pytest.raises(WrongMachine):
        verifier(key, at(machine("a"), legacy_of("b"))).check_machine(lic)
    # no legacy form (built by hand): a v1 token cannot be this machine
    with pytest.raises(WrongMachine):
        verifier(key, at(machine("a"))).check_machine(lic)


def test_v1_token_tolerates_one_changed_component(key: SecretKey) -> None:
    legacy = legacy_of("a")
    token = make_token(key, PRODUCT, at(machine("a"), legacy), algorithm=1, tolerance=1)
    renamed = LegacyFingerprint(legacy.id, {**legacy.components, "hostname": h("renamed")})
    verifier(key, at(machine("a"), renamed)).check_machine(verify_any(key, token))
    two = LegacyFingerprint(legacy.id, {**renamed.components, "cpu": h("new cpu")})
    with pytest.raises(WrongMachine):
        verifier(key, at(machine("a"), two)).check_machine(verify_any(key, token))


def verify_any(key: SecretKey, token: str) -> Any:
    return verify_token(token, {key.public_key.pid: key.public_key}, PRODUCT)


def signed(key: SecretKey, **changes: Any) -> str:
    """A validly signed token with some claims changed (a server bug, or a
    forged claim set signed with a leaked key: the SDK must still refuse it)."""
    base = make_token(key, PRODUCT, at(machine("a")))
    payload = dict(verify_token_claims(base, {key.public_key.pid: key.public_key}, PRODUCT))
    for name, value in changes.items():
        if value is ...:
            payload.pop(name, None)
        else:
            payload[name] = value
    return _sign_claims(key, PRODUCT, payload)


@pytest.mark.parametrize("changes", [
    {"fingerprint_algorithm": 3},
    {"fingerprint_algorithm": "2"},
    {"fingerprint_algorithm": True},
    {"fingerprint_algorithm": None},
    {"fingerprint": {"machine_id": h("x")}},                          # v2 lacks required names
    {"fingerprint": {**identity.to_json(machine("a")), "mac": h("x")}},  # mac not a list
    {"fingerprint": {**identity.to_json(machine("a")), "hostname": h("x")}},
    {"fingerprint": "x"},
    {"fingerprint_algorithm": ..., "fingerprint": identity.to_json(machine("a"))},  # v2 as v1
    {"fingerprint_algorithm": 1, "fingerprint": {}},
])
def test_malformed_fingerprint_claims_refused(key: SecretKey, changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidToken):
        verify_any(key, signed(key, **changes))


def test_unavailable_components_survive_the_token(key: SecretKey) -> None:
    a = machine("a", machine_id=None)
    lic = verify_any(key, make_token(key, PRODUCT, at(a), tolerance=1))
    assert lic.fingerprint["machine_id"] is None
    assert isinstance(lic.fingerprint["mac"], tuple)
    with pytest.raises(TypeError):
        lic.fingerprint["cpu"] = None  # read-only


# --------------------------------------------------------------------------- what is sent


class Recorder(Transport):
    """Records every request body and answers nothing (the server is out of reach)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, Mapping[str, Any] | None]] = []

    def request(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
                bearer: str | None = None, retry: bool = False,
                deadline: float | None = None) -> Response:
        self.bodies.append((path, json_body))
        raise ServerUnreachable("recorded")


HERE = at(machine("a"), legacy_of("a"))


def recording_client(key: SecretKey, tmp_path: Path) -> tuple[LicenseClient, Recorder]:
    recorder = Recorder()
    client = LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                           store_path=tmp_path, fingerprint=lambda _p: HERE,
                           transport=recorder, server_url="https://license.example")
    return client, recorder


def test_activation_and_trial_send_algorithm_2_only(key: SecretKey, tmp_path: Path) -> None:
    client, recorder = recording_client(key, tmp_path)
    with pytest.raises(ServerUnreachable):
        client.activate("AAAA-BBBB-CCCC-DDDD")
    with pytest.raises(ServerUnreachable):
        client.start_trial()
    assert len(recorder.bodies) >= 2
    for _path, body in recorder.bodies:
        assert body is not None
        assert body["fingerprint"] == HERE.to_wire()
        assert "previous" not in body
    client.close()


def test_airgap_request_carries_algorithm_2(key: SecretKey, tmp_path: Path) -> None:
    client, _recorder = recording_client(key, tmp_path)
    doc = airgap.parse_request(client.create_activation_request("AAAA-BBBB-CCCC-DDDD"))
    assert doc.fingerprint == HERE.to_wire()
    assert "hostname" not in str(doc.fingerprint)
    client.close()


@pytest.mark.parametrize(("algorithm", "previous"), [(1, True), (2, False)])
def test_validation_sends_previous_only_for_a_v1_token(
    key: SecretKey, tmp_path: Path, algorithm: int, previous: bool
) -> None:
    client, recorder = recording_client(key, tmp_path)
    token = make_token(key, PRODUCT, HERE, algorithm=algorithm)
    state = client._state
    state.save_activation(token, state.verifier.verify(token), "act_1", "secret_1")
    for call, route in ((client.refresh, "validate"), (client.checkout, "checkout")):
        recorder.bodies.clear()
        with contextlib.suppress(ServerUnreachable):  # the body is what counts
            call()
        (path, body), *_ = recorder.bodies
        assert path == f"/v1/activations/act_1/{route}"
        assert body is not None
        assert body["fingerprint"] == HERE.to_wire()
        if previous:
            assert HERE.legacy is not None
            assert body["previous"] == HERE.legacy.to_wire()
            assert body["previous"]["algorithm"] == 1
        else:
            assert "previous" not in body
    client.close()


def test_request_fingerprint_without_a_readable_token(key: SecretKey) -> None:
    check = verifier(key, HERE)
    assert check.request_fingerprint() == {"fingerprint": HERE.to_wire()}
    assert check.request_fingerprint("v4.public.garbage") == {"fingerprint": HERE.to_wire()}
    other_key = SecretKey.generate()
    v1_from_elsewhere = make_token(other_key, PRODUCT, HERE, algorithm=1)
    assert check.request_fingerprint(v1_from_elsewhere) == {"fingerprint": HERE.to_wire()}
    no_legacy = verifier(key, at(machine("a")))
    v1 = make_token(key, PRODUCT, HERE, algorithm=1)
    assert no_legacy.request_fingerprint(v1) == {"fingerprint": at(machine("a")).to_wire()}
