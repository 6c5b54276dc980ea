"""Trials, test codes, terms and renewal on the server: HTTP API, CLI, migration 0002.

The HTTP API on SQLite and PostgreSQL (``any_server``: the app in-process,
tests/inprocess.py), the vendor CLI in direct and remote mode (over real HTTP),
and revision 0002 up and down on both backends.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from alembic import command

from software_dna.server.adminclient import AdminError
from software_dna.server.config import Settings
from software_dna.server.db import alembic_config, make_engine
from software_dna.server.testing import LocalServer
from software_dna.wire.claims import Kind
from software_dna.wire.times import parse_rfc3339
from tests.server.helpers import (
    Api,
    check_receipt,
    check_token,
    error_code,
    fingerprint,
    nonce,
)
from tests.server.test_cli_vendor import Runner, _clean_env, _init

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def server(threaded_server: LocalServer) -> LocalServer:
    """For the CLI's remote mode, which opens its own connections: a real socket,
    the app in this process behind uvicorn on a thread."""
    return threaded_server


DAY = timedelta(days=1)


@dataclass
class Product:
    id: str
    keys: list[str]


@pytest.fixture(scope="module")
def any_server(inprocess_any_server: InProcessServer) -> InProcessServer:
    """Only the HTTP API is tested here: the app in-process on ``database_url``."""
    return inprocess_any_server


@pytest.fixture
def api(any_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(any_server)
    yield client
    client.close()


@pytest.fixture
def product(any_server: LocalServer) -> Product:
    pid = "p-" + secrets.token_hex(4)
    keys = any_server.admin.setup_product(pid, features=["pro"], trial_days=7,
                                          fingerprint_tolerance=1)
    return Product(pid, keys)


def start_trial(api: Api, product: str, machine: str = "m1", *,
                changed: tuple[str, ...] = (), **extra: Any) -> requests.Response:
    body: dict[str, Any] = {"product": product, "nonce": nonce(),
                            "fingerprint": fingerprint(machine, changed=changed), **extra}
    return api.http.post(f"{api.url}/v1/trials", json=body, timeout=30)


def renew(api: Api, activation_id: str, secret: str | None, code: str) -> requests.Response:
    return api.http.post(f"{api.url}/v1/activations/{activation_id}/renewal",
                         json={"code": code, "nonce": nonce()},
                         headers={"Authorization": f"Bearer {secret}"} if secret else {},
                         timeout=30)


# --------------------------------------------------------------------------- trials


def test_trial_once_per_machine(any_server: LocalServer, api: Api, product: Product) -> None:
    first = start_trial(api, product.id)
    assert first.status_code == 201, first.text
    body = first.json()
    assert set(body) == {"activation_id", "activation_secret", "token", "nonce", "server_time"}
    lic = check_token(body["token"], product.keys, product.id)
    assert lic.kind is Kind.TRIAL and lic.features == {"pro"}
    assert lic.license_expires_at is not None
    assert lic.license_expires_at - lic.issued_at == 7 * DAY
    shown = any_server.admin.get_license(lic.license_id)
    assert shown["kind"] == "trial" and shown["seats"] == 1
    assert shown["key_hint"] == "(trial: no key)"
    # The same machine, within the tolerance: the same trial (200), never a second one;
    # its secret is re-issued (a reuse: services/sharing.py), the earlier one outdated.
    secret = body["activation_secret"]
    for changed in ((), ("mac",)):
        again = start_trial(api, product.id, changed=changed)
        assert again.status_code == 200, again.text
        assert again.json()["activation_id"] == body["activation_id"]
        assert again.json()["activation_secret"] != secret
        secret = again.json()["activation_secret"]
    assert start_trial(api, product.id, "m2").status_code == 201  # another machine
    trials = any_server.admin.list_trials(product.id)
    (mine,) = [t for t in trials if t["license_id"] == lic.license_id]
    assert len(trials) == 2
    assert set(mine) == {"id", "product", "license_id", "fingerprint_id", "created_at"}
    # The trial ends: the machine is refused, the validation says expired.
    any_server.admin.update_license(lic.license_id,
                                    expires_at=datetime.now(timezone.utc) - timedelta(seconds=1),
                                    allow_past=True)
    used = start_trial(api, product.id, changed=("cpu",))
    assert used.status_code == 409 and error_code(used) == "trial_used"
    ended = api.validate(body["activation_id"], secret)
    assert ended.status_code == 403 and error_code(ended) == "license_expired"
    assert "trial has ended" in ended.json()["error"]["message"]
    assert check_receipt(ended.json()["error"]["receipt"], product.keys,
                         product.id)["result"] == "license_expired"
    # Deactivating the trial does not give it back either.
    assert start_trial(api, product.id, changed=("mac", "cpu")).status_code == 409


def test_concurrent_trial_requests_make_one_trial(
    any_server: LocalServer, product: Product
) -> None:
    barrier = threading.Barrier(6)
    answers: list[requests.Response] = []
    lock = threading.Lock()

    def one() -> None:
        client = Api.for_server(any_server)
        try:
            barrier.wait(timeout=10)
            answer = start_trial(client, product.id, "racer")
        finally:
            client.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
    assert len({a.json()["activation_id"] for a in answers}) == 1
    assert len(any_server.admin.list_trials(product.id)) == 1


def test_trial_refusals_and_malformed_requests(
    any_server: LocalServer, api: Api, product: Product
) -> None:
    plain = "p-" + secrets.token_hex(4)
    any_server.admin.setup_product(plain)
    for pid in (plain, "no-such-product"):
        refused = start_trial(api, pid)
        assert refused.status_code == 403 and error_code(refused) == "trial_not_available"
    bad_bodies: list[dict[str, Any]] = [
        {"product": product.id, "nonce": nonce()},
        {"product": product.id, "fingerprint": fingerprint("m"), "nonce": "short"},
        {"product": product.id, "fingerprint": fingerprint("m"), "nonce": nonce(), "x": 1},
        {"product": 5, "fingerprint": fingerprint("m"), "nonce": nonce()},
    ]
    for body in bad_bodies:
        answer = api.http.post(f"{api.url}/v1/trials", json=body, timeout=30)
        assert answer.status_code == 400 and error_code(answer) == "invalid_request", body
    answer = api.http.post(f"{api.url}/v1/trials", data=b"{not json",
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400
    any_server.admin.update_product(product.id, trial_days=0)  # trials turned off
    assert any_server.admin.get_product(product.id)["trial_days"] is None
    assert error_code(start_trial(api, product.id, "m9")) == "trial_not_available"
    for bad in (-1, 366):
        with pytest.raises(AdminError) as refused_days:
            any_server.admin.update_product(product.id, trial_days=bad)
        assert refused_days.value.status == 400


def test_trial_to_paid_over_http(any_server: LocalServer, api: Api, product: Product) -> None:
    trial = start_trial(api, product.id).json()
    put = api.put_settings(trial["activation_id"], trial["activation_secret"], {"a": 1})
    assert put.status_code == 200
    key = any_server.admin.issue_license(product.id)["license_key"]
    # Wrong credentials for the replaced activation: the activation still succeeds, the
    # trial is untouched.
    wrong = api.activate(product.id, key, machine="m1",
                         replaces={"activation_id": trial["activation_id"],
                                   "activation_secret": "sas_wrong"})
    assert wrong.status_code == 201, wrong.text
    paid = wrong.json()
    assert api.get_settings(paid["activation_id"], paid["activation_secret"]).json()[
        "settings"] == {}
    assert api.validate(trial["activation_id"], trial["activation_secret"]).status_code == 200
    # Another license's machine replaces the trial: released, settings carried over.
    key2 = any_server.admin.issue_license(product.id)["license_key"]
    done = api.activate(product.id, key2, machine="m1",
                        replaces={"activation_id": trial["activation_id"],
                                  "activation_secret": trial["activation_secret"]})
    assert done.status_code == 201, done.text
    new = done.json()
    assert api.get_settings(new["activation_id"], new["activation_secret"]).json()[
        "settings"] == {"a": 1}
    gone = api.validate(trial["activation_id"], trial["activation_secret"])
    assert gone.status_code == 410 and error_code(gone) == "activation_removed"
    bad = api.activate(product.id, key2, machine="m1",
                       replaces={"activation_id": "x" * 41, "activation_secret": "s"})
    assert bad.status_code == 400


def test_remove_trial_lets_the_machine_start_again(
    any_server: LocalServer, api: Api, product: Product
) -> None:
    first = start_trial(api, product.id, "lab").json()
    (trial,) = [t for t in any_server.admin.list_trials(product.id)
                if t["license_id"] == check_token(first["token"], product.keys,
                                                  product.id).license_id]
    removed = any_server.admin.remove_trial(trial["id"])
    assert removed["id"] == trial["id"]
    revoked = api.validate(first["activation_id"], first["activation_secret"], machine="lab")
    assert revoked.status_code == 403 and error_code(revoked) == "license_revoked"
    assert start_trial(api, product.id, "lab").status_code == 201
    with pytest.raises(AdminError) as unknown:
        any_server.admin.remove_trial(trial["id"])
    assert unknown.value.status == 404


# --------------------------------------------------------------------------- terms


def test_terms_validation(any_server: LocalServer, product: Product) -> None:
    admin = any_server.admin
    cases: list[dict[str, Any]] = [
        {"kind": "trial", "expires_after_days": 5},
        {"kind": "test", "expires_after_days": 1},
        {"kind": "evaluation"},
        {"kind": "evaluation", "expires_after_days": 61},
        {"expires_after_days": 0},
        {"expires_after_days": 3651},
        {"expires_after_days": "5"},
        {"subscription": True},  # the product is not "mandatory"
        {"subscription": "yes"},
    ]
    for fields in cases:
        with pytest.raises(AdminError) as refused:
            admin.issue_license(product.id, **fields)
        assert refused.value.status == 400, fields
    ancient = admin.issue_license(product.id, expires_at="0003-01-01T00:00:00Z",
                                  allow_past=True)
    assert ancient["expires_at"] == "0003-01-01T00:00:00Z"  # RFC 3339: four-digit years
    perpetual = admin.issue_license(product.id)
    lic_id = perpetual["id"]
    for call, status in (
        (lambda: admin.extend_license(lic_id, days=5), 409),
        (lambda: admin.cancel_subscription(lic_id), 409),
        (lambda: admin.reset_test_code(lic_id), 409),
        (lambda: admin.request("POST", f"/licenses/{lic_id}/extend", json={}), 400),
        (lambda: admin.request("POST", f"/licenses/{lic_id}/extend",
                               json={"days": 1, "until": "2030-01-01T00:00:00Z"}), 400),
        (lambda: admin.request("POST", "/licenses/lic_nope/perpetual"), 404),
        (lambda: admin.request("POST", "/renewal-codes", json={"days": 5}), 400),
        (lambda: admin.request("POST", "/renewal-codes",
                               json={"days": 5, "product": product.id, "count": 101}), 400),
        (lambda: admin.request("POST", "/renewal-codes",
                               json={"days": 5, "product": "no-such-product"}), 404),
        (lambda: admin.issue_test_code(product.id, days=8), 400),
    ):
        with pytest.raises(AdminError) as refused:
            call()
        assert refused.value.status == status
    admin.revoke_license(lic_id)
    with pytest.raises(AdminError) as revoked:
        admin.make_perpetual(lic_id)
    assert revoked.value.status == 409


def test_renewal_route(any_server: LocalServer, api: Api, product: Product) -> None:
    admin = any_server.admin
    issued = admin.issue_license(product.id, expires_at=datetime.now(timezone.utc) + 2 * DAY)
    body = api.activate(product.id, issued["license_key"]).json()
    act, secret = body["activation_id"], body["activation_secret"]
    before = parse_rfc3339(admin.get_license(issued["id"])["expires_at"])
    (code,) = admin.issue_renewal_codes(10, license_id=issued["id"])
    assert re.fullmatch(r"RENEW(-[A-Z2-9]{4}){4}", code)
    answer = renew(api, act, secret, code)
    assert answer.status_code == 200, answer.text
    lic = check_token(answer.json()["token"], product.keys, product.id)
    assert lic.license_expires_at == before + 10 * DAY
    assert answer.json()["license_expires_at"] == lic.license_expires_at.strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    replay = renew(api, act, secret, code)  # a retry: same end
    assert check_token(replay.json()["token"], product.keys,
                       product.id).license_expires_at == lic.license_expires_at
    assert renew(api, act, None, code).status_code == 401
    assert renew(api, act, "sas_wrong", code).status_code == 401
    unknown = renew(api, act, secret, "RENEW-AAAA-BBBB-CCCC-DDDD")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_renewal_code"
    malformed = api.http.post(f"{api.url}/v1/activations/{act}/renewal",
                              json={"code": "no/such", "nonce": nonce()},
                              headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    assert malformed.status_code == 400
    # A code of another product is unknown here.
    other = "p-" + secrets.token_hex(4)
    admin.setup_product(other)
    (foreign,) = admin.issue_renewal_codes(5, product_id=other)
    assert error_code(renew(api, act, secret, foreign)) == "unknown_renewal_code"
    # Suspended: refused with a receipt, the code is not used up.
    (spare,) = admin.issue_renewal_codes(5, product_id=product.id)
    admin.suspend_license(issued["id"])
    suspended = renew(api, act, secret, spare)
    assert suspended.status_code == 403 and error_code(suspended) == "license_suspended"
    assert check_receipt(suspended.json()["error"]["receipt"], product.keys,
                         product.id)["result"] == "license_suspended"
    admin.resume_license(issued["id"])
    assert renew(api, act, secret, spare).status_code == 200
    codes = {c["code_hint"][-4:]: c for c in admin.list_renewal_codes(license_id=issued["id"])}
    assert codes[code[-4:]]["redeemed_license_id"] == issued["id"]
    audit = [e["action"] for e in admin.audit(license_id=issued["id"])]
    assert audit.count("license.renew") == 2


def test_renewal_and_extension_stop_at_the_last_writable_second(
        any_server: LocalServer, api: Api, product: Product) -> None:
    """An end set near year 9999 plus days was an OverflowError, answered 500."""
    admin = any_server.admin
    issued = admin.issue_license(product.id, expires_at="9999-12-31T23:59:59+14:00")
    body = api.activate(product.id, issued["license_key"]).json()
    (code,) = admin.issue_renewal_codes(3650, license_id=issued["id"])
    answer = renew(api, body["activation_id"], body["activation_secret"], code)
    assert answer.status_code == 200, answer.text
    assert answer.json()["license_expires_at"] == "9999-12-31T23:59:59Z"
    assert admin.extend_license(issued["id"], days=3650)["expires_at"] == "9999-12-31T23:59:59Z"


def test_one_renewal_code_redeemed_once_under_a_race(
    any_server: LocalServer, api: Api, product: Product
) -> None:
    soon = datetime.now(timezone.utc) + DAY
    bodies = [api.activate(product.id, any_server.admin.issue_license(
        product.id, expires_at=soon)["license_key"], machine=f"r{i}").json() for i in range(4)]
    (code,) = any_server.admin.issue_renewal_codes(9, product_id=product.id)
    barrier = threading.Barrier(len(bodies))
    statuses: list[int] = []

    def one(body: dict[str, Any]) -> None:
        client = Api.for_server(any_server)
        try:
            barrier.wait(timeout=10)
            statuses.append(renew(client, body["activation_id"], body["activation_secret"],
                                  code).status_code)
        finally:
            client.close()

    threads = [threading.Thread(target=one, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(statuses) == [200, 409, 409, 409]


def test_renewal_codes_are_rate_limited(tmp_path: Path) -> None:
    with InProcessServer(tmp_path / "srv", rate_limit_attempts=3) as server:
        pid = "p-" + secrets.token_hex(4)
        server.admin.setup_product(pid)
        issued = server.admin.issue_license(pid, expires_at=datetime.now(timezone.utc) + DAY)
        api = Api.for_server(server)
        try:
            body = api.activate(pid, issued["license_key"]).json()
            statuses = [renew(api, body["activation_id"], body["activation_secret"],
                              f"RENEW-AAAA-BBBB-CCCC-{n:04d}".replace("0", "A")).status_code
                        for n in range(5)]
        finally:
            api.close()
    assert statuses[:3] == [404, 404, 404] and statuses[3:] == [429, 429]


def test_subscription_cancel_refuses_with_receipt(
    any_server: LocalServer, api: Api
) -> None:
    pid = "p-" + secrets.token_hex(4)
    keys = any_server.admin.setup_product(pid, protection="mandatory")
    issued = any_server.admin.issue_license(pid, subscription=True, expires_after_days=30)
    body = api.activate(pid, issued["license_key"]).json()
    assert check_token(body["token"], keys, pid).subscription
    cancelled = any_server.admin.cancel_subscription(issued["id"])
    assert cancelled["status"] == "suspended" and cancelled["subscription"]
    assert any_server.admin.cancel_subscription(issued["id"])["cancelled_at"] == cancelled[
        "cancelled_at"]  # twice: no change
    refused = api.validate(body["activation_id"], body["activation_secret"])
    assert refused.status_code == 403 and error_code(refused) == "subscription_cancelled"
    assert check_receipt(refused.json()["error"]["receipt"], keys,
                         pid)["result"] == "subscription_cancelled"
    new = api.activate(pid, issued["license_key"], machine="m2")
    assert new.status_code == 403 and error_code(new) == "subscription_cancelled"
    perpetual = any_server.admin.make_perpetual(issued["id"])  # bought outright
    assert perpetual["status"] == "active" and not perpetual["subscription"]
    assert perpetual["expires_at"] is None and perpetual["cancelled_at"] is None
    assert api.validate(body["activation_id"], body["activation_secret"]).status_code == 200


def test_test_codes_over_http(any_server: LocalServer, api: Api, product: Product) -> None:
    admin = any_server.admin
    admin.update_product(product.id, test_code_limit=1)
    code = admin.issue_test_code(product.id, days=3)
    assert code["kind"] == "test" and code["expires_after_days"] == 3
    with pytest.raises(AdminError) as full:
        admin.issue_test_code(product.id)
    assert full.value.status == 409
    body = api.activate(product.id, code["license_key"]).json()
    lic = check_token(body["token"], product.keys, product.id)
    assert lic.kind is Kind.TEST and lic.license_expires_at is not None
    assert lic.license_expires_at - lic.issued_at == 3 * DAY
    reset = admin.reset_test_code(code["id"])
    assert reset["first_activated_at"] is None and reset["expires_at"] is None
    assert reset["seats_in_use"] == 0
    gone = api.validate(body["activation_id"], body["activation_secret"])
    assert gone.status_code == 410
    # An ended test code frees its place.
    admin.update_license(code["id"], expires_at=datetime.now(timezone.utc) - DAY,
                         allow_past=True)
    assert admin.issue_test_code(product.id)["kind"] == "test"
    assert len(admin.list_test_codes(product.id)) == 2


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def vendor_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("terms-home")
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, folder)
        _init(folder)
        yield folder


@pytest.fixture
def sdna(vendor_home: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Runner:
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(vendor_home))
    return Runner(capsys, monkeypatch)


def _cli_flow(sdna: Runner, *conn: str) -> None:
    """Every trials / terms command on one backend (``conn``: connection options)."""
    pid = "p-" + secrets.token_hex(4)
    sdna("products", "create", pid, "--trial-days", "10", "--test-code-limit", "2", *conn)
    shown = sdna("products", "show", pid, "--json", *conn).json()
    assert shown["trial_days"] == 10 and shown["test_code_limit"] == 2
    text = sdna("products", "show", pid, *conn).out
    assert re.search(r"^trial:\s+10 days$", text, re.M)
    sdna("keys", "generate", pid, *conn)

    evaluation = sdna("licenses", "issue", pid, "--kind", "evaluation",
                      "--expires-after-days", "30", "--json", *conn).json()
    assert evaluation["kind"] == "evaluation" and evaluation["expires_after_days"] == 30
    assert "30 days after the first activation" in sdna("licenses", "show", evaluation["id"],
                                                        *conn).out
    assert "expires_after_days of 1 to 60" in sdna.fail(
        "licenses", "issue", pid, "--kind", "evaluation", "--expires-after-days", "61", *conn)
    assert "expires-after-days" in sdna.fail("licenses", "issue", pid,
                                             "--expires-after-days", "0", *conn, code=2)
    extended = sdna("licenses", "extend", evaluation["id"], "--days", "5", "--json", *conn)
    assert extended.json()["expires_after_days"] == 35
    assert "now perpetual" in sdna("licenses", "perpetual", evaluation["id"], *conn).out
    assert "perpetual" in sdna.fail("licenses", "extend", evaluation["id"], "--days", "5", *conn)
    assert "not a subscription" in sdna.fail("licenses", "cancel", evaluation["id"], *conn)
    assert "mandatory" in sdna.fail("licenses", "issue", pid, "--subscription", *conn)

    issued = sdna("test-codes", "issue", pid, "--days", "2", *conn)
    (test_key,) = re.findall(r"^\s+(TEST(?:-[A-Z0-9]{4}){4})$", issued.out, re.M)
    codes = sdna("test-codes", "list", pid, "--json", *conn).json()["licenses"]
    assert len(codes) == 1 and codes[0]["expires_after_days"] == 2
    assert test_key.endswith(codes[0]["key_hint"][-4:])
    assert "reset" in sdna("test-codes", "reset", codes[0]["id"], *conn).out
    sdna("test-codes", "issue", pid, *conn)
    assert "limit" in sdna.fail("test-codes", "issue", pid, *conn)
    assert "Only test codes" in sdna.fail("test-codes", "reset", evaluation["id"], *conn)

    made = sdna("renewal-codes", "issue", "--license", evaluation["id"], "--days", "30",
                "--count", "2", *conn)
    printed = re.findall(r"^\s+(RENEW(?:-[A-Z0-9]{4}){4})$", made.out, re.M)
    assert len(printed) == 2
    listed = sdna("renewal-codes", "list", "--license", evaluation["id"], "--json", *conn)
    hints = sorted(c["code_hint"][-4:] for c in listed.json()["renewal_codes"])
    assert hints == sorted(c[-4:] for c in printed)
    assert all(c["code"] is None for c in listed.json()["renewal_codes"])
    assert sdna("renewal-codes", "issue", "--product", pid, "--days", "1", "--json",
                *conn).json()["renewal_codes"][0]["license_id"] is None
    assert sdna("trials", "list", pid, *conn).out.strip() == "No trials."
    assert "No such trial" in sdna.fail("trials", "remove", "trl_nope", *conn)


def test_cli_direct(sdna: Runner) -> None:
    _cli_flow(sdna)


def test_cli_through_the_admin_api(sdna: Runner, server: LocalServer,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_ADMIN_KEY", server.admin_key)
    _cli_flow(sdna, "--server-url", server.url)


def test_cli_trials_list_and_remove(sdna: Runner, server: LocalServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_ADMIN_KEY", server.admin_key)
    pid = "p-" + secrets.token_hex(4)
    server.admin.setup_product(pid, trial_days=3)
    api = Api(server.url)
    try:
        assert start_trial(api, pid, "cli-machine").status_code == 201
        listed = sdna("trials", "list", pid, "--server-url", server.url, "--json").json()
        (trial,) = listed["trials"]
        sdna("trials", "remove", trial["id"], "--server-url", server.url)
        assert start_trial(api, pid, "cli-machine").status_code == 201
    finally:
        api.close()


# --------------------------------------------------------------------------- migration


def test_migration_0002_up_and_down(tmp_path: Path, fresh_database_url: str) -> None:


    settings = Settings.from_env({"DATABASE_URL": fresh_database_url,
                                  "SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    engine = make_engine(settings, pooled=False)
    cfg = alembic_config(settings)

    def run(action: str, revision: str) -> None:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)

    def shape() -> tuple[set[str], set[str], set[str]]:
        inspector = sa.inspect(engine)
        tables = set(inspector.get_table_names())
        return (tables, {c["name"] for c in inspector.get_columns("licenses")},
                {c["name"] for c in inspector.get_columns("products")})

    try:
        run("upgrade", "0001")
        with engine.begin() as conn:  # a product and a license made before 0002
            now = datetime(2026, 1, 1)
            conn.execute(sa.text(
                "INSERT INTO products (id, name, protection, refresh_interval, "
                "offline_grace_period, fingerprint_tolerance, features, limited_features, "
                "password_required, created_at, updated_at) VALUES ('old', 'Old', "
                "'opportunistic', 60, 60, 1, '[]', '[]', false, :t, :t)"
            ).bindparams(sa.bindparam("t", type_=sa.DateTime())), {"t": now})
            conn.execute(sa.text(
                "INSERT INTO licenses (id, product_id, key_hash, key_last4, status, seats, "
                "features, password_erased, erased, created_at, updated_at) VALUES ('lic_old', "
                "'old', :h, 'ABCD', 'active', 1, '[]', false, false, :t, :t)"
            ).bindparams(sa.bindparam("t", type_=sa.DateTime())), {"t": now, "h": "0" * 64})
        run("upgrade", "0002")
        tables, licenses, products = shape()
        assert {"trials", "trial_components", "renewal_codes"} <= tables
        assert {"kind", "duration_days", "first_activated_at", "subscription",
                "cancelled_at"} <= licenses
        assert {"trial_days", "test_code_limit"} <= products
        with engine.connect() as conn:
            row = conn.execute(sa.text(
                "SELECT kind, subscription, duration_days FROM licenses")).one()
            limit = conn.execute(sa.text("SELECT test_code_limit FROM products")).scalar()
        assert (row[0], bool(row[1]), row[2]) == ("full", False, None) and limit == 5
        run("downgrade", "0001")
        tables, licenses, products = shape()
        assert not {"trials", "trial_components", "renewal_codes"} & tables
        assert "kind" not in licenses and "trial_days" not in products
        run("upgrade", "0002")  # and up again, the old rows intact
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT id, kind FROM licenses")).one() == (
                "lic_old", "full")
    finally:
        engine.dispose()
