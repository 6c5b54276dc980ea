"""Password reset by email and email confirmation on the server: a real SMTP server
(aiosmtpd) on 127.0.0.1, the license server's HTTP API (the app in-process,
tests/inprocess.py), and the mail module with STARTTLS."""

from __future__ import annotations

import logging
import re
import secrets
import smtplib
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from software_dna.server.config import ConfigError, Settings
from software_dna.server.mail import MailError, MailUnavailable, send_mail
from software_dna.server.services.common import clock_override
from software_dna.server.testing import URL, LocalServer, free_port
from tests.server.helpers import Api, error_code, session_for
from tests.smtp import Mailbox, mailed_link, self_signed

from ..inprocess import InProcessServer

SENDER = "licenses@vendor.example"
CODE_RE = re.compile(r"Your reset code: ([A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4})")


def mail_env(box: Mailbox) -> dict[str, str]:
    return {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(box.port),
            "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": SENDER,
            "SOFTWARE_DNA_PUBLIC_URL": URL}


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory,
                mailbox: Mailbox) -> Iterator[LocalServer]:
    with InProcessServer(tmp_path_factory.mktemp("reset"), env=mail_env(mailbox)) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(mail_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(mail_server)
    yield client
    client.close()


def setup_license(srv: LocalServer, api: Api, *, email: str | None,
                  password: str | None = "old secret", box: Mailbox | None = None,
                  confirmed: bool = True) -> tuple[str, dict[str, Any]]:
    """A product and a license activated once (with ``email``, confirmed through the
    link mailed to ``box`` unless ``confirmed`` is False)."""
    pid = "r-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    lic = srv.admin.issue_license(pid, seats=2, password=password)
    activate(srv, api, pid, lic, email=email, password=password, box=box,
             confirmed=confirmed)
    return pid, lic


def activate(srv: LocalServer, api: Api, pid: str, lic: dict[str, Any], *, email: str | None,
             password: str | None = "old secret", box: Mailbox | None = None,
             confirmed: bool = True, machine: str = "owner") -> str | None:
    """Activate ``machine``; returns the confirmation link mailed (confirmed if asked)."""
    before = len(box.messages) if box is not None else 0
    extra: dict[str, Any] = {"email": email, "consent": True} if email else {}
    if password is not None:
        extra["password"] = password
    made = api.activate(pid, lic["license_key"], machine=machine, **extra)
    assert made.status_code in (200, 201), made.text
    if email is None or box is None:
        return None
    message = box.wait_for(before + 1)[before]
    assert message["To"] == email
    link = mailed_link(message)
    if confirmed:
        with session_for(srv) as http:
            done = http.post(link, timeout=30)
        assert done.status_code == 200 and done.json()["ok"] is True, done.text
    return link


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


def sql(srv: LocalServer, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(srv.database_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def test_reset_code_by_mail_sets_a_new_password(mail_server: LocalServer, api: Api,
                                                mailbox: Mailbox) -> None:
    email = f"owner-{secrets.token_hex(3)}@example.com"
    pid, lic = setup_license(mail_server, api, email=email, box=mailbox)
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


def test_a_second_reset_request_keeps_the_first_code_valid(mail_server: LocalServer, api: Api,
                                                           mailbox: Mailbox) -> None:
    """Someone else with the key asking again (and again) never voids the owner's code."""
    pid, lic = setup_license(mail_server, api, email="twice@example.com", box=mailbox)
    start = len(mailbox.messages)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    first, _ = mailed_code(mailbox, start + 1)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    second, _ = mailed_code(mailbox, start + 2)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    third, _ = mailed_code(mailbox, start + 3)
    assert len({first, second, third}) == 3
    # Three mails per license per window: the fourth request is refused.
    limited = ask(mail_server, pid, lic["license_key"])
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    # A window later the mail limit allows one more, but three codes live: none is dropped,
    # the request is refused until the oldest expires.
    later = datetime.now(timezone.utc) + timedelta(seconds=mail_server.settings.rate_limit_window
                                                   + 2)
    with clock_override(lambda: later):
        full = ask(mail_server, pid, lic["license_key"])
        assert full.status_code == 429 and "still valid" in full.json()["error"]["message"]
        assert 1 <= int(full.headers["retry-after"]) <= 900
        assert len(mailbox.messages) == start + 3
        done = confirm(mail_server, pid, lic["license_key"], first)
        assert done.status_code == 200, done.text
    # The code used ends the others.
    for other in (second, third):
        used = confirm(mail_server, pid, lic["license_key"], other, "x")
        assert used.status_code == 403 and error_code(used) == "invalid_reset_code"


def test_reset_codes_expire(mail_server: LocalServer, api: Api, mailbox: Mailbox) -> None:
    pid, lic = setup_license(mail_server, api, email="late@example.com", box=mailbox)
    start = len(mailbox.messages)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    code, _ = mailed_code(mailbox, start + 1)
    sql(mail_server, "UPDATE password_reset_codes SET expires_at = '2000-01-01 00:00:00' "
        "WHERE license_id = :l", l=lic["id"])
    late = confirm(mail_server, pid, lic["license_key"], code)
    assert late.status_code == 403 and error_code(late) == "invalid_reset_code"


def test_wrong_codes_do_not_kill_the_live_code_and_are_limited_per_license(
        tmp_path: Path, mailbox: Mailbox) -> None:
    """Guesses count per license (not per code): the owner's code survives them, and past
    the limit even a right code waits for the window -- it never dies."""
    with InProcessServer(tmp_path / "srv", env=mail_env(mailbox), rate_limit_attempts=6,
                         rate_limit_window=300) as srv, closing(Api.for_server(srv)) as client:
        pid, lic = setup_license(srv, client, email="guess@example.com", box=mailbox)
        start = len(mailbox.messages)
        assert ask(srv, pid, lic["license_key"]).status_code == 202
        code, _ = mailed_code(mailbox, start + 1)
        for _ in range(5):
            wrong = confirm(srv, pid, lic["license_key"], "ZZZZ-ZZZZ-ZZZZ")
            assert wrong.status_code == 403 and error_code(wrong) == "invalid_reset_code"
        assert sql(srv, "SELECT count(*) FROM password_reset_codes WHERE license_id = :l "
                   "AND used_at IS NULL", l=lic["id"])[0][0] == 1
        limited = confirm(srv, pid, lic["license_key"], "ZZZZ-ZZZZ-ZZZZ")
        assert limited.status_code == 403  # the 6th attempt is let through...
        blocked = confirm(srv, pid, lic["license_key"], code)  # ... the 7th is not
        assert blocked.status_code == 429 and error_code(blocked) == "rate_limited"
        assert "reset code attempts" in blocked.json()["error"]["message"]
        # Activations are not locked out by reset guesses.
        other = client.activate(pid, lic["license_key"], machine="second",
                                password="old secret")
        assert other.status_code == 201, other.text
        later = datetime.now(timezone.utc) + timedelta(seconds=302)
        with clock_override(lambda: later):
            done = confirm(srv, pid, lic["license_key"], code)
        assert done.status_code == 200, done.text


def test_wrong_codes_are_limited_per_network(tmp_path: Path, mailbox: Mailbox) -> None:
    """Guessing across many licenses from one network hits the network's limit."""
    with InProcessServer(tmp_path / "srv", env=mail_env(mailbox),
                         rate_limit_address_attempts=4, rate_limit_window=300) as srv:
        pid = "n-" + secrets.token_hex(4)
        srv.admin.setup_product(pid)
        keys = [srv.admin.issue_license(pid, password="pw")["license_key"] for _ in range(5)]
        answers = [confirm(srv, pid, key, "ZZZZ-ZZZZ-ZZZZ") for key in keys]
        assert [a.status_code for a in answers] == [403, 403, 403, 403, 429]
        assert error_code(answers[-1]) == "rate_limited"


def test_confirmation_links_are_rate_limited_per_network(tmp_path: Path,
                                                         mailbox: Mailbox) -> None:
    """Trying tokens from one network stops at the network's limit (GET and POST alike)."""
    with InProcessServer(tmp_path / "srv", env=mail_env(mailbox),
                         rate_limit_address_attempts=3, rate_limit_window=300) as srv, \
            session_for(srv) as http:
        tries = [f"{URL}/v1/email-confirmations/{secrets.token_urlsafe(32)}" for _ in range(4)]
        assert [http.get(tries[0], timeout=30).status_code,
                http.post(tries[1], timeout=30).status_code,
                http.get(tries[2], timeout=30).status_code] == [404, 404, 404]
        page = http.get(tries[3], timeout=30)
        assert page.status_code == 429 and int(page.headers["retry-after"]) >= 1
        assert page.headers["content-type"].startswith("text/html")
        answer = http.post(tries[3], timeout=30)
        assert answer.status_code == 429 and error_code(answer) == "rate_limited"


def test_reset_mail_to_an_unconfirmed_address_is_not_sent(mail_server: LocalServer, api: Api,
                                                          mailbox: Mailbox) -> None:
    """An address nobody confirmed (e.g. someone else's, given by a key holder) gets no code."""
    pid, lic = setup_license(mail_server, api, email="victim@example.com", box=mailbox,
                             confirmed=False)
    start = len(mailbox.messages)
    refused = ask(mail_server, pid, lic["license_key"])
    assert refused.status_code == 409 and error_code(refused) == "no_email_on_file"
    message = refused.json()["error"]["message"]
    assert "confirm" in message and "vendor" in message
    # Nothing unconfirmed answers differently from nothing on file.
    pid2, lic2 = setup_license(mail_server, api, email=None)
    nothing = ask(mail_server, pid2, lic2["license_key"])
    assert nothing.json()["error"] == refused.json()["error"]
    assert len(mailbox.messages) == start  # no code; the link mailed at activation still lives
    # Once that link expired, asking mails a new link (never a code) to the address.
    sql(mail_server, "UPDATE email_confirmations SET expires_at = '2000-01-01 00:00:00'")
    again = ask(mail_server, pid, lic["license_key"])
    assert again.status_code == 409
    message_ = mailbox.wait_for(start + 1)[start]
    assert message_["To"] == "victim@example.com"
    assert CODE_RE.search(message_.get_body(("plain",)).get_content()) is None  # type: ignore[union-attr]
    with session_for(mail_server) as http:
        assert http.post(mailed_link(message_), timeout=30).status_code == 200
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    mailed_code(mailbox, start + 2)


def test_confirming_an_email_takes_the_page_and_its_button(mail_server: LocalServer, api: Api,
                                                           mailbox: Mailbox) -> None:
    pid, lic = setup_license(mail_server, api, email="click@example.com", box=mailbox,
                             confirmed=False)
    link = mailed_link(mailbox.messages[-1])
    token = link.rsplit("/", 1)[1]
    assert link.startswith(f"{URL}/v1/email-confirmations/")
    assert not sql(mail_server, "SELECT 1 FROM email_confirmations WHERE token_hash = :t",
                   t=token)  # only a keyed hash of the token is stored
    with session_for(mail_server) as http:
        page = http.get(link, timeout=30)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<form method="post">' in page.text and "<script" not in page.text
        assert "http" not in page.text.split("</title>", 1)[1]  # no external asset
        assert "default-src 'none'" in page.headers["content-security-policy"]
        assert page.headers["referrer-policy"] == "no-referrer"
        assert ask(mail_server, pid, lic["license_key"]).status_code == 409  # not yet
        pressed = http.post(link, headers={"Accept": "text/html"}, timeout=30)
        assert pressed.status_code == 200 and "confirmed" in pressed.text
        assert pressed.headers["content-type"].startswith("text/html")
        twice = http.post(link, timeout=30)  # a second press: still confirmed
        assert twice.status_code == 200 and twice.json()["ok"] is True
        assert "already" in http.get(link, timeout=30).text
        unknown = http.post(f"{URL}/v1/email-confirmations/{'A' * 43}", timeout=30)
        assert unknown.status_code == 404 and error_code(unknown) == "not_found"
        for bad in ("x", "A" * 64, "%3Cscript%3E"):
            assert http.get(f"{URL}/v1/email-confirmations/{bad}", timeout=30).status_code == 404
            assert http.post(f"{URL}/v1/email-confirmations/{bad}",
                             timeout=30).status_code == 404
        too_long = http.post(f"{URL}/v1/email-confirmations/{'A' * 65}", timeout=30)
        assert too_long.status_code == 400 and error_code(too_long) == "invalid_request"
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    actions = [e["action"] for e in mail_server.admin.audit(license_id=lic["id"])]
    assert "email_confirmation.mailed" in actions


def test_a_mail_scanner_fetching_the_link_confirms_nothing(mail_server: LocalServer, api: Api,
                                                           mailbox: Mailbox) -> None:
    pid, lic = setup_license(mail_server, api, email="scanned@example.com", box=mailbox,
                             confirmed=False)
    link = mailed_link(mailbox.messages[-1])
    with session_for(mail_server) as http:
        for _ in range(3):
            assert http.get(link, timeout=30).status_code == 200
            assert http.head(link, timeout=30).status_code in (200, 405)
    assert sql(mail_server, "SELECT email_confirmed_at FROM end_users WHERE id IN (SELECT "
               "end_user_id FROM activations WHERE license_id = :l)", l=lic["id"]) == [(None,)]
    assert ask(mail_server, pid, lic["license_key"]).status_code == 409


def test_a_changed_email_is_unconfirmed_again(mail_server: LocalServer, api: Api,
                                              mailbox: Mailbox) -> None:
    pid, lic = setup_license(mail_server, api, email="first@example.com", box=mailbox)
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    mailed_code(mailbox, len(mailbox.messages))
    # The same machine activates again with another address: only that one is on file now,
    # and it is not confirmed.
    link = activate(mail_server, api, pid, lic, email="second@example.com", box=mailbox,
                    confirmed=False)
    assert link is not None
    start = len(mailbox.messages)
    assert error_code(ask(mail_server, pid, lic["license_key"])) == "no_email_on_file"
    assert len(mailbox.messages) == start
    with session_for(mail_server) as http:
        assert http.post(link, timeout=30).status_code == 200
    assert ask(mail_server, pid, lic["license_key"]).status_code == 202
    _, message = mailed_code(mailbox, start + 1)
    assert message["To"] == "second@example.com"


def test_a_link_never_confirms_an_address_set_after_it_was_sent(mail_server: LocalServer,
                                                                api: Api,
                                                                mailbox: Mailbox) -> None:
    """The link names the address it was mailed to (its keyed look-up hash): once the end
    user's address is another, the link confirms nothing."""
    pid, lic = setup_license(mail_server, api, email="before@example.com", box=mailbox,
                             confirmed=False)
    link = mailed_link(mailbox.messages[-1])
    sql(mail_server, "UPDATE end_users SET email_index = :x WHERE id IN (SELECT end_user_id "
        "FROM activations WHERE license_id = :l)", x="f" * 64, l=lic["id"])
    with session_for(mail_server) as http:
        stale = http.post(link, timeout=30)
        assert stale.status_code == 404 and error_code(stale) == "not_found"
        assert http.get(link, timeout=30).status_code == 404
    assert sql(mail_server, "SELECT email_confirmed_at FROM end_users WHERE id IN (SELECT "
               "end_user_id FROM activations WHERE license_id = :l)", l=lic["id"]) == [(None,)]
    assert error_code(ask(mail_server, pid, lic["license_key"])) == "no_email_on_file"


@pytest.mark.parametrize(("given", "expected"), [
    ("https://licenses.example.com/", "https://licenses.example.com"),
    ("http://127.0.0.1:8000/base/", "http://127.0.0.1:8000/base"),
    (" https://x.example ", "https://x.example"),
])
def test_public_url_setting(given: str, expected: str, tmp_path: Path) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                                  "SOFTWARE_DNA_PUBLIC_URL": given})
    assert settings.public_url == expected


@pytest.mark.parametrize("given", ["licenses.example.com", "ftp://x.example", "https://",
                                   "https://x.example/?q=1", "https://x.example/#f"])
def test_a_malformed_public_url_is_refused_by_name(given: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SOFTWARE_DNA_PUBLIC_URL"):
        Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path),
                           "SOFTWARE_DNA_PUBLIC_URL": given})


