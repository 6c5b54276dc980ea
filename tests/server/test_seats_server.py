"""Seats on the server, over real HTTP: two workers racing on one PostgreSQL database,
roll-over and ``activation_moved``, user seats, floating leases, the lock-out, the
admin API and CLI, and migration 0003.

Real sockets on purpose: the races need two uvicorn worker processes
(LocalServer), and the other tests post from threads with plain ``requests``
(tests/threaded.py)."""

from __future__ import annotations

import io
import json
import secrets
import threading
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from alembic import command

from software_dna.server import cli
from software_dna.server.adminclient import AdminError
from software_dna.server.config import Settings
from software_dna.server.db import alembic_config, make_engine
from software_dna.server.testing import LocalServer
from software_dna.wire.claims import SeatMode
from software_dna.wire.times import parse_rfc3339
from tests.fixtures_server import PgDatabases
from tests.server.helpers import Api, check_receipt, check_token, error_code, fingerprint, nonce


@pytest.fixture(scope="module")
def any_server(threaded_any_server: LocalServer) -> LocalServer:
    """The app in this process behind a real socket (the CLI's remote mode opens its own)."""
    return threaded_any_server


def new_product(srv: LocalServer, **policy: Any) -> tuple[str, list[str]]:
    pid = "s-" + secrets.token_hex(4)
    return pid, srv.admin.setup_product(pid, **policy)


