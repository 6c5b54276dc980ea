"""`software-dna server doctor`: each check against the real thing it checks.

Real files and modes, a real SQLite file and PostgreSQL database set up by
`server init`, a real SMTP server (aiosmtpd, tests/smtp.py), and the real app
served by uvicorn on a thread over TLS with a certificate from a test CA (the
probe is an HTTPS request with certificate verification, so it needs a socket).
Clock skew cannot be made real here (the test cannot move this machine's clock):
those tests shift the doctor's own clock against the real database and server.

Invariants:
- the exit status is 1 exactly when a ``problem`` line is printed;
- every line is ``ok``, ``warning`` or ``problem``, then the subject;
- no line carries a secret (master key, SMTP password, metrics token, the
  database password, the admin key).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from software_dna.server.app import create_app
from software_dna.server.config import Settings
from software_dna.server.doctor import Finding, Level, diagnose
from software_dna.server.testing import free_port
from tests.cli_runner import run_cli
from tests.smtp import Mailbox, self_signed
from tests.tls import make_tls

LEVELS = ("ok", "warning", "problem")


@dataclass
class Server:
    """A server folder set up by `server init`: the options that name it, and its files."""

    home: Path
    key_file: Path
    database_url: str
    admin_key: str

    def args(self) -> list[str]:
        return ["--data-dir", str(self.home), "--database-url", self.database_url]

    def settings(self) -> Settings:
        return Settings.load(home=self.home, database_url=self.database_url)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("SOFTWARE_DNA_") or name in ("DATABASE_URL", "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture
def server(clean_env: None, tmp_path: Path, fresh_database_url: str,
           monkeypatch: pytest.MonkeyPatch) -> Server:
    home = tmp_path / "home"
    keys = tmp_path / "keys"
    key_file = keys / "master.key"
    monkeypatch.setenv("SOFTWARE_DNA_MASTER_KEY_FILE", str(key_file))
    code, out, err = run_cli("server", "init", "--data-dir", str(home),
                             "--database-url", fresh_database_url)
    assert code == 0, err
    admin_key = next(line for line in out.splitlines() if line.startswith("sdna_admin_"))
    return Server(home, key_file, fresh_database_url, admin_key)


def doctor(server: Server, *extra: str) -> tuple[int, list[str]]:
    """Run the doctor; check the invariants every run must keep; return (status, lines)."""
    code, out, err = run_cli("server", "doctor", *server.args(), *extra)
    assert err == ""
    lines = out.splitlines()
    checks, summary = lines[:-1], lines[-1]
    assert checks and all(line.split()[0] in LEVELS for line in checks), out
    problems = [line for line in checks if line.startswith("problem")]
    assert code == (1 if problems else 0), out
    assert summary.startswith(f"{len(problems)} problem(s)")
    secrets = [server.key_file.read_text().strip() if server.key_file.exists() else None,
               server.admin_key, os.environ.get("SOFTWARE_DNA_SMTP_PASSWORD"),
               os.environ.get("SOFTWARE_DNA_METRICS_TOKEN"),
               os.environ.get("SOFTWARE_DNA_MASTER_KEY")]
    for secret in filter(None, secrets):
        assert secret not in out, "a secret was printed"
    return code, checks


def line_of(lines: list[str], subject: str) -> str:
    """The lines about ``subject``, joined (most subjects have one)."""
    found = [line for line in lines if line.split(maxsplit=1)[1].startswith(f"{subject}:")]
    assert found, (subject, lines)
    return "\n".join(found)


def levels(findings: list[Finding], subject: str) -> list[Level]:
    return [f.level for f in findings if f.subject == subject]


# --------------------------------------------------------------------------- a fresh server


def test_a_fresh_server_says_what_is_left(server: Server) -> None:
    code, lines = doctor(server)
    assert code == 1
    assert line_of(lines, "public URL").startswith("problem")
    assert "SOFTWARE_DNA_PUBLIC_URL" in line_of(lines, "public URL")
    assert line_of(lines, "master key").startswith("ok")
    assert line_of(lines, "data folder").startswith("ok")
    assert line_of(lines, "database").startswith("ok")
    assert line_of(lines, "workers").startswith("ok")
    assert line_of(lines, "SMTP").startswith("warning")
    assert line_of(lines, "metrics token").startswith("warning")
    if not server.database_url.startswith("sqlite"):
        assert line_of(lines, "clock (database)").startswith("ok")


def test_a_production_set_up_has_no_problem(server: Server, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_server(server, tmp_path) as (url, ca_file):
        monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", url)
        monkeypatch.setenv("SOFTWARE_DNA_METRICS_TOKEN", "metrics-secret-value-123")
        with Mailbox() as box:
            smtp_env(monkeypatch, box.port, tls="none")
            code, lines = doctor(server, "--ca-file", str(ca_file),
                                 "--forwarded-allow-ips", "127.0.0.1")
        assert box.messages == []  # the doctor greets, never mails
    assert code == 0, lines
    assert line_of(lines, "TLS").startswith("ok")
    assert line_of(lines, "clock (public URL)").startswith("ok")
    assert line_of(lines, "proxy trust").startswith("ok")
    assert line_of(lines, "SMTP").startswith("ok")
    assert line_of(lines, "metrics token").startswith("ok")


# --------------------------------------------------------------------------- master key


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_master_key_others_can_read_is_a_problem(server: Server) -> None:
    server.key_file.chmod(0o644)
    code, lines = doctor(server)
    assert code == 1
    assert f"chmod 600 {server.key_file}" in line_of(lines, "master key")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_the_key_folders_access(server: Server) -> None:
    folder = server.key_file.parent
    folder.chmod(0o755)
    assert line_of(doctor(server)[1], "master key folder").startswith("warning")
    folder.chmod(0o777)
    code, lines = doctor(server)
    assert code == 1 and "world-writable" in line_of(lines, "master key folder")
    folder.chmod(0o700)
    assert not any("master key folder" in line for line in doctor(server)[1])


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_master_key_inside_the_data_folder_is_a_problem(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    inside = server.home / "master.key"
    inside.write_bytes(server.key_file.read_bytes())
    inside.chmod(0o600)
    monkeypatch.setenv("SOFTWARE_DNA_MASTER_KEY_FILE", str(inside))
    code, lines = doctor(server)
    assert code == 1 and "inside the data folder" in line_of(lines, "master key")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_missing_or_malformed_master_key_is_a_problem(server: Server) -> None:
    key = server.key_file.read_text()
    server.key_file.write_text("not-a-key\n")
    code, lines = doctor(server)
    assert code == 1 and "base64url" in line_of(lines, "master key")
    assert key.strip() not in "\n".join(lines)
    server.key_file.unlink()
    code, lines = doctor(server)
    assert code == 1 and "server init" in line_of(lines, "master key")


def test_a_master_key_that_does_not_open_the_database_is_a_problem(server: Server) -> None:
    for argv in (["products", "create", "doctor-app"], ["keys", "generate", "doctor-app"]):
        assert run_cli(*argv, *server.args())[0] == 0
    original = server.key_file.read_bytes()
    server.key_file.unlink()
    assert run_cli("server", "init", *server.args())[0] == 1  # refuses to make a new key
    server.key_file.write_text("A" * 43 + "\n")  # a well-formed key, but not this server's
    server.key_file.chmod(0o600)
    code, lines = doctor(server)
    assert code == 1 and "does not open this database" in line_of(lines, "master key")
    assert line_of(lines, "master key").count("problem") == 1
    server.key_file.write_bytes(original)
    assert line_of(doctor(server)[1], "master key").startswith("ok")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_master_key_left_at_the_old_place_in_the_data_folder_is_a_problem(
        server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.key_file.rename(server.home / "master.key")
    monkeypatch.delenv("SOFTWARE_DNA_MASTER_KEY_FILE")
    code, lines = doctor(server)  # the doctor checks nothing went to stderr
    assert code == 1 and "inside the data folder" in line_of(lines, "master key")


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="giving a file to another user needs root")
@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_master_key_owned_by_another_user_is_a_warning(server: Server) -> None:
    os.chown(server.key_file, 65534, 65534)
    assert "uid 65534" in line_of(doctor(server)[1], "master key")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_the_master_key_from_the_environment(server: Server,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_MASTER_KEY", server.key_file.read_text().strip())
    server.key_file.unlink()
    _, lines = doctor(server)
    assert "SOFTWARE_DNA_MASTER_KEY" in line_of(lines, "master key")
    assert line_of(lines, "master key").startswith("ok")


# --------------------------------------------------------------------------- data folder


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_the_data_folders_mode(server: Server) -> None:
    server.home.chmod(0o755)
    assert line_of(doctor(server)[1], "data folder").startswith("warning")
    server.home.chmod(0o777)
    code, lines = doctor(server)
    assert code == 1 and "chmod 700" in line_of(lines, "data folder")
    server.home.chmod(0o700)


def test_no_data_folder_or_database_is_a_problem(clean_env: None, tmp_path: Path) -> None:
    home = tmp_path / "nothing"
    code, out, err = run_cli("server", "doctor", "--data-dir", str(home))
    assert code == 1 and err == ""
    lines = out.splitlines()
    assert "server init" in line_of(lines, "data folder")
    assert "server init" in line_of(lines, "database")
    assert "server init" in line_of(lines, "master key")
    assert not home.exists()  # the doctor creates nothing


# --------------------------------------------------------------------------- database


def test_a_database_without_the_schema_is_a_problem(
        clean_env: None, tmp_path: Path, fresh_database_url: str) -> None:
    if fresh_database_url.startswith("sqlite:///"):
        Path(fresh_database_url.removeprefix("sqlite:///")).touch()
    code, out, _ = run_cli("server", "doctor", "--data-dir", str(tmp_path),
                           "--database-url", fresh_database_url)
    assert code == 1
    assert "server migrate" in line_of(out.splitlines(), "database")


def test_an_unreachable_database_is_a_problem_and_its_password_not_shown(
        clean_env: None, tmp_path: Path) -> None:
    url = f"postgresql://sdna:pg-secret-pw@127.0.0.1:{free_port()}/sdna"
    code, out, err = run_cli("server", "doctor", "--data-dir", str(tmp_path),
                             "--database-url", url)
    assert code == 1 and err == ""
    assert "pg-secret-pw" not in out
    assert line_of(out.splitlines(), "database").startswith("problem")


@pytest.mark.parametrize("fresh_database_url", [pytest.param("postgresql",
                                                             marks=pytest.mark.postgres)],
                         indirect=True)
def test_a_clock_apart_from_the_database_servers_is_a_warning(server: Server) -> None:
    settings = server.settings()
    assert levels(diagnose(settings), "clock (database)") == [Level.OK]
    ahead = diagnose(settings, clock=lambda: time.time() + 60)
    assert levels(ahead, "clock (database)") == [Level.WARNING]
    line = next(f.line() for f in ahead if f.subject == "clock (database)")
    assert "behind this machine's clock" in line and "NTP" in line


@pytest.mark.parametrize("fresh_database_url", [pytest.param("postgresql",
                                                             marks=pytest.mark.postgres)],
                         indirect=True)
def test_more_connections_than_postgresql_allows_is_a_warning(server: Server) -> None:
    settings = server.settings()
    assert levels(diagnose(settings, workers=2), "database connections") == [Level.OK]
    greedy = settings.with_changes(db_pool_size=400)
    findings = diagnose(greedy, workers=2)
    assert levels(findings, "database connections") == [Level.WARNING]
    assert "max_connections" in next(f.message for f in findings
                                     if f.subject == "database connections")


# --------------------------------------------------------------------------- workers


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_several_workers_on_sqlite_or_more_than_the_cpus(server: Server) -> None:
    lines = doctor(server, "--workers", "2")[1]
    assert any("on SQLite" in line and line.startswith("warning") for line in lines)
    settings = server.settings()
    assert levels(diagnose(settings, workers=1, cpu_count=2), "workers") == [Level.OK]
    many = diagnose(settings.with_changes(database_url="postgresql://h/db"), workers=3,
                    cpu_count=2)
    assert levels(many, "workers") == [Level.WARNING]
    assert "--workers 2" in next(f.message for f in many if f.subject == "workers")


def test_workers_is_at_least_one(clean_env: None, tmp_path: Path) -> None:
    code, _, err = run_cli("server", "doctor", "--data-dir", str(tmp_path), "--workers", "0")
    assert code == 2 and "--workers" in err


# --------------------------------------------------------------------------- SMTP


def smtp_env(monkeypatch: pytest.MonkeyPatch, port: int, *, tls: str,
             ca_file: Path | None = None) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_PORT", str(port))
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_TLS", tls)
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_SENDER", "licenses@vendor.example")
    monkeypatch.setenv("SOFTWARE_DNA_SMTP_TIMEOUT", "5")
    if ca_file is not None:
        monkeypatch.setenv("SOFTWARE_DNA_SMTP_CA_FILE", str(ca_file))


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_smtp_with_starttls_is_greeted_and_no_mail_sent(
        server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    context, cert = self_signed(tmp_path)
    with Mailbox(tls_context=context, require_starttls=True) as box:
        smtp_env(monkeypatch, box.port, tls="starttls", ca_file=cert)
        monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", "https://licenses.vendor.example")
        line = line_of(doctor(server)[1], "SMTP")
        assert box.messages == []
    assert line.startswith("ok") and "starttls" in line


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_smtp_that_cannot_work_is_a_problem(server: Server,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    with Mailbox() as box:  # no STARTTLS, no AUTH
        smtp_env(monkeypatch, box.port, tls="starttls")
        assert "does not offer STARTTLS" in line_of(doctor(server)[1], "SMTP")
        smtp_env(monkeypatch, box.port, tls="none")
        monkeypatch.setenv("SOFTWARE_DNA_SMTP_USERNAME", "sender")
        monkeypatch.setenv("SOFTWARE_DNA_SMTP_PASSWORD", "smtp-secret-pw")
        lines = doctor(server)[1]  # the invariant checks the password is not shown
        assert any("does not offer a login" in line for line in lines)
        assert box.messages == []
    monkeypatch.delenv("SOFTWARE_DNA_SMTP_USERNAME")
    smtp_env(monkeypatch, free_port(), tls="none")
    code, lines = doctor(server)
    assert code == 1 and "cannot talk to" in line_of(lines, "SMTP")


# --------------------------------------------------------------------------- TLS and the public URL


class tls_server:  # noqa: N801 - used as a context manager, like a function
    """The server's app behind uvicorn with TLS on a thread: yields (https URL, CA file)."""

    def __init__(self, server: Server, folder: Path, *, tls: bool = True) -> None:
        self.server, self.folder, self.tls = server, folder, tls

    def __enter__(self) -> tuple[str, Path]:
        tls = make_tls(self.folder, hosts=("127.0.0.1",))
        ca, cert, key = tls.ca, tls.certificate, tls.key
        port = free_port()
        config = uvicorn.Config(create_app(self.server.settings()), host="127.0.0.1",
                                port=port, loop="asyncio", lifespan="off", log_config=None,
                                log_level="warning", access_log=False,
                                ssl_certfile=str(cert) if self.tls else None,
                                ssl_keyfile=str(key) if self.tls else None)
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True)
        self.thread.start()
        ends = time.monotonic() + 30
        while not self.uvicorn.started:
            assert self.thread.is_alive() and time.monotonic() < ends, "uvicorn did not start"
            time.sleep(0.02)
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}", ca

    def __exit__(self, *exc: object) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=30)


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_certificate_that_does_not_verify_is_a_problem(
        server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_server(server, tmp_path) as (url, ca):
        monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", url)
        code, lines = doctor(server)  # the test CA is not trusted
        # Trusted, but the certificate names 127.0.0.1, not localhost.
        other_name = url.replace("127.0.0.1", "localhost")
        code_other, lines_other = doctor(server, "--url", other_name, "--ca-file", str(ca))
    assert code == 1
    assert "certificate does not verify (unable to get local issuer" in line_of(lines, "TLS")
    assert line_of(lines, "public URL").startswith("ok")
    assert code_other == 1 and "Hostname mismatch" in line_of(lines_other, "TLS")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_plain_http_public_url_is_a_problem(server: Server, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with tls_server(server, tmp_path, tls=False) as (url, _ca):
        monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", url)
        code, lines = doctor(server)
    assert code == 1
    assert "plain http" in line_of(lines, "public URL")
    assert "plain http" in line_of(lines, "TLS")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_an_unreachable_address(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"https://127.0.0.1:{free_port()}"
    code, lines = doctor(server, "--url", url)  # asked for: it must answer
    assert code == 1 and "cannot reach" in line_of(lines, "TLS")
    monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", url)  # maybe not from here: a warning
    lines = doctor(server)[1]
    assert line_of(lines, "TLS").startswith("warning")


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_a_clock_apart_from_the_public_servers_is_a_warning(server: Server,
                                                            tmp_path: Path) -> None:
    settings = server.settings()
    with tls_server(server, tmp_path) as (url, ca):
        right = diagnose(settings, url=url, ca_file=str(ca))
        behind = diagnose(settings, url=url, ca_file=str(ca), clock=lambda: time.time() - 30)
    assert levels(right, "TLS") == [Level.OK]
    assert levels(right, "clock (public URL)") == [Level.OK]
    assert levels(behind, "clock (public URL)") == [Level.WARNING]
    assert "ahead of this machine's clock" in next(
        f.message for f in behind if f.subject == "clock (public URL)")


# --------------------------------------------------------------------------- proxy trust


@pytest.mark.parametrize(("allowed", "level", "words"), [
    (None, Level.WARNING, "every client looks like the proxy"),
    ("*", Level.WARNING, "trusts X-Forwarded-For from anyone"),
    ("proxy.example", Level.PROBLEM, "not an address"),
    ("10.0.0.5, 10.0.1.0/24", Level.OK, "10.0.0.5, 10.0.1.0/24"),
])
def test_proxy_trust(clean_env: None, tmp_path: Path, allowed: str | None, level: Level,
                     words: str) -> None:
    settings = Settings.load(home=tmp_path, public_url="https://licenses.vendor.example")
    findings = [f for f in diagnose(settings, forwarded_allow_ips=allowed)
                if f.subject == "proxy trust"]
    assert [f.level for f in findings] == [level]
    assert words in findings[0].message


# --------------------------------------------------------------------------- server init


def test_init_prints_the_next_steps(clean_env: None, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    key_file = tmp_path / "keys" / "master.key"
    monkeypatch.setenv("SOFTWARE_DNA_MASTER_KEY_FILE", str(key_file))
    code, out, _ = run_cli("server", "init", "--data-dir", str(tmp_path / "home"))
    assert code == 0
    steps = out[out.index("Next steps:"):]
    for words in ("SOFTWARE_DNA_PUBLIC_URL", "SOFTWARE_DNA_SMTP_HOST",
                  "SOFTWARE_DNA_METRICS_TOKEN", "software-dna server doctor",
                  "--forwarded-allow-ips", "software-dna server backup", str(key_file)):
        assert words in steps, words
    # What is set already is not asked for again.
    monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", "https://licenses.vendor.example")
    monkeypatch.setenv("SOFTWARE_DNA_METRICS_TOKEN", "metrics-secret-value-123")
    smtp_env(monkeypatch, 587, tls="starttls")
    code, out, _ = run_cli("server", "init", "--data-dir", str(tmp_path / "home"))
    steps = out[out.index("Next steps:"):]
    assert "SOFTWARE_DNA_PUBLIC_URL" not in steps and "SMTP" not in steps
    assert "METRICS" not in steps and "metrics-secret-value-123" not in out
    assert "server doctor" in steps and "server backup" in steps


def test_a_malformed_setting_is_one_line_naming_it(clean_env: None, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_PUBLIC_URL", "ftp://licenses.vendor.example")
    code, out, err = run_cli("server", "doctor", "--data-dir", str(tmp_path))
    assert (code, out) == (1, "")
    assert err.startswith("software-dna: error: SOFTWARE_DNA_PUBLIC_URL")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- the CLI over https


@pytest.mark.parametrize("fresh_database_url", ["sqlite"], indirect=True)
def test_vendor_commands_trust_a_private_ca_only_when_given(
        server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Invariant: a vendor command on an https admin API verifies the server's certificate
    (against the system's CAs, or only the bundle given with --ca-file / SOFTWARE_DNA_CA_FILE),
    and a certificate that does not verify is one line saying how to trust a private CA."""
    monkeypatch.setenv("SOFTWARE_DNA_ADMIN_KEY", server.admin_key)
    with tls_server(server, tmp_path) as (url, ca):
        remote = ("products", "list", "--server-url", url)
        untrusted = run_cli(*remote)
        trusted = run_cli(*remote, "--ca-file", str(ca))
        other_ca = make_tls(tmp_path / "other").ca
        wrong = run_cli(*remote, "--ca-file", str(other_ca))
        monkeypatch.setenv("SOFTWARE_DNA_CA_FILE", str(ca))
        by_variable = run_cli(*remote)
        monkeypatch.delenv("SOFTWARE_DNA_CA_FILE")
    assert untrusted[0] == 1
    assert "TLS certificate could not be verified" in untrusted[2]
    assert "--ca-file" in untrusted[2] and untrusted[2].count("\n") == 1
    assert trusted[0] == 0 and by_variable[0] == 0, (trusted, by_variable)
    assert wrong[0] == 1 and "not signed by this CA bundle" in wrong[2]
    missing = run_cli(*remote, "--ca-file", str(tmp_path / "none.pem"))
    assert missing[0] == 2 and "no such file" in missing[2]
    monkeypatch.delenv("SOFTWARE_DNA_ADMIN_KEY")
    local = run_cli("products", "list", *server.args(), "--ca-file", str(ca))
    assert local[0] == 2 and "--ca-file is for a server's admin API" in local[2]
