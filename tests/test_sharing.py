"""Secret rotation and sharing detection from the app's side, against the real server.

Every test tries to break one invariant with what the end user controls: copies of
the store (a cloned machine, a backup restored elsewhere), answers that never
arrive, a reinstall, several instances of the app on one machine, an altered
answer. The invariants:

- a copy of an installation is flagged (``copied_secret``) by the time both
  copies have validated and one of them validates again (within one refresh
  interval of both being in use), and the copy that presents the outdated
  secret gets :class:`ActivationMoved`;
- an honest installation is never flagged: not after lost answers (any number),
  not after a reinstall, not with several instances of the app sharing its store;
- a rotated secret is stored only when the signed token vouches for it.

The app and the server run in this process (tests/inprocess.py), a cloned machine is
a clone of a simulated machine (the ``machines`` fixture); the two-process
test uses a real socket (tests/threaded.py). Time moves through one clock shared
by the server (``clock_override``) and the apps; nothing sleeps.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import ActivationMoved, LicenseClient, Mode, NotActivated
from software_dna.client.transport import HTTPTransport, Response
from software_dna.client.verifier import rotated_secret
from software_dna.errors import InvalidToken, ServerUnreachable
from software_dna.server.services.common import clock_override
from software_dna.testing import SimulatedMachine
from software_dna.testing.plugin import Machines
from software_dna.wire.claims import secret_digest
from tests.inprocess import InProcessServer
from tests.test_client_e2e import App, make_app, new_product
from tests.threaded import ThreadedServer

__all__ = ["make_app"]  # the fixture, imported for this module

REFRESH = timedelta(hours=1)
#: Past the refresh time: the next check() validates online.
STEP = REFRESH + timedelta(minutes=1)
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


class Clock:
    """The one time of the server and the apps of a test: moved, never waited for."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, by: timedelta = STEP) -> None:
        self.offset += by


@pytest.fixture
def clock() -> Iterator[Clock]:
    shared = Clock()
    with clock_override(shared.now):
        yield shared


def licensed(server: InProcessServer, **policy: Any) -> tuple[str, list[str], dict[str, Any]]:
    """A product refreshing every hour (a week's grace) and a license of 2 seats."""
    product, keys = new_product(server.admin, refresh_interval=int(REFRESH.total_seconds()),
                                offline_grace_period=7 * 86400, **policy)
    lic = server.admin.issue_license(product, seats=2)
    return product, keys, lic


def activation_row(server: InProcessServer, lic: dict[str, Any]) -> dict[str, Any]:
    (row,) = server.admin.list_activations(lic["id"])
    return row


def stored(app: App) -> dict[str, Any]:
    data: dict[str, Any] = app.client._state.store.read() or {}
    return data


def clone(app: App, make: Callable[..., App], product: str, keys: list[str], name: str,
          clock: Clock, *, on: SimulatedMachine) -> App:
    """A copy of ``app``'s installation (its store) on ``on``: a clone of its machine
    (a cloned VM) or the machine itself (an old install left behind)."""
    shutil.copytree(app.args["store_path"], app.args["store_path"].parent / name)
    return make(product, keys, name, clock=clock.now, machine=on)


# --------------------------------------------------------------------------- copies


def test_a_forked_installation_is_flagged_within_one_refresh_interval(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock,
    machines: Machines
) -> None:
    product, keys, lic = licensed(server)
    desk = make_app(product, keys, "desk", clock=clock.now, machine=machines("desk"))
    desk.client.activate(lic["license_key"])
    copy = clone(desk, make_app, product, keys, "copy", clock,
                 on=machines.clone(machines("desk"), "copy-vm"))
    # Both copies in use: each refreshes once, and both are still served (the second
    # presents the secret the first one left as grace: a lost answer looks the same).
    clock.advance()
    assert desk.client.check().mode is Mode.FULL
    assert copy.client.check().mode is Mode.FULL
    assert activation_row(server, lic)["shared_at"] is None
    # One refresh interval later the first to refresh presents an outdated secret.
    clock.advance()
    with pytest.raises(ActivationMoved, match="another computer"):
        desk.client.check()
    row = activation_row(server, lic)
    assert row["shared_reason"] == "copied_secret" and row["shared_at"] is not None
    # Like a roll-over, the refused copy's local activation is over, and stays over.
    assert "activation_secret" not in stored(desk)
    with pytest.raises(ActivationMoved):
        desk.restart().check()
    # Policy "flag": the other copy is only marked.
    clock.advance()
    assert copy.client.check().mode is Mode.FULL


