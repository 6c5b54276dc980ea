"""A sale from end to end, every part real: a signed Stripe checkout reaches the license
server (``software-dna server run``, whose worker thread delivers the outbox), the key is
mailed through a real SMTP server, the vendor's receiver is told with signed webhooks,
and the mailed key activates the buyer's app."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from software_dna import LicenseClient
from software_dna.server.testing import LocalServer, free_port

from .smtp import Mailbox
from .stores_payloads import dumps, stripe_checkout, stripe_event, stripe_headers
from .webhook_receiver import Receiver

BUYER = "ada.buyer@example.com"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[tuple[LocalServer, Mailbox, Receiver, Receiver]]:
    with Mailbox() as box, Receiver() as receiver, Receiver() as crm:
        port = free_port()
        server = LocalServer(tmp_path / "server", port=port, env={
            "SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(box.port),
            "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": "keys@vendor.example",
            "SOFTWARE_DNA_PUBLIC_URL": f"http://127.0.0.1:{port}"})
        server.start()
        try:
            yield server, box, receiver, crm
        finally:
            server.close()


def test_a_stripe_sale_mails_a_key_that_activates_and_tells_the_vendor(
        shop: tuple[LocalServer, Mailbox, Receiver, Receiver], tmp_path: Path) -> None:
    server, box, receiver, crm = shop
    admin = server.admin
    product = "p-" + secrets.token_hex(4)
    keys = admin.setup_product(product, name="Acme Editor", features=["pro"])
    whsec = "whsec_" + secrets.token_hex(16)
    connector = admin.connect_store("stripe", whsec)
    admin.map_price(connector["id"], "price_pro", product, seats=1)
    endpoint = admin.webhook_create(receiver.url, ["license.issued", "activation.created"])
    receiver.secret = endpoint["secret"]
    crm.secret = admin.webhook_create(crm.url, ["license.issued"], personal_data=True)["secret"]

    body = dumps(stripe_event("checkout.session.completed",
                              stripe_checkout(email=BUYER, price="price_pro")))
    answer = requests.post(f"{server.url}/v1/stores/stripe/webhook", data=body,
                           headers=stripe_headers(body, whsec), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "issued"

    (mail,) = box.wait_for(1, timeout=30)
    assert mail["To"] == BUYER
    assert mail["List-Unsubscribe"] is None  # the key delivery is always sent
    text = mail.get_body(("plain",))
    assert text is not None
    (lic,) = admin.list_licenses(product)
    key = next(word for word in re.findall(r"[A-Z0-9][A-Z0-9-]{15,}", text.get_content())
               if word.endswith(lic["key_hint"][-4:]))

    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "app", timeout=10.0)
    try:
        license_ = client.activate(key)
        assert license_.license_id == lic["id"]
        assert license_.mode.value == "full" and "pro" in license_.features
    finally:
        client.close()

    assert receiver.wait_for(2, timeout=30)
    events = {r.body["type"]: r for r in receiver.requests}
    assert set(events) == {"license.issued", "activation.created"}
    assert all(r.verified for r in receiver.requests)
    assert events["license.issued"].body["data"]["license_id"] == lic["id"]
    # This endpoint is not marked for personal data: the buyer's address never reaches it.
    assert all(BUYER.encode() not in r.raw for r in receiver.requests)
    # The vendor's CRM endpoint is marked for personal data: it gets the buyer's address.
    assert crm.wait_for(1, timeout=30)
    (issued,) = crm.requests
    assert issued.verified and issued.body["type"] == "license.issued"
    assert BUYER in issued.raw.decode()
