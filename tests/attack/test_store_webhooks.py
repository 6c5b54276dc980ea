"""Attack review: what someone who can reach ``/v1/stores/{provider}/webhook`` can do.

The attacker knows the route and the payload shapes, may have seen real
deliveries (replays) and may hold another provider's secret or a test-mode
secret, but not the connector's own secret. Every attempt must change
nothing: no license, no order, no recorded event, no mail. The real app in
this process on SQLite (the HTTP path, middleware included, is what is attacked).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from tests.stores_payloads import (
    Shop,
    dumps,
    ls_headers,
    now,
    paddle_adjustment,
    paddle_event,
    paddle_headers,
    stripe_checkout,
    stripe_event,
    stripe_headers,
    stripe_invoice,
)

from ..inprocess import InProcessServer

STRIPE = "whsec_" + "Att4ckMe" * 4
PADDLE = "pdl_ntfset_" + "Att4ckMe" * 4
LEMON = "ls-" + "Att4ckMe"


@pytest.fixture
def shop(inprocess_server: InProcessServer) -> Iterator[Shop]:
    store = Shop(inprocess_server)
    yield store
    store.close()


def _nothing_changed(shop: Shop, before: tuple[int, int, int, int]) -> None:
    assert _counts(shop) == before


def _counts(shop: Shop) -> tuple[int, int, int, int]:
    return (shop.count("licenses"), shop.count("store_orders"), shop.count("store_events"),
            shop.count("outbox"))


def _stripe_sale(shop: Shop) -> tuple[str, str, str]:
    connector = shop.connect("stripe", STRIPE)
    product = shop.product()
    price = f"price_{secrets.token_hex(8)}"
    shop.map(connector, price, product, subscription=True)
    return connector, product, price


def test_a_recorded_delivery_replayed_later_changes_nothing(shop: Shop) -> None:
    _, product, price = _stripe_sale(shop)
    event = stripe_event("invoice.paid", stripe_invoice(
        subscription=f"sub_{secrets.token_hex(6)}", price=price,
        period_end=now() + timedelta(days=30)))
    body = dumps(event)
    headers = stripe_headers(body, STRIPE)
    assert shop.poster.post("stripe", body, headers).json() == {"outcome": "issued"}
    before = _counts(shop)
    # The same bytes and header again (within the tolerance): recognised, no effect.
    assert shop.poster.post("stripe", body, headers).json() == {"outcome": "duplicate"}
    # Past the tolerance the captured header no longer verifies at all.
    old = stripe_headers(body, STRIPE, t=int(time.time()) - 3600)
    assert shop.poster.post("stripe", body, old).json()["error"]["code"] == "invalid_signature"
    _nothing_changed(shop, before)
    assert len(shop.licenses(product)) == 1


def test_a_captured_signature_on_a_different_body_is_refused(shop: Shop) -> None:
    _, product, price = _stripe_sale(shop)
    genuine = dumps(stripe_event("invoice.paid", stripe_invoice(
        subscription=f"sub_{secrets.token_hex(6)}", price=price,
        period_end=now() + timedelta(days=30))))
    headers = stripe_headers(genuine, STRIPE)
    forged = json.loads(genuine)
    forged["data"]["object"]["lines"]["data"][0]["period"]["end"] += 86400 * 3650
    before = _counts(shop)
    for body in (dumps(forged), genuine + b"\n", genuine.replace(b'"livemode":true',
                                                                 b'"livemode":true ')):
        answer = shop.poster.post("stripe", body, headers)
        assert (answer.status_code, answer.json()["error"]["code"]) == (400,
                                                                       "invalid_signature")
    _nothing_changed(shop, before)
    assert shop.licenses(product) == []


def test_another_providers_header_or_secret_is_refused(shop: Shop) -> None:
    _stripe_sale(shop)
    shop.connect("paddle", PADDLE)
    shop.connect("lemonsqueezy", LEMON)
    before = _counts(shop)
    body = dumps(stripe_event("checkout.session.completed", stripe_checkout(
        price="price_x", payment_intent="pi_x")))
    attempts = [
        ("stripe", paddle_headers(body, PADDLE)),  # Paddle's header on the Stripe route
        ("stripe", ls_headers(body, LEMON, "order_created")),
        ("stripe", stripe_headers(body, PADDLE)),  # Stripe's scheme, another store's secret
        ("paddle", stripe_headers(body, STRIPE)),
        ("lemonsqueezy", stripe_headers(body, STRIPE)),
        ("lemonsqueezy", ls_headers(body, STRIPE, "order_created")),
    ]
    for provider, headers in attempts:
        answer = shop.poster.post(provider, body, headers)
        assert answer.status_code == 400, (provider, headers)
        assert answer.json()["error"]["code"] == "invalid_signature", provider
    _nothing_changed(shop, before)


def test_huge_deep_and_non_json_bodies_are_refused_before_anything_is_read(
        shop: Shop) -> None:
    _stripe_sale(shop)
    before = _counts(shop)
    huge = b'{"id":"evt_1","pad":"' + b"A" * (70 * 1024) + b'"}'
    deep = b'{"a":' * 40 + b"1" + b"}" * 40
    answer = shop.poster.post("stripe", huge, stripe_headers(huge, STRIPE))
    assert answer.status_code == 413
    answer = shop.poster.post("stripe", deep, stripe_headers(deep, STRIPE))
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_request")
    form = b"p_signature=abc&alert_name=payment_succeeded"
    answer = shop.poster.post("paddle", form, {
        **paddle_headers(form, PADDLE), "Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 415
    not_utf8 = b'{"id":"\xff\xfe"}'
    answer = shop.poster.post("stripe", not_utf8, stripe_headers(not_utf8, STRIPE))
    assert answer.status_code == 400
    # An unknown or absurd provider name in the path: 400, not 404 or 422.
    body = dumps(stripe_event("invoice.paid", {"id": "in_1"}))
    for provider in ("shopify", "s" * 200, "stripe%00"):
        answer = shop.poster.post(provider, body, stripe_headers(body, STRIPE))
        assert (answer.status_code, answer.json()["error"]["code"]) == (400,
                                                                       "invalid_request")
    _nothing_changed(shop, before)


def test_a_signed_sale_of_an_unmapped_price_issues_nothing_and_is_not_recorded(
        shop: Shop) -> None:
    _, product, _ = _stripe_sale(shop)
    before = _counts(shop)
    event = stripe_event("invoice.paid", stripe_invoice(
        subscription=f"sub_{secrets.token_hex(6)}", price="price_not_mapped",
        period_end=now() + timedelta(days=30)))
    answer = shop.poster.stripe(event, STRIPE)
    assert (answer.status_code, answer.json()["error"]["code"]) == (422, "price_not_mapped")
    _nothing_changed(shop, before)
    assert shop.licenses(product) == []


def test_an_order_ref_of_one_store_never_reaches_another_stores_license(shop: Shop) -> None:
    _, product, price = _stripe_sale(shop)
    shop.connect("paddle", PADDLE, refund_action="revoke")
    shop.connect("stripe", STRIPE, refund_action="revoke")
    shared = f"sub_{secrets.token_hex(6)}"  # Stripe and Paddle subscription ids look alike
    shop.poster.stripe(stripe_event("invoice.paid", stripe_invoice(
        subscription=shared, price=price, period_end=now() + timedelta(days=30))), STRIPE)
    lic = shop.only_license(product)
    # A Paddle refund naming the same reference: Paddle's connector has no such order.
    refund = paddle_event("adjustment.created", paddle_adjustment(
        transaction=shared, subscription=shared))
    assert shop.poster.paddle(refund, PADDLE).json() == {"outcome": "ignored"}
    assert shop.admin.get_license(lic["id"])["status"] == "active"
