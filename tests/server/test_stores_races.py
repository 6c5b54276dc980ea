"""Store webhooks delivered at the same time: each effect still happens once.

On a socket (``ThreadedServer``: uvicorn on a thread, requests handled in its
thread pool) because the concurrency of real HTTP requests is what is tested;
SQLite and PostgreSQL (on PostgreSQL the transactions truly overlap and the
unique constraints decide).
"""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import requests

from software_dna.server.testing import LocalServer
from tests.stores_payloads import (
    WEBHOOK,
    Shop,
    dumps,
    now,
    stripe_checkout,
    stripe_event,
    stripe_headers,
    stripe_invoice,
)

SECRET = "whsec_" + "R4c3R4c3" * 4
THREADS = 8


@pytest.fixture(scope="module")
def any_server(threaded_any_server: LocalServer) -> LocalServer:
    return threaded_any_server


@pytest.fixture
def shop(any_server: LocalServer) -> Iterator[Shop]:
    store = Shop(any_server)
    yield store
    store.close()


def _together(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run the calls on threads released at once; their answers in order."""
    barrier = threading.Barrier(len(calls))
    answers: list[requests.Response | None] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        answers[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert all(a is not None for a in answers)
    return [a for a in answers if a is not None]


def _post(url: str, body: bytes) -> Callable[[], requests.Response]:
    def call() -> requests.Response:
        with requests.Session() as http:
            return http.post(url + WEBHOOK.format(provider="stripe"), data=body,
                             headers=stripe_headers(body, SECRET), timeout=60)
    return call


def _sale(shop: Shop) -> tuple[str, str]:
    connector = shop.connect("stripe", SECRET)
    product = shop.product()
    price = f"price_{secrets.token_hex(8)}"
    shop.map(connector, price, product, subscription=True)
    return product, price


def test_one_event_delivered_many_times_at_once_issues_one_license(shop: Shop) -> None:
    product, price = _sale(shop)
    event = stripe_event("invoice.paid", stripe_invoice(
        subscription=f"sub_{secrets.token_hex(8)}", price=price,
        period_end=now() + timedelta(days=30)))
    body = dumps(event)
    answers = _together([_post(shop.server.url, body) for _ in range(THREADS)])
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    outcomes = Counter(a.json()["outcome"] for a in answers)
    assert outcomes == {"issued": 1, "duplicate": THREADS - 1}
    lic = shop.only_license(product)
    assert shop.mails(lic["id"]) == ["license_key"]
    assert shop.count("store_events", "event_id = :e", e=event["id"]) == 1
    assert shop.count("store_orders", "license_id = :l", l=lic["id"]) == 1


def test_two_events_of_one_sale_at_once_issue_one_license(shop: Shop) -> None:
    product, price = _sale(shop)
    sub = f"sub_{secrets.token_hex(8)}"
    checkout = dumps(stripe_event("checkout.session.completed", stripe_checkout(
        mode="subscription", subscription=sub, price=price)))
    paid = dumps(stripe_event("invoice.paid", stripe_invoice(
        subscription=sub, price=price, period_end=now() + timedelta(days=30))))
    calls = [_post(shop.server.url, body) for body in (checkout, paid) * (THREADS // 2)]
    answers = _together(calls)
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    outcomes = Counter(a.json()["outcome"] for a in answers)
    assert outcomes["issued"] == 1
    assert outcomes["applied"] == 1
    assert outcomes["duplicate"] == THREADS - 2
    lic = shop.only_license(product)
    assert shop.mails(lic["id"]) == ["license_key"]
