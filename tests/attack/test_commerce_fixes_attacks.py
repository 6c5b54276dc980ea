"""Attack review, second pass: the commerce fixes (rekey, buyer address rule, bounded
template check, webhook URL rules).

The real app in this process on SQLite over its HTTP API (tests/inprocess.py), a real
SMTP sink (tests/smtp.py); the worker's delivery pass runs for real on the app's
database (tests/server/mailing.py). Each test states one invariant the documentation
promises (docs/commerce.md, docs/privacy.md) and that an attack showed broken.
"""

from __future__ import annotations

import os
import secrets
import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from software_dna.server import mailsandbox
from software_dna.server.adminclient import AdminError
from software_dna.server.config import Settings
from software_dna.server.mail import build_message
from software_dna.server.services import mail_templates
from tests.server.mailing import drain, items, mail_env
from tests.smtp import Mailbox

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("commerce-fix-attacks"),
                         env=mail_env(mailbox)) as server:
        yield server


def _bodies_to(mailbox: Mailbox, address: str) -> list[str]:
    with mailbox.lock:
        found = [m for m in mailbox.messages if address.lower() in str(m["To"]).lower()]
    out = []
    for message in found:
        parts = [p.get_content() for p in message.walk() if p.get_content_type() == "text/plain"]
        out.append("\n".join(parts))
    return out


def test_after_a_rekey_no_mail_hands_out_the_key_that_no_longer_activates(
        srv: InProcessServer, mailbox: Mailbox) -> None:
    """docs/commerce.md, "A buyer lost the key": a rekey replaces the key, "the old one
    no longer activates anything", and the new key is mailed to ``--email`` (the
    buyer), "mails once per new key". The typical case is a key mail that went to a
    wrong address or has not gone out yet: after the rekey, the server must not still
    send the replaced (dead) key to anyone.

    Found: the original ``license_key`` mail, still queued when the rekey happens, is
    neither cancelled nor updated: the worker delivers the dead key to the old (wrong)
    address, and the buyer gets two "your key" mails, one of them with a key that the
    server refuses.
    """
    pid = "rk-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    wrong = f"typo.{secrets.token_hex(4)}@example.org"
    right = f"buyer.{secrets.token_hex(4)}@example.org"
    issued = srv.admin.issue_license(pid, email=wrong)
    old_key = issued["license_key"]
    rekeyed = srv.admin.rekey_license(issued["id"], email=right)
    assert rekeyed["license_key"] != old_key
    drain(srv)
    delivered_old = [b for b in _bodies_to(mailbox, wrong) + _bodies_to(mailbox, right)
                     if old_key in b]
    assert delivered_old == [], "a mail carrying the replaced key was delivered"
    assert any(rekeyed["license_key"] in b for b in _bodies_to(mailbox, right))


@pytest.mark.parametrize("typed", ["NFD", "NFC"])
def test_a_buyer_is_found_by_the_address_however_its_accents_are_encoded(
        srv: InProcessServer, typed: str) -> None:
    """docs/commerce.md, branding: "A buyer's address is kept trimmed with the domain in
    lower case, so the address mailed to is the address ``end-users find --email``
    finds"; docs/privacy.md: access and erasure start from the address. An address
    with an accent (a valid internationalised address, accepted by the rule) reaches
    the server in NFD from one keyboard (macOS) and in NFC from another; the data
    subject request for the same person's address must find the buyer.

    Found: the normal form does not normalise Unicode: a buyer recorded as
    ``jose\u0301@example.org`` (NFD) is not found by ``jos\u00e9@example.org`` (NFC), and
    the other way round, so an access or erasure request misses the buyer.
    """
    pid = "nf-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    base = f"jos\u00e9.{secrets.token_hex(3)}@caf\u00e9.example"
    nfc, nfd = unicodedata.normalize("NFC", base), unicodedata.normalize("NFD", base)
    stored, asked = (nfd, nfc) if typed == "NFD" else (nfc, nfd)
    assert stored != asked
    try:
        issued = srv.admin.issue_license(pid, email=stored)
    except AdminError as refused:  # refusing non-ASCII addresses is a fine answer too
        assert refused.status == 400
        return
    found = srv.admin.find_end_users(asked)
    assert len(found) == 1, found
    assert srv.admin.export_end_user(found[0]["id"])["licenses"] == [issued["id"]]