def test_a_copy_restored_after_the_original_moved_on_is_refused_at_once(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock
) -> None:
    product, keys, lic = licensed(server)
    desk = make_app(product, keys, "desk", clock=clock.now)
    desk.client.activate(lic["license_key"])
    backup = stored(desk)
    for _ in range(2):
        clock.advance()
        desk.client.check()
    laptop = make_app(product, keys, "laptop", clock=clock.now)
    laptop.client._state.store.write(backup)  # the old store, copied onto another machine
    with pytest.raises(ActivationMoved):
        laptop.client.refresh()
    assert activation_row(server, lic)["shared_reason"] == "copied_secret"


# --------------------------------------------------------------------------- honest use


def _drop_validation_answers(monkeypatch: pytest.MonkeyPatch, drop: Callable[[], bool]) -> None:
    real = HTTPTransport.request

    def lossy(self: HTTPTransport, method: str, path: str, **kw: Any) -> Response:
        answer = real(self, method, path, **kw)  # the server validated and rotated...
        if path.endswith("/validate") and drop():
            raise ServerUnreachable("connection reset")  # ...the answer never arrived
        return answer

    monkeypatch.setattr(HTTPTransport, "request", lossy)


def test_lost_answers_never_flag(server: InProcessServer, make_app: Callable[..., App],
                                 clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    product, keys, lic = licensed(server)
    app = make_app(product, keys, clock=clock.now)
    app.client.activate(lic["license_key"])
    plan = {"lose": False}
    _drop_validation_answers(monkeypatch, lambda: plan["lose"])
    # One lost answer, then a run of them, each time followed by an arrived one.
    for lost in (True, False, True, True, True, False, False, True, False):
        plan["lose"] = lost
        before = stored(app)["activation_secret"]
        clock.advance()
        if lost:
            with pytest.raises(ServerUnreachable):
                app.client.refresh()
            assert stored(app)["activation_secret"] == before  # nothing half-stored
        else:
            assert app.client.refresh().mode is Mode.FULL
            assert stored(app)["activation_secret"] != before
    assert activation_row(server, lic)["shared_at"] is None


def test_an_honest_reinstall_then_the_old_copy_is_flagged(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock,
    machines: Machines
) -> None:
    product, keys, lic = licensed(server)
    desk = make_app(product, keys, "desk", clock=clock.now, machine=machines("desk"))
    desk.client.activate(lic["license_key"])
    old = clone(desk, make_app, product, keys, "old-install", clock,
                on=machines("desk"))
    clock.advance()
    old.client.check()  # the old installation still in use for a while
    # Reinstall: the store is gone, the same machine activates again (no new seat).
    desk.client.close()
    desk.client._state.store_path.unlink()
    again = desk.restart().activate(lic["license_key"])
    assert activation_row(server, lic)["id"] == again.activation_id
    assert activation_row(server, lic)["shared_at"] is None
    clock.advance()
    assert desk.client.check().mode is Mode.FULL  # the reinstall is never flagged
    with pytest.raises(ActivationMoved):
        old.client.check()
    assert activation_row(server, lic)["shared_reason"] == "copied_secret"
    clock.advance()
    assert desk.client.check().mode is Mode.FULL


def test_suspend_policy_ends_every_copy(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock,
    machines: Machines
) -> None:
    product, keys, lic = licensed(server)
    server.admin.update_product(product, sharing_policy="suspend")
    desk = make_app(product, keys, "desk", clock=clock.now, machine=machines("desk"))
    desk.client.activate(lic["license_key"])
    copy = clone(desk, make_app, product, keys, "copy", clock,
                 on=machines.clone(machines("desk"), "copy-vm"))
    clock.advance()
    desk.client.check()
    copy.client.check()
    clock.advance()
    with pytest.raises(ActivationMoved):
        desk.client.check()
    with pytest.raises(NotActivated, match="more than one computer") as removed:
        copy.client.check()
    assert not isinstance(removed.value, ActivationMoved)
    row = activation_row(server, lic)
    assert row["deactivated_by"] == "sharing" and row["shared_reason"] == "copied_secret"


def test_two_instances_on_one_store_never_present_a_stale_secret(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """While one instance waits for its answer, the other's validation waits for it."""
    product, keys, lic = licensed(server)
    first = make_app(product, keys, "shared", clock=clock.now)
    first.client.activate(lic["license_key"])
    second = App(server, product, keys, tmp_path / "shared", clock=clock.now)
    real = HTTPTransport.request
    others: list[threading.Thread] = []
    errors: list[BaseException] = []

    def second_refresh() -> None:
        try:
            second.client.refresh()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    def racing(self: HTTPTransport, method: str, path: str, **kw: Any) -> Response:
        answer = real(self, method, path, **kw)  # the server rotated the secret...
        if path.endswith("/validate") and not others:
            # ...and before this instance stores it, the other one validates.
            other = threading.Thread(target=second_refresh)
            others.append(other)
            other.start()
            other.join(timeout=0.5)  # finished only if it did not wait for the store
        return answer

    monkeypatch.setattr(HTTPTransport, "request", racing)
    clock.advance()
    assert first.client.refresh().mode is Mode.FULL
    others[0].join(timeout=30)
    assert not others[0].is_alive() and errors == []
    monkeypatch.undo()
    for app in (first, second, first, second):
        clock.advance()
        assert app.client.refresh().mode is Mode.FULL
    assert activation_row(server, lic)["shared_at"] is None
    second.client.close()


_CHILD = """
import json, sys
from software_dna import LicenseClient
args = json.loads(sys.argv[1])
client = LicenseClient(product=args["product"], public_keys=args["keys"],
                       server_url=args["url"], store_path=args["store"], timeout=20.0)
for _ in range(args["rounds"]):
    client.refresh()
client.close()
print("ok")
"""


@pytest.fixture(scope="module")
def socket_server(threaded_server: ThreadedServer) -> ThreadedServer:
    """A real socket, for apps in other processes."""
    return threaded_server


def test_two_processes_on_one_store_are_never_flagged(
    socket_server: ThreadedServer, tmp_path: Path
) -> None:
    product, keys = new_product(socket_server.admin)  # default refresh: refresh() forces it
    lic = socket_server.admin.issue_license(product, seats=1)
    store = tmp_path / "app.license"
    with LicenseClient(product=product, public_keys=keys, server_url=socket_server.url,
                       store_path=store) as client:
        client.activate(lic["license_key"])
    args = json.dumps({"product": product, "keys": keys, "url": socket_server.url,
                       "store": str(store), "rounds": 8})
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    children = [subprocess.Popen([sys.executable, "-c", _CHILD, args], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(2)]
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0 and out.strip() == b"ok", err.decode()
    (row,) = socket_server.admin.list_activations(lic["id"])
    assert row["shared_at"] is None and row["deactivated_at"] is None


# --------------------------------------------------------------------------- the answer


def test_a_tampered_secret_in_the_answer_is_refused_and_the_old_one_kept(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    product, keys, lic = licensed(server)
    app = make_app(product, keys, clock=clock.now)
    app.client.activate(lic["license_key"])
    real = HTTPTransport.request
    changes: list[Callable[[dict[str, Any]], None]] = [
        lambda body: body.__setitem__("activation_secret", "sas_9." + "A" * 43),
        lambda body: body.pop("activation_secret"),
        lambda body: body.__setitem__("activation_secret", None),
        lambda body: body.__setitem__("activation_secret", 12),
    ]

    def altered(self: HTTPTransport, method: str, path: str, **kw: Any) -> Response:
        answer = real(self, method, path, **kw)
        if not path.endswith("/validate"):
            return answer
        body = dict(answer.body)
        changes[0](body)
        return Response(answer.status, body, answer.headers)

    monkeypatch.setattr(HTTPTransport, "request", altered)
    for _ in range(len(list(changes))):
        before = stored(app)
        clock.advance()
        with pytest.raises(InvalidToken):
            app.client.refresh()
        after = stored(app)
        assert after["activation_secret"] == before["activation_secret"]
        assert after["token"] == before["token"]  # the answer was not used at all
        changes.pop(0)
    monkeypatch.undo()
    clock.advance()
    assert app.client.refresh().mode is Mode.FULL  # the kept secret is the grace one
    assert activation_row(server, lic)["shared_at"] is None


def test_rotated_secret_accepts_only_what_the_token_vouches_for(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock
) -> None:
    product, keys, lic = licensed(server)
    app = make_app(product, keys, clock=clock.now)
    activated = app.client.activate(lic["license_key"])
    secret = stored(app)["activation_secret"]
    # The activation's token vouches for the secret handed out with it.
    assert activated.secret_digest == secret_digest(secret)
    assert rotated_secret(activated, secret) == secret
    for wrong in (secret + "x", "", None, 7):
        with pytest.raises(InvalidToken):
            rotated_secret(activated, wrong)
    # A token from a server before rotation hands out no secret: the stored one stays.
    legacy = activated._replace(secret_digest=None)
    assert rotated_secret(legacy, None) is None
    with pytest.raises(InvalidToken):
        rotated_secret(legacy, secret)


def test_an_air_gapped_deactivation_receipt_needs_a_secret_still_accepted(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock,
    machines: Machines
) -> None:
    """The receipt is signed with the stored secret: the rotated one frees the seat,
    a copy's outdated one does not."""
    product, keys, lic = licensed(server)
    desk = make_app(product, keys, "desk", clock=clock.now, machine=machines("desk"))
    desk.client.activate(lic["license_key"])
    copy = clone(desk, make_app, product, keys, "copy", clock,
                 on=machines.clone(machines("desk"), "copy-vm"))
    for _ in range(2):
        clock.advance()
        desk.client.refresh()

    def send(receipt: str) -> Any:
        return server.session().post(f"{server.url}/v1/offline/deactivations",
                                     json={"receipt": receipt}, timeout=30)

    outdated = send(copy.client.deactivate_offline())
    assert outdated.status_code == 400, outdated.text
    assert activation_row(server, lic)["deactivated_at"] is None
    freed = send(desk.client.deactivate_offline())
    assert freed.status_code == 200, freed.text
    assert activation_row(server, lic)["deactivated_at"] is not None


def test_an_offline_check_does_not_wait_for_another_instance_validating(
    server: InProcessServer, make_app: Callable[..., App], clock: Clock
) -> None:
    """The store's lock is held for a whole validation; a check() that only moves the
    clock mark (best effort) goes on without it instead of waiting."""
    product, keys, lic = licensed(server)
    app = make_app(product, keys, clock=clock.now)
    app.client.activate(lic["license_key"])
    held, release = threading.Event(), threading.Event()

    def other_instance() -> None:
        with app.client._state.store.locked():
            held.set()
            release.wait(timeout=60)

    other = threading.Thread(target=other_instance)
    other.start()
    try:
        assert held.wait(timeout=30)
        clock.advance(timedelta(minutes=10))  # the mark is due to be written, no refresh
        started = time.monotonic()
        assert app.client.check().mode is Mode.FULL
        assert time.monotonic() - started < 5.0  # the store's lock timeout is 10 s
    finally:
        release.set()
        other.join(timeout=30)
