"""Attack review of the production features: metrics, health, logs, backup/restore, doctor.

Each test is one attack, against a real server process (``server run`` through
:class:`LocalServer`) or the real CLI on SQLite and PostgreSQL. A failing test is a defect;
a passing one is an attack that is defeated and kept as a regression test.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import secrets
import shutil
import socket
import sqlite3
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import make_url, select

from software_dna.server import services as service
from software_dna.server.config import Settings
from software_dna.server.crypto import hash_password, verify_password
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.models import StaffMember
from software_dna.server.services import emails
from software_dna.server.testing import LocalServer
from tests.cli_runner import ENV_CLEARED, init_server_home, run_cli
from tests.cli_runner import cli_json as as_json
from tests.cli_runner import cli_ok as ok
from tests.server.helpers import fingerprint, nonce

TOKEN = "metrics-" + "a1b2c3d4" * 4


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    """A real server (text logs, the default) with a metrics token."""
    with tempfile.TemporaryDirectory(prefix="sdna-attack-prod-") as folder, LocalServer(
            Path(folder), log_level="info",
            env={"SOFTWARE_DNA_METRICS_TOKEN": TOKEN}) as server:
        yield server


def scrape(server: LocalServer) -> str:
    answer = requests.get(f"{server.url}/metrics", timeout=30,
                          headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.text


# --------------------------------------------------------------------------- metrics


@pytest.mark.parametrize("authorization", [
    None, "Bearer ", "Bearer wrong-token-wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}",
    "Bearer admin"])
def test_metrics_refuse_anything_but_their_token(srv: LocalServer,
                                                 authorization: str | None) -> None:
    """Invariant: only ``Bearer <metrics token>`` reads /metrics; the admin API key, a
    prefix of the token, another scheme or nothing gets 401 JSON."""
    if authorization == "Bearer admin":
        authorization = f"Bearer {srv.admin_key}"
    headers = {"Authorization": authorization} if authorization is not None else {}
    answer = requests.get(f"{srv.url}/metrics", headers=headers, timeout=30)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "unauthorized"
    assert "software_dna_" not in answer.text


def test_attacker_chosen_paths_do_not_grow_the_metrics(srv: LocalServer) -> None:
    """Invariant: label values are chosen by the server from a bounded set, so thousands of
    distinct paths (ids, keys, tokens in them) and odd methods add no series, and no path
    text reaches a label."""
    session = requests.Session()
    for index in range(50):
        session.get(f"{srv.url}/v1/warm{index}", timeout=30)
    before = scrape(srv).count("\n")
    marker = "ZZMARK"
    for index in range(3000):
        session.get(f"{srv.url}/v1/{marker}{index}/x", timeout=30)
        if index % 10 == 0:
            session.post(f"{srv.url}/v1/activations/{marker}{index}/validate", data=b"{",
                         timeout=30)
            session.request("PROPFIND", f"{srv.url}/v1/{marker}{index}", timeout=30)
            session.get(f"{srv.url}/portal/{marker}{index}/link/{marker}", timeout=30)
    text = scrape(srv)
    assert marker not in text
    # a few new bounded series (the validate route's statuses, PROPFIND as "other", ...)
    assert text.count("\n") - before < 200, text


# --------------------------------------------------------------------------- health


def test_health_and_readiness_tell_a_stranger_nothing_about_the_set_up(
        srv: LocalServer) -> None:
    """Invariant: /v1/health and /v1/ready carry no version, database URL, path or
    error text; neither takes a parameter a stranger could make expensive."""
    for route in ("/v1/health", "/v1/ready", "/v1/ready?check=all&verbose=1"):
        answer = requests.get(f"{srv.url}{route}", timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) <= {"status", "server_time", "schema_revision"}, body
        text = answer.text + json.dumps(dict(answer.headers))
        for leak in ("sqlite", "postgres", str(srv.data_dir), "uvicorn", "python"):
            assert leak not in text.lower(), (leak, text)


# --------------------------------------------------------------------------- logs


def test_text_access_log_never_holds_an_unsubscribe_link_token(srv: LocalServer) -> None:
    """Invariant (operations.md, Logs): neither log format ever holds a link token. The
    one-click unsubscribe link ``/v1/unsubscribe/{token}`` is a bearer capability (whoever
    holds it opts the person out of mail), yet the default text access log writes its path
    verbatim: only the email-confirmation and portal links are redacted."""
    token = "unsubTOKEN" + secrets.token_urlsafe(24)
    requests.get(f"{srv.url}/v1/unsubscribe/{token}", timeout=30)
    requests.post(f"{srv.url}/v1/unsubscribe/{token}", timeout=30)
    # a request after it, so that the lines above are flushed when this one is
    requests.get(f"{srv.url}/v1/health", timeout=30)
    log = srv.log_path.read_text(encoding="utf-8", errors="replace")
    assert "/v1/unsubscribe/" in log, "no access line for the unsubscribe link"
    assert token not in log, [line for line in log.splitlines() if token in line]


# --------------------------------------------------------------------------- backup/restore


@pytest.fixture
def home(tmp_path: Path, fresh_database_url: str, own_key_folder: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A server set up by ``server init`` on a fresh database (SQLite and PostgreSQL)."""
    yield init_server_home(tmp_path / "home", fresh_database_url, monkeypatch)




