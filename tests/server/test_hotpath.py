"""The validation hot path (service/hotpath.py) against the ORM path, in process.

Two app instances on one database stand for two workers: what one of them
changes (a key rotation, a retirement) the other must see at its next
validation, whatever it cached.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select, text, update
from sqlalchemy.exc import OperationalError

from software_dna.errors import InvalidToken
from software_dna.server import services as service
from software_dna.server.api.deps import AppState
from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.db import INLINE_TIMEOUT
from software_dna.server.models import Activation, AuditEntry
from software_dna.server.services import activations, hotpath
from software_dna.server.services.errors import ServiceError
from software_dna.server.testing import LocalServer
from software_dna.wire import paseto
from software_dna.wire.claims import secret_digest

from .helpers import Api, check_token, fingerprint, nonce

PRODUCT = "hot-app"
NOW = datetime(2031, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.fixture
def workers(tmp_path: Path, fresh_database_url: str) -> Iterator[tuple[AppState, AppState]]:
    """Two app instances (two workers' worth of state) on one fresh database."""
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "DATABASE_URL": fresh_database_url})
    initialize(settings)
    apps = [create_app(settings), create_app(settings)]
    states: list[AppState] = [app.state.sdna for app in apps]
    with states[0].sessions() as session:
        service.create_product(session, product_id=PRODUCT, features=["pro"],
                               limited_features=["basic"], fingerprint_tolerance=1)
        service.generate_key(session, states[0].ctx, PRODUCT)
    try:
        yield states[0], states[1]
    finally:
        for state in states:
            state.dispose()


def _activate(state: AppState, *, machine: str = "m1", seats: int = 1,
              **extra: Any) -> tuple[str, str, str]:
    """A new license activated on ``machine``: (license id, activation id, secret)."""
    with state.sessions() as session:
        lic, key = service.issue_license(session, state.ctx, product_id=PRODUCT, seats=seats,
                                         expires_at=extra.pop("expires_at", None))
        fp = fingerprint(machine)
        done = service.activate(session, state.ctx, service.ActivationRequest(
            product=PRODUCT, license_key=key,
            fingerprint=service.parse_fingerprint(fp["algorithm"], fp["components"]),
            nonce=nonce(), idempotency_key=nonce(), **extra))
        return lic.id, done.activation_id, done.activation_secret


def _fp(machine: str = "m1", **kw: Any) -> service.FingerprintData:
    fp = fingerprint(machine, **kw)
    return service.parse_fingerprint(fp["algorithm"], fp["components"])


