"""Issue 12, server side: "same machine?" is decided only by identity.compare.

One test per scenario of the issue's "too easy to cheat" and "too easy to
lose" lists; each docstring names the attack (or the loss) it tries.  The
requests are built with tests/identity_cases over the real app in-process,
on SQLite and PostgreSQL.  The shared case table (identity_cases.CASES)
is fed to the server's validation too, so the server answers exactly as the
pure rules do.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from sqlalchemy import MetaData, select

from software_dna.server.services.common import clock_override
from software_dna.server.testing import LocalServer
from software_dna.wire import airgap
from software_dna.wire.identity import ComponentSet, to_json, unavailable
from tests.identity_cases import CASES, DOCKED, WIN, Case, drift, machine
from tests.server.helpers import Api, check_receipt, check_token, error_code, nonce
from tests.server.test_activation import Product, api

from ..inprocess import InProcessServer

A = machine("a")
B = machine("b")


__all__ = ["api"]  # the fixture, imported for this module


@pytest.fixture(scope="module")
def any_server(inprocess_any_server: InProcessServer) -> InProcessServer:
    return inprocess_any_server


def new_product(srv: LocalServer, tolerance: int = 1, **policy: Any) -> Product:
    pid = "id-" + secrets.token_hex(4)
    keys = srv.admin.setup_product(pid, features=["pro"], limited_features=["view"],
                                   fingerprint_tolerance=tolerance, **policy)
    return Product(pid, keys)


@pytest.fixture
def product(any_server: LocalServer) -> Product:
    return new_product(any_server)


def wire(components: ComponentSet, **extra: Any) -> dict[str, Any]:
    """The algorithm-2 wire form of a component set."""
    return {"algorithm": 2, "components": to_json(components), **extra}


def activate(api: Api, product: Product, key: str, components: ComponentSet,
             **extra: Any) -> requests.Response:
    return api.activate(product.id, key, fp=wire(components), **extra)


def _keep_secret(made: Mapping[str, Any], answer: requests.Response) -> requests.Response:
    """Store the rotated secret as the SDK does (``made`` is the client's copy)."""
    if answer.status_code == 200 and isinstance(made, dict):
        made["activation_secret"] = answer.json()["activation_secret"]
    return answer


def validate(api: Api, made: Mapping[str, Any], components: ComponentSet,
             **extra: Any) -> requests.Response:
    return _keep_secret(made, api.validate(made["activation_id"], made["activation_secret"],
                                           fp=wire(components, **extra)))


def trial(api: Api, product: Product, components: ComponentSet) -> requests.Response:
    return api.http.post(f"{api.url}/v1/trials", json={
        "product": product.id, "fingerprint": wire(components), "nonce": nonce()}, timeout=30)


def checkout(api: Api, made: Mapping[str, Any], components: ComponentSet) -> requests.Response:
    return _keep_secret(made, api.http.post(
        f"{api.url}/v1/activations/{made['activation_id']}/checkout",
        json={"fingerprint": wire(components), "nonce": nonce()},
        headers={"Authorization": f"Bearer {made['activation_secret']}"}, timeout=30))


def seats_in_use(srv: LocalServer, license_id: str) -> int:
    return int(srv.admin.get_license(license_id)["seats_in_use"])


# --------------------------------------------------------------------------- too easy to cheat


def test_edited_fingerprint_id_decides_nothing(any_server: LocalServer, api: Api,
                                               product: Product) -> None:
    """Attack: copy the activation to machine B and send A's fingerprint id (from the
    token, or the 0.1 form built from A's machine id) with B's components."""
    key = any_server.admin.issue_license(product.id, seats=1)["license_key"]
    made = activate(api, product, key, A).json()
    token = check_token(made["token"], product.keys, product.id)
    assert token.fingerprint_id.startswith("fp_")
    assert not any(str(v) in token.fingerprint_id for v in A.values())  # opaque
    for forged in (token.fingerprint_id, f"fp1.machine_id.{A['machine_id']}"):
        answer = validate(api, made, B, id=forged)
        assert answer.status_code == 403 and error_code(answer) == "wrong_machine"
        again = api.activate(product.id, key, fp=wire(B, id=forged))
        assert again.status_code == 409 and error_code(again) == "no_seats_left"
    assert validate(api, made, A, id="anything").status_code == 200  # the id is ignored


def test_partial_component_set_is_refused(any_server: LocalServer, api: Api,
                                          product: Product) -> None:
    """Attack: leave components out (or null) so that fewer comparisons can fail."""
    key = any_server.admin.issue_license(product.id, seats=1)["license_key"]
    made = activate(api, product, key, A).json()
    only_id = {"machine_id": A["machine_id"]}
    answer = api.validate(made["activation_id"], made["activation_secret"],
                          fp={"algorithm": 2, "components": only_id})
    assert answer.status_code == 400 and error_code(answer) == "invalid_fingerprint"
    assert str(A["machine_id"]) not in answer.text  # never echoes what was sent
    two_null = drift(A, cpu=None, os_arch=None)
    answer = validate(api, made, two_null)
    assert answer.status_code == 400 and error_code(answer) == "invalid_fingerprint"
    message = answer.json()["error"]["message"]
    assert "cpu" in message and "os_arch" in message
    # Another machine hiding its MAC: still two differences (machine id, mac).
    answer = validate(api, made, drift(B, mac=None))
    assert answer.status_code == 403 and error_code(answer) == "wrong_machine"


def test_trial_restart_by_dropping_components(any_server: LocalServer, api: Api) -> None:
    """Attack: start the trial again with some components unreadable or dropped.

    A trial is bound to its machine exactly, and a part a machine cannot read never
    matches (not even itself), so a set with any unreadable part is refused up front
    (400 ``invalid_fingerprint``): never a new trial, and never a token that could not
    be verified; the machine as it is gets its running trial back."""
    product = new_product(any_server, trial_days=14)
    first = trial(api, product, A)
    assert first.status_code == 201, first.text
    for variant in (drift(A, mac=None), drift(A, cpu=None), drift(A, machine_id=None),
                    drift(A, mac=None, cpu=None)):
        again = trial(api, product, variant)
        assert again.status_code == 400 and error_code(again) == "invalid_fingerprint", \
            again.text
    back = trial(api, product, A)
    assert back.status_code == 200
    assert back.json()["activation_id"] == first.json()["activation_id"]
    with clock_override(lambda: datetime.now(timezone.utc) + timedelta(days=15)):
        ended = trial(api, product, drift(A, os_arch=None))
        assert ended.status_code == 400 and error_code(ended) == "invalid_fingerprint"
        used = trial(api, product, A)
    assert used.status_code == 409 and error_code(used) == "trial_used"


def test_one_floating_seat_on_many_machines(any_server: LocalServer, api: Api,
                                            product: Product) -> None:
    """Attack: copy one floating activation (id + secret) to other machines, or replay
    its activation request from them, so that all share one lease."""
    lic = any_server.admin.issue_license(product.id, seats=1, seat_mode="floating")
    idem = secrets.token_urlsafe(18)
    made = activate(api, product, lic["license_key"], A, idempotency_key=idem).json()
    assert checkout(api, made, A).status_code == 200
    for other in (B, machine("c")):
        stolen = checkout(api, made, other)
        assert stolen.status_code == 403 and error_code(stolen) == "wrong_machine"
        heartbeat = validate(api, made, other)
        assert heartbeat.status_code == 403 and error_code(heartbeat) == "wrong_machine"
        replay = activate(api, product, lic["license_key"], other, idempotency_key=idem)
        assert replay.status_code == 409 and error_code(replay) == "conflict"
    assert activate(api, product, lic["license_key"], A,
                    idempotency_key=idem).json()["activation_id"] == made["activation_id"]


def test_erasure_undo_on_user_seats(any_server: LocalServer, api: Api,
                                    product: Product) -> None:
    """Attack: after erasure, deactivate and activate again (new OS account, drifted
    machine, a hand-made machine the server never saw) to get full tokens back on a
    user seat. Every new seat starts limited until the vendor restores the license;
    a colleague's seat that was live and not erased keeps its mode."""
    lic = any_server.admin.issue_license(product.id, seats=4, seat_mode="user")
    key = lic["license_key"]
    colleague = activate(api, product, key, B, installation_id=nonce()).json()
    made = activate(api, product, key, A, installation_id=nonce(), email="ann@example.com",
                    consent=True).json()
    erased = api.erasure(made["activation_id"], made["activation_secret"])
    assert check_token(erased.json()["token"], product.keys, product.id).is_limited
    assert api.deactivate(made["activation_id"], made["activation_secret"]).status_code == 200
    for comeback in (A, drift(A, cpu="cpu-new"), machine("never-seen")):
        again = activate(api, product, key, comeback, installation_id=nonce())
        assert again.status_code == 201, again.text
        assert check_token(again.json()["token"], product.keys, product.id).is_limited
        api.deactivate(again.json()["activation_id"], again.json()["activation_secret"])
    kept = validate(api, colleague, B)
    assert not check_token(kept.json()["token"], product.keys, product.id).is_limited
    last = activate(api, product, key, A, installation_id=nonce()).json()
    assert check_token(last["token"], product.keys, product.id).is_limited
    any_server.admin.restore_license(lic["id"])
    restored = validate(api, last, A)
    assert not check_token(restored.json()["token"], product.keys, product.id).is_limited
    fresh = activate(api, product, key, machine("after-restore"), installation_id=nonce())
    assert not check_token(fresh.json()["token"], product.keys, product.id).is_limited
    actions = [e["action"] for e in any_server.admin.audit(license_id=lic["id"])]
    assert "license.restore" in actions


def test_erasure_on_revoked_license_keeps_the_revocation(any_server: LocalServer, api: Api,
                                                         product: Product) -> None:
    """Loss of a refusal: an erasure request on a revoked license must not answer with
    a fresh token the app would store over its revocation."""
    lic = any_server.admin.issue_license(product.id, seats=1)
    made = activate(api, product, lic["license_key"], A).json()
    any_server.admin.revoke_license(lic["id"])
    answer = api.erasure(made["activation_id"], made["activation_secret"])
    assert answer.status_code == 403 and error_code(answer) == "license_revoked"
    receipt = check_receipt(answer.json()["error"]["receipt"], product.keys, product.id)
    assert receipt["result"] == "license_revoked"
    assert any_server.admin.get_license(lic["id"])["erased"]  # erased all the same


def test_replaying_an_old_air_gapped_request_takes_no_seat(any_server: LocalServer, api: Api,
                                                           product: Product) -> None:
    """Attack: answer an old air-gapped request again after its activation was
    deactivated, to get a second activation on a seat that is free again."""
    any_server.admin.update_product(product.id, air_gapped=True)  # an explicit opt-in
    lic = any_server.admin.issue_license(product.id, seats=1)
    text = airgap.build_request(product=product.id, license_key=lic["license_key"],
                                fingerprint=wire(A), nonce=nonce(),
                                created_at=datetime.now(timezone.utc))
    url = f"{api.url}/v1/offline/activations"
    first = api.http.post(url, json={"request": text}, timeout=30)
    assert first.status_code == 201, first.text
    assert seats_in_use(any_server, lic["id"]) == 1
    any_server.admin.remove_activation(first.json()["activation_id"])
    again = api.http.post(url, json={"request": text}, timeout=30)
    assert again.status_code == 410 and error_code(again) == "activation_removed"
    assert seats_in_use(any_server, lic["id"]) == 0
    v1 = airgap.build_request(product=product.id, license_key=lic["license_key"],
                              fingerprint={"id": "fp1.x", "algorithm": 1,
                                           "components": {"mac": A["machine_id"]}},
                              nonce=nonce(), created_at=datetime.now(timezone.utc))
    old = api.http.post(url, json={"request": v1}, timeout=30)
    assert old.status_code == 400 and error_code(old) == "invalid_fingerprint"


# --------------------------------------------------------------------------- too easy to lose


def test_machine_id_changed_keeps_the_seat(any_server: LocalServer, api: Api,
                                           product: Product) -> None:
    """Loss: the machine id is regenerated (OS reinstall, cloned image) and the store is
    gone; activating again on a one-seat license must not say NoSeatsLeft."""
    key = any_server.admin.issue_license(product.id, seats=1)["license_key"]
    made = activate(api, product, key, A).json()
    changed = drift(A, machine_id="mid-regenerated")
    again = activate(api, product, key, changed)
    assert again.status_code == 200, again.text
    assert again.json()["activation_id"] == made["activation_id"]
    token = check_token(again.json()["token"], product.keys, product.id)
    assert to_json(token.fingerprint) == to_json(changed)  # re-bound to the machine as it is
    # The re-activation re-issued the secret (services/sharing.py): the new one validates.
    assert validate(api, again.json(), changed).json()["rebound"] is False


def test_dock_removed_is_the_same_machine(any_server: LocalServer, api: Api) -> None:
    """Loss: activated with a USB/Thunderbolt dock attached, validated without it."""
    strict = new_product(any_server, tolerance=0)
    key = any_server.admin.issue_license(strict.id)["license_key"]
    made = activate(api, strict, key, DOCKED).json()
    answer = validate(api, made, A)
    assert answer.status_code == 200, answer.text
    assert validate(api, made, DOCKED).status_code == 200


def test_windows_registry_fallback(any_server: LocalServer, api: Api,
                                   product: Product) -> None:
    """Loss: on Windows the MachineGuid cannot be read (registry fallback); the SMBIOS
    UUID still identifies the machine."""
    key = any_server.admin.issue_license(product.id)["license_key"]
    made = activate(api, product, key, WIN).json()
    answer = validate(api, made, drift(WIN, machine_id=None))
    assert answer.status_code == 200 and answer.json()["rebound"] is True
    assert validate(api, made, WIN).status_code == 200  # the 90-day memory: not counted


def test_trial_rebound_then_recognised(any_server: LocalServer, api: Api) -> None:
    """Attack: let the trial re-bind through validations (a new CPU), then change one more
    component and delete the store; the trial must still be recognised."""
    product = new_product(any_server, trial_days=14)
    started = trial(api, product, A).json()
    moved = drift(A, cpu="cpu-upgraded")
    assert validate(api, started, moved).json()["rebound"] is True
    further = drift(moved, mac=("mac-new",))  # two away from A, one from the re-bound set
    again = trial(api, product, further)
    assert again.status_code == 200, again.text
    assert again.json()["activation_id"] == started["activation_id"]


# --------------------------------------------------------------------------- re-binding


def test_rebind_bounded_per_period(any_server: LocalServer, api: Api) -> None:
    """Attack: move one activation from machine to machine one component at a time."""
    product = new_product(any_server)
    any_server.admin.update_product(product.id, rebind_limit=2, rebind_period=3600)
    key = any_server.admin.issue_license(product.id)["license_key"]
    made = activate(api, product, key, A).json()
    step1, step2 = drift(A, cpu="c1"), drift(A, cpu="c2")
    assert validate(api, made, step1).json()["rebound"] is True
    assert validate(api, made, step2).json()["rebound"] is True
    refused = validate(api, made, drift(A, cpu="c3"))
    assert refused.status_code == 403 and error_code(refused) == "wrong_machine"
    assert "vendor" in refused.json()["error"]["message"]
    # Back to a set bound in the last 90 days: not a new re-bind.
    assert validate(api, made, step1).status_code == 200
    with clock_override(lambda: datetime.now(timezone.utc) + timedelta(hours=2)):
        assert validate(api, made, drift(A, cpu="c3")).status_code == 200
    rebinds = [e for e in any_server.admin.audit(product=product.id)
               if e["action"] == "activation.rebind"]
    assert len(rebinds) == 3
    assert all(e["detail"] == {"differing": ["cpu"]} for e in rebinds)  # names, never values


def test_product_identity_settings(any_server: LocalServer, product: Product) -> None:
    """The vendor's knobs: tolerance 0..1 only, re-bind bound, sharing policy."""
    shown = any_server.admin.update_product(product.id, rebind_limit=None,
                                            sharing_policy="suspend")
    assert shown["rebind_limit"] is None and shown["sharing_policy"] == "suspend"
    for bad in ({"fingerprint_tolerance": 2}, {"sharing_policy": "ban"},
                {"rebind_period": 10}):
        with pytest.raises(Exception, match="invalid_request"):
            any_server.admin.update_product(product.id, **bad)
        with pytest.raises(Exception, match="invalid_request"):
            any_server.admin.create_product("id-" + secrets.token_hex(4), **bad)
    # Set at creation too; the defaults otherwise.
    made = any_server.admin.create_product("id-" + secrets.token_hex(4), rebind_limit=5,
                                           rebind_period=7 * 86400, sharing_policy="suspend")
    assert (made["rebind_limit"], made["rebind_period"], made["sharing_policy"]) == (
        5, 7 * 86400, "suspend")
    plain = any_server.admin.create_product("id-" + secrets.token_hex(4))
    assert (plain["rebind_limit"], plain["rebind_period"], plain["sharing_policy"]) == (
        3, 30 * 86400, "flag")


# --------------------------------------------------------------------------- the shared table


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_server_answers_as_the_case_table(any_server: LocalServer, api: Api,
                                          case: Case) -> None:
    """An activation bound to ``a`` validated with ``b``: OK (re-bound or not) exactly when
    ``compare(a, b, tolerance).same``; else ``wrong_machine`` (or, when a set has more
    unavailable components than a product may tolerate, ``invalid_fingerprint``)."""
    tolerance = min(case.tolerance, 1)
    product = new_product(any_server, tolerance=tolerance)
    key = any_server.admin.issue_license(product.id)["license_key"]
    made = activate(api, product, key, case.a)
    if len(unavailable(case.a)) > tolerance:
        assert not case.same
        assert made.status_code == 400 and error_code(made) == "invalid_fingerprint"
        return
    assert made.status_code == 201, made.text
    answer = validate(api, made.json(), case.b)
    if case.same:
        assert answer.status_code == 200, answer.text
    elif answer.status_code == 400:
        assert error_code(answer) == "invalid_fingerprint"
    else:
        assert answer.status_code == 403 and error_code(answer) == "wrong_machine"


# --------------------------------------------------------------------------- storage


def test_database_copy_reveals_no_component_hash(any_server: InProcessServer, api: Api,
                                                 product: Product) -> None:
    """Attack: steal a database copy (no master key) and read the component hashes, to
    test guessed machines offline.  Every table's bytes are scanned for them."""
    trial_product = new_product(any_server, trial_days=7)
    lic = any_server.admin.issue_license(product.id, seats=3, seat_mode="user")
    sets = [A, drift(A, cpu="cpu-2"), WIN, DOCKED]
    made = activate(api, product, lic["license_key"], sets[0], installation_id=nonce()).json()
    validate(api, made, sets[1])
    activate(api, product, lic["license_key"], sets[2], installation_id=nonce())
    trial(api, trial_product, sets[3])
    hashes: set[str] = set()
    for components in sets:
        for value in components.values():
            hashes.update(value if isinstance(value, tuple) else [value] if value else [])
    needles = {h.encode() for h in hashes}
    needles |= {base64.urlsafe_b64decode(h + "=") for h in hashes}  # raw bytes too
    needles |= {base64.urlsafe_b64decode(h + "=").hex().encode() for h in hashes}
    state = any_server.app.state.sdna
    metadata = MetaData()
    metadata.reflect(state.engine)
    scanned = 0
    with state.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                blob = repr(tuple(row)).encode() + b"".join(
                    v if isinstance(v, bytes) else b"" for v in row)
                scanned += 1
                assert not any(n in blob for n in needles), table.name
    assert scanned > 10


def test_trial_again_after_drifting_on_a_paid_activation(any_server: LocalServer,
                                                         api: Api) -> None:
    """Attack (or years of honest drift): the trial machine buys a license, then changes
    its machine id and later its network card, each seen by the server on the paid
    activation. No identifier of the trial's own set is left, yet the machine is the
    trial machine: the drift history of its paid activation links the two."""
    product = new_product(any_server, trial_days=14)
    started = trial(api, product, A)
    assert started.status_code == 201, started.text
    lic = any_server.admin.issue_license(product.id, seats=1)
    paid = activate(api, product, lic["license_key"], A).json()
    step1 = drift(A, machine_id="regenerated")
    assert validate(api, paid, step1).status_code == 200
    step2 = drift(step1, mac=("new network card",))
    assert validate(api, paid, step2).status_code == 200
    again = trial(api, product, step2)
    assert again.status_code == 409 and error_code(again) == "trial_used", again.text
    # A machine the server never saw still gets its trial.
    assert trial(api, product, machine("newcomer")).status_code == 201


def test_copies_taking_turns_on_the_grace_secret(any_server: LocalServer, api: Api,
                                                 product: Product) -> None:
    """Attack: copies of an installation keep presenting the secret they were forked with
    (the grace generation a lost answer leaves), never the rotated one, from their own
    computers. A grace secret is accepted only from the set its lost answer was for:
    refused at once, and flagged. (Identical clones -- every identifier the same -- are
    one computer to the server: docs/seats.md, limits.)"""
    lic = any_server.admin.issue_license(product.id, seats=2)
    made = activate(api, product, lic["license_key"], A).json()
    forked = dict(made)
    assert validate(api, made, A).status_code == 200  # the original rotates
    other = api.validate(forked["activation_id"], forked["activation_secret"], fp=wire(B))
    assert other.status_code == 410 and error_code(other) == "activation_moved"
    row = next(r for r in any_server.admin.list_activations(lic["id"])
               if r["id"] == made["activation_id"])
    assert row["shared_reason"] == "copied_secret"
    # The machine that lost an answer is served with its grace secret, any number of times.
    again = dict(activate(api, product, lic["license_key"], machine("lossy")).json())
    lost = again["activation_secret"]
    assert validate(api, again, machine("lossy")).status_code == 200
    for _ in range(3):
        assert api.validate(again["activation_id"], lost,
                            fp=wire(machine("lossy"))).status_code == 200


def test_replaying_the_activation_request_to_fetch_the_current_secret(
        any_server: LocalServer, api: Api, product: Product) -> None:
    """Attack: a copy replays the captured activation request (same idempotency key and
    set) to fetch the current secret instead of presenting an old one. A replay hands out
    a new generation: the other copy's secret is then outdated, and it is flagged."""
    lic = any_server.admin.issue_license(product.id, seats=1)
    idem = secrets.token_urlsafe(18)
    original = activate(api, product, lic["license_key"], A, idempotency_key=idem).json()
    replayed = activate(api, product, lic["license_key"], A, idempotency_key=idem).json()
    assert replayed["activation_id"] == original["activation_id"]
    assert replayed["activation_secret"] != original["activation_secret"]
    late = validate(api, original, A)
    assert late.status_code == 410 and error_code(late) == "activation_moved"
