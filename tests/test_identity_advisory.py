"""Machine identity from the app's side: one regression test per known attack.

The server's half is tests/server/test_identity_advisory.py; the whole system
against a lying client is tests/security/test_identity_invariants.py. Here the
unmodified SDK runs against the real server (in-process) while the attacker
rewrites what it sends or carries its files to another machine.

The rule these tests pin: a token runs on another machine only where the
server will see that machine again. A trial (anybody can start one) and a
token that is never refreshed (air-gapped, protection ``offline``) carry
tolerance 0, so a hand-made set sharing a MAC address with a second machine
buys nothing there; the honest machine that drifts is re-bound by the server
the next time the SDK checks.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import pytest

from software_dna import Kind, LicenseClient, Mode, WrongMachine
from software_dna.client.transport import Response, Transport
from software_dna.errors import InvalidToken, NotActivated
from software_dna.fingerprint import Fingerprint
from software_dna.server.services.common import clock_override
from software_dna.wire.airgap import REQUEST, armor, dearmor
from tests.identity_cases import drift, machine
from tests.inprocess import InProcessServer, unreachable
from tests.test_client_e2e import new_product

Rewrite = Callable[[str, dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


class Proxy(Transport):
    """The end user's local proxy: rewrites request bodies, or answers, on their way."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.rewrite_request: Rewrite | None = None
        self.rewrite_answer: Rewrite | None = None

    def request(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
                bearer: str | None = None, retry: bool = False,
                deadline: float | None = None) -> Response:
        body = copy.deepcopy(dict(json_body)) if json_body is not None else None
        if body is not None and self.rewrite_request is not None:
            body = self.rewrite_request(path, body)
        answer = self.inner.request(method, path, json_body=body, bearer=bearer, retry=retry,
                                    deadline=deadline)
        if self.rewrite_answer is not None and answer.status < 300:
            return Response(answer.status, self.rewrite_answer(path, dict(answer.body)),
                            answer.headers)
        return answer


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Iterator[Clock]:
    shared = Clock()
    with clock_override(shared):
        yield shared


class Machine:
    """A simulated computer: its real components, its store, its proxy."""

    def __init__(self, server: InProcessServer, product: str, keys: list[str], root: Any,
                 name: str, clock: Clock) -> None:
        self.components = dict(machine(name))
        self.root = root / name
        self.proxy = Proxy(server.transport())
        self.args = {"product": product, "public_keys": keys, "server_url": server.url,
                     "store_path": self.root / "app.license", "clock": clock,
                     "fingerprint": lambda _p: Fingerprint.from_components(self.components),
                     "transport": self.proxy}
        self.client = LicenseClient(**self.args)

    def restart(self) -> LicenseClient:
        self.client.close()
        self.client = LicenseClient(**self.args)
        return self.client


@pytest.fixture
def machines(server: InProcessServer, tmp_path: Any, clock: Clock,
             monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Machine]]:
    made: list[Machine] = []
    monkeypatch.setenv("SOFTWARE_DNA_STATE_HOME", str(tmp_path / "state"))

    def make(product: str, keys: list[str], name: str) -> Machine:
        made.append(Machine(server, product, keys, tmp_path, name, clock))
        return made[-1]

    yield make
    for m in made:
        m.client.close()


def macs_of(other: Machine) -> list[str]:
    macs = other.components["mac"]
    assert isinstance(macs, tuple)
    return list(macs)


def union_of_macs(other: Machine) -> Rewrite:
    """Add ``other``'s MAC hashes to the fingerprint a request carries."""
    def rewrite(_path: str, body: dict[str, Any]) -> dict[str, Any]:
        if isinstance(body.get("fingerprint"), dict):
            components = body["fingerprint"]["components"]
            components["mac"] = sorted({*components["mac"], *macs_of(other)})
        return body
    return rewrite


def carry_files(source: Machine, target: Machine) -> None:
    """Copy the installation's files to another computer (its own rollback witness stays)."""
    target.client.close()
    target.root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source.root / "app.license", target.root / "app.license")
    target.restart()


def test_trial_with_a_union_of_macs_does_not_run_on_the_other_machine(
        server: InProcessServer, machines: Callable[..., Machine]) -> None:
    """Attack: the proxy adds machine B's MAC to A's trial request (so the bound set
    is one identifier away from B too), then A's files are carried to B: B would run
    a trial it never started, and start its own afterwards."""
    product, keys = new_product(server.admin, trial_days=14)
    a, b = machines(product, keys, "a"), machines(product, keys, "b")
    a.proxy.rewrite_request = union_of_macs(b)
    trial = a.client.start_trial()
    assert trial.kind is Kind.TRIAL and trial.tolerance == 0
    carry_files(a, b)
    with pytest.raises(WrongMachine):
        b.client.check()