def activates(product: str, key: str) -> bool:
    """Whether ``key`` activates a new machine (through the service, as the public API)."""
    settings = Settings.from_env()
    ctx = service.Context.from_settings(settings)
    engine = make_engine(settings, pooled=False)
    components: dict[str, Any] = {n: secrets.token_urlsafe(32)[:43]
                                  for n in ("machine_id", "os_arch", "cpu")}
    components["mac"] = [secrets.token_urlsafe(32)[:43]]
    try:
        with make_session_factory(engine)() as session:
            try:
                service.activate(session, ctx, service.ActivationRequest(
                    product=product, license_key=key,
                    fingerprint=service.parse_fingerprint(2, components),
                    nonce=secrets.token_urlsafe(18),
                    idempotency_key=secrets.token_urlsafe(18), consent=False))
            except service.ServiceError:
                return False
            return True
    finally:
        engine.dispose()


def test_a_backup_file_is_private_to_the_server_user(home: Path, tmp_path: Path) -> None:
    """Invariant: a backup (encrypted personal data, key hashes) is mode 0600, whatever the
    umask, and so is the default backups folder's content."""
    ok("server", "backup", "--output", str(tmp_path / "b.backup"))
    assert (tmp_path / "b.backup").stat().st_mode & 0o077 == 0
    ok("server", "backup")
    files = list((home / "backups").iterdir())
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files)