def test_erasure_removes_the_confirmation_with_the_email(mail_server: LocalServer, api: Api,
                                                         mailbox: Mailbox) -> None:
    setup_license(mail_server, api, email="gone-soon@example.com", box=mailbox)
    (end_user,) = mail_server.admin.find_end_users("gone-soon@example.com")
    assert mail_server.admin.export_end_user(end_user["id"])["email_confirmed_at"] is not None
    mail_server.admin.erase_end_user(end_user["id"])
    exported = mail_server.admin.export_end_user(end_user["id"])
    assert exported["email"] is None and exported["email_confirmed_at"] is None
    assert sql(mail_server, "SELECT count(*) FROM email_confirmations WHERE end_user_id = :e",
               e=end_user["id"]) == [(0,)]


def test_no_confirmation_mail_without_a_public_url(tmp_path: Path, mailbox: Mailbox) -> None:
    env = {k: v for k, v in mail_env(mailbox).items() if k != "SOFTWARE_DNA_PUBLIC_URL"}
    with InProcessServer(tmp_path / "srv", env=env) as srv, closing(Api.for_server(srv)) as client:
        start = len(mailbox.messages)
        pid, lic = setup_license(srv, client, email="nourl@example.com")
        answer = ask(srv, pid, lic["license_key"])
        assert error_code(answer) == "no_email_on_file"
        # No link can ever come: the answer does not tell the end user to wait for one.
        assert "link" not in answer.json()["error"]["message"]
        assert "vendor" in answer.json()["error"]["message"]
        assert len(mailbox.messages) == start
        assert sql(srv, "SELECT count(*) FROM email_confirmations") == [(0,)]


