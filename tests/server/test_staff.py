"""Staff accounts: the TOTP rules of the service layer, ``server init``'s first owner, the
``staff`` and ``admin-keys`` commands (direct on the database, and through the admin API)."""

from __future__ import annotations

import base64
import re
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from software_dna.server.cli import _common
from software_dna.server.config import Settings
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.models import AuditEntry, StaffMember, StaffSession
from software_dna.server.services import Context, ServiceError
from software_dna.server.services import staff as staff_service
from software_dna.server.testing import InProcessServer, LocalServer
from tests.server.test_cli_vendor import ENV_CLEARED, Runner, _clean_env

from ..threaded import ThreadedServer

PASSWORD = "correct horse battery staple"


def _code(secret: str, at: float) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return TOTP(key, 6, SHA1(), 30, enforce_key_length=True).generate(at).decode()


# --------------------------------------------------------------------------- TOTP rules


@pytest.fixture(scope="module")
def inprocess_server(tmp_path_factory: pytest.TempPathFactory,
                     database_url: str) -> Iterator[InProcessServer]:
    """SQLite, then PostgreSQL (the single use of a code is an UPDATE's condition); more
    code attempts per staff member than the default: these tests try many codes."""
    with InProcessServer(tmp_path_factory.mktemp("staff"), database_url=database_url,
                         env={"SOFTWARE_DNA_PANEL_SIGN_IN_ATTEMPTS": "100"}) as srv:
        yield srv


def test_totp_window_and_each_step_once(inprocess_server: InProcessServer) -> None:
    sdna = inprocess_server.app.state.sdna
    ctx: Context = sdna.ctx
    with sdna.sessions() as session:
        member = staff_service.create_staff(
            session, email=f"t-{secrets.token_hex(3)}@vendor.example", password=PASSWORD,
            role="support")
        secret, uri = staff_service.begin_totp(session, ctx, member)
        assert uri.startswith("otpauth://totp/") and f"secret={secret}" in uri
        assert "digits=6" in uri or "digits" not in uri
        now = 1_900_000_000.0  # a step boundary plus 20 s
        # Not confirmed: signing in asks no code.
        unconfirmed = staff_service.sign_in(session, ctx, member.email, PASSWORD)
        assert unconfirmed is not None and unconfirmed.second_factor_due is False
        with pytest.raises(ServiceError) as info:
            staff_service.confirm_totp(session, ctx, member, _code(secret, now - 90), now=now)
        assert info.value.details == {"field": "code"}
        staff_service.confirm_totp(session, ctx, member, _code(secret, now), now=now)
        with pytest.raises(ServiceError):  # on already: begin again is refused
            staff_service.begin_totp(session, ctx, member)

        def attempt(code: str, at: float) -> bool:
            started = staff_service.sign_in(session, ctx, member.email, PASSWORD)
            assert started is not None and started.second_factor_due
            return staff_service.verify_second_factor(session, ctx, started.token, code, now=at)

        assert not attempt(_code(secret, now), now)  # the confirming code: used
        assert not attempt(_code(secret, now - 30), now)  # an older step than the last used
        assert not attempt(_code(secret, now + 60), now)  # two steps ahead: too far
        assert not attempt("12345", now) and not attempt("abcdef", now)
        assert attempt(_code(secret, now + 30), now)  # one step ahead
        assert not attempt(_code(secret, now + 30), now + 30)  # ... once
        later = now + 300
        assert attempt(_code(secret, later - 30), later)  # one step behind
        session.refresh(member)
        assert member.last_sign_in_at is not None
        # Once signed in, a session takes no more codes.
        started = staff_service.sign_in(session, ctx, member.email, PASSWORD)
        assert started is not None
        assert staff_service.verify_second_factor(session, ctx, started.token,
                                                  _code(secret, later + 30), now=later)
        assert not staff_service.verify_second_factor(session, ctx, started.token,
                                                      _code(secret, later + 60), now=later)
        with pytest.raises(ServiceError):
            staff_service.disable_totp(session, ctx, member, "wrong password!!")
        staff_service.disable_totp(session, ctx, member, PASSWORD)
        assert member.totp_sealed is None and member.totp_confirmed_at is None