def test_a_restore_does_not_bring_back_a_rekeyed_licenses_old_key(
        home: Path, tmp_path: Path) -> None:
    """Invariant: a restore never undoes a revocation. ``licenses rekey`` is how a vendor
    cancels a lost or leaked key ("the old key no longer activates"), but it writes no
    ledger entry: restoring any earlier backup makes the leaked key activate again (and the
    buyer's new key stop working)."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    issued = as_json("licenses", "issue", "app")
    old_key = issued["license_key"]
    backup = tmp_path / "before.backup"
    ok("server", "backup", "--output", str(backup))
    new_key = as_json("licenses", "rekey", issued["id"])["license_key"]
    assert not activates("app", old_key)
    ok("server", "restore", str(backup), "--yes")
    assert not activates("app", old_key), "the leaked key activates again after a restore"
    assert activates("app", new_key), "the buyer's new key no longer activates"


def test_a_restore_does_not_bring_back_a_removed_staff_member(
        home: Path, tmp_path: Path) -> None:
    """Invariant: a restore never undoes a revocation. Removing a staff member ("they can
    no longer sign in") writes no ledger entry: after restoring an earlier backup the
    removed member is back, with their old password and role."""
    ok("staff", "add", "boss@vendor.example", "--role", "owner")
    email = "leaver@vendor.example"
    ok("staff", "add", email, "--role", "owner")
    backup = tmp_path / "before.backup"
    ok("server", "backup", "--output", str(backup))
    ok("staff", "remove", email, "--yes")
    ok("server", "restore", str(backup), "--yes")
    listed = ok("staff", "list")
    assert email not in listed, "the removed staff member is back after a restore"


def test_a_restore_does_not_resubscribe_someone_who_unsubscribed(
        home: Path, tmp_path: Path) -> None:
    """Invariant: an opt-out from mail is honoured for good. A one-click unsubscribe
    (``POST /v1/unsubscribe/{token}``) writes no ledger entry, so restoring an earlier backup
    forgets it and the reminders go to that person again."""
    ok("products", "create", "app")
    ok("keys", "generate", "app")
    license_id = as_json("licenses", "issue", "app")["id"]
    email_index = secrets.token_bytes(32).hex()
    backup = tmp_path / "before.backup"
    ok("server", "backup", "--output", str(backup))
    settings = Settings.from_env()
    ctx = service.Context.from_settings(settings)
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            assert emails.unsubscribe(session, ctx,
                                      emails.unsubscribe_token(ctx, license_id, email_index))
    finally:
        engine.dispose()
    ok("server", "restore", str(backup), "--yes")
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            assert emails.opted_out(session, license_id, email_index), \
                "the opt-out is forgotten after a restore"
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- doctor


@pytest.mark.postgres
def test_doctor_never_prints_a_database_password_given_as_a_url_parameter(
        tmp_path: Path, own_key_folder: Path, monkeypatch: pytest.MonkeyPatch,
        pg_databases: Any) -> None:
    """Invariant (operations.md): the doctor never prints the database password. libpq
    takes it from the URL's query too (``...?password=...``), and the doctor masks only
    the userinfo part: the password is printed in clear on the database line."""
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    url = make_url(pg_databases.create())
    secret = "QpwSECRET" + secrets.token_hex(6)
    # trust authentication here: the password is ignored, the URL still connects
    with_query = url.set(password=None).update_query_dict({"password": secret})
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", with_query.render_as_string(hide_password=False))
    ok("server", "init")
    _code, out, err = run_cli("server", "doctor")
    assert re.search(r"^(ok|problem)\s+database:", out, re.MULTILINE), out + err
    assert secret not in out + err, [line for line in (out + err).splitlines()
                                     if secret in line]


@pytest.mark.postgres
def test_pg_dump_never_gets_a_url_parameter_password_on_its_command_line(
        tmp_path: Path, own_key_folder: Path, monkeypatch: pytest.MonkeyPatch,
        pg_databases: Any) -> None:
    """Invariant (operations.md, Backup): the database password reaches pg_dump and
    pg_restore in ``PGPASSWORD``, never on their command line (which every local user reads
    in /proc). A password given as the URL's ``?password=`` parameter (libpq's other
    spelling) is passed on as it is, in ``--dbname=...``."""
    real = shutil.which("pg_dump")
    if real is None:
        pytest.skip("pg_dump is not installed")
    record = tmp_path / "argv.txt"
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "pg_dump").write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> "{record}"\n'
                                  f'exec "{real}" "$@"\n')
    (shim / "pg_dump").chmod(0o755)
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PATH", f"{shim}:{Path(real).parent}:/usr/bin:/bin")
    url = make_url(pg_databases.create())
    secret = "QpwSECRET" + secrets.token_hex(6)
    with_query = url.set(password=None).update_query_dict({"password": secret})
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", with_query.render_as_string(hide_password=False))
    ok("server", "init")
    ok("server", "backup", "--output", str(tmp_path / "b.backup"))
    argv = record.read_text()
    assert "--dbname=" in argv, argv
    assert secret not in argv, argv


def test_doctor_never_prints_the_smtp_password_or_metrics_token(
        home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant: the doctor's findings never hold the SMTP password, the metrics token or
    the master key, even when the SMTP check fails."""
    smtp_secret = "SMTPsecret" + secrets.token_hex(6)
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_PORT", "1")
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_SENDER", "licenses@vendor.example")
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_USER", "mailer")
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_PASSWORD", smtp_secret)
    monkeypatch.setenv("SOFTWARE_DNA_METRICS_TOKEN", TOKEN)
    _code, out, err = run_cli("server", "doctor")
    assert "SMTP" in out, out + err
    key_file = next((home.parent / "config").rglob("master.key"))
    for secret in (smtp_secret, TOKEN, key_file.read_text().strip()):
        assert secret not in out + err


# --------------------------------------------------------------------------- JSON logs


def test_json_logs_hold_no_secret_from_password_resets_or_the_admin_api(
        tmp_path: Path) -> None:
    """Invariant: with ``SOFTWARE_DNA_LOG_FORMAT=json`` no route writes a license key, an
    activation password, an e-mail address, a staff password or an admin key to the log:
    password resets (request and confirm, right and wrong), the admin API (a license with a
    password, a rekey to an address, an end-user search by address, a staff member added,
    a wrong admin key) and a malformed body quoting those values back."""
    email = "reset.person.zq@example.com"
    password = "ActPw-" + secrets.token_hex(6)
    new_password = "NewPw-" + secrets.token_hex(6)
    wrong_admin = "sdna_" + secrets.token_urlsafe(24)
    with LocalServer(tmp_path / "srv", log_level="debug",
                     env={"SOFTWARE_DNA_LOG_FORMAT": "json"}) as server:
        admin = server.admin
        admin.setup_product("acme")
        issued = admin.issue_license("acme", password=password)
        key = issued["license_key"]
        new_key = admin.rekey_license(issued["id"], email=email)["license_key"]
        admin.find_end_users(email)
        staff = admin.add_staff("staff.zq@vendor.example", role="owner")
        url = server.url
        requests.post(f"{url}/v1/password-resets", timeout=30,
                      json={"product": "acme", "license_key": new_key})
        requests.post(f"{url}/v1/password-resets/confirm", timeout=30,
                      json={"product": "acme", "license_key": new_key,
                            "code": "ABCD-EFGH-JKLM", "new_password": new_password})
        requests.post(f"{url}/v1/password-resets/confirm", timeout=30,
                      json={"product": "acme", "license_key": new_key, "code": 5,
                            "new_password": [new_password, email]})
        requests.get(f"{url}/v1/admin/licenses", timeout=30,
                     headers={"Authorization": f"Bearer {wrong_admin}"})
        requests.get(f"{url}/v1/health", timeout=30)
        log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert '"logger": "software_dna.server.access"' in log, log[-2000:]
    for secret in (email, "staff.zq@vendor.example", password, new_password, key, new_key,
                   staff["password"], server.admin_key, wrong_admin):
        assert secret not in log, (secret, [line for line in log.splitlines()
                                            if secret in line])