def test_mail_without_a_public_url_is_warned_about_at_start(
        tmp_path: Path, mailbox: Mailbox, caplog: pytest.LogCaptureFixture) -> None:
    """SMTP configured without SOFTWARE_DNA_PUBLIC_URL: the server says at start that
    password reset by email cannot work, and what to set."""
    env = {k: v for k, v in mail_env(mailbox).items() if k != "SOFTWARE_DNA_PUBLIC_URL"}
    with caplog.at_level(logging.WARNING, logger="software_dna.server"), \
            InProcessServer(tmp_path / "srv", env=env):
        pass
    assert any("SOFTWARE_DNA_PUBLIC_URL" in r.getMessage() for r in caplog.records)


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
           "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": SENDER,
           "SOFTWARE_DNA_PUBLIC_URL": URL}
    with InProcessServer(tmp_path / "srv", env=env) as srv:
        client = Api.for_server(srv)
        try:
            # The confirmation mail fails too: the activation succeeds all the same.
            pid, lic = setup_license(srv, client, email="lost@example.com")
            actions = [e["action"] for e in srv.admin.audit(license_id=lic["id"])]
            assert "email_confirmation.mail_failed" in actions
            sql(srv, "UPDATE end_users SET email_confirmed_at = '2026-01-01 00:00:00'")
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
