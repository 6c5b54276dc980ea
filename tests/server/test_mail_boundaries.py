"""What crosses the mail boundary: header lines, addresses, template costs, the term and
day counts a mail states (docs/commerce.md, "E-mails").

The app runs in-process on SQLite (tests/inprocess.py) with a real SMTP server (aiosmtpd,
tests/smtp.py); the worker's e-mail pass runs for real (tests/server/mailing.py).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server.adminclient import AdminError
from software_dna.server.mail import build_message, send_message
from software_dna.server.models import License, OutboxItem, Product
from software_dna.server.services import emails, events, outbox
from software_dna.server.services.common import utcnow
from software_dna.server.services.endusers import normal_email

from ..inprocess import InProcessServer
from ..smtp import Mailbox
from .helpers import Api
from .mailing import drain, items, mail_env, moving_clock


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("mail-boundaries"),
                         env=mail_env(mailbox)) as server:
        yield server


def _product(srv: InProcessServer, **fields: Any) -> str:
    pid = "b-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, **fields)
    return pid


def _address() -> str:
    return f"buyer.{secrets.token_hex(4)}@example.org"


def _mails_to(box: Mailbox, address: str) -> list[EmailMessage]:
    with box.lock:
        return [m for m in box.messages if m["To"] == address]


def _raw_to(box: Mailbox, address: str) -> list[bytes]:
    with box.lock:
        return [raw for raw in box.raw if f"To: {address}".encode() in raw]


def _text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


# -- header lines


@pytest.mark.parametrize("name", ["Acme\r\nBcc: evil@evil.example", "Acme\u2028Ltd", "A\x00B"])
def test_product_names_are_one_printable_line(srv: InProcessServer, name: str) -> None:
    """A product name is the default From display name: one with a control character
    or a line break is refused at creation and at every change."""
    with pytest.raises(AdminError) as refused:
        srv.admin.create_product("c-" + secrets.token_hex(4), name=name)
    assert refused.value.status == 400
    pid = _product(srv, name="Fine Name")
    with pytest.raises(AdminError) as refused:
        srv.admin.update_product(pid, name=name)
    assert refused.value.status == 400
    (row,) = [p for p in srv.admin.list_products() if p["id"] == pid]
    assert row["name"] == "Fine Name"


def test_a_stored_name_with_line_breaks_still_mails_the_key(
        srv: InProcessServer, mailbox: Mailbox) -> None:
    """Whatever the display name (a row written before names were checked), the From
    header is one line and the key mail goes out."""
    pid = _product(srv)
    state = srv.app.state.sdna
    with state.sessions() as session:
        product = session.get(Product, pid)
        assert product is not None
        product.name = "Acme\r\nBcc: evil@evil.example\x07"
        session.commit()
    address = _address()
    issued = srv.admin.issue_license(pid, email=address)
    drain(srv)
    (item,) = items(srv, license_id=issued["id"])
    assert item.status == "delivered", item.last_error
    (mail,) = _mails_to(mailbox, address)
    assert mail["Bcc"] is None
    assert str(mail["From"]).startswith('"Acme Bcc: evil@evil.example"')
    (raw,) = _raw_to(mailbox, address)
    (line,) = [x for x in raw.split(b"\r\n") if x.startswith(b"From:")]
    assert b"Acme Bcc" in line


def test_a_long_unsubscribe_link_is_one_plain_line(mailbox: Mailbox, srv: InProcessServer
                                                   ) -> None:
    """List-Unsubscribe is ``<URL>`` on one line however long the URL (mail clients offer
    the one-click button only for that), through a real SMTP conversation."""
    settings = srv.app.state.sdna.ctx.settings
    link = "https://licenses.example.com/v1/unsubscribe/" + "lic_" + "A" * 40 + "." \
        + "b" * 43 + "." + "c" * 22
    assert len(link) > 78
    address = _address()
    message = build_message(settings, to=address, subject="Your license ends soon " * 6,
                            text="Hello\n", html=None, message_id="<x1@vendor.example>",
                            sender_name="Acme", headers={
                                "List-Unsubscribe": f"<{link}>",
                                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    send_message(settings, message)
    mailbox.wait_for(1)
    (raw,) = _raw_to(mailbox, address)
    lines = raw.split(b"\r\n")
    assert f"List-Unsubscribe: <{link}>".encode() in lines
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in lines
    (mail,) = _mails_to(mailbox, address)
    assert mail["List-Unsubscribe"] == f"<{link}>"
    # Other headers still fold as usual (the subject is longer than a line).
    assert all(len(x) <= 998 for x in lines)
    assert " ".join(str(mail["Subject"]).split()) == " ".join(("Your license ends soon " * 6
                                                               ).split())


# -- addresses


def test_the_address_rule() -> None:
    assert normal_email("  Ada.Lovelace@Example.ORG ") == "Ada.Lovelace@example.org"
    assert normal_email("x+tag@sub.example.com") == "x+tag@sub.example.com"
    for bad in ("<x@example.org>", "x@example.org>", "Ada <x@example.org>", "x@example.org,",
                '"x"@example.org', "x y@example.org", "x@exa mple.org", "x@example.org\x00",
                "(c)x@example.org", "x@[127.0.0.1]", "x;y@example.org", "x\\y@example.org",
                "a@b", "x" * 250 + "@example.org"):
        assert normal_email(bad) is None, bad


def test_a_buyer_is_kept_and_mailed_in_the_normal_form(
        srv: InProcessServer, mailbox: Mailbox) -> None:
    pid = _product(srv)
    local = f"Buyer.{secrets.token_hex(4)}"
    issued = srv.admin.issue_license(pid, email=f" {local}@Example.ORG ")
    drain(srv)
    assert len(_mails_to(mailbox, f"{local}@example.org")) == 1
    (found,) = srv.admin.find_end_users(f"{local}@example.org")
    exported = srv.admin.export_end_user(found["id"])
    assert exported["email"] == f"{local}@example.org"
    assert exported["licenses"] == [issued["id"]]
    # The same person buying again is the same end user, however the domain is written.
    again = srv.admin.issue_license(pid, email=f"{local}@EXAMPLE.org")
    (same,) = srv.admin.find_end_users(f"{local}@example.org")
    assert same["id"] == found["id"]
    assert sorted(srv.admin.export_end_user(same["id"])["licenses"]) == sorted(
        [issued["id"], again["id"]])


def test_an_activation_address_follows_the_rule(srv: InProcessServer) -> None:
    """The address an end user gives at activation is refused (400, no seat taken) when
    it is not a bare address; a good one is kept as typed and found by any case."""
    pid = _product(srv)
    key = srv.admin.issue_license(pid)["license_key"]
    api = Api.for_server(srv)
    try:
        local = f"Eve.{secrets.token_hex(4)}"
        refused = api.activate(pid, key, machine="m1", email=f"<{local}@example.org>",
                               consent=True)
        assert refused.status_code == 400, refused.text
        assert srv.admin.find_end_users(f"{local}@example.org") == []
        made = api.activate(pid, key, machine="m1", email=f"{local}@Example.org",
                            consent=True)
        assert made.status_code in (200, 201), made.text
        (person,) = srv.admin.find_end_users(f"{local.lower()}@example.org")
        assert srv.admin.export_end_user(person["id"])["email"] == f"{local}@Example.org"
    finally:
        api.close()


# -- templates


@pytest.mark.parametrize("source", [
    "{% for i in range(1001) %}{% endfor %}",
    "{{ 'x' * 2000000000 }}",
    "{{ 'x'|center(2000000000) }}",
    "{% for i in range(1000) %}{% for j in range(1000) %}{{ 'x'|center(1000) }}"
    "{% endfor %}{% endfor %}",
])
def test_costly_templates_are_refused_when_saved(srv: InProcessServer, source: str) -> None:
    pid = _product(srv)
    with pytest.raises(AdminError) as refused:
        srv.admin.set_mail_template("license_key", product_id=pid, subject="Key",
                                    text="{{ license_key }}" + source, html=None)
    assert refused.value.status == 400
    assert srv.admin.get_mail_template("license_key", pid)["source"] == "builtin"


def test_a_saved_template_keeps_its_trailing_newline(srv: InProcessServer,
                                                    mailbox: Mailbox) -> None:
    pid = _product(srv)
    text = "Key: {{ license_key }}\n\n-- \n{{ vendor_name }}\n"
    srv.admin.set_mail_template("license_key", product_id=pid, subject="Key", text=text,
                                html=None)
    assert srv.admin.get_mail_template("license_key", pid)["text"] == text
    address = _address()
    srv.admin.issue_license(pid, email=address)
    drain(srv)
    (mail,) = _mails_to(mailbox, address)
    assert _text(mail).endswith(f"\n-- \n{pid}\n")


def test_the_key_mail_states_the_term(srv: InProcessServer, mailbox: Mailbox) -> None:
    """The key mail says how long the license runs: never "for ever" for a license
    that ends N days after its first activation."""
    pid = _product(srv)
    cases: dict[str, dict[str, Any]] = {
        "perpetual": {},
        "until 2031-05-06 07:08 UTC": {"expires_at": "2031-05-06T07:08:00Z"},
        "30 days from the first activation": {"expires_after_days": 30},
    }
    for term, fields in cases.items():
        address = _address()
        srv.admin.issue_license(pid, email=address, **fields)
        drain(srv)
        (mail,) = _mails_to(mailbox, address)
        text = _text(mail)
        assert f"Valid: {term}\n" in text, text
        assert "for ever" not in text
        html = mail.get_body(("html",))
        assert html is not None and f"Valid: {term}" in str(html.get_content())
        # No vendor name: the product is named once, not "from <product>" as well.
        assert f"buying {pid}." in text and f"from {pid}" not in text


def test_a_subscription_key_mail_says_it_renews() -> None:
    lic = License(subscription=True, duration_days=None, expires_at=None)
    assert emails.license_term(lic) == "renews each period"
    lic = License(subscription=False, duration_days=1, expires_at=None)
    assert emails.license_term(lic) == "1 day from the first activation"


# -- day counts


def test_the_reminder_and_the_webhook_count_days_alike(srv: InProcessServer) -> None:
    """At one moment, the reminder's "in N days" and ``license.expiring``'s ``days_left``
    are the same number (a started day counted whole)."""
    state = srv.app.state.sdna
    with moving_clock() as clock:
        pid = _product(srv, reminder_days=[7, 3, 1])
        srv.admin.webhook_create("https://crm.example.com/hook", ["license.expiring"],
                                 product=pid)
        address = _address()
        issued = srv.admin.issue_license(pid, email=address,
                                         expires_at=clock() + timedelta(days=1, hours=12))
        now = clock()
        with state.sessions() as session:
            emails.queue_reminders(session, state.ctx, now)
            events.expiry_events(session, state.ctx, now)
        with state.sessions() as session:
            queued = list(session.scalars(select(OutboxItem).where(
                OutboxItem.license_id == issued["id"])))
            mail = [outbox.payload_of(state.ctx, i) for i in queued
                    if i.channel == outbox.EMAIL and i.topic == "expiry_reminder"]
            hooks = [outbox.payload_of(state.ctx, i) for i in queued
                     if i.channel != outbox.EMAIL and i.topic == "license.expiring"]
    assert len(mail) == 1 and len(hooks) == 1, (mail, hooks)
    assert mail[0]["context"]["days_left"] == 2
    assert hooks[0]["data"]["days_left"] == 2
    start = now
    for hours, expected in ((0.5, 1), (24, 1), (24.01, 2), (24 * 7, 7), (24 * 6.5, 7)):
        assert events.days_left(start + timedelta(hours=hours), start) == expected
    assert events.days_left(start - timedelta(hours=1), start) == 0


@pytest.mark.parametrize(("given", "shown"), [
    ("https://billing.example/update?s=abc", True), ("javascript:alert(1)", False),
    ("https://billing.example/a b", False), (None, False)])
def test_payment_failed_links_the_billing_page(srv: InProcessServer, mailbox: Mailbox,
                                               given: str | None, shown: bool) -> None:
    """The payment_failed notice links the store's page to update the payment method
    when the event carried an https:// one, and nothing else."""
    pid = _product(srv)
    address = _address()
    issued = srv.admin.issue_license(pid, email=address)
    state = srv.app.state.sdna
    with state.sessions() as session:
        lic = session.get(License, issued["id"])
        assert lic is not None
        lic.payment_failed_at = utcnow()
        assert emails.queue_payment_failed(session, state.ctx, lic, billing_url=given) == 1
        session.commit()
    drain(srv)
    (notice,) = [m for m in _mails_to(mailbox, address) if "Payment" in str(m["Subject"])
                 or "payment" in str(m["Subject"])]
    text = _text(notice)
    html = notice.get_body(("html",))
    assert html is not None
    if shown:
        assert given is not None
        assert f"Update them here: {given}\n" in text
        assert 'href="https://billing.example/update?s=abc"' in str(html.get_content())
    else:
        assert "Update them here" not in text
        assert "billing.example" not in text and "javascript" not in str(html.get_content())