# --------------------------------------------------------------------------- serving


def test_stalled_clients_do_not_starve_a_direct_server(srv: LocalServer) -> None:
    """Invariant: clients that open connections and send half a request (slowloris) never
    stop the server from answering others, even without the proxy in front."""
    stalled = []
    try:
        for _ in range(300):
            conn = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            conn.sendall(b"POST /v1/activations HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            stalled.append(conn)
        answer = requests.get(f"{srv.url}/v1/health", timeout=30)
        assert answer.status_code == 200
    finally:
        for conn in stalled:
            conn.close()


def test_a_restore_refuses_a_backup_altered_after_it_was_written(
        tmp_path: Path, own_key_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant: a restore accepts only what ``server backup`` wrote. The manifest's key id
    is no proof (it is printed by every backup and readable in every file): whoever can
    write to where backups are kept, without the master key, sets a staff owner's password
    in the SQLite copy (scrypt, unkeyed) and, after the next restore, signs in to the panel
    as that owner. Nothing binds the file's content to the master key (no MAC)."""
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'live.db'}")
    ok("server", "init")
    victim = "owner.zq@vendor.example"
    ok("staff", "add", victim, "--role", "owner")
    genuine = tmp_path / "genuine.backup"
    ok("server", "backup", "--output", str(genuine))

    chosen = "attacker-" + secrets.token_hex(8)
    with tarfile.open(genuine) as tar:
        members = {m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
                   for m in tar.getmembers()}
    copy = tmp_path / "copy.sqlite3"
    copy.write_bytes(members["database.sqlite3"])
    conn = sqlite3.connect(copy)
    with conn:
        conn.execute("UPDATE staff SET password_hash = ?, must_change_password = 0 "
                     "WHERE email = ?", (hash_password(chosen), victim))
    conn.close()
    members["database.sqlite3"] = copy.read_bytes()
    forged = tmp_path / "forged.backup"
    with tarfile.open(forged, "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))

    code, _out, err = run_cli("server", "restore", str(forged), "--yes")
    settings = Settings.from_env()
    engine = make_engine(settings, pooled=False)
    try:
        with make_session_factory(engine)() as session:
            stored = session.scalars(select(StaffMember.password_hash)
                                     .where(StaffMember.email == victim)).one()
    finally:
        engine.dispose()
    assert not verify_password(chosen, stored), \
        f"the forged backup was restored (exit {code}): the attacker's password signs in"
    assert code == 1 and err.startswith("software-dna: error: "), err


@pytest.mark.parametrize("workers", [1, 2])
def test_a_client_not_the_proxy_cannot_pick_its_address_with_x_forwarded_for(
        tmp_path: Path, workers: int) -> None:
    """Invariant: with ``--forwarded-allow-ips 127.0.0.1`` only connections from 127.0.0.1
    are believed; a client connecting from another address (127.0.0.2 here) that sends a
    fresh ``X-Forwarded-For`` on each attempt is still counted on its real address, also
    when the dispatcher hands its connection to one of several workers."""
    attempts = 3
    with LocalServer(tmp_path / "srv", workers=workers, forwarded_allow_ips="127.0.0.1",
                     rate_limit_address_attempts=attempts, rate_limit_window=300) as server:
        server.admin.setup_product("acme")
        statuses = []
        for index in range(attempts + 2):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30,
                                              source_address=("127.0.0.2", 0))
            body = json.dumps({"product": "acme", "license_key": "ZZZZ-ZZZZ-ZZZZ-ZZZZ",
                               "fingerprint": fingerprint("n"), "nonce": nonce(),
                               "idempotency_key": nonce(), "consent": False})
            conn.request("POST", "/v1/activations", body,
                         {"Content-Type": "application/json",
                          "X-Forwarded-For": f"10.9.{index}.1"})
            statuses.append(conn.getresponse().status)
            conn.close()
    assert statuses[:attempts] == [404] * attempts, statuses
    assert statuses[attempts:] == [429, 429], statuses