def test_reset_with_clear_totp_ends_sessions(inprocess_server: InProcessServer) -> None:
    sdna = inprocess_server.app.state.sdna
    ctx: Context = sdna.ctx
    with sdna.sessions() as session:
        member = staff_service.create_staff(
            session, email=f"r-{secrets.token_hex(3)}@vendor.example", password=PASSWORD,
            role="developer")
        secret, _ = staff_service.begin_totp(session, ctx, member)
        staff_service.confirm_totp(session, ctx, member, _code(secret, time.time()))
        assert staff_service.sign_in(session, ctx, member.email, PASSWORD) is not None
        row, password = staff_service.reset_password(session, member.id, clear_totp=True)
        assert row.totp_confirmed_at is None and row.must_change_password
        assert session.query(StaffSession).filter_by(staff_id=member.id).count() == 0
        done = staff_service.sign_in(session, ctx, member.email, password)
        assert done is not None and done.second_factor_due is False
        entries = session.query(AuditEntry).filter_by(action="staff.reset").all()
        assert entries and password not in str([e.detail for e in entries])


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def run(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Runner:
    _clean_env(monkeypatch, tmp_path / "home")
    return Runner(capsys, monkeypatch)


def _staff_rows(home: Path) -> list[StaffMember]:
    settings = Settings.load(home=home)
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            rows = list(session.query(StaffMember).order_by(StaffMember.email))
            session.expunge_all()
            return rows
    finally:
        engine.dispose()


def test_server_init_creates_the_first_owner_once(run: Runner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    plain = run("server", "init")
    assert "Staff: none yet" in plain.out and "staff add EMAIL --role owner" in plain.out
    assert _staff_rows(home) == []
    bad = run.fail("server", "init", "--owner-email", "not an address")
    assert "--owner-email" in bad
    first = run("server", "init", "--owner-email", "Boss@Vendor.example")
    assert "Control panel owner: boss@vendor.example" in first.out
    password = first.out.split("Owner password (shown once):\n", 1)[1].splitlines()[0]
    assert len(password) >= 20
    rows = _staff_rows(home)
    assert [(r.email, r.role, r.must_change_password) for r in rows] == [
        ("boss@vendor.example", "owner", True)]
    again = run("server", "init", "--owner-email", "other@vendor.example")
    assert "accounts exist already" in again.out and "Owner password" not in again.out
    assert len(_staff_rows(home)) == 1
    # --new-admin-key keeps its meaning.
    renewed = run("server", "init", "--new-admin-key")
    assert re.search(r"^sdna_admin_\S+$", renewed.out, re.M)


def test_staff_commands_direct(run: Runner, tmp_path: Path) -> None:
    home = tmp_path / "home"
    run("server", "init", "--owner-email", "boss@vendor.example")
    added = run("staff", "add", "ops@vendor.example", "--role", "support", "--name", "Ops")
    assert "Staff member ops@vendor.example added (support)." in added.out
    generated = added.out.split("Password (shown once", 1)[1].splitlines()[1]
    chosen = run("staff", "add", "dev@vendor.example", "--role", "developer",
                 "--password-stdin", stdin=PASSWORD + "\n", )
    assert "Password" not in chosen.out
    run.fail("staff", "add", "short@vendor.example", "--role", "admin", "--password-stdin",
             stdin="short\n")
    usage = run.fail("staff", "add", "x@vendor.example", "--role", "superuser", code=2)
    assert "superuser" in usage
    listed = run("staff", "list", "--json").json()["staff"]
    assert [s["email"] for s in listed] == ["boss@vendor.example", "dev@vendor.example",
                                            "ops@vendor.example"]
    assert all("password" not in s and "password_hash" not in s for s in listed)
    assert run("staff", "list").out.splitlines()[0].split()[:3] == ["EMAIL", "NAME", "ROLE"]
    assert "is now read_only" in run("staff", "role", "OPS@vendor.example", "read_only").out
    assert "last owner" in run.fail("staff", "role", "boss@vendor.example", "admin")
    reset = run("staff", "reset", "ops@vendor.example", "--clear-totp")
    new = reset.out.split("New password (shown once", 1)[1].splitlines()[1]
    assert new != generated and "Two-step sign-in is off." in reset.out
    assert "confirm with --yes" in run.fail("staff", "remove", "ops@vendor.example")
    assert "removed" in run("staff", "remove", "ops@vendor.example", "--yes").out
    assert "last owner" in run.fail("staff", "remove", "boss@vendor.example", "--yes")
    assert "No staff member" in run.fail("staff", "role", "ghost@vendor.example", "admin")
    rows = {r.email: r for r in _staff_rows(home)}
    assert rows["ops@vendor.example"].disabled_at is not None
    assert rows["dev@vendor.example"].must_change_password is False


def test_admin_keys_commands_direct(run: Runner) -> None:
    run("server", "init")
    made = run("admin-keys", "create", "--role", "support", "--name", "helpdesk", "--json").json()
    assert made["key"].startswith("sdna_admin_") and made["api_key"]["role"] == "support"
    human = run("admin-keys", "create", "--role", "read_only", "--name", "charts")
    assert re.search(r"^sdna_admin_\S+$", human.out, re.M)
    listed = run("admin-keys", "list", "--json").json()["api_keys"]
    assert {k["name"] for k in listed} >= {"helpdesk", "charts"}
    assert all("key" not in k for k in listed)
    assert "revoked" in run("admin-keys", "revoke", made["api_key"]["id"]).out
    assert made["api_key"]["id"] not in run("admin-keys", "list").out
    run.fail("admin-keys", "create", "--role", "root", "--name", "x", code=2)


@pytest.fixture(scope="module")
def threaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    folder = tmp_path_factory.mktemp("staff-remote")
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_CLEARED:
            mp.delenv(name, raising=False)
        with ThreadedServer(folder / "server") as srv:
            yield srv


def test_staff_and_keys_commands_remote(threaded: LocalServer, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch, tmp_path / "no-such-home")
    monkeypatch.setenv(_common.ENV_SERVER_URL, threaded.url)
    monkeypatch.setenv(_common.ENV_ADMIN_KEY, threaded.admin_key)
    run = Runner(capsys, monkeypatch)
    address = f"remote-{secrets.token_hex(3)}@vendor.example"
    added = run("staff", "add", address, "--role", "support")
    assert "Password (shown once" in added.out
    assert "is now admin" in run("staff", "role", address, "admin").out
    assert "New password" in run("staff", "reset", address).out
    assert "removed" in run("staff", "remove", address, "--yes").out
    made = run("admin-keys", "create", "--role", "support", "--name", "desk", "--json").json()
    # A support key may not manage staff or keys.
    monkeypatch.setenv(_common.ENV_ADMIN_KEY, made["key"])
    refused = run.fail("staff", "list")
    assert "may not" in refused
    run.fail("admin-keys", "create", "--role", "owner", "--name", "escalate")
    monkeypatch.setenv(_common.ENV_ADMIN_KEY, threaded.admin_key)
    assert "revoked" in run("admin-keys", "revoke", made["api_key"]["id"]).out


def test_a_session_waits_ten_minutes_for_its_code(inprocess_server: InProcessServer) -> None:
    sdna = inprocess_server.app.state.sdna
    ctx: Context = sdna.ctx
    with sdna.sessions() as session:
        member = staff_service.create_staff(
            session, email=f"w-{secrets.token_hex(3)}@vendor.example", password=PASSWORD,
            role="read_only")
        secret, _ = staff_service.begin_totp(session, ctx, member)
        now = time.time()
        staff_service.confirm_totp(session, ctx, member, _code(secret, now - 30), now=now)
        started = staff_service.sign_in(session, ctx, member.email, PASSWORD)
        assert started is not None and started.second_factor_due
        row = session.get(StaffSession, ctx.vault.staff_session_hash(started.token))
        assert row is not None
        row.created_at -= timedelta(minutes=11)
        session.commit()
        assert not staff_service.verify_second_factor(session, ctx, started.token,
                                                      _code(secret, now), now=now)
        assert session.get(StaffSession, ctx.vault.staff_session_hash(started.token)) is None