def issue(srv: LocalServer, pid: str, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = srv.admin.request("POST", "/licenses",
                                               json={"product": pid, **fields})
    return answer


def post(url: str, body: dict[str, Any], secret: str | None = None) -> requests.Response:
    headers = {"Connection": "close"}  # a new connection: the kernel spreads them over workers
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return requests.post(url, json=body, headers=headers, timeout=60)


Call = tuple[str, dict[str, Any], "str | None"]  # url, body, bearer secret


def race(calls: list[Call]) -> list[requests.Response]:
    """POST every call at once (threads released together); the answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[requests.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = post(*calls[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def activation_body(pid: str, key: str, machine: str) -> dict[str, Any]:
    return {"product": pid, "license_key": key, "fingerprint": fingerprint(machine),
            "nonce": nonce(), "idempotency_key": secrets.token_urlsafe(18)}


# --------------------------------------------------------------------------- two workers


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory: pytest.TempPathFactory,
                pg_databases: PgDatabases) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("seats-2w"), database_url=pg_databases.create(),
                     workers=2) as srv:
        yield srv


def live_activations(srv: LocalServer, license_id: str) -> int:
    return sum(1 for a in srv.admin.list_activations(license_id) if a["deactivated_at"] is None)


@pytest.mark.postgres
def test_two_workers_race_for_the_last_machine_seat(two_workers: LocalServer) -> None:
    srv = two_workers
    pid, _ = new_product(srv)
    for round_ in range(3):
        lic = issue(srv, pid, seats=3)
        url = f"{srv.url}/v1/activations"
        answers = race([(url, activation_body(pid, lic["license_key"], f"r{round_}-{m}"), None)
                        for m in range(14)])
        codes = sorted(a.status_code for a in answers)
        assert codes == [201] * 3 + [409] * 11, codes
        assert {error_code(a) for a in answers if a.status_code == 409} == {"no_seats_left"}
        assert live_activations(srv, lic["id"]) == 3
        assert srv.admin.get_license(lic["id"])["seats_in_use"] == 3


@pytest.mark.postgres
def test_two_workers_race_for_the_last_floating_seat(two_workers: LocalServer) -> None:
    srv = two_workers
    pid, keys = new_product(srv, lease_duration=600)
    # Activating a floating license takes a lease: 14 machines, 3 seats.
    lic = issue(srv, pid, seats=3, seat_mode="floating")
    url = f"{srv.url}/v1/activations"
    answers = race([(url, activation_body(pid, lic["license_key"], f"f{m}"), None)
                    for m in range(14)])
    assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 11
    refused = [a.json()["error"] for a in answers if a.status_code == 409]
    ends = {lease["expires_at"] for lease in
            srv.admin.request("GET", f"/licenses/{lic['id']}/leases")["leases"]}
    assert len(ends) >= 1 and all(e["retry_at"] in ends for e in refused)  # the earliest end

    # Check-out race: 10 activated machines without a lease, 2 seats.
    lic = issue(srv, pid, seats=2, seat_mode="floating")
    holders = []
    for m in range(10):
        made = post(url, activation_body(pid, lic["license_key"], f"c{m}"))
        assert made.status_code == 201, made.text
        body = made.json()
        back = post(f"{srv.url}/v1/activations/{body['activation_id']}/checkin",
                    {"fingerprint": fingerprint(f"c{m}"), "nonce": nonce()},
                    body["activation_secret"])
        assert back.status_code == 200 and back.json()["lease_expires_at"] is None
        holders.append((body["activation_id"], body["activation_secret"], f"c{m}"))
    answers = race([(f"{srv.url}/v1/activations/{a_id}/checkout",
                     {"fingerprint": fingerprint(machine), "nonce": nonce()}, secret)
                    for a_id, secret, machine in holders])
    assert sorted(a.status_code for a in answers) == [200] * 2 + [409] * 8
    for answer in answers:
        if answer.status_code == 200:
            token = check_token(answer.json()["token"], keys, pid)
            assert token.seat_mode is SeatMode.FLOATING and token.lease_expires_at is not None
            assert token.expires_at is not None and token.expires_at <= token.lease_expires_at
    leases = srv.admin.request("GET", f"/licenses/{lic['id']}/leases")["leases"]
    assert len(leases) == 2 and srv.admin.get_license(lic["id"])["seats_in_use"] == 2


@pytest.mark.postgres
def test_two_workers_roll_over_never_exceeds_the_seats(two_workers: LocalServer) -> None:
    srv = two_workers
    pid, _ = new_product(srv)
    lic = issue(srv, pid, seats=2, rollover=True)
    url = f"{srv.url}/v1/activations"
    answers = race([(url, activation_body(pid, lic["license_key"], f"o{m}"), None)
                    for m in range(10)])
    assert [a.status_code for a in answers] == [201] * 10  # each one moves an older seat
    assert live_activations(srv, lic["id"]) == 2
    moved = [a for a in srv.admin.list_activations(lic["id"]) if a["deactivated_at"]]
    assert len(moved) == 8 and {a["deactivated_by"] for a in moved} == {"rollover"}


# --------------------------------------------------------------------------- one worker, both DBs


@pytest.fixture(scope="module")
def api(any_server: LocalServer) -> Iterator[Api]:
    client = Api(any_server.url)
    yield client
    client.close()


def test_roll_over_moves_the_least_recently_seen_machine(any_server: LocalServer,
                                                         api: Api) -> None:
    pid, keys = new_product(any_server)
    lic = issue(any_server, pid, seats=2, rollover=True)
    first = api.activate(pid, lic["license_key"], machine="one").json()
    second = api.activate(pid, lic["license_key"], machine="two").json()
    assert api.validate(first["activation_id"], first["activation_secret"],
                        machine="one").status_code == 200  # "one" was seen last
    third = api.activate(pid, lic["license_key"], machine="three")
    assert third.status_code == 201
    moved = api.validate(second["activation_id"], second["activation_secret"], machine="two")
    assert moved.status_code == 410 and error_code(moved) == "activation_moved"
    receipt = check_receipt(moved.json()["error"]["receipt"], keys, pid)
    assert receipt["result"] == "activation_moved"
    assert receipt["activation_id"] == second["activation_id"]
    assert api.validate(first["activation_id"], first["activation_secret"],
                        machine="one").status_code == 200
    # Its deactivation is a no-op with the same answer; the vendor sees why it went.
    gone = api.deactivate(second["activation_id"], second["activation_secret"])
    assert gone.status_code == 410 and error_code(gone) == "activation_moved"
    listed = {a["id"]: a for a in any_server.admin.list_activations(lic["id"])}
    assert listed[second["activation_id"]]["deactivated_by"] == "rollover"
    # Without roll-over the next machine is refused.
    any_server.admin.update_license(lic["id"], rollover=False)
    refused = api.activate(pid, lic["license_key"], machine="four")
    assert refused.status_code == 409 and error_code(refused) == "no_seats_left"
    assert "retry_at" not in refused.json()["error"]  # machine seats: no lease to wait for


def test_user_seats_tell_os_accounts_apart(any_server: LocalServer, api: Api) -> None:
    pid, _ = new_product(any_server)
    lic = issue(any_server, pid, seats=2, seat_mode="user", password="team secret")
    alice, bob = secrets.token_urlsafe(18), secrets.token_urlsafe(18)
    one = api.activate(pid, lic["license_key"], machine="shared", installation_id=alice,
                       password="team secret", email="alice@example.com", consent=True)
    again = api.activate(pid, lic["license_key"], machine="shared", installation_id=alice,
                         password="team secret")
    assert one.status_code == 201 and again.status_code == 200  # a reinstall: same seat
    assert again.json()["activation_id"] == one.json()["activation_id"]
    two = api.activate(pid, lic["license_key"], machine="shared", installation_id=bob,
                       password="team secret", email="bob@example.com", consent=True)
    assert two.status_code == 201 and two.json()["activation_id"] != one.json()["activation_id"]
    third = api.activate(pid, lic["license_key"], machine="shared",
                         installation_id=secrets.token_urlsafe(18), password="team secret")
    assert third.status_code == 409 and error_code(third) == "no_seats_left"
    # Machine seats: the same computer is one seat whatever the account.
    any_server.admin.update_license(lic["id"], seat_mode="machine")
    carol = api.activate(pid, lic["license_key"], machine="shared",
                         installation_id=secrets.token_urlsafe(18), password="team secret")
    assert carol.status_code == 200


def test_checkout_and_checkin_on_the_api(any_server: LocalServer, api: Api) -> None:
    pid, keys = new_product(any_server, lease_duration=300)
    machine_lic = issue(any_server, pid)
    made = api.activate(pid, machine_lic["license_key"], machine="plain").json()
    plain = post(f"{any_server.url}/v1/activations/{made['activation_id']}/checkout",
                 {"fingerprint": fingerprint("plain"), "nonce": nonce()},
                 made["activation_secret"])
    assert plain.status_code == 200 and plain.json()["lease_expires_at"] is None
    assert check_token(plain.json()["token"], keys, pid).seat_mode is SeatMode.MACHINE

    lic = issue(any_server, pid, seat_mode="floating")
    made = api.activate(pid, lic["license_key"], machine="flt").json()
    token = check_token(made["token"], keys, pid)
    assert token.lease_expires_at is not None and token.expires_at == token.lease_expires_at
    assert token.refresh_by is not None and token.refresh_by < token.lease_expires_at
    # The heartbeat (validate) renews the live lease.
    renewed = api.validate(made["activation_id"], made["activation_secret"], machine="flt")
    assert check_token(renewed.json()["token"], keys, pid).lease_expires_at is not None
    out = post(f"{any_server.url}/v1/activations/{made['activation_id']}/checkin",
               {"fingerprint": fingerprint("flt"), "nonce": nonce()}, made["activation_secret"])
    assert out.status_code == 200 and out.json()["lease_expires_at"] is None
    assert check_token(out.json()["token"], keys, pid).lease_expires_at is None
    # Without a lease a validation does not take one.
    again = api.validate(made["activation_id"], made["activation_secret"], machine="flt")
    assert check_token(again.json()["token"], keys, pid).lease_expires_at is None
    assert any_server.admin.get_license(lic["id"])["seats_in_use"] == 0
    wrong = post(f"{any_server.url}/v1/activations/{made['activation_id']}/checkout",
                 {"fingerprint": fingerprint("flt"), "nonce": nonce()}, "sas_wrong")
    assert wrong.status_code == 401


def test_seat_policy_is_validated(any_server: LocalServer) -> None:
    pid, _ = new_product(any_server, lease_duration=120, reactivation_limit=2,
                         reactivation_period=7200, address_activation_limit=5)
    product = any_server.admin.get_product(pid)
    assert (product["lease_duration"], product["reactivation_limit"],
            product["reactivation_period"], product["address_activation_limit"]) == (
        120, 2, 7200, 5)
    off = any_server.admin.update_product(pid, reactivation_limit=None)
    assert off["reactivation_limit"] is None and off["address_activation_limit"] == 5
    bad_policies: list[dict[str, Any]] = [{"lease_duration": 1}, {"reactivation_period": 60},
                                          {"reactivation_limit": -1}, {"lease_duration": "900"}]
    for bad in bad_policies:
        with pytest.raises(AdminError) as refused:
            any_server.admin.update_product(pid, **bad)
        assert refused.value.status == 400
    bad_seats: list[dict[str, Any]] = [{"seat_mode": "site"},
                                       {"seat_mode": "floating", "rollover": True},
                                       {"rollover": "yes"}]
    for bad in bad_seats:
        with pytest.raises(AdminError) as refused:
            issue(any_server, pid, **bad)
        assert refused.value.status == 400, bad
    lic = issue(any_server, pid, seat_mode="floating")
    with pytest.raises(AdminError) as refused:
        any_server.admin.update_license(lic["id"], rollover=True)
    assert refused.value.status == 400


def test_lockout_per_license_and_address(any_server: LocalServer, api: Api) -> None:
    pid, _ = new_product(any_server, reactivation_limit=1, reactivation_period=3600,
                         address_activation_limit=2)
    lic = issue(any_server, pid, seats=1)
    ids: list[tuple[str, str]] = []
    for machine in ("a", "b"):  # the seat once, plus one re-activation
        made = api.activate(pid, lic["license_key"], machine=machine).json()
        ids.append((made["activation_id"], made["activation_secret"]))
        assert api.deactivate(*ids[-1]).status_code == 200
    before = datetime.now(timezone.utc)
    locked = api.activate(pid, lic["license_key"], machine="c")
    assert locked.status_code == 429 and error_code(locked) == "activation_locked"
    lifts = parse_rfc3339(locked.json()["error"]["retry_at"])
    assert before + timedelta(seconds=3590) <= lifts <= before + timedelta(seconds=3601)
    assert 3500 <= int(locked.headers["retry-after"]) <= 3601
    status = any_server.admin.lockout(lic["id"])
    assert status["activations_in_period"] == 2 and status["allowed"] == 2
    assert parse_rfc3339(status["locked_until"]) == lifts
    reset = any_server.admin.request("POST", "/lockouts/reset", json={"license_id": lic["id"]})
    assert reset["removed"] == 2
    made = api.activate(pid, lic["license_key"], machine="c")
    assert made.status_code == 201
    # Reusing this machine's activation is not a new one: never counted, never locked.
    assert api.activate(pid, lic["license_key"], machine="c").status_code == 200
    # By address: 2 new activations of the product from this address per period.
    other = issue(any_server, pid, seats=5)
    for machine in ("d",):
        assert api.activate(pid, other["license_key"], machine=machine).status_code == 201
    by_address = api.activate(pid, other["license_key"], machine="e")
    assert by_address.status_code == 429 and error_code(by_address) == "activation_locked"
    assert "network address" in by_address.json()["error"]["message"]
    any_server.admin.reset_lockout(address="127.0.0.1")
    assert api.activate(pid, other["license_key"], machine="e").status_code == 201
    bad = any_server.admin.request
    with pytest.raises(AdminError) as refused:
        bad("POST", "/lockouts/reset", json={})
    assert refused.value.status == 400
    with pytest.raises(AdminError) as refused:
        bad("POST", "/lockouts/reset", json={"address": "not an address!"})
    assert refused.value.status == 400


def test_per_seat_erasure_on_user_seats(any_server: LocalServer, api: Api) -> None:
    pid, keys = new_product(any_server, features=["pro"], limited_features=["basic"])
    lic = issue(any_server, pid, seats=3, seat_mode="user", password="pw")
    made = {}
    for who in ("ann", "ben"):
        made[who] = api.activate(pid, lic["license_key"], machine=who, password="pw",
                                 installation_id=secrets.token_urlsafe(18),
                                 email=f"{who}@example.com", consent=True).json()
    erased = api.erasure(made["ann"]["activation_id"], made["ann"]["activation_secret"])
    assert erased.status_code == 200
    assert check_token(erased.json()["token"], keys, pid).is_limited
    ben = api.validate(made["ben"]["activation_id"], made["ben"]["activation_secret"],
                       machine="ben")
    ben_token = check_token(ben.json()["token"], keys, pid)
    assert not ben_token.is_limited and ben_token.email == "ben@example.com"
    assert any_server.admin.find_end_users("ann@example.com") == []
    assert len(any_server.admin.find_end_users("ben@example.com")) == 1
    shown = any_server.admin.get_license(lic["id"])
    assert shown["password_set"] and not shown["erased"]  # the team's password stays
    third = api.activate(pid, lic["license_key"], machine="cid", password="pw",
                         installation_id=secrets.token_urlsafe(18))
    assert third.status_code == 201
    # A new seat after an erasure starts limited until the vendor restores the license
    # (the erased person could come back on another machine or account).
    assert check_token(third.json()["token"], keys, pid).is_limited
    any_server.admin.restore_license(lic["id"])
    # The vendor's erasure of one person is per seat too.
    ben_id = any_server.admin.find_end_users("ben@example.com")[0]["id"]
    any_server.admin.erase_end_user(ben_id)
    ben = api.validate(made["ben"]["activation_id"], made["ben"]["activation_secret"],
                       machine="ben")
    assert check_token(ben.json()["token"], keys, pid).is_limited
    cid = api.validate(third.json()["activation_id"], third.json()["activation_secret"],
                       machine="cid")
    assert not check_token(cid.json()["token"], keys, pid).is_limited
    assert any_server.admin.get_license(lic["id"])["password_set"]


def test_cli_lockouts_and_leases(any_server: LocalServer, api: Api) -> None:
    pid, _ = new_product(any_server, reactivation_limit=0, lease_duration=600)
    lic = issue(any_server, pid, seats=1)
    api.activate(pid, lic["license_key"], machine="x")
    assert api.activate(pid, lic["license_key"], machine="y").status_code == 409  # seat taken

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = cli.main([*argv, "--server-url", any_server.url,
                             "--admin-key", any_server.admin_key])
        return code, out.getvalue(), err.getvalue()

    code, out, _ = run("lockouts", "show", lic["id"], "--json")
    assert code == 0 and json.loads(out)["allowed"] == 1
    assert json.loads(out)["activations_in_period"] == 1
    code, out, _ = run("lockouts", "reset", "--license", lic["id"])
    assert code == 0 and "1 recorded activation" in out
    code, _, err = run("lockouts", "reset")
    assert code == 2 and "--license" in err
    floating = issue(any_server, pid, seats=2, seat_mode="floating")
    api.activate(pid, floating["license_key"], machine="z")
    code, out, _ = run("licenses", "leases", floating["id"])
    assert code == 0 and out.startswith("1 of 2 floating seat(s) leased.")
    code, _, err = run("licenses", "set", floating["id"], "--rollover")
    assert code == 1 and "Roll-over applies to machine and user seats" in err


def test_direct_cli_matches_the_api(any_server: LocalServer, api: Api,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The attempt limits are settings: the CLI runs with the server's.
    for name in ("ATTEMPTS", "ADDRESS_ATTEMPTS", "WINDOW"):
        monkeypatch.setenv(f"SOFTWARE_DNA_RATE_LIMIT_{name}",
                           str(getattr(any_server.settings, f"rate_limit_{name.lower()}")))
    pid, _ = new_product(any_server, reactivation_limit=0)
    lic = issue(any_server, pid, seats=1)
    api.activate(pid, lic["license_key"], machine="x")
    base = ["--data-dir", str(any_server.data_dir), "--database-url", any_server.database_url]
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["lockouts", "show", lic["id"], "--json", *base]) == 0
    direct = json.loads(out.getvalue())
    remote = any_server.admin.request("GET", f"/licenses/{lic['id']}/lockout")
    assert direct == remote
    with redirect_stdout(io.StringIO()):
        assert cli.main(["lockouts", "reset", "--license", lic["id"], *base]) == 0
    assert any_server.admin.request("GET", f"/licenses/{lic['id']}/lockout")[
        "activations_in_period"] == 0


# --------------------------------------------------------------------------- migration


def test_migration_0003_up_and_down(tmp_path: Path, fresh_database_url: str) -> None:


    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "DATABASE_URL": fresh_database_url})
    engine = make_engine(settings, pooled=False)

    def run(action: str, revision: str) -> None:
        cfg = alembic_config(settings)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)

    def columns(table: str) -> set[str]:
        return {c["name"] for c in sa.inspect(engine).get_columns(table)}

    try:
        run("upgrade", "0002")
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        with engine.begin() as conn:
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
        run("upgrade", "0003")
        tables = set(sa.inspect(engine).get_table_names())
        assert {"leases", "activation_events", "password_reset_codes"} <= tables
        assert {"seat_mode", "rollover"} <= columns("licenses")
        assert {"lease_duration", "reactivation_limit", "reactivation_period",
                "address_activation_limit"} <= columns("products")
        assert "installation_id" in columns("activations")
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT seat_mode, rollover FROM licenses")).one()
            policy = conn.execute(sa.text(
                "SELECT lease_duration, reactivation_limit, reactivation_period FROM products"
            )).one()
        assert (row[0], bool(row[1])) == ("machine", False)
        assert tuple(policy) == (900, None, 30 * 86400)
        run("downgrade", "0002")
        tables = set(sa.inspect(engine).get_table_names())
        assert not {"leases", "activation_events", "password_reset_codes"} & tables
        assert "seat_mode" not in columns("licenses")
        run("upgrade", "head")
    finally:
        engine.dispose()
