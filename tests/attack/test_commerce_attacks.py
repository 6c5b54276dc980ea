"""Attack review: commerce (store webhooks in, signed webhooks out, e-mails, outbox).

The real app in this process on SQLite over its HTTP API (tests/inprocess.py), a real
SMTP sink (tests/smtp.py) and a real webhook receiver that verifies every signature
with the Standard Webhooks reference library (tests/webhook_receiver.py); the worker's
delivery pass runs for real on the app's database (tests/server/mailing.py).

Each test states one invariant the documentation promises (docs/commerce.md,
docs/privacy.md) and that an attack showed broken.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import timedelta

import pytest

from software_dna.server.adminclient import AdminError
from software_dna.server.worker import Worker
from tests.server.mailing import drain, items, mail_env
from tests.smtp import Mailbox
from tests.stores_payloads import Shop, now, paddle_event, paddle_transaction
from tests.webhook_receiver import Receiver

from ..inprocess import InProcessServer

PADDLE = "pdl_ntfset_" + "Att4ckMe" * 4


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("commerce-attacks"),
                         env=mail_env(mailbox)) as server:
        yield server


@pytest.fixture
def shop(srv: InProcessServer) -> Iterator[Shop]:
    store = Shop(srv)
    yield store
    store.close()


def _address() -> str:
    return f"buyer.{secrets.token_hex(4)}@example.org"


def test_a_product_name_accepted_by_the_api_never_blocks_its_key_mails(
        srv: InProcessServer, mailbox: Mailbox) -> None:
    """The From display name is one printable line (docs/commerce.md, branding), and
    it defaults to the product's name. A product name the admin API accepts must
    therefore either be refused when it is not one printable line, or still let the
    product's mails go out: a key mail must never be stuck retrying because of it.

    Found: a product name with CR/LF is accepted (``vendor_name`` itself is checked,
    the name it defaults to is not); every mail of that product then fails to render
    (``ValueError`` on the From header) and stays pending; the buyer never gets the key.
    """
    pid = "n-" + secrets.token_hex(4)
    try:
        srv.admin.setup_product(pid, name="Acme\r\nBcc: evil@evil.example")
    except AdminError as refused:  # refusing the name is a fine answer too
        assert refused.status == 400
        return
    address = _address()
    issued = srv.admin.issue_license(pid, email=address)
    drain(srv)
    (item,) = items(srv, license_id=issued["id"])
    assert item.status == "delivered", (item.status, item.last_error)
    with mailbox.lock:
        mails = [m for m in mailbox.messages if address in str(m["To"])]
    assert len(mails) == 1
    assert "evil@evil.example" not in str(mails[0]["From"]) or "\n" not in str(mails[0]["From"])


@pytest.mark.parametrize("written", ["<{a}>", "{a}>", "Ada <{a}>"])
def test_a_buyer_address_is_stored_in_the_form_it_is_found_by(
        srv: InProcessServer, written: str) -> None:
    """A buyer's address is kept as an end user that ``end-users find --email`` finds
    (docs/privacy.md: access and erasure requests start from the address; docs/commerce.md:
    "One person buying several licenses is one end user"), and ``issue --email`` refuses
    an address that cannot be right. An address the server accepts and mails to must be
    found by that plain address, or be refused.

    Found: ``licenses issue --email '<x@example.org>'`` (and ``'x@example.org>'``) is
    accepted, stored as written and mailed to ``x@example.org``; a data subject request
    for ``x@example.org`` then finds nothing (a second end user for the same person,
    and the opt-outs and the erasure look-ups miss it).
    """
    pid = "a-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    address = _address()
    try:
        issued = srv.admin.issue_license(pid, email=written.format(a=address))
    except AdminError as refused:
        assert refused.status == 400
        return
    found = srv.admin.find_end_users(address)
    assert len(found) == 1, (written, found)
    assert srv.admin.export_end_user(found[0]["id"])["licenses"] == [issued["id"]]


def test_a_store_buyer_address_is_stored_in_the_form_it_is_found_by(shop: Shop) -> None:
    """The same invariant for an address a buyer types at the checkout (Paddle's
    ``customData.email`` is set in the browser, i.e. buyer-controlled): the license's
    buyer is found by the plain address the key was mailed to.

    Found: ``<x@example.org>`` is kept as written (the key is mailed to x@example.org),
    so ``end-users find --email x@example.org`` misses the buyer.
    """
    connector = shop.connect("paddle", PADDLE)
    product = shop.product()
    price = f"pri_{secrets.token_hex(6)}"
    shop.map(connector, price, product, subscription=True)
    address = _address()
    event = paddle_event("transaction.completed", paddle_transaction(
        price=price, subscription=f"sub_{secrets.token_hex(6)}",
        period_end=now() + timedelta(days=30), email=f"<{address}>"))
    assert shop.poster.paddle(event, PADDLE).json() == {"outcome": "issued"}
    license_id = shop.only_license(product)["id"]
    if shop.mails(license_id) == []:  # not taken as an address: nothing kept, fine
        return
    found = shop.admin.find_end_users(address)
    assert len(found) == 1, found
    assert license_id in shop.admin.export_end_user(found[0]["id"])["licenses"]


@pytest.mark.parametrize("loops", [
    "{% for i in range(6000) %}{% for j in range(6000) %}{% endfor %}{% endfor %}",
    "{% for i in range(1000) %}{% for j in range(1000) %}{% for k in range(1000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
])
def test_saving_a_template_is_bounded_in_time(srv: InProcessServer, loops: str) -> None:
    """A vendor template is trusted-ish: it must not reach Python internals, and its
    sample render at save time (and every render by the worker) must be bounded: the
    sandbox already refuses ``range(10**9)``; nested loops must not tie up a server
    thread (or the worker, at every mail of that product) for minutes.

    Found: two nested ``range(100000)`` loops are accepted by the sandbox and the PUT
    never answers (10**10 iterations, in the request thread: hours); 10000 x 10000
    takes 12 s, 6000 x 6000 about 5 s.  Both loops here must be refused (400): the
    first by the bound on ``range``, the second (10**9 iterations of allowed ranges)
    by the bounded render at save time.
    """
    pid = "t-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    with pytest.raises(AdminError) as refused:
        srv.admin.set_mail_template("license_key", product_id=pid, subject="Key",
                                    text="{{ license_key }}" + loops, html=None)
    assert refused.value.status == 400


def test_a_personal_data_endpoint_receives_the_buyers_email(shop: Shop) -> None:
    """docs/commerce.md, "Personal data": an endpoint marked ``--personal-data``
    receives the personal fields an event carries explicitly, "a store sale's buyer
    email in ``license.issued``, as ``data.email``"; other endpoints never do.

    Found: the marked endpoint's ``license.issued`` for a Paddle sale with the buyer's
    address (mailed the key) carries no ``email`` at all.
    """
    connector = shop.connect("paddle", PADDLE)
    product = shop.product()
    price = f"pri_{secrets.token_hex(6)}"
    shop.map(connector, price, product, subscription=True)
    state = shop.server.app.state.sdna
    with Receiver() as personal, Receiver() as plain:
        made = shop.admin.webhook_create(personal.url, ["license.issued"], product=product,
                                         personal_data=True)
        personal.secret = made["secret"]
        made = shop.admin.webhook_create(plain.url, ["license.issued"], product=product)
        plain.secret = made["secret"]
        address = _address()
        event = paddle_event("transaction.completed", paddle_transaction(
            price=price, subscription=f"sub_{secrets.token_hex(6)}",
            period_end=now() + timedelta(days=30), email=address))
        assert shop.poster.paddle(event, PADDLE).json() == {"outcome": "issued"}
        worker = Worker(state.ctx, state.sessions, jobs=())
        while worker.run_once():
            pass
        assert [e["type"] for e in plain.events()] == ["license.issued"]
        assert "email" not in plain.events()[0]["data"]
        assert [e["type"] for e in personal.events()] == ["license.issued"]
        assert personal.events()[0]["data"].get("email") == address


@pytest.mark.parametrize("url", ["https://crm.example.com/hook\r\nX-Injected: 1",
                                 "https://crm.example.com:0/hook"])
def test_an_endpoint_url_is_one_well_formed_url(srv: InProcessServer, url: str) -> None:
    """docs/commerce.md, "URLs": endpoint URLs are checked (scheme, host, no
    credentials). A URL with control characters (shown back by ``webhooks list`` and in
    the delivery log, sent in the request line) or with port 0 is not a URL the server
    can call: it must be refused when added, not stored.

    Found: both are accepted and stored as given.
    """
    with pytest.raises(AdminError) as refused:
        made = srv.admin.webhook_create(url, ["license.issued"])
        srv.admin.webhook_remove(made["endpoint"]["id"])
    assert refused.value.status == 400
