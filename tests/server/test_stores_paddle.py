"""Paddle Billing notifications in, over HTTP against the real app (SQLite and PostgreSQL).

Every delivery is signed here per Paddle's documented scheme
(``Paddle-Signature: ts=...;h1=...``, HMAC-SHA256 over ``ts:body``). The
server's clock is moved with ``clock_override`` for the grace period.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest

from software_dna.server.services import stores
from software_dna.server.services.common import clock_override
from software_dna.wire.times import parse_rfc3339
from tests.stores_payloads import (
    Shop,
    dumps,
    now,
    paddle_adjustment,
    paddle_event,
    paddle_headers,
    paddle_subscription,
    paddle_transaction,
)

from ..inprocess import InProcessServer

SECRET = "pdl_ntfset_01h" + "x7Y8z9" * 5
OLD_SECRET = "pdl_ntfset_01g" + "a1B2c3" * 5


@pytest.fixture
def shop(inprocess_any_server: InProcessServer) -> Iterator[Shop]:
    store = Shop(inprocess_any_server)
    yield store
    store.close()


def _ids() -> tuple[str, str]:
    return f"pri_{secrets.token_hex(10)}", f"sub_{secrets.token_hex(10)}"


def _sale(shop: Shop, **terms: object) -> tuple[str, str, str, str]:
    connector = shop.connect("paddle", SECRET)
    product = shop.product(**terms)  # type: ignore[arg-type]
    price, sub = _ids()
    shop.map(connector, price, product, subscription=True)
    return connector, product, price, sub


def _end(lic: dict[str, object]) -> datetime:
    value = lic["expires_at"]
    assert isinstance(value, str)
    return parse_rfc3339(value)


def test_a_sale_issues_once_renewals_extend_and_the_end_stops_it(shop: Shop) -> None:
    _, product, price, sub = _sale(shop)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    end = now() + timedelta(days=30)
    sale = paddle_event("transaction.completed", paddle_transaction(
        price=price, subscription=sub, period_end=end), occurred_at=t0)
    assert shop.poster.paddle(sale, SECRET).json() == {"outcome": "issued"}
    assert shop.poster.paddle(sale, SECRET).json() == {"outcome": "duplicate"}
    lic = shop.only_license(product)
    assert _end(lic) == end + timedelta(days=1)
    assert shop.mails(lic["id"]) == ["license_key"]
    assert shop.mail_context(lic["id"], "license_key")["recipient"] == "buyer@example.com"
    renewal = paddle_event("transaction.completed", paddle_transaction(
        price=price, subscription=sub, period_end=end + timedelta(days=30),
        origin="subscription_recurring"), occurred_at=t0 + timedelta(minutes=1))
    assert shop.poster.paddle(renewal, SECRET).json() == {"outcome": "applied"}
    assert _end(shop.only_license(product)) == end + timedelta(days=31)
    # A cancellation scheduled for the period end stops nothing now.
    scheduled = paddle_event("subscription.updated", paddle_subscription(
        subscription=sub, price=price, period_end=end + timedelta(days=30),
        scheduled_cancel=True), occurred_at=t0 + timedelta(minutes=2))
    assert shop.poster.paddle(scheduled, SECRET).json() == {"outcome": "applied"}
    assert shop.only_license(product)["status"] == "active"
    canceled = paddle_event("subscription.canceled", paddle_subscription(
        subscription=sub, price=price, period_end=end + timedelta(days=30),
        status="canceled"), occurred_at=t0 + timedelta(minutes=3))
    assert shop.poster.paddle(canceled, SECRET).json() == {"outcome": "applied"}
    lic = shop.only_license(product)
    assert lic["status"] == "suspended" and lic["cancelled_at"] is not None
    assert len(shop.licenses(product)) == 1


def test_past_due_suspends_after_the_grace_and_active_again_resumes(shop: Shop) -> None:
    _, product, price, sub = _sale(shop, grace_days=5)
    t0 = datetime.now(timezone.utc) - timedelta(minutes=5)
    end = now() + timedelta(days=30)
    shop.poster.paddle(paddle_event("transaction.completed", paddle_transaction(
        price=price, subscription=sub, period_end=end), occurred_at=t0), SECRET)
    lic_id = shop.only_license(product)["id"]
    past_due = paddle_event("subscription.past_due", paddle_subscription(
        subscription=sub, price=price, period_end=end, status="past_due"),
        occurred_at=t0 + timedelta(minutes=1))
    assert shop.poster.paddle(past_due, SECRET).json() == {"outcome": "applied"}
    assert shop.mails(lic_id) == ["license_key", "payment_failed"]
    later = datetime.now(timezone.utc) + timedelta(days=5, hours=1)
    with clock_override(lambda: later), shop.state.sessions() as session:
        assert stores.suspend_overdue(session, shop.state.ctx, later) >= 1
    assert shop.admin.get_license(lic_id)["status"] == "suspended"
    active = paddle_event("subscription.updated", paddle_subscription(
        subscription=sub, price=price, period_end=end + timedelta(days=30)),
        occurred_at=t0 + timedelta(minutes=2))
    assert shop.poster.paddle(active, SECRET).json() == {"outcome": "applied"}
    assert shop.admin.get_license(lic_id)["status"] == "active"


def test_an_approved_refund_revokes_a_pending_one_does_not(shop: Shop) -> None:
    connector = shop.connect("paddle", SECRET, refund_action="revoke")
    product = shop.product(subscription=False)
    price, _ = _ids()
    shop.map(connector, price, product)
    txn_data = paddle_transaction(price=price, subscription=None, period_end=None)
    shop.poster.paddle(paddle_event("transaction.completed", txn_data), SECRET)
    lic = shop.only_license(product)
    assert lic["expires_at"] is None and lic["subscription"] is False
    pending = paddle_event("adjustment.created", paddle_adjustment(
        transaction=txn_data["id"], subscription=None, status="pending_approval"))
    assert shop.poster.paddle(pending, SECRET).json() == {"outcome": "ignored"}
    assert shop.admin.get_license(lic["id"])["status"] == "active"
    approved = paddle_event("adjustment.updated", paddle_adjustment(
        transaction=txn_data["id"], subscription=None))
    assert shop.poster.paddle(approved, SECRET).json() == {"outcome": "applied"}
    assert shop.admin.get_license(lic["id"])["status"] == "revoked"


def test_during_a_secret_rotation_either_signature_is_accepted(shop: Shop) -> None:
    _, product, price, sub = _sale(shop)
    assert shop.licenses(product) == []
    sale = paddle_event("transaction.completed", paddle_transaction(
        price=price, subscription=sub, period_end=now() + timedelta(days=30)))
    body = dumps(sale)
    # Two h1 values: the old secret's first, then the current one's.
    headers = paddle_headers(body, SECRET, extra_secrets=(OLD_SECRET,))
    assert headers["Paddle-Signature"].count("h1=") == 2
    assert shop.poster.post("paddle", body, headers).json() == {"outcome": "issued"}


def test_refused_deliveries_answer_400_and_change_nothing(shop: Shop) -> None:
    _, product, price, sub = _sale(shop)
    before = shop.count("store_events")
    body = dumps(paddle_event("transaction.completed", paddle_transaction(
        price=price, subscription=sub, period_end=now() + timedelta(days=30))))
    stamp = int(time.time())
    cases = {
        "wrong secret": paddle_headers(body, "pdl_ntfset_wrong_secret"),
        # Far outside the 300 s tolerance: on a loaded machine the requests before this
        # one may take seconds, and stamp + 301 would then be inside it.
        "old timestamp": paddle_headers(body, SECRET, ts=stamp - 3600),
        "future timestamp": paddle_headers(body, SECRET, ts=stamp + 3600),
        "unsigned": {"Content-Type": "application/json"},
        "no h1": {"Paddle-Signature": f"ts={stamp}", "Content-Type": "application/json"},
        "h1 over the body without ts": {
            "Paddle-Signature": f"ts={stamp};h1=" + paddle_headers(body, SECRET, ts=stamp)[
                "Paddle-Signature"].split("h1=")[1][::-1],
            "Content-Type": "application/json"},
    }
    for name, headers in cases.items():
        answer = shop.poster.post("paddle", body, headers)
        assert answer.status_code == 400, name
        assert answer.json()["error"]["code"] == "invalid_signature", name
    unknown = paddle_event("customer.created", {"id": "ctm_1", "email": "x@example.com"})
    answer = shop.poster.paddle(unknown, SECRET)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "unknown_event")
    assert shop.licenses(product) == []
    assert shop.count("store_events") == before


def test_the_sandbox_is_told_apart_by_its_own_secret(inprocess_server: InProcessServer) -> None:
    # Its own server: connectors are one per provider and mode.
    shop = Shop(inprocess_server)
    try:
        live = shop.connect("paddle", SECRET)
        sandbox_secret = "pdl_ntfset_sandbox_" + "s" * 12
        live_product = shop.product(subscription=False)
        price, _ = _ids()
        shop.map(live, price, live_product)
        event = paddle_event("transaction.completed", paddle_transaction(
            price=price, subscription=None, period_end=None))
        # Signed with a sandbox secret nobody connected: not a valid delivery.
        answer = shop.poster.paddle(event, sandbox_secret)
        assert answer.json()["error"]["code"] == "invalid_signature"
        sandbox = shop.connect("paddle", sandbox_secret, mode="test")
        test_product = shop.product(subscription=False)
        shop.map(sandbox, price, test_product)
        assert shop.poster.paddle(event, sandbox_secret).json() == {"outcome": "issued"}
        assert len(shop.licenses(test_product)) == 1
        assert shop.licenses(live_product) == []
    finally:
        shop.close()