def test_air_gapped_block_with_a_union_of_macs_runs_on_one_machine(
        server: InProcessServer, machines: Callable[..., Machine]) -> None:
    """Attack: the end user edits the air-gapped request block (its checksum is anyone's
    to recompute) to add machine B's MAC, then carries the activated files to B: one
    seat would run on two computers and the server would never see it."""
    product, keys = new_product(server.admin, air_gapped=True)
    lic = server.admin.issue_license(product, seats=1)
    a, b = machines(product, keys, "a"), machines(product, keys, "b")
    request = a.client.create_activation_request(lic["license_key"])
    document = dearmor(request, REQUEST)
    document["fingerprint"]["components"]["mac"] = sorted(
        {*document["fingerprint"]["components"]["mac"], *macs_of(b)})
    answer = server.admin.offline_respond(armor(REQUEST, document))
    activated = a.client.activate_offline(str(answer["response"]))
    assert activated.tolerance == 0
    carry_files(a, b)
    with pytest.raises(WrongMachine):
        b.client.check()


def test_an_honest_trial_machine_that_drifts_is_rebound_at_its_next_check(
        server: InProcessServer, machines: Callable[..., Machine]) -> None:
    """Loss: the trial's token allows no drift, so a trial machine whose network card was
    replaced would stop; its next check asks the server, which re-binds it (anchored on
    the machine id, which a padded MAC list cannot fake)."""
    product, keys = new_product(server.admin, trial_days=14)
    a = machines(product, keys, "a")
    started = a.client.start_trial()
    a.components = dict(drift(a.components, mac=("new network card",)))
    checked = a.restart().check()
    assert checked.kind is Kind.TRIAL and checked.license_id == started.license_id
    assert checked.issued_at >= started.issued_at
    assert dict(checked.fingerprint) == a.components  # re-bound to the drifted set
    a.proxy.inner = unreachable()
    assert a.restart().check().license_id == started.license_id  # offline again, rebound


def test_a_trial_machine_that_drifted_offline_stops_until_it_reaches_the_server(
        server: InProcessServer, machines: Callable[..., Machine]) -> None:
    """Where nothing can tell a copy from a drifted machine, the check fails closed
    (WrongMachine) and says so, and works again once the server re-binds it."""
    product, keys = new_product(server.admin, trial_days=14)
    a = machines(product, keys, "a")
    a.client.start_trial()
    a.components = dict(drift(a.components, cpu="new cpu"))
    online = a.proxy.inner
    a.proxy.inner = unreachable()
    with pytest.raises(WrongMachine):
        a.restart().check()
    a.proxy.inner = online
    assert a.restart().check().kind is Kind.TRIAL


def test_a_tampered_secret_in_the_activation_answer_is_refused(
        server: InProcessServer, machines: Callable[..., Machine]) -> None:
    """Attack: the proxy swaps the activation secret in the answer (to plant a secret it
    knows, or to break the installation later). The token's ``secret_digest`` vouches
    for the secret: nothing is stored."""
    product, keys = new_product(server.admin)
    lic = server.admin.issue_license(product, seats=1)
    a = machines(product, keys, "a")

    def swap(_path: str, body: dict[str, Any]) -> dict[str, Any]:
        body["activation_secret"] = "sas_planted-by-the-proxy"
        return body

    a.proxy.rewrite_answer = swap
    with pytest.raises(InvalidToken):
        a.client.activate(lic["license_key"])
    with pytest.raises(NotActivated):
        a.client.check()
    a.proxy.rewrite_answer = None
    assert a.client.activate(lic["license_key"]).mode is Mode.FULL


def test_paid_online_tokens_keep_the_product_tolerance(
        server: InProcessServer, machines: Callable[..., Machine]) -> None:
    """Honest drift of one identifier keeps a paid license running offline (the copy a
    hand-made set could allow is caught by the secret rotation at the next refreshes)."""
    product, keys = new_product(server.admin, refresh_interval=3600,
                                offline_grace_period=86400)
    lic = server.admin.issue_license(product, seats=1)
    a = machines(product, keys, "a")
    assert a.client.activate(lic["license_key"]).tolerance == 1
    a.components = dict(drift(a.components, machine_id="regenerated"))
    a.proxy.inner = unreachable()
    assert a.restart().check().mode is Mode.FULL
