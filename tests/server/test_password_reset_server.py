"""Password reset by email on the server: a real SMTP server (aiosmtpd) on 127.0.0.1,
the license server's HTTP API (the app in-process, tests/inprocess.py), and the mail
module with STARTTLS."""

from __future__ import annotations

import re
import secrets
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from software_dna.server.config import Settings
from software_dna.server.mail import MailError, MailUnavailable, send_mail
from software_dna.server.testing import LocalServer, free_port
from tests.server.helpers import Api, error_code, session_for
from tests.smtp import Mailbox, self_signed

from ..inprocess import InProcessServer

SENDER = "licenses@vendor.example"
CODE_RE = re.compile(r"Your reset code: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory,
                mailbox: Mailbox) -> Iterator[LocalServer]:
    env = {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(mailbox.port),
           "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": SENDER}
    with InProcessServer(tmp_path_factory.mktemp("reset"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(mail_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(mail_server)
    yield client
    client.close()


def setup_license(srv: LocalServer, api: Api, *, email: str | None,
                  password: str | None = "old secret") -> tuple[str, dict[str, Any]]:
    pid = "r-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    lic = srv.admin.issue_license(pid, seats=2, password=password)
    extra: dict[str, Any] = {"email": email, "consent": True} if email else {}
    if password is not None:
        extra["password"] = password
    made = api.activate(pid, lic["license_key"], machine="owner", **extra)
    assert made.status_code == 201, made.text
    return pid, lic


def ask(srv: LocalServer, pid: str, key: str) -> requests.Response:
    with session_for(srv) as http:
        return http.post(f"{srv.url}/v1/password-resets",
                         json={"product": pid, "license_key": key}, timeout=30)


def confirm(srv: LocalServer, pid: str, key: str, code: str,
            new_password: str = "new secret") -> requests.Response:
    with session_for(srv) as http:
        return http.post(f"{srv.url}/v1/password-resets/confirm", timeout=30, json={
            "product": pid, "license_key": key, "code": code, "new_password": new_password})


def mailed_code(box: Mailbox, count: int) -> tuple[str, Any]:
    message = box.wait_for(count)[count - 1]
    body = message.get_body(("plain",))
    assert body is not None
    found = CODE_RE.search(body.get_content())
    assert found, body.get_content()
    return found[1], message


def test_reset_code_by_mail_sets_a_new_password(mail_server: LocalServer, api: Api,
                                                mailbox: Mailbox) -> None:
    email = f"owner-{secrets.token_hex(3)}@example.com"
    pid, lic = setup_license(mail_server, api, email=email)
    before = len(mailbox.messages)
    answer = ask(mail_server, pid, lic["license_key"].lower())  # keys: case does not matter
    assert answer.status_code == 202, answer.text
    assert answer.json()["sent"] == 1
    code, message = mailed_code(mailbox, before + 1)
    assert message["To"] == email and message["From"] == SENDER
    assert "Acme Editor" in message["Subject"]
    assert mailbox.recipients[before] == [email]
    raw = mailbox.raw[before]
    assert b"old secret" not in raw and b"new secret" not in raw  # never a password
    # The database holds a keyed hash of the code, never the code.
    plain = code.replace("-", "").encode()
    stored = b"".join(p.read_bytes() for p in mail_server.data_dir.glob("server.db*"))
    assert plain not in stored and code.encode() not in stored

    wrong = confirm(mail_server, pid, lic["license_key"], "AAAA-BBBB-CCCC")
    assert wrong.status_code == 403 and error_code(wrong) == "invalid_reset_code"
    done = confirm(mail_server, pid, lic["license_key"], " " + code.lower().replace("-", " "))
    assert done.status_code == 200 and done.json()["ok"] is True
    old = api.activate(pid, lic["license_key"], machine="second", password="old secret")
    assert old.status_code == 403 and error_code(old) == "wrong_password"
    new = api.activate(pid, lic["license_key"], machine="second", password="new secret")
    assert new.status_code == 201
    again = confirm(mail_server, pid, lic["license_key"], code, "third secret")
    assert again.status_code == 403 and error_code(again) == "invalid_reset_code"  # single use
    entries = mail_server.admin.audit(license_id=lic["id"])
    assert {"password_reset.request", "license.password_reset"} <= {e["action"] for e in entries}


def test_a_new_request_replaces_the_code_and_codes_expire(mail_server: LocalServer, api: Api,
                                                          mailbox: Mailbox) -> None:
    pid, lic = setup_license(mail_server, api, email="twice@example.com")
    start = len(mailbox.messages)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    first, _ = mailed_code(mailbox, start + 1)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    second, _ = mailed_code(mailbox, start + 2)
    assert first != second
    assert error_code(confirm(mail_server, pid, lic["license_key"], first)) == "invalid_reset_code"
    engine = sa.create_engine(mail_server.database_url)
    try:
        with engine.begin() as conn:  # the code's short life ends
            conn.execute(sa.text("UPDATE password_reset_codes SET expires_at = "
                                 "'2000-01-01 00:00:00' WHERE license_id = :l"),
                         {"l": lic["id"]})
    finally:
        engine.dispose()
    late = confirm(mail_server, pid, lic["license_key"], second)
    assert late.status_code == 403 and error_code(late) == "invalid_reset_code"
    # Three mails per license per window: the fourth request is refused.
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    limited = ask(mail_server, pid, lic["license_key"])
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_wrong_codes_kill_the_live_code(mail_server: LocalServer, api: Api,
                                        mailbox: Mailbox) -> None:
    pid, lic = setup_license(mail_server, api, email="guess@example.com")
    start = len(mailbox.messages)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    code, _ = mailed_code(mailbox, start + 1)
    for _ in range(5):
        assert confirm(mail_server, pid, lic["license_key"], "ZZZZ-ZZZZ-ZZZZ").status_code == 403
    dead = confirm(mail_server, pid, lic["license_key"], code)
    assert dead.status_code == 403 and error_code(dead) == "invalid_reset_code"


def test_refusals(mail_server: LocalServer, api: Api) -> None:
    pid, lic = setup_license(mail_server, api, email=None)
    nobody = ask(mail_server, pid, lic["license_key"])
    assert nobody.status_code == 409 and error_code(nobody) == "no_email_on_file"
    assert "vendor" in nobody.json()["error"]["message"]
    pid2, free = setup_license(mail_server, api, email="free@example.com", password=None)
    none = ask(mail_server, pid2, free["license_key"])
    assert none.status_code == 409 and error_code(none) == "no_password"
    unknown = ask(mail_server, pid, "AAAA-BBBB-CCCC-DDDD")
    assert unknown.status_code == 404 and error_code(unknown) == "unknown_license_key"
    other_product = ask(mail_server, pid2, lic["license_key"])
    assert other_product.status_code == 404
    pid3, revoked = setup_license(mail_server, api, email="gone@example.com")
    mail_server.admin.revoke_license(revoked["id"])
    assert error_code(ask(mail_server, pid3, revoked["license_key"])) == "license_revoked"
    url = f"{mail_server.url}/v1/password-resets"
    for body in ({}, {"product": pid, "license_key": 5}, {"product": pid, "license_key": "k",
                                                          "extra": 1}):
        with session_for(mail_server) as http:
            bad = http.post(url, json=body, timeout=30)
        assert bad.status_code == 400 and error_code(bad) == "invalid_request"
    for code, password in (("<script>", "x"), ("A" * 40, "x"), ("ABCD", ""),
                           ("ABCD", "p" * 257)):
        bad = confirm(mail_server, pid, lic["license_key"], code, password)
        assert bad.status_code == 400 and error_code(bad) == "invalid_request"


# --------------------------------------------------------------------------- the mail module


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                              "SOFTWARE_DNA_SMTP_SENDER": SENDER, "SOFTWARE_DNA_SMTP_TIMEOUT": "5",
                              **env})


def test_starttls_is_required_and_verified(tmp_path: Path) -> None:
    context, cert = self_signed(tmp_path)
    with Mailbox(tls_context=context, require_starttls=True) as box:
        env = {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(box.port)}
        trusted = settings(tmp_path, SOFTWARE_DNA_SMTP_CA_FILE=str(cert), **env)
        assert trusted.smtp_tls == "starttls"  # the default
        assert send_mail(trusted, ["a@example.com", "b@example.com", "a@example.com"],
                         "Subject", "Body") == 2
        assert [m["To"] for m in box.wait_for(2)] == ["a@example.com", "b@example.com"]
        with pytest.raises(MailError):  # the self-signed certificate is not trusted
            send_mail(settings(tmp_path, **env), ["a@example.com"], "S", "B")
        with pytest.raises(MailError):  # plain text to a server that insists on STARTTLS
            send_mail(settings(tmp_path, SOFTWARE_DNA_SMTP_TLS="none", **env),
                      ["a@example.com"], "S", "B")
        assert len(box.messages) == 2


def test_mail_failures_are_mail_errors(tmp_path: Path) -> None:
    with pytest.raises(MailUnavailable):
        send_mail(Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)}), ["a@b.c"],
                  "S", "B")
    closed = settings(tmp_path, SOFTWARE_DNA_SMTP_HOST="127.0.0.1",
                      SOFTWARE_DNA_SMTP_PORT=str(free_port()), SOFTWARE_DNA_SMTP_TLS="none")
    with pytest.raises(MailError) as failed:
        send_mail(closed, ["a@example.com"], "S", "B")
    assert "ConnectionRefusedError" in str(failed.value)
    assert isinstance(failed.value.__context__, (OSError, smtplib.SMTPException))


def test_server_answers_503_when_mail_fails_and_keeps_no_code(tmp_path: Path) -> None:
    env = {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(free_port()),
           "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": SENDER}
    with InProcessServer(tmp_path / "srv", env=env) as srv:
        client = Api.for_server(srv)
        try:
            pid, lic = setup_license(srv, client, email="lost@example.com")
            failed = ask(srv, pid, lic["license_key"])
            assert failed.status_code == 503 and error_code(failed) == "mail_failed"
            engine = sa.create_engine(srv.database_url)
            try:
                with engine.connect() as conn:
                    left = conn.execute(sa.text("SELECT count(*) FROM password_reset_codes"))
                    assert left.scalar() == 0
            finally:
                engine.dispose()
        finally:
            client.close()
    with InProcessServer(tmp_path / "nomail") as srv:  # no SMTP configured at all
        client = Api.for_server(srv)
        try:
            pid, lic = setup_license(srv, client, email="someone@example.com")
            off = ask(srv, pid, lic["license_key"])
            assert off.status_code == 503 and error_code(off) == "mail_unavailable"
        finally:
            client.close()
