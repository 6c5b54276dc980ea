"""Attack review of the production features: metrics, health, logs, backup/restore, doctor.

Each test is one attack, against a real server process (``server run`` through
:class:`LocalServer`) or the real CLI on SQLite and PostgreSQL. A failing test is a defect;
a passing one is an attack that is defeated and kept as a regression test.
"""

from __future__ import annotations

import json
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import make_url

from software_dna.server import services as service
from software_dna.server.config import Settings
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.testing import LocalServer
from tests.cli_runner import ENV_CLEARED, run_cli

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
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "home"
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(folder))
    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    ok("server", "init")
    yield folder


def ok(*argv: str) -> str:
    code, out, err = run_cli(*argv)
    assert code == 0, (argv, err)
    return out


def as_json(*argv: str) -> Any:
    return json.loads(ok(*argv, "--json"))


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
