"""Lemon Squeezy webhooks in, over HTTP against the real app (SQLite and PostgreSQL).

Every delivery is signed here per Lemon Squeezy's documentation
(``X-Signature``: hex HMAC-SHA256 of the raw body with the signing secret;
``X-Event-Name``). The server's clock is moved with ``clock_override``.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from software_dna.server.services import stores
from software_dna.server.services.common import clock_override
from software_dna.wire.times import parse_rfc3339
from tests.stores_payloads import (
    Shop,
    dumps,
    ls_event,
    ls_headers,
    ls_invoice,
    ls_order,
    ls_subscription,
    now,
)

from ..inprocess import InProcessServer

SECRET = "ls-signing-" + "q1w2e3r4"
TEST_SECRET = "ls-test-" + "z9x8c7v6"


@pytest.fixture
def shop(inprocess_any_server: InProcessServer) -> Iterator[Shop]:
    store = Shop(inprocess_any_server)
    yield store
    store.close()


def _n() -> int:
    return secrets.randbelow(10**9) + 1


def _end(lic: dict[str, object]) -> datetime:
    value = lic["expires_at"]
    assert isinstance(value, str)
    return parse_rfc3339(value)


def _sale(shop: Shop, **terms: object) -> tuple[str, int, int, int]:
    connector = shop.connect("lemonsqueezy", SECRET)
    product = shop.product(**terms)  # type: ignore[arg-type]
    variant = _n()
    shop.map(connector, str(variant), product, subscription=True)
    return product, variant, _n(), _n()


def test_order_and_subscription_created_issue_one_license_and_renewals_extend_it(
        shop: Shop) -> None:
    product, variant, order_id, sub_id = _sale(shop)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=10)
    renews = now() + timedelta(days=30)
    order = ls_event("order_created", "orders", str(order_id), ls_order(variant=variant, at=t0))
    assert shop.poster.ls(order, SECRET).json() == {"outcome": "issued"}
    assert shop.poster.ls(order, SECRET).json() == {"outcome": "duplicate"}
    lic = shop.only_license(product)
    assert shop.mails(lic["id"]) == ["license_key"]
    created = ls_event("subscription_created", "subscriptions", str(sub_id), ls_subscription(
        order_id=order_id, variant=variant, renews_at=renews, at=t0 + timedelta(seconds=1)))
    assert shop.poster.ls(created, SECRET).json() == {"outcome": "applied"}
    assert len(shop.licenses(product)) == 1
    # The order gave no period end (a month and a day then); the subscription's is not
    # earlier, and an end is never moved back.
    assert _end(shop.only_license(product)) >= renews + timedelta(days=1)
    # The renewal: subscription_updated with the next renews_at.
    renewed = ls_event("subscription_updated", "subscriptions", str(sub_id), ls_subscription(
        order_id=order_id, variant=variant, renews_at=renews + timedelta(days=30),
        at=t0 + timedelta(minutes=1)))
    assert shop.poster.ls(renewed, SECRET).json() == {"outcome": "applied"}
    assert _end(shop.only_license(product)) == renews + timedelta(days=31)
    # Cancelled: works to the end of the period; expired: the subscription rules.
    cancelled = ls_event("subscription_cancelled", "subscriptions", str(sub_id),
                         ls_subscription(order_id=order_id, variant=variant,
                                         renews_at=renews + timedelta(days=30),
                                         status="cancelled",
                                         ends_at=renews + timedelta(days=30),
                                         at=t0 + timedelta(minutes=2)))
    assert shop.poster.ls(cancelled, SECRET).json() == {"outcome": "applied"}
    assert shop.only_license(product)["status"] == "active"
    expired = ls_event("subscription_expired", "subscriptions", str(sub_id), ls_subscription(
        order_id=order_id, variant=variant, renews_at=renews + timedelta(days=30),
        status="expired", ends_at=renews + timedelta(days=30), at=t0 + timedelta(minutes=3)))
    assert shop.poster.ls(expired, SECRET).json() == {"outcome": "applied"}
    lic = shop.only_license(product)
    assert lic["status"] == "suspended" and lic["cancelled_at"] is not None


def test_a_failed_payment_suspends_after_the_grace_and_recovery_resumes(shop: Shop) -> None:
    product, variant, order_id, sub_id = _sale(shop, grace_days=1)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=10)
    shop.poster.ls(ls_event("subscription_created", "subscriptions", str(sub_id),
                            ls_subscription(order_id=order_id, variant=variant,
                                            renews_at=now() + timedelta(days=30), at=t0)),
                   SECRET)
    lic_id = shop.only_license(product)["id"]
    failed = ls_event("subscription_payment_failed", "subscription-invoices", str(_n()),
                      ls_invoice(subscription_id=sub_id, status="pending",
                                 at=t0 + timedelta(minutes=1)))
    assert shop.poster.ls(failed, SECRET).json() == {"outcome": "applied"}
    assert shop.mails(lic_id) == ["license_key", "payment_failed"]
    later = datetime.now(timezone.utc) + timedelta(days=1, hours=1)
    with clock_override(lambda: later), shop.state.sessions() as session:
        assert stores.suspend_overdue(session, shop.state.ctx, later) >= 1
    assert shop.admin.get_license(lic_id)["status"] == "suspended"
    recovered = ls_event("subscription_payment_recovered", "subscription-invoices",
                         str(_n()), ls_invoice(subscription_id=sub_id,
                                               at=t0 + timedelta(minutes=2)))
    assert shop.poster.ls(recovered, SECRET).json() == {"outcome": "applied"}
    assert shop.admin.get_license(lic_id)["status"] == "active"
    assert shop.scalar("SELECT payment_failed_at FROM licenses WHERE id = :l",
                       l=lic_id) is None


def test_a_refunded_order_is_revoked(shop: Shop) -> None:
    connector = shop.connect("lemonsqueezy", SECRET, refund_action="revoke")
    product = shop.product(subscription=False)
    variant, order_id = _n(), _n()
    shop.map(connector, str(variant), product)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=10)
    shop.poster.ls(ls_event("order_created", "orders", str(order_id),
                            ls_order(variant=variant, at=t0)), SECRET)
    lic = shop.only_license(product)
    assert lic["expires_at"] is None
    refunded = ls_event("order_refunded", "orders", str(order_id),
                        ls_order(variant=variant, status="refunded",
                                 at=t0 + timedelta(minutes=1)))
    assert shop.poster.ls(refunded, SECRET).json() == {"outcome": "applied"}
    assert shop.admin.get_license(lic["id"])["status"] == "revoked"


def test_refused_deliveries_answer_400_and_change_nothing(shop: Shop) -> None:
    product, variant, order_id, _ = _sale(shop)
    before = shop.count("store_events")
    doc = ls_event("order_created", "orders", str(order_id), ls_order(variant=variant))
    body = dumps(doc)
    good = ls_headers(body, SECRET, "order_created")
    cases = {
        "wrong secret": ls_headers(body, "not-the-secret", "order_created"),
        "unsigned": {"Content-Type": "application/json", "X-Event-Name": "order_created"},
        "signature of another body": {**good, "X-Signature": ls_headers(
            body + b" ", SECRET, "order_created")["X-Signature"]},
    }
    for name, headers in cases.items():
        answer = shop.poster.post("lemonsqueezy", body, headers)
        assert answer.status_code == 400, name
        assert answer.json()["error"]["code"] == "invalid_signature", name
    # A signed body whose header names another event is malformed.
    answer = shop.poster.post("lemonsqueezy", body, {**good, "X-Event-Name": "order_refunded"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    unknown = ls_event("license_key_created", "license-keys", "5", {"created_at": "x"})
    answer = shop.poster.ls(unknown, SECRET)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "unknown_event")
    assert shop.licenses(product) == []
    assert shop.count("store_events") == before


def test_test_mode_is_refused_without_a_test_connector_and_then_reaches_the_test_product(
        inprocess_server: InProcessServer) -> None:
    shop = Shop(inprocess_server)
    live = shop.connect("lemonsqueezy", SECRET)
    live_product = shop.product(subscription=False)
    variant = _n()
    shop.map(live, str(variant), live_product)
    order = ls_event("order_created", "orders", str(_n()), ls_order(variant=variant),
                     test_mode=True)
    answer = shop.poster.ls(order, SECRET)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "test_mode_refused")
    test = shop.connect("lemonsqueezy", TEST_SECRET, mode="test")
    test_product = shop.product(subscription=False)
    shop.map(test, str(variant), test_product)
    assert shop.poster.ls(order, TEST_SECRET).json() == {"outcome": "issued"}
    assert len(shop.licenses(test_product)) == 1
    assert shop.licenses(live_product) == []
