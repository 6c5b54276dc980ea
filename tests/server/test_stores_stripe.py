"""Stripe webhooks in, over HTTP against the real app (SQLite and PostgreSQL).

Every delivery is signed here per Stripe's documented scheme (``t=...,v1=...``)
and verified by the server with the official ``stripe`` library. The server's
clock is moved with ``clock_override`` for the payment grace period; nothing
sleeps.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from software_dna.server.adminclient import AdminError
from software_dna.server.services import stores
from software_dna.server.services.common import clock_override
from software_dna.wire.times import parse_rfc3339
from tests.server.helpers import Api
from tests.stores_payloads import (
    Shop,
    dumps,
    now,
    stripe_charge,
    stripe_checkout,
    stripe_dispute,
    stripe_event,
    stripe_headers,
    stripe_invoice,
    stripe_subscription,
)

from ..inprocess import InProcessServer

SECRET = "whsec_" + "A1b2C3d4" * 4
TEST_SECRET = "whsec_" + "T9e8S7t6" * 4


@pytest.fixture
def shop(inprocess_any_server: InProcessServer) -> Iterator[Shop]:
    store = Shop(inprocess_any_server)
    yield store
    store.close()


def _price() -> str:
    return f"price_{secrets.token_hex(8)}"


def _sub() -> str:
    return f"sub_{secrets.token_hex(8)}"


def _time(value: str | None) -> datetime | None:
    return parse_rfc3339(value) if value is not None else None


def _subscription_sale(shop: Shop, **terms: object) -> tuple[str, str, str, str]:
    """A connected live store, a product, a mapped subscription price, a subscription id."""
    connector = shop.connect("stripe", SECRET)
    product = shop.product(**terms)  # type: ignore[arg-type]
    price = _price()
    shop.map(connector, price, product, subscription=True, seats=3)
    return connector, product, price, _sub()


def test_a_subscription_purchase_issues_one_license_mails_the_key_and_replays_change_nothing(
        shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    end = now() + timedelta(days=30)
    # Checkout names no price (Stripe sends no line items): nothing to do yet, not recorded.
    checkout = stripe_event("checkout.session.completed",
                            stripe_checkout(mode="subscription", subscription=sub))
    answer = shop.poster.stripe(checkout, SECRET)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"outcome": "ignored"}
    paid = stripe_event("invoice.paid", stripe_invoice(subscription=sub, price=price,
                                                       period_end=end))
    answer = shop.poster.stripe(paid, SECRET)
    assert answer.json() == {"outcome": "issued"}
    lic = shop.only_license(product)
    assert lic["subscription"] is True and lic["seats"] == 3 and lic["status"] == "active"
    assert _time(lic["expires_at"]) == end + timedelta(days=1)
    assert lic["features"] == ["pro"]
    # The key mail: queued in the same transaction, to the buyer, with the key.
    assert shop.mails(lic["id"]) == ["license_key"]
    mail = shop.mail_context(lic["id"], "license_key")
    assert mail["recipient"] == "buyer@example.com"
    key = mail["payload"]["context"]["license_key"]
    assert key.endswith(lic["key_hint"][-4:])
    assert mail["payload"]["context"]["seats"] == 3
    # The mailed key is the license's: the buyer's app activates with it.
    shop.admin.generate_key(product)
    api = Api(shop.server.url, shop.poster.http)
    activated = api.activate(product, key)
    assert activated.status_code == 201, activated.text
    # The buyer is an end user holding only the encrypted address.
    buyer = mail["end_user_id"]
    assert shop.scalar("SELECT buyer_id FROM licenses WHERE id = :l", l=lic["id"]) == buyer
    # Its legal basis is the sale, not consent: no consent time is recorded.
    assert shop.scalar("SELECT consent_at FROM end_users WHERE id = :b", b=buyer) is None
    assert shop.scalar("SELECT registration_ciphertext FROM end_users WHERE id = :b",
                       b=buyer) is None
    assert shop.admin.find_end_users("buyer@example.com")
    # The same event again (Stripe retries): duplicate, nothing changes.
    again = shop.poster.stripe(paid, SECRET)
    assert again.json() == {"outcome": "duplicate"}
    # Another event of the same sale: the order has its license already.
    checkout2 = stripe_event("checkout.session.completed",
                             stripe_checkout(mode="subscription", subscription=sub,
                                             price=price))
    assert shop.poster.stripe(checkout2, SECRET).json() == {"outcome": "applied"}
    assert len(shop.licenses(product)) == 1
    assert shop.mails(lic["id"]) == ["license_key"]


def test_the_buyer_is_erased_like_any_end_user_and_then_mailed_nothing(shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    start = int(time.time())
    email = f"erase.me.{secrets.token_hex(3)}@example.com"
    end = now() + timedelta(days=30)
    invoice = stripe_invoice(subscription=sub, price=price, period_end=end, email=email)
    shop.poster.stripe(stripe_event("invoice.paid", invoice, created=start - 10), SECRET)
    lic_id = shop.only_license(product)["id"]
    (buyer,) = shop.admin.find_end_users(email)
    shop.admin.erase_end_user(buyer["id"])
    assert shop.admin.find_end_users(email) == []
    assert shop.scalar("SELECT email_ciphertext FROM end_users WHERE id = :b",
                       b=buyer["id"]) is None
    failed = stripe_event("invoice.payment_failed", stripe_invoice(
        subscription=sub, price=price, period_end=end, status="open", email=email,
        billing_reason="subscription_cycle"), created=start)
    assert shop.poster.stripe(failed, SECRET).json() == {"outcome": "applied"}
    assert "payment_failed" not in shop.mails(lic_id)
    assert shop.scalar("SELECT payment_failed_at FROM licenses WHERE id = :l",
                       l=lic_id) is not None


def test_the_2025_api_shape_is_read_too(shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    end = now() + timedelta(days=31)
    paid = stripe_event("invoice.paid", stripe_invoice(subscription=sub, price=price,
                                                       period_end=end, new_api=True))
    assert shop.poster.stripe(paid, SECRET).json() == {"outcome": "issued"}
    assert _time(shop.only_license(product)["expires_at"]) == end + timedelta(days=1)


def test_a_renewal_extends_never_shortens_and_an_older_event_changes_nothing(
        shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    start = int(time.time())
    first_end = now() + timedelta(days=30)
    shop.poster.stripe(stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=first_end), created=start - 100), SECRET)
    next_end = first_end + timedelta(days=30)
    renewal = stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=next_end,
        billing_reason="subscription_cycle"), created=start)
    assert shop.poster.stripe(renewal, SECRET).json() == {"outcome": "applied"}
    lic = shop.only_license(product)
    assert _time(lic["expires_at"]) == next_end + timedelta(days=1)
    # An event older than the last one applied (delivered late): recorded, no effect.
    late = stripe_event("invoice.payment_failed", stripe_invoice(
        subscription=sub, price=price, period_end=first_end, status="open",
        billing_reason="subscription_cycle"), created=start - 50)
    assert shop.poster.stripe(late, SECRET).json() == {"outcome": "stale"}
    assert shop.scalar("SELECT payment_failed_at FROM licenses WHERE id = :l",
                       l=lic["id"]) is None
    # A newer event naming an earlier period never moves the end back.
    odd = stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=first_end,
        billing_reason="subscription_cycle"), created=start + 10)
    assert shop.poster.stripe(odd, SECRET).json() == {"outcome": "applied"}
    assert _time(shop.only_license(product)["expires_at"]) == next_end + timedelta(days=1)
    assert len(shop.licenses(product)) == 1


def _suspend_overdue(shop: Shop, at: datetime) -> int:
    with clock_override(lambda: at), shop.state.sessions() as session:
        return stores.suspend_overdue(session, shop.state.ctx, at)


def test_a_failed_payment_mails_the_buyer_suspends_after_the_grace_and_recovery_resumes(
        shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop, grace_days=3)
    start = int(time.time())
    end = now() + timedelta(days=30)
    shop.poster.stripe(stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=end), created=start - 100), SECRET)
    lic_id = shop.only_license(product)["id"]
    pay_here = "https://invoice.stripe.com/i/acct_1/test_inv"
    failed = stripe_event("invoice.payment_failed", stripe_invoice(
        subscription=sub, price=price, period_end=end + timedelta(days=30), status="open",
        billing_reason="subscription_cycle", hosted_invoice_url=pay_here), created=start - 50)
    assert shop.poster.stripe(failed, SECRET).json() == {"outcome": "applied"}
    assert shop.scalar("SELECT payment_failed_at FROM licenses WHERE id = :l",
                       l=lic_id) is not None
    shown = shop.admin.get_license(lic_id)  # licenses show: the failure and the buyer (id)
    assert _time(shown["payment_failed_at"]) == datetime.fromtimestamp(start - 50,
                                                                       timezone.utc)
    assert shown["buyer_id"] is not None and shown["buyer_id"].startswith("eu")
    assert shop.mails(lic_id) == ["license_key", "payment_failed"]
    notice = shop.mail_context(lic_id, "payment_failed")
    assert notice["recipient"] == "buyer@example.com"
    # The notice links the invoice Stripe hosts, where the buyer pays.
    assert notice["payload"]["context"]["billing_url"] == pay_here
    # Within the grace period nothing is suspended; after it, the license is.
    real = datetime.now(timezone.utc)
    _suspend_overdue(shop, real + timedelta(days=2))
    assert shop.admin.get_license(lic_id)["status"] == "active"
    assert _suspend_overdue(shop, real + timedelta(days=3, hours=1)) >= 1
    assert shop.admin.get_license(lic_id)["status"] == "suspended"
    assert _suspend_overdue(shop, real + timedelta(days=4)) == 0  # once
    # The payment goes through: resumed, the failure cleared, the end moved on.
    paid = stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=end + timedelta(days=30),
        billing_reason="subscription_cycle"), created=start)
    assert shop.poster.stripe(paid, SECRET).json() == {"outcome": "applied"}
    lic = shop.admin.get_license(lic_id)
    assert lic["status"] == "active"
    assert _time(lic["expires_at"]) == end + timedelta(days=31)
    assert shop.scalar("SELECT payment_failed_at FROM licenses WHERE id = :l",
                       l=lic_id) is None
    assert lic["payment_failed_at"] is None


def test_a_vendor_suspension_is_not_lifted_by_a_payment(shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    start = int(time.time())
    end = now() + timedelta(days=30)
    shop.poster.stripe(stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=end), created=start - 100), SECRET)
    lic_id = shop.only_license(product)["id"]
    shop.admin.suspend_license(lic_id)
    shop.poster.stripe(stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=end + timedelta(days=30),
        billing_reason="subscription_cycle"), created=start), SECRET)
    assert shop.admin.get_license(lic_id)["status"] == "suspended"


def test_a_one_off_purchase_is_revoked_by_a_full_refund_not_by_a_partial_one(
        shop: Shop) -> None:
    connector = shop.connect("stripe", SECRET, refund_action="revoke")
    product = shop.product(subscription=False)
    price = _price()
    shop.map(connector, price, product, seats=2, duration_days=365)
    intent = f"pi_{secrets.token_hex(8)}"
    sale = stripe_event("checkout.session.completed",
                        stripe_checkout(price=price, payment_intent=intent))
    assert shop.poster.stripe(sale, SECRET).json() == {"outcome": "issued"}
    lic = shop.only_license(product)
    assert lic["subscription"] is False and lic["expires_at"] is None
    assert lic["expires_after_days"] == 365
    partial = stripe_event("charge.refunded",
                           stripe_charge(payment_intent=intent, refunded=False))
    assert shop.poster.stripe(partial, SECRET).json() == {"outcome": "ignored"}
    assert shop.admin.get_license(lic["id"])["status"] == "active"
    refund = stripe_event("charge.refunded", stripe_charge(payment_intent=intent))
    assert shop.poster.stripe(refund, SECRET).json() == {"outcome": "applied"}
    assert shop.admin.get_license(lic["id"])["status"] == "revoked"


def test_a_dispute_suspends_when_the_connector_says_suspend(shop: Shop) -> None:
    connector = shop.connect("stripe", SECRET, refund_action="suspend")
    try:
        product = shop.product(subscription=False)
        price = _price()
        shop.map(connector, price, product)
        intent = f"pi_{secrets.token_hex(8)}"
        shop.poster.stripe(stripe_event("checkout.session.completed",
                                        stripe_checkout(price=price, payment_intent=intent)),
                           SECRET)
        lic_id = shop.only_license(product)["id"]
        dispute = stripe_event("charge.dispute.created", stripe_dispute(payment_intent=intent))
        assert shop.poster.stripe(dispute, SECRET).json() == {"outcome": "applied"}
        assert shop.admin.get_license(lic_id)["status"] == "suspended"
    finally:
        shop.connect("stripe", SECRET, refund_action="revoke")


def test_cancel_at_period_end_keeps_the_paid_period_and_the_end_of_the_subscription_stops_it(
        shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    start = int(time.time())
    end = now() + timedelta(days=30)
    shop.poster.stripe(stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=end), created=start - 100), SECRET)
    lic_id = shop.only_license(product)["id"]
    cancel = stripe_event("customer.subscription.updated", stripe_subscription(
        subscription=sub, price=price, period_end=end, cancel_at_period_end=True),
        created=start - 50)
    assert shop.poster.stripe(cancel, SECRET).json() == {"outcome": "applied"}
    lic = shop.admin.get_license(lic_id)
    assert lic["status"] == "active" and lic["cancelled_at"] is None
    assert _time(lic["expires_at"]) == end + timedelta(days=1)
    ended = stripe_event("customer.subscription.deleted", stripe_subscription(
        subscription=sub, price=price, period_end=end, status="canceled"), created=start)
    assert shop.poster.stripe(ended, SECRET).json() == {"outcome": "applied"}
    lic = shop.admin.get_license(lic_id)
    assert lic["status"] == "suspended" and lic["cancelled_at"] is not None


def test_refused_deliveries_answer_400_and_change_nothing(shop: Shop) -> None:
    _, product, price, sub = _subscription_sale(shop)
    events_before = shop.count("store_events")
    paid = stripe_event("invoice.paid", stripe_invoice(subscription=sub, price=price,
                                                       period_end=now() + timedelta(days=30)))
    body = dumps(paid)
    cases = {
        "wrong secret": stripe_headers(body, "whsec_not_the_secret_at_all"),
        "old timestamp": stripe_headers(body, SECRET, t=int(time.time()) - 301),
        "future timestamp": stripe_headers(body, SECRET, t=int(time.time()) + 3600),
        "unsigned": {"Content-Type": "application/json"},
        "garbage header": {"Stripe-Signature": "t=abc,v1=zz",
                           "Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        answer = shop.poster.post("stripe", body, headers)
        assert answer.status_code == 400, name
        assert answer.json()["error"]["code"] == "invalid_signature", name
    unknown = stripe_event("customer.created", {"id": "cus_1", "object": "customer"})
    answer = shop.poster.stripe(unknown, SECRET)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "unknown_event"
    malformed = {**paid, "created": "yesterday"}
    answer = shop.poster.stripe(malformed, SECRET)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "invalid_request"
    answer = shop.poster.post("nosuchstore", body, stripe_headers(body, SECRET))
    assert answer.status_code == 400
    assert shop.licenses(product) == []
    assert shop.count("store_events") == events_before


def test_test_mode_events_are_refused_without_a_test_connector_and_go_to_the_test_product(
        inprocess_server: InProcessServer) -> None:
    # Its own server: the test connector must not exist yet.
    shop = Shop(inprocess_server)
    live = shop.connect("stripe", SECRET)
    live_product = shop.product()
    price = _price()
    shop.map(live, price, live_product, subscription=True)
    sub = _sub()
    test_event = stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=now() + timedelta(days=30)),
        livemode=False)
    answer = shop.poster.stripe(test_event, SECRET)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "test_mode_refused"
    assert shop.licenses(live_product) == []
    test = shop.connect("stripe", TEST_SECRET, mode="test")
    # The live product cannot be mapped for test sales.
    with pytest.raises(AdminError) as refused:
        shop.map(test, "price_other", live_product, subscription=True)
    assert refused.value.status == 409
    test_product = shop.product()
    shop.map(test, price, test_product, subscription=True)
    # Signed with the live secret it is still refused; with the test secret it is taken.
    assert shop.poster.stripe(test_event, SECRET).json()["error"]["code"] == \
        "test_mode_refused"
    assert shop.poster.stripe(test_event, TEST_SECRET).json() == {"outcome": "issued"}
    assert len(shop.licenses(test_product)) == 1
    assert shop.licenses(live_product) == []
    # A live event signed with the test secret is not a valid delivery.
    live_event = stripe_event("invoice.paid", stripe_invoice(
        subscription=_sub(), price=price, period_end=now() + timedelta(days=30)))
    assert shop.poster.stripe(live_event, TEST_SECRET).json()["error"]["code"] == \
        "invalid_signature"


def test_a_sale_of_an_unmapped_price_is_refused_for_a_retry_that_issues_once_mapped(
        shop: Shop, caplog: pytest.LogCaptureFixture) -> None:
    """A paid sale whose price no mapping names answers 422 ``price_not_mapped`` and
    records nothing, so Stripe retries it (and shows the failure); the warning names the
    provider, event and price, never the buyer. Once the vendor adds the mapping, the
    same event redelivered issues the license."""
    connector = shop.connect("stripe", SECRET)
    product = shop.product(subscription=False)
    price = _price()
    sale = stripe_event("checkout.session.completed",
                        stripe_checkout(price=price, email="lost.buyer@example.com"))
    recorded = shop.count("store_events", "connector_id = :c", c=connector)
    with caplog.at_level("WARNING", logger="software_dna.server.stores"):
        answer = shop.poster.stripe(sale, SECRET)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "price_not_mapped"
    assert price in answer.json()["error"]["message"]
    assert shop.count("store_events", "connector_id = :c", c=connector) == recorded
    assert shop.licenses(product) == []
    warned = [r.getMessage() for r in caplog.records
              if r.name == "software_dna.server.stores"]
    assert len(warned) == 1
    assert "stripe" in warned[0] and sale["id"] in warned[0] and price in warned[0]
    assert "lost.buyer" not in warned[0]
    # The vendor maps the price; the provider's retry (the same event) issues the license.
    shop.map(connector, price, product)
    again = shop.poster.stripe(sale, SECRET)
    assert again.json() == {"outcome": "issued"}, again.text
    lic = shop.only_license(product)
    assert shop.mails(lic["id"]) == ["license_key"]
    assert shop.poster.stripe(sale, SECRET).json() == {"outcome": "duplicate"}