def test_a_template_is_bounded_at_delivery_not_only_with_the_sample_values(
        srv: InProcessServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/commerce.md, templates: a template "is rendered with sample values when you
    save it ... That render runs in a child process with 2 seconds and 512 MB: nested
    loops, huge repetitions or padding filters beyond that are refused". A template is
    a vendor's program; its cost can depend on the values (``{% if license_key !=
    <sample> %}``), so the check with sample values bounds nothing at delivery unless
    the delivery render is bounded too.

    Found: a template whose 10**9-iteration branch is taken only when the key is not
    the sample key passes the save check; the worker then renders it in its own
    process with no bound (``mailsandbox.render`` is called in-process by
    ``mailer``): every key mail of the product ties the worker up for hours (here the
    in-process render is intercepted instead of run, so the test cannot hang).
    """
    pid = "tb-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    sample = mail_templates.TEMPLATES["license_key"].sample["license_key"]
    costly = ("{{ license_key }}{% if license_key != '" + sample + "' %}"
              "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
              "{% endfor %}{% endfor %}{% endfor %}{% endif %}")
    srv.admin.set_mail_template("license_key", product_id=pid, subject="Key",
                                text=costly, html=None)  # passes the bounded check

    unbounded: list[int] = []
    real_render = mailsandbox.render

    def intercept(template: Any, context: Any) -> Any:
        if "range(1000)" in (template.text or ""):
            unbounded.append(os.getpid())
            raise RuntimeError("intercepted: would render unbounded in the worker")
        return real_render(template, context)

    monkeypatch.setattr(mailsandbox, "render", intercept)
    issued = srv.admin.issue_license(pid, email=f"b.{secrets.token_hex(4)}@example.org")
    drain(srv)
    assert items(srv, license_id=issued["id"])
    assert unbounded == [], "the vendor template was rendered in the worker's process " \
                            "without the check's time and memory bound"


@pytest.mark.parametrize("url", ["https://exa%0d%0ample.com/hook",
                                 "https://crm\u3002example.com/hook"])
def test_an_accepted_endpoint_url_is_one_the_worker_can_call(
        srv: InProcessServer, url: str) -> None:
    """docs/commerce.md: endpoint URLs are checked when added (400 otherwise), so a
    mistyped URL is caught at once instead of failing every delivery for 27 hours.

    Found: a host with percent-encoded CR/LF (``exa%0d%0ample.com``) or an ideographic
    full stop (U+3002, not a valid IDNA label) is accepted and stored; the
    worker's HTTP client refuses the URL (``InvalidURL``) at every attempt, so every
    event to that endpoint fails for good after eight attempts.
    """
    try:
        made = srv.admin.webhook_create(url, ["license.issued"])
    except AdminError as refused:
        assert refused.status == 400
        return
    endpoint = made["endpoint"]
    stored = endpoint.get("url", url)
    srv.admin.webhook_remove(endpoint["id"])
    requests.Request("POST", stored).prepare()  # raises InvalidURL when never callable


@pytest.mark.parametrize("body", ["{{ license_key }}{{ 'x' * 50000000 }}",
                                  "{{ license_key }}{{ product_name|center(50000000) }}"])
def test_a_template_whose_mail_cannot_be_sent_is_refused_at_save(
        srv: InProcessServer, body: str) -> None:
    """docs/commerce.md, templates: a template is rendered when saved so that "a broken
    template cannot wait for a reminder to fail", and "huge repetitions (``'x' * n``)
    or padding filters (``center``, ...)" are refused. The check bounds the render's
    time and memory (512 MB) but not what it produces: a template that renders a 50 MB
    body passes, and then every delivery builds a 50 MB (HTML: a padded 150 MB is
    accepted too) MIME message in the worker's own process, several copies while
    encoding, and hands it to an SMTP server that refuses it (typical limits are 10 to
    35 MB: failed for good, the key never arrives).

    Found: both templates here are saved (200), so the key mail of the product is
    undeliverable and costs the worker hundreds of MB per attempt.
    """
    pid = "tz-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    with pytest.raises(AdminError) as refused:
        srv.admin.set_mail_template("license_key", product_id=pid, subject="Key",
                                    text=body, html=None)
    assert refused.value.status == 400


def test_the_unsubscribe_header_is_one_plain_line_for_an_idn_public_url() -> None:
    """docs/commerce.md, "One-click unsubscribe": ``List-Unsubscribe: <https://...>`` on
    one line, "never folded or encoded, however long: mail clients offer the one-click
    button only for a plain ``<https://…>``". ``SOFTWARE_DNA_PUBLIC_URL`` is accepted with
    an internationalised host; the link must then be written in its ASCII (punycode)
    form, or the setting refused.

    Found: ``https://lizenzen.bücher.example`` is accepted as is; every reminder's
    ``List-Unsubscribe`` is then RFC 2047-encoded and folded over three lines
    (``=?utf-8?q?=3Chttps=3A//lizenzen=2Eb=C3=BCcher...``), which no client offers as
    one-click unsubscribe (and RFC 8058 senders are expected to provide).
    """
    try:
        settings = Settings(public_url="https://lizenzen.b\u00fccher.example",
                            smtp_sender="licenses@acme.example")
    except ValueError:  # refusing a non-ASCII public URL is a fine answer too
        return
    assert settings.public_url is not None
    link = settings.public_url + "/v1/unsubscribe/lic_abc." + "b" * 43 + "." + "c" * 22
    message = build_message(settings, to="ada@example.org", subject="Your license ends",
                            text="Hello\n", html=None, message_id="<x@acme.example>",
                            headers={"List-Unsubscribe": f"<{link}>",
                                     "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    lines = message.as_bytes().split(b"\n")
    (header,) = [line for line in lines if line.startswith(b"List-Unsubscribe:")]
    assert header.startswith(b"List-Unsubscribe: <https://"), header
    assert header.rstrip(b"\r").endswith(b">"), header
