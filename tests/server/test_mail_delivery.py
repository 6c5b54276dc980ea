"""Mails through a real SMTP server (aiosmtpd on 127.0.0.1): key delivery, templates per
product with branding, the sandbox, SMTP failures and the retry with the same Message-ID.

The app runs in-process (tests/inprocess.py) with its admin API; the worker's e-mail
handler (services.mailer.deliver) is driven by the loop in tests/server/mailing.py.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from software_dna.server.adminclient import AdminError
from software_dna.server.models import DeliveryAttempt, License
from software_dna.server.services import emails
from software_dna.server.services.common import Context
from software_dna.server.testing import free_port

from ..inprocess import InProcessServer
from ..smtp import Mailbox
from .mailing import SENDER, drain, items, mail_env, moving_clock


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("mail"), env=mail_env(mailbox)) as server:
        yield server


def _product(srv: InProcessServer, **fields: Any) -> str:
    pid = "m-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor", **fields)
    return pid


def _address() -> str:
    return f"buyer.{secrets.token_hex(4)}@example.org"


def _mails_to(box: Mailbox, address: str) -> list[EmailMessage]:
    with box.lock:
        return [m for m in box.messages if m["To"] == address]


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def test_key_delivery(srv: InProcessServer, mailbox: Mailbox) -> None:
    pid = _product(srv)
    address = _address()
    issued = srv.admin.issue_license(pid, seats=2, email=address)
    key = issued["license_key"]
    (queued,) = items(srv, license_id=issued["id"])
    assert queued.topic == "license_key" and queued.status == "pending"
    assert key.encode() not in (queued.payload or b"")  # encrypted in the outbox

    attempts = drain(srv)
    assert [a.outcome.delivered for a in attempts] == [True]
    (mail,) = _mails_to(mailbox, address)
    assert mail.get_content_type() == "multipart/alternative"
    text, html = _parts(mail)
    assert key in text and key in html
    assert mail["Subject"] == "Your license key for Acme Editor"
    assert mail["Message-ID"] == f"<{queued.id}@vendor.example>"
    assert mail["List-Unsubscribe"] is None and mail["List-Unsubscribe-Post"] is None
    assert SENDER in mail["From"]

    # Nothing twice: another pass sends nothing; the payload (the key) is dropped.
    assert drain(srv) == []
    assert len(_mails_to(mailbox, address)) == 1
    (done,) = items(srv, license_id=issued["id"])
    assert done.status == "delivered" and done.payload is None

    # The sent log shows it, with the address (personal data for the vendor).
    (entry,) = srv.admin.mail_log(license_id=issued["id"])
    assert entry["id"] == queued.id and entry["template"] == "license_key"
    assert entry["status"] == "delivered" and entry["to"] == address
    assert entry["sent_at"] is not None
    # The buyer is an end user: found by the address, the license in the export.
    (buyer,) = srv.admin.find_end_users(address)
    exported = srv.admin.export_end_user(buyer["id"])
    assert exported["email"] == address and exported["licenses"] == [issued["id"]]
    assert [m["to"] for m in exported["mails"]] == [address]
    # The audit log says a key was mailed, not to whom.
    entries = srv.admin.audit(license_id=issued["id"])
    assert address not in str(entries)


def test_issue_refuses_a_bad_address(srv: InProcessServer) -> None:
    pid = _product(srv)
    for bad in ("not-an-address", "a@b", "x" * 300 + "@example.org"):
        with pytest.raises(AdminError) as refused:
            srv.admin.issue_license(pid, email=bad)
        assert refused.value.status == 400
    assert srv.admin.list_licenses(pid) == []


def test_templates_per_product_with_branding(srv: InProcessServer, mailbox: Mailbox) -> None:
    branded = _product(srv, branding={"vendor_name": "Acme Ltd",
                                      "support_email": "help@acme.example",
                                      "logo_url": "https://acme.example/logo.png",
                                      "colour": "#aa3300",
                                      "privacy_url": "https://acme.example/privacy"})
    plain = _product(srv)
    saved = srv.admin.set_mail_template(
        "license_key", product_id=branded, subject="{{ vendor_name }}: key for {{ product_name }}",
        text="Key {{ license_key }} from {{ vendor_name }}. Help: {{ support_email }}\n",
        html="<p style=\"color:{{ colour }}\">Key <b>{{ license_key }}</b></p>"
             "<img src=\"{{ logo_url }}\">")
    assert saved["source"] == "product"
    assert srv.admin.get_mail_template("license_key", plain)["source"] == "builtin"
    listed = {t["name"]: t for t in srv.admin.list_mail_templates(branded)["templates"]}
    assert listed["license_key"]["source"] == "product"
    assert listed["license_key"]["unsubscribable"] is False
    assert listed["expiry_reminder"]["unsubscribable"] is True

    a, b = _address(), _address()
    key_a = srv.admin.issue_license(branded, email=a)["license_key"]
    key_b = srv.admin.issue_license(plain, email=b)["license_key"]
    drain(srv)
    (mail_a,) = _mails_to(mailbox, a)
    (mail_b,) = _mails_to(mailbox, b)
    assert mail_a["Subject"] == "Acme Ltd: key for Acme Editor"
    assert mail_a["From"].startswith("Acme Ltd") and SENDER in mail_a["From"]
    assert mail_a["Reply-To"] == "help@acme.example"
    text, html = _parts(mail_a)
    assert f"Key {key_a} from Acme Ltd. Help: help@acme.example" in text
    assert "color:#aa3300" in html and "https://acme.example/logo.png" in html
    assert mail_b["Subject"] == "Your license key for Acme Editor"
    assert key_b in _parts(mail_b)[0]

    # A vendor default applies to every product without its own; reset restores.
    srv.admin.set_mail_template("license_key", subject="Default {{ product_name }}",
                                text="{{ license_key }}\n", html=None)
    assert srv.admin.get_mail_template("license_key", plain)["source"] == "vendor"
    assert srv.admin.get_mail_template("license_key", branded)["source"] == "product"
    preview = srv.admin.preview_mail_template("license_key", plain)
    assert preview["subject"] == "Default Acme Editor" and preview["html"] is None
    assert srv.admin.reset_mail_template("license_key")["source"] == "builtin"
    assert srv.admin.reset_mail_template("license_key", branded)["source"] == "builtin"


@pytest.mark.parametrize("source", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ license_key.__class__.__base__ }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
    "{{ unknown_variable }}",
    "{% if %}",
    "{{ range(10**9) | list }}",
])
def test_the_sandbox_refuses_reaching_out(srv: InProcessServer, source: str) -> None:
    pid = _product(srv)
    for part in ("subject", "text", "html"):
        body = {"subject": "Key", "text": "{{ license_key }}\n", "html": "<p>ok</p>"}
        body[part] = source
        with pytest.raises(AdminError) as refused:
            srv.admin.set_mail_template("license_key", product_id=pid, **body)
        assert refused.value.status == 400 and refused.value.code == "invalid_request"
    assert srv.admin.get_mail_template("license_key", pid)["source"] == "builtin"


def test_html_is_escaped_and_text_is_not(srv: InProcessServer) -> None:
    pid = _product(srv, branding={"vendor_name": "Tom & Jerry <Tools>"})
    shown = srv.admin.preview_mail_template("license_key", pid,
                                            {"license_key": "<script>x</script>"})
    assert "<script>" not in shown["html"] and "&lt;script&gt;" in shown["html"]
    assert "Tom &amp; Jerry &lt;Tools&gt;" in shown["html"]
    assert "<script>x</script>" in shown["text"] and "Tom & Jerry <Tools>" in shown["text"]


def test_unknown_template_and_product(srv: InProcessServer) -> None:
    with pytest.raises(AdminError) as unknown:
        srv.admin.get_mail_template("no_such_mail")
    assert unknown.value.status == 404
    with pytest.raises(AdminError) as no_product:
        srv.admin.get_mail_template("license_key", "no-such-product")
    assert no_product.value.status == 404
    with pytest.raises(AdminError) as bad_name:
        srv.admin.get_mail_template("../etc")
    assert bad_name.value.status in (400, 404, 422) and bad_name.value.status != 500


class _Flaky:
    """An SMTP handler that answers 451 to the first ``failures`` messages, then accepts;
    and 550 at RCPT for ``refused`` addresses. Keeps every Message-ID it saw."""

    def __init__(self, failures: int, refused: tuple[str, ...] = ()) -> None:
        self.failures = failures
        self.refused = refused
        self.seen: list[str] = []
        self.accepted: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address in self.refused:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        text = envelope.content.decode("utf-8", "replace")
        message_id = next(line.split(":", 1)[1].strip() for line in text.splitlines()
                          if line.lower().startswith("message-id:"))
        self.seen.append(message_id)
        if len(self.seen) <= self.failures:
            return "451 4.3.0 Try again later"
        self.accepted.append(message_id)
        return "250 Accepted"


def _ctx_on(srv: InProcessServer, **settings: Any) -> Context:
    ctx: Context = srv.app.state.sdna.ctx
    return dataclasses.replace(ctx, settings=ctx.settings.model_copy(update=settings))


def test_smtp_failure_is_retried_with_the_same_message_id(srv: InProcessServer) -> None:
    flaky = _Flaky(failures=2)
    port = free_port()
    controller = Controller(flaky, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ctx = _ctx_on(srv, smtp_port=port)
        pid = _product(srv)
        address = _address()
        with moving_clock() as clock:
            issued = srv.admin.issue_license(pid, email=address)
            (first,) = drain(srv, ctx)
            assert not first.outcome.delivered and not first.outcome.permanent
            assert first.outcome.status_code == 451
            assert drain(srv, ctx) == []  # not due before the back-off
            clock.advance(seconds=6)
            (second,) = drain(srv, ctx)
            assert not second.outcome.delivered
            clock.advance(seconds=301)
            (third,) = drain(srv, ctx)
            assert third.outcome.delivered
            clock.advance(days=2)
            assert drain(srv, ctx) == []
        (item,) = items(srv, license_id=issued["id"])
        assert flaky.seen == [f"<{item.id}@vendor.example>"] * 3
        assert flaky.accepted == flaky.seen[-1:]
        assert item.status == "delivered" and item.attempts == 3
        with srv.app.state.sdna.sessions() as session:
            log = session.query(DeliveryAttempt).filter_by(item_id=item.id).all()
        assert [a.outcome for a in log] == ["failed", "failed", "delivered"]
        assert all(address not in (a.error or "") for a in log)
    finally:
        controller.stop()


def test_refused_recipient_is_permanent(srv: InProcessServer) -> None:
    address = _address()
    handler = _Flaky(failures=0, refused=(address,))
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        ctx = _ctx_on(srv, smtp_port=port)
        issued = srv.admin.issue_license(_product(srv), email=address)
        (attempt,) = drain(srv, ctx)
        assert attempt.outcome.permanent and attempt.outcome.status_code == 550
        assert address not in (attempt.outcome.error or "")
        (item,) = items(srv, license_id=issued["id"])
        assert item.status == "failed"
    finally:
        controller.stop()


def test_no_smtp_server_keeps_the_mail(srv: InProcessServer, mailbox: Mailbox) -> None:
    address = _address()
    issued = srv.admin.issue_license(_product(srv), email=address)
    with moving_clock() as clock:
        (off,) = drain(srv, _ctx_on(srv, smtp_host=None))
        assert not off.outcome.delivered and not off.outcome.permanent
        assert off.outcome.error == "no SMTP server configured"
        clock.advance(seconds=6)
        (closed,) = drain(srv, _ctx_on(srv, smtp_port=free_port()))
        assert not closed.outcome.delivered and not closed.outcome.permanent
        clock.advance(seconds=301)
        (sent,) = drain(srv)
        assert sent.outcome.delivered
    (item,) = items(srv, license_id=issued["id"])
    assert len(_mails_to(mailbox, address)) == 1
    (mail,) = _mails_to(mailbox, address)
    assert mail["Message-ID"] == f"<{item.id}@vendor.example>"


def test_key_delivery_ignores_opt_outs(srv: InProcessServer, mailbox: Mailbox) -> None:
    address = _address()
    issued = srv.admin.issue_license(_product(srv), email=address)
    drain(srv)
    state = srv.app.state.sdna
    token = emails.unsubscribe_token(state.ctx, issued["id"], state.ctx.vault.email_index(address))
    with state.sessions() as session:
        assert emails.unsubscribe(session, state.ctx, token) is True
        # Another key mail for the same license (a vendor's re-send) still goes out.
        emails.queue_mail(session, state.ctx, template="license_key", recipient=address,
                          product_id=issued["product"], license_id=issued["id"],
                          context={"license_key": "KEY-AGAIN", "license_id": issued["id"],
                                   "seats": 1, "expires_at": None, "features": []})
        session.commit()
    (again,) = drain(srv)
    assert again.outcome.delivered
    assert "KEY-AGAIN" in _parts(_mails_to(mailbox, address)[-1])[0]


def test_product_mail_settings(srv: InProcessServer) -> None:
    pid = _product(srv)
    shown = srv.admin.get_product(pid)
    assert shown["payment_grace_days"] == 14 and shown["reminder_days"] == [7, 3, 1]
    assert shown["branding"] == {}
    changed = srv.admin.update_product(pid, payment_grace_days=3, reminder_days=[1, 14, 5],
                                       branding={"vendor_name": "Acme", "colour": "#00FF00"})
    assert changed["payment_grace_days"] == 3 and changed["reminder_days"] == [14, 5, 1]
    assert changed["branding"] == {"vendor_name": "Acme", "colour": "#00FF00"}
    assert srv.admin.update_product(pid, reminder_days=[])["reminder_days"] == []
    for bad in ({"reminder_days": [0]}, {"reminder_days": [366]}, {"reminder_days": [3, 3]},
                {"reminder_days": list(range(1, 12))}, {"reminder_days": ["7"]},
                {"payment_grace_days": -1}, {"payment_grace_days": 366},
                {"branding": {"logo_url": "http://acme.example/logo.png"}},
                {"branding": {"logo_url": "javascript:alert(1)"}},
                {"branding": {"privacy_url": "https://a b"}},
                {"branding": {"colour": "red"}}, {"branding": {"colour": "#12345"}},
                {"branding": {"support_email": "nobody"}},
                {"branding": {"support_email": "a@b.c\r\nBcc: x@y.z"}},
                {"branding": {"vendor_name": "x\ny"}},
                {"branding": {"unknown": "x"}}):
        with pytest.raises(AdminError) as refused:
            srv.admin.update_product(pid, **bad)
        assert 400 <= refused.value.status < 500, bad
    assert srv.admin.get_product(pid)["branding"] == {"vendor_name": "Acme",
                                                      "colour": "#00FF00"}
    made = srv.admin.create_product("m-" + secrets.token_hex(4), reminder_days=[30],
                                    branding={"support_email": "s@acme.example"})
    assert made["reminder_days"] == [30] and made["branding"] == {"support_email":
                                                                  "s@acme.example"}



def test_without_a_public_url_reminders_have_no_unsubscribe_header(
        tmp_path: Any, mailbox: Mailbox, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="software_dna.server"), \
            InProcessServer(tmp_path / "srv", env=mail_env(mailbox, public_url=False)) as bare:
        assert any("List-Unsubscribe" in r.getMessage() for r in caplog.records)
        address = _address()
        pid = _product(bare)
        state = bare.app.state.sdna
        with moving_clock() as clock:
            bare.admin.issue_license(pid, expires_at=clock() + timedelta(days=3), email=address)
            with state.sessions() as session:
                assert emails.queue_reminders(session, state.ctx, clock()) == 1
            assert [a.outcome.delivered for a in drain(bare)] == [True, True]
    reminder = next(m for m in _mails_to(mailbox, address) if "ends in" in str(m["Subject"]))
    assert reminder["List-Unsubscribe"] is None and reminder["List-Unsubscribe-Post"] is None
    assert "unsubscribe" not in _parts(reminder)[0].lower()


def test_payment_failed_notice(srv: InProcessServer, mailbox: Mailbox) -> None:
    pid = _product(srv)
    srv.admin.update_product(pid, payment_grace_days=5)
    address = _address()
    issued = srv.admin.issue_license(pid, email=address)
    state = srv.app.state.sdna
    with moving_clock() as clock, state.sessions() as session:
        lic = session.get(License, issued["id"])
        assert lic is not None
        lic.payment_failed_at = clock()
        assert emails.queue_payment_failed(session, state.ctx, lic) == 1
        assert emails.queue_payment_failed(session, state.ctx, lic) == 0  # once per failure
        session.commit()
        suspend_at = emails.format_time(clock() + timedelta(days=5))
    drain(srv)
    (notice,) = [m for m in _mails_to(mailbox, address) if "Payment failed" in str(m["Subject"])]
    text, html = _parts(notice)
    assert "Payment failed" in html
    assert f"before {suspend_at}" in text and "after 5 days" in text
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