def _both(state: AppState, activation_id: str, secret: str | None,
          fp: service.FingerprintData, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    """What the hot path's and the ORM path's tokens say (claims but the random ``jti``,
    and the footer with the kid) when issued at the same instant for the same nonce."""
    monkeypatch.setattr(hotpath, "utcnow", lambda: NOW)
    monkeypatch.setattr(activations, "utcnow", lambda: NOW)
    n = "n" * 24
    hot = hotpath.validate(state.engine, state.sessions, state.ctx, activation_id, secret,
                           fingerprint=fp, nonce=n)
    with state.sessions() as session:
        orm = service.validate(session, state.ctx, activation_id, secret, fingerprint=fp, nonce=n)
    assert hot.server_time == orm.server_time == NOW
    assert not hot.rebound and not orm.rebound
    # Each hands out its own rotated secret (the second accepted as the grace one).
    for answer in (hot, orm):
        assert answer.activation_secret is not None
        assert _claims(answer.token)["secret_digest"] == secret_digest(answer.activation_secret)
    return _says(hot.token), _says(orm.token)


def _claims(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = json.loads(paseto.untrusted_message(token))
    return claims


def _says(token: str) -> tuple[dict[str, Any], bytes]:
    claims = _claims(token)
    assert claims.pop("jti")
    assert claims.pop("secret_digest")
    return claims, paseto.untrusted_footer(token)


def test_same_token_as_the_orm_path(workers: tuple[AppState, AppState],
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    state, _ = workers
    _, plain, secret = _activate(state)
    hot, orm = _both(state, plain, secret, _fp(), monkeypatch)
    assert hot == orm
    assert hot[0]["mode"] == "full"

    # Personal data in the token (decrypted from the joined end-user row), a term.
    _, personal, secret2 = _activate(
        state, machine="m2", email="ann@example.com", consent=True,
        registration={"company": "Acme"}, expires_at=NOW + timedelta(days=3))
    hot, orm = _both(state, personal, secret2, _fp("m2"), monkeypatch)
    assert hot == orm
    assert hot[0]["email"] == "ann@example.com"

    # Erased: limited mode, no personal data; an air-gapped activation: "offline".
    with state.sessions() as session:
        end_user_id = session.get(Activation, personal).end_user_id  # type: ignore[union-attr]
        assert end_user_id is not None
        service.erase_end_user(session, state.ctx, end_user_id)
        session.execute(update(Activation).where(Activation.id == plain).values(offline=True))
        session.commit()
    hot, orm = _both(state, personal, secret2, _fp("m2"), monkeypatch)
    assert hot == orm
    assert hot[0]["mode"] == "limited" and "email" not in hot[0]
    hot, orm = _both(state, plain, secret, _fp(), monkeypatch)
    assert hot == orm
    assert hot[0]["protection"] == "offline"


def test_writes_last_seen(workers: tuple[AppState, AppState]) -> None:
    state, _ = workers
    _, activation_id, secret = _activate(state)
    with state.sessions() as session:
        before = session.scalars(select(Activation.last_seen_at)
                                 .where(Activation.id == activation_id)).one()
    hotpath.validate(state.engine, state.sessions, state.ctx, activation_id, secret,
                     fingerprint=_fp(), nonce=nonce())
    with state.sessions() as session:
        after = session.scalars(select(Activation.last_seen_at)
                                .where(Activation.id == activation_id)).one()
    assert after > before


def test_unknown_missing_and_wrong_secret_are_one_401(
        workers: tuple[AppState, AppState]) -> None:
    state, _ = workers
    _, activation_id, secret = _activate(state)
    answers = []
    for act, given in ((activation_id, None), (activation_id, ""), (activation_id, secret + "x"),
                       ("act_unknown", secret), ("act_unknown", None)):
        with pytest.raises(ServiceError) as caught:
            hotpath.validate(state.engine, state.sessions, state.ctx, act, given,
                             fingerprint=_fp(), nonce=nonce())
        answers.append((caught.value.status, caught.value.code, caught.value.message,
                        caught.value.receipt))
    assert set(answers) == {(401, "unauthorized", "Missing or wrong activation secret.", None)}


def test_cases_handed_to_the_orm_path(workers: tuple[AppState, AppState]) -> None:
    state, _ = workers
    license_id, activation_id, secret = _activate(state)

    held = [secret]  # the client's secret, rotated by every answer

    def validate(fp: service.FingerprintData) -> service.Validated:
        done = hotpath.validate(state.engine, state.sessions, state.ctx, activation_id,
                                held[0], fingerprint=fp, nonce=nonce())
        assert done.activation_secret is not None
        held[0] = done.activation_secret
        return done

    # Drift within the tolerance: re-bound, with its audit entry.
    assert validate(_fp(changed=["cpu"])).rebound
    with state.sessions() as session:
        assert session.scalars(select(AuditEntry.action).where(
            AuditEntry.activation_id == activation_id)).all().count("activation.rebind") == 1
    assert not validate(_fp(changed=["cpu"])).rebound  # bound to the new one now
    with pytest.raises(ServiceError) as caught:  # beyond the tolerance
        validate(_fp(changed=["os_arch", "mac"]))
    assert (caught.value.status, caught.value.code) == (403, "wrong_machine")

    # A suspended license: 403 with a signed receipt.
    with state.sessions() as session:
        service.suspend_license(session, license_id)
    with pytest.raises(ServiceError) as caught:
        validate(_fp(changed=["cpu"]))
    assert (caught.value.status, caught.value.code) == (403, "license_suspended")
    assert caught.value.receipt is not None
    with state.sessions() as session:
        service.resume_license(session, license_id)
        service.remove_activation(session, activation_id)
    with pytest.raises(ServiceError) as caught:  # removed by the vendor: 410
        validate(_fp(changed=["cpu"]))
    assert (caught.value.status, caught.value.code) == (410, "activation_removed")
    assert caught.value.receipt is not None


def test_rotation_and_retirement_reach_the_other_worker(
        workers: tuple[AppState, AppState]) -> None:
    a, b = workers
    _, activation_id, secret = _activate(a)
    with a.sessions() as session:
        first = service.public_keys(session, PRODUCT)
    assert len(first) == 1

    def validate_on(state: AppState) -> str:
        return hotpath.validate(state.engine, state.sessions, state.ctx, activation_id, secret,
                                fingerprint=_fp(), nonce=nonce()).token

    check_token(validate_on(a), first, PRODUCT)  # worker A has the first key cached
    old_kid = paseto.PublicKey.from_paserk(first[0]).pid
    assert a.ctx.vault.cached_signing_key(old_kid) is not None

    # Worker B (the admin's request) rotates to a new key and retires the old one.
    with b.sessions() as session:
        new = service.rotate_key(session, b.ctx, PRODUCT)
        service.retire_key(session, b.ctx, PRODUCT, old_kid)
        now_trusted = service.public_keys(session, PRODUCT)
    assert now_trusted == [new.public_key]

    # Worker A's very next token is signed by the new key (decrypted on this miss),
    # never by the retired one it still holds in memory.
    assert a.ctx.vault.cached_signing_key(new.kid) is None
    token = validate_on(a)
    check_token(token, now_trusted, PRODUCT)
    with pytest.raises(InvalidToken):  # unknown kid for the retired key set
        check_token(token, first, PRODUCT)
    check_token(validate_on(b), now_trusted, PRODUCT)


def test_inline_engine_on_postgresql_only(workers: tuple[AppState, AppState]) -> None:
    state, _ = workers
    if state.engine.dialect.name == "sqlite":
        assert state.inline_engine is None  # SQLite waits for its write lock: thread pool
        return
    engine = state.inline_engine
    assert engine is not None
    _, activation_id, secret = _activate(state)
    done = hotpath.validate_plain(engine, state.ctx, activation_id, secret,
                                  fingerprint=_fp(), nonce=nonce())
    assert done is not None and not done.rebound
    # Not the plain case: handed over, nothing written.
    with state.sessions() as session:
        seen = session.scalars(select(Activation.last_seen_at)
                               .where(Activation.id == activation_id)).one()
    assert hotpath.validate_plain(engine, state.ctx, activation_id, secret,
                                  fingerprint=_fp(changed=["cpu"]), nonce=nonce()) is None
    with state.sessions() as session:
        assert session.scalars(select(Activation.last_seen_at)
                               .where(Activation.id == activation_id)).one() == seen
        # A row lock held elsewhere: the fast path (on the event loop) does not wait for
        # it, writes nothing and hands the request over to the ORM path (thread pool).
        session.execute(select(Activation.id).where(Activation.id == activation_id)
                        .with_for_update())
        started = time.monotonic()
        assert hotpath.validate_plain(engine, state.ctx, activation_id, secret,
                                      fingerprint=_fp(), nonce=nonce()) is None
        assert time.monotonic() - started < 0.5
        session.rollback()
    with state.sessions() as session:
        assert session.scalars(select(Activation.last_seen_at)
                               .where(Activation.id == activation_id)).one() == seen
    # A table lock (a migration, say) is waited for at most INLINE_TIMEOUT seconds,
    # then the request fails with an OperationalError (answered 503 unavailable).
    with state.engine.connect() as other:
        other.execute(text("LOCK TABLE activations IN ACCESS EXCLUSIVE MODE"))
        started = time.monotonic()
        with pytest.raises(OperationalError):
            hotpath.validate_plain(engine, state.ctx, activation_id, secret,
                                   fingerprint=_fp(), nonce=nonce())
        assert time.monotonic() - started < INLINE_TIMEOUT + 1.5
        other.rollback()
    assert hotpath.validate_plain(engine, state.ctx, activation_id, secret,
                                  fingerprint=_fp(), nonce=nonce()) is not None


@pytest.mark.postgres
def test_wrong_secret_deactivations_do_not_stall_validations(pg_server: LocalServer) -> None:
    """Regression: a failed deactivation held the activation's row lock until its
    rollback, which runs on the worker's event loop -- where the fast path waited for
    that same lock (2 s, then 503), freezing the worker.  Anyone who knew an activation
    id could do it, with no secret.  Now a wrong secret never takes the lock, and the
    fast path never waits for one."""
    admin = pg_server.admin
    admin.setup_product("hot-http", features=["pro"])
    issued = admin.issue_license("hot-http")
    api = Api(pg_server.url)
    made = api.activate("hot-http", issued["license_key"])
    assert made.status_code == 201, made.text
    activation_id, secret = made.json()["activation_id"], made.json()["activation_secret"]
    stop = time.monotonic() + 4
    statuses: dict[str, list[int]] = {"validate": [], "deactivate": []}
    slowest = {"validate": 0.0, "health": 0.0}

    def validator() -> None:
        own = Api(pg_server.url)
        while time.monotonic() < stop:
            started = time.monotonic()
            statuses["validate"].append(own.validate(activation_id, secret).status_code)
            slowest["validate"] = max(slowest["validate"], time.monotonic() - started)

    def attacker() -> None:
        own = Api(pg_server.url)
        while time.monotonic() < stop:
            statuses["deactivate"].append(own.deactivate(activation_id, "sas_wrong").status_code)

    def health() -> None:
        http = requests.Session()
        while time.monotonic() < stop:
            started = time.monotonic()
            http.get(f"{pg_server.url}/v1/health", timeout=30)
            slowest["health"] = max(slowest["health"], time.monotonic() - started)
            time.sleep(0.05)

    threads = [threading.Thread(target=f) for f in (validator, validator, attacker, attacker,
                                                       health)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses["deactivate"]) == {401} and len(statuses["deactivate"]) > 20
    assert set(statuses["validate"]) == {200} and len(statuses["validate"]) > 20
    assert slowest["validate"] < 1.0 and slowest["health"] < 1.0, slowest


def _app_version(state: AppState, activation_id: str) -> str | None:
    with state.sessions() as session:
        value: str | None = session.scalars(select(Activation.app_version)
                                            .where(Activation.id == activation_id)).one()
        return value


def test_app_version_stored_by_both_paths(workers: tuple[AppState, AppState]) -> None:
    """A new app version sent at validation is stored by the fast path and the ORM path
    alike; none sent (an older SDK) keeps the stored one; both answer the product id."""
    state, _ = workers
    _, activation_id, secret = _activate(state, client={"app_version": "1.0.0"})
    assert _app_version(state, activation_id) == "1.0.0"

    hot = hotpath.validate_plain(state.engine, state.ctx, activation_id, secret,
                                 fingerprint=_fp(), nonce=nonce(), app_version="1.1.0")
    assert hot is not None and hot.product_id == PRODUCT  # the fast path took it
    assert _app_version(state, activation_id) == "1.1.0"

    hot = hotpath.validate_plain(state.engine, state.ctx, activation_id, hot.activation_secret,
                                 fingerprint=_fp(), nonce=nonce())
    assert hot is not None
    assert _app_version(state, activation_id) == "1.1.0"  # not sent: kept

    orm = hotpath.validate_orm(state.sessions, state.ctx, activation_id, hot.activation_secret,
                               fingerprint=_fp(), nonce=nonce(), app_version="2.0.0")
    assert orm.product_id == PRODUCT
    assert _app_version(state, activation_id) == "2.0.0"

    # The same version again: the fast path's common write (no app_version column set).
    hot = hotpath.validate_plain(state.engine, state.ctx, activation_id, orm.activation_secret,
                                 fingerprint=_fp(), nonce=nonce(), app_version="2.0.0")
    assert hot is not None
    assert _app_version(state, activation_id) == "2.0.0"


def test_app_version_with_a_drifted_machine_goes_through_the_orm_path(
        workers: tuple[AppState, AppState]) -> None:
    """A case the fast path hands over (a re-bind) still stores the version sent."""
    state, _ = workers
    _, activation_id, secret = _activate(state, machine="m7")
    assert _app_version(state, activation_id) is None
    drifted = _fp("m7", changed=["mac"])  # one component changed, within the tolerance
    assert hotpath.validate_plain(state.engine, state.ctx, activation_id, secret,
                                  fingerprint=drifted, nonce=nonce(),
                                  app_version="3.0") is None
    assert _app_version(state, activation_id) is None  # the fast path wrote nothing
    done = hotpath.validate(state.engine, state.sessions, state.ctx, activation_id, secret,
                            fingerprint=drifted, nonce=nonce(), app_version="3.0")
    assert done.rebound
    assert _app_version(state, activation_id) == "3.0"


# --------------------------------------------------------------------------- DirectPg
# On PostgreSQL the route runs the fast path through hotpath.validate_direct
# (asynchronous psycopg, prepared statements, a few connections per worker): held
# here to the SQLAlchemy Core path (validate_plain) it stands in for.


def _direct(state: AppState) -> hotpath.DirectPg:
    if state.engine.dialect.name == "sqlite":
        assert state.direct is None
        pytest.skip("DirectPg is PostgreSQL's (SQLite has no inline engine)")
    engine = state.inline_engine
    assert engine is not None
    return hotpath.DirectPg(engine, size=2)  # one per test: asyncio.run's loop is its own


async def _direct_read(direct: hotpath.DirectPg, activation_id: str) -> Any:
    conn = await direct.acquire()
    try:
        cursor = await direct.execute(conn, direct.read, {"activation_id": activation_id})
        raw = await cursor.fetchone()
        return None if raw is None else direct.read.make_row(raw)
    finally:
        await direct.release(conn)


def test_direct_reads_what_sqlalchemy_reads(workers: tuple[AppState, AppState]) -> None:
    """Same row, value for value and type for type (aware datetimes, JSON lists, bytes)."""
    state, _ = workers
    direct = _direct(state)
    _, plain, _secret = _activate(state)
    _, personal, _secret2 = _activate(state, machine="m2", email="ann@example.com",
                                      consent=True, registration={"company": "Acme"},
                                      expires_at=NOW + timedelta(days=3))
    with state.sessions() as session:
        row = session.get(Activation, plain)
        assert row is not None
        service.suspend_license(session, row.license_id)

    async def scenario() -> None:
        for activation_id in (plain, personal, "act_unknown"):
            with state.engine.connect() as conn:
                expected = conn.execute(hotpath._READ,
                                        {"activation_id": activation_id}).one_or_none()
            got = await _direct_read(direct, activation_id)
            if expected is None:
                assert got is None
                continue
            assert got._asdict() == expected._asdict()
            assert [type(v) for v in got] == [type(v) for v in expected]
        read = await _direct_read(direct, personal)
        assert read.expires_at.tzinfo is not None and read.features == ["pro"]
        await direct.close()

    asyncio.run(scenario())


def test_direct_validates_like_the_core_path(workers: tuple[AppState, AppState],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The same token claims and the same stored state through DirectPg and the Core path."""
    state, _ = workers
    direct = _direct(state)
    monkeypatch.setattr(hotpath, "utcnow", lambda: NOW)
    n = "n" * 24
    stored = []
    says = []
    for use_direct in (False, True):
        _, activation_id, secret = _activate(state, email="bo@example.com", consent=True,
                                             client={"app_version": "1.0"})
        if use_direct:
            done = asyncio.run(hotpath.validate_direct(
                direct, state.ctx, activation_id, secret, fingerprint=_fp(), nonce=n,
                app_version="1.2"))
        else:
            assert state.inline_engine is not None
            done = hotpath.validate_plain(state.inline_engine, state.ctx, activation_id,
                                          secret, fingerprint=_fp(), nonce=n,
                                          app_version="1.2")
        assert done is not None and done.server_time == NOW
        claims, footer = _says(done.token)
        # Everything but the ids of the license and activation (two activations here).
        says.append(({k: v for k, v in claims.items() if k != "sub" and "id" not in k},
                     footer))
        with state.sessions() as session:
            act = session.get(Activation, activation_id)
            assert act is not None
            stored.append((act.secret_generation, act.secret_grace, act.app_version,
                           act.secret_hash == state.ctx.vault.secret_hash(
                               done.activation_secret or "")))
    assert stored[0] == stored[1] == (1, 0, "1.2", True)
    assert says[0] == says[1]
    assert says[0][0]["email"] == "bo@example.com"
    asyncio.run(direct.close())


def test_direct_hands_over_and_fails_like_the_core_path(
        workers: tuple[AppState, AppState]) -> None:
    """Not the plain case, a row lock held elsewhere: None, nothing written; a wrong
    secret: the one 401; a table lock: SQLAlchemy's OperationalError (answered 503)
    after the statement timeout, and the next validation works."""
    state, _ = workers
    direct = _direct(state)
    _, activation_id, secret = _activate(state)
    with state.sessions() as session:
        seen = session.scalars(select(Activation.last_seen_at)
                               .where(Activation.id == activation_id)).one()

    def validate(fp: service.FingerprintData, given: str) -> Any:
        return hotpath.validate_direct(direct, state.ctx, activation_id, given,
                                       fingerprint=fp, nonce=nonce())

    async def scenario() -> None:
        assert await validate(_fp(changed=["cpu"]), secret) is None
        with pytest.raises(ServiceError) as caught:
            await validate(_fp(), secret + "x")
        assert (caught.value.status, caught.value.code) == (401, "unauthorized")
        with state.sessions() as session:
            session.execute(select(Activation.id).where(Activation.id == activation_id)
                            .with_for_update())
            assert await validate(_fp(), secret) is None
            session.rollback()
        with state.sessions() as session:
            assert session.scalars(select(Activation.last_seen_at)
                                   .where(Activation.id == activation_id)).one() == seen
        with state.engine.connect() as other:
            other.execute(text("LOCK TABLE activations IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(OperationalError):
                await validate(_fp(), secret)
            other.rollback()
        assert await validate(_fp(), secret) is not None
        await direct.close()

    asyncio.run(scenario())


def test_direct_reconnects_and_bounds_its_connections(
        workers: tuple[AppState, AppState]) -> None:
    """A restarted database (here: the backends terminated) costs no error: a broken
    connection is replaced before anything was written.  Many validations at once
    share at most ``size`` connections, and all succeed."""
    state, _ = workers
    direct = _direct(state)
    made = [_activate(state, machine=f"c{i}") for i in range(6)]

    async def scenario() -> None:
        answers = await asyncio.gather(*(
            hotpath.validate_direct(direct, state.ctx, activation_id, secret,
                                    fingerprint=_fp(f"c{i}"), nonce=nonce())
            for i, (_, activation_id, secret) in enumerate(made)))
        assert all(a is not None for a in answers)
        assert direct._open <= direct.size and len(direct._idle) == direct._open
        backends = [conn.info.backend_pid for conn in direct._idle]
        with state.engine.connect() as other:
            for pid in backends:
                assert other.execute(text("SELECT pg_terminate_backend(:pid)"),
                                     {"pid": pid}).scalar_one()
        (_, activation_id, _secret), answer = made[0], answers[0]
        assert answer is not None
        again = await hotpath.validate_direct(
            direct, state.ctx, activation_id, answer.activation_secret,
            fingerprint=_fp("c0"), nonce=nonce())
        assert again is not None
        assert not set(backends) & {conn.info.backend_pid for conn in direct._idle}
        await direct.close()

    asyncio.run(scenario())
