"""Two-step sign-in (TOTP, RFC 6238) in the panel: enrol, confirm, sign in, limits, turn off."""

from __future__ import annotations

import base64
import re
import time

import requests
from cryptography.hazmat.primitives.hashes import SHA1
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from software_dna.server.domain.roles import Role
from software_dna.server.models import AuditEntry, StaffMember, StaffSession
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PASSWORD, PanelUser, add_staff, csrf_of, db


def _code(secret: str, at: float | None = None) -> str:
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    totp = TOTP(key, 6, SHA1(), 30, enforce_key_length=True)
    return totp.generate(time.time() if at is None else at).decode()


def _enrol(user: PanelUser) -> tuple[str, str]:
    """Turn two-step sign-in on for a signed-in user; returns the secret and the code that
    confirmed it."""
    assert user.post("/panel/account/totp/begin").status_code == 303
    page = user.get("/panel/account").text
    found = re.search(r"<code>([A-Z2-7]{32})</code>", page)
    assert found is not None, page
    secret = found.group(1)
    assert "otpauth://totp/" in page and "issuer=" in page
    wrong = user.post("/panel/account/totp/confirm",
                      {"code": "000000" if _code(secret) != "000000" else "111111"})
    assert wrong.status_code == 400 and "That code is wrong" in wrong.text
    confirming = _code(secret)
    assert user.post("/panel/account/totp/confirm", {"code": confirming}).status_code == 303
    return secret, confirming


def _password_step(server: InProcessServer, email: str) -> requests.Session:
    http = server.session()
    answer = http.post(server.url + "/panel/sign-in", data={
        "email": email, "password": PASSWORD, "next": "/panel/account"}, allow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/panel/sign-in/code")
    return http


def test_enrol_then_sign_in_needs_the_code_once(inprocess_server: InProcessServer) -> None:
    email = add_staff(inprocess_server, Role.SUPPORT)
    with PanelUser(inprocess_server, email) as user:
        user.sign_in()
        assert "Set up two-step sign-in" in user.get("/panel/account").text
        secret, confirming = _enrol(user)
        assert "<strong>On</strong>" in user.get("/panel/account").text
    with db(inprocess_server) as session:
        row = session.query(StaffMember).filter_by(email=email).one()
        assert row.totp_confirmed_at is not None and row.totp_sealed is not None
        assert base64.b32decode(secret) not in row.totp_sealed  # sealed, not in clear

    http = _password_step(inprocess_server, email)
    url = inprocess_server.url
    # The half-signed-in session reaches nothing but the code page.
    for path in ("/panel/", "/panel/account", "/panel/account/password"):
        answer = http.get(url + path, allow_redirects=False)
        assert answer.status_code == 303 and answer.headers["location"] == "/panel/sign-in/code"
    page = http.get(url + "/panel/sign-in/code?next=/panel/account", allow_redirects=False)
    assert page.status_code == 200 and "6-digit code" in page.text
    csrf = csrf_of(page.text)
    # A form post of another page with this session's CSRF token changes nothing.
    answer = http.post(url + "/panel/account/totp/disable",
                       data={"csrf": csrf, "password": PASSWORD}, allow_redirects=False)
    assert answer.status_code == 403 or answer.headers["location"] == "/panel/sign-in/code"
    # No CSRF token, a forged one: refused.
    for forged in ("", "0" * 64):
        answer = http.post(url + "/panel/sign-in/code",
                           data={"csrf": forged, "code": _code(secret, time.time() + 30)},
                           allow_redirects=False)
        assert answer.status_code == 403
    # The code used to confirm the enrolment does not work again (that very code: one
    # computed now may be the next 30-second step's, unused, on a slow run).
    used = http.post(url + "/panel/sign-in/code", data={"csrf": csrf, "code": confirming,
                                                        "next": "/panel/account"},
                     allow_redirects=False)
    assert used.status_code == 400 and "wrong or was used" in used.text
    good = _code(secret, time.time() + 30)
    done = http.post(url + "/panel/sign-in/code",
                     data={"csrf": csrf, "code": good, "next": "/panel/account"},
                     allow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/panel/account"
    assert http.get(url + "/panel/account", allow_redirects=False).status_code == 200
    # A second browser replaying the same code is refused.
    other = _password_step(inprocess_server, email)
    replay = other.post(url + "/panel/sign-in/code",
                        data={"csrf": csrf_of(other.get(url + "/panel/sign-in/code").text),
                              "code": good}, allow_redirects=False)
    assert replay.status_code == 400
    with db(inprocess_server) as session:
        actions = [e.action for e in session.query(AuditEntry).filter(
            AuditEntry.action.like("staff.%")).order_by(AuditEntry.id)]
        assert "staff.totp_on" in actions and "staff.second_factor" in actions
        assert "staff.second_factor_failed" in actions


def test_wrong_codes_are_limited_and_end_the_session(inprocess_server: InProcessServer) -> None:
    email = add_staff(inprocess_server, Role.READ_ONLY)
    with PanelUser(inprocess_server, email) as user:
        user.sign_in()
        secret, _ = _enrol(user)  # one wrong and one good confirmation attempt counted
    http = _password_step(inprocess_server, email)
    url = inprocess_server.url
    csrf = csrf_of(http.get(url + "/panel/sign-in/code").text)
    wrong = "123456" if _code(secret) != "123456" else "654321"
    limit = inprocess_server.settings.panel_sign_in_attempts
    statuses = [http.post(url + "/panel/sign-in/code", data={"csrf": csrf, "code": wrong},
                          allow_redirects=False).status_code for _ in range(limit)]
    # The limit counts the two confirmation attempts too; past it, the session is gone.
    assert 429 in statuses, statuses
    cut = statuses.index(429)
    assert cut >= limit - 3 and set(statuses[:cut]) == {400}
    assert set(statuses[cut + 1:]) <= {403}
    with db(inprocess_server) as session:
        member = session.query(StaffMember).filter_by(email=email).one()
        assert session.query(StaffSession).filter_by(staff_id=member.id,
                                                     second_factor_due=True).count() == 0
    # Even the right code no longer helps that browser: it must sign in again.
    late = http.post(url + "/panel/sign-in/code",
                     data={"csrf": csrf, "code": _code(secret, time.time() + 30)},
                     allow_redirects=False)
    assert late.status_code == 403


def test_turning_it_off_needs_the_password(inprocess_server: InProcessServer) -> None:
    email = add_staff(inprocess_server, Role.DEVELOPER)
    with PanelUser(inprocess_server, email) as user:
        user.sign_in()
        _enrol(user)
        wrong = user.post("/panel/account/totp/disable", {"password": "not my password!!"})
        assert wrong.status_code == 400 and "password is wrong" in wrong.text
        done = user.post("/panel/account/totp/disable", {"password": PASSWORD})
        assert done.status_code == 303
        assert "Set up two-step sign-in" in user.get("/panel/account").text
    with PanelUser(inprocess_server, email) as again:  # no code asked any more
        assert again.sign_in().headers["location"] == "/panel/"


def test_account_page_shows_who_and_what(inprocess_server: InProcessServer,
                                         staff_emails: dict[Role, str]) -> None:
    with PanelUser(inprocess_server, staff_emails[Role.DEVELOPER]) as user:
        user.sign_in()
        page = user.get("/panel/account").text
        assert staff_emails[Role.DEVELOPER] in page and "developer" in page
        assert "personal data" not in page  # the developer role does not allow it
        assert 'href="/panel/account/password"' in page
