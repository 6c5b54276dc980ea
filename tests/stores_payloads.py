"""Payment providers' webhook deliveries for the tests: realistic bodies, real signatures.

Each provider's signature is generated here from its documented algorithm
(not by the code under test):

- Stripe: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``
  with the endpoint's ``whsec_`` secret; the server verifies it with the
  official ``stripe`` library.
- Paddle Billing: ``Paddle-Signature: ts=<unix>;h1=<hex HMAC-SHA256 of "<ts>:<body>">``
  with the notification destination's secret key (several ``h1`` during a
  secret rotation).
- Lemon Squeezy: ``X-Signature: <hex HMAC-SHA256 of the body>`` with the
  webhook's signing secret, and ``X-Event-Name``.

The bodies follow the shapes in the providers' API references (trimmed to
the fields a license server reads plus typical neighbours).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
import sqlalchemy as sa

from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.models import OutboxItem
from software_dna.server.services import outbox
from software_dna.server.services.common import Context

WEBHOOK = "/v1/stores/{provider}/webhook"


def _hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def dumps(doc: dict[str, Any]) -> bytes:
    """The body bytes as a provider sends them (compact JSON, UTF-8)."""
    return json.dumps(doc, separators=(",", ":")).encode()


def iso(at: datetime) -> str:
    """Paddle / Lemon Squeezy times: RFC 3339 with microseconds and ``Z``."""
    return at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now() -> datetime:
    """The real time (signatures carry real Unix times)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


# ---------------------------------------------------------------- signatures

def stripe_headers(body: bytes, secret: str, *, t: int | None = None) -> dict[str, str]:
    """``Stripe-Signature`` per Stripe's documented scheme."""
    stamp = int(time.time()) if t is None else t
    mac = _hex(secret, f"{stamp}.".encode() + body)
    return {"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"}


def paddle_headers(body: bytes, secret: str, *, ts: int | None = None,
                   extra_secrets: tuple[str, ...] = ()) -> dict[str, str]:
    """``Paddle-Signature`` per Paddle's documented scheme (one ``h1`` per secret)."""
    stamp = int(time.time()) if ts is None else ts
    macs = [_hex(s, f"{stamp}:".encode() + body) for s in (*extra_secrets, secret)]
    return {"Paddle-Signature": f"ts={stamp};" + ";".join(f"h1={m}" for m in macs),
            "Content-Type": "application/json"}


def ls_headers(body: bytes, secret: str, event_name: str) -> dict[str, str]:
    """``X-Signature`` and ``X-Event-Name`` per Lemon Squeezy's documentation."""
    return {"X-Signature": _hex(secret, body), "X-Event-Name": event_name,
            "Content-Type": "application/json"}


# ---------------------------------------------------------------- Stripe

def _sid(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def stripe_event(event_type: str, obj: dict[str, Any], *, livemode: bool = True,
                 created: int | None = None, event_id: str | None = None) -> dict[str, Any]:
    """A Stripe Event object around ``obj``."""
    return {"id": event_id or _sid("evt"), "object": "event", "api_version": "2024-06-20",
            "created": int(time.time()) if created is None else created,
            "data": {"object": obj}, "livemode": livemode, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None}, "type": event_type}


def stripe_checkout(*, mode: str = "payment", email: str = "buyer@example.com",
                    price: str | None = None, subscription: str | None = None,
                    payment_intent: str | None = None, livemode: bool = True,
                    payment_status: str = "paid") -> dict[str, Any]:
    """A Checkout Session (``checkout.session.completed``); ``price`` in its metadata."""
    return {"id": _sid("cs_live" if livemode else "cs_test"), "object": "checkout.session",
            "mode": mode, "status": "complete", "payment_status": payment_status,
            "amount_total": 4900, "currency": "eur", "customer": _sid("cus"),
            "customer_details": {"email": email, "name": "Ada Buyer", "address": {
                "country": "DE"}},
            "customer_email": None, "livemode": livemode,
            "metadata": {"price_id": price} if price else {},
            "payment_intent": payment_intent if mode == "payment" else None,
            "payment_link": None, "subscription": subscription}


def stripe_invoice(*, subscription: str, price: str, period_end: datetime,
                   billing_reason: str = "subscription_create",
                   email: str = "buyer@example.com", new_api: bool = False,
                   status: str = "paid", hosted_invoice_url: str | None = None
                   ) -> dict[str, Any]:
    """An Invoice (``invoice.paid`` / ``invoice.payment_failed``); ``new_api``: the 2025
    shape (``parent.subscription_details``, ``pricing.price_details``)."""
    start = int((period_end - timedelta(days=30)).timestamp())
    line: dict[str, Any] = {"id": _sid("il"), "object": "line_item", "amount": 990,
                            "period": {"start": start, "end": int(period_end.timestamp())},
                            "quantity": 1}
    invoice: dict[str, Any] = {"id": _sid("in"), "object": "invoice", "status": status,
                               "billing_reason": billing_reason, "customer": _sid("cus"),
                               "customer_email": email, "amount_paid": 990,
                               "currency": "eur", "lines": {"object": "list", "data": [line]},
                               "hosted_invoice_url": hosted_invoice_url}
    if new_api:
        line["pricing"] = {"type": "price_details",
                           "price_details": {"price": price, "product": _sid("prod")}}
        invoice["parent"] = {"type": "subscription_details",
                             "subscription_details": {"subscription": subscription}}
    else:
        line["price"] = {"id": price, "object": "price", "product": _sid("prod")}
        invoice["subscription"] = subscription
    return invoice


def stripe_subscription(*, subscription: str, price: str, period_end: datetime,
                        cancel_at_period_end: bool = False,
                        status: str = "active") -> dict[str, Any]:
    """A Subscription (``customer.subscription.updated`` / ``.deleted``)."""
    end = int(period_end.timestamp())
    return {"id": subscription, "object": "subscription", "status": status,
            "cancel_at_period_end": cancel_at_period_end, "cancel_at": None,
            "current_period_end": end, "customer": _sid("cus"),
            "items": {"object": "list", "data": [
                {"id": _sid("si"), "price": {"id": price}, "current_period_end": end}]}}


def stripe_charge(*, payment_intent: str, refunded: bool = True) -> dict[str, Any]:
    """A Charge (``charge.refunded``)."""
    return {"id": _sid("ch"), "object": "charge", "amount": 4900,
            "amount_refunded": 4900 if refunded else 100, "refunded": refunded,
            "payment_intent": payment_intent, "status": "succeeded"}


def stripe_dispute(*, payment_intent: str) -> dict[str, Any]:
    """A Dispute (``charge.dispute.created``)."""
    return {"id": _sid("dp"), "object": "dispute", "amount": 4900, "charge": _sid("ch"),
            "payment_intent": payment_intent, "reason": "fraudulent",
            "status": "needs_response"}


# ---------------------------------------------------------------- Paddle

def paddle_event(event_type: str, data: dict[str, Any], *,
                 occurred_at: datetime | None = None,
                 event_id: str | None = None) -> dict[str, Any]:
    """A Paddle Billing notification around ``data``."""
    return {"event_id": event_id or _sid("evt"), "event_type": event_type,
            "occurred_at": iso(occurred_at or datetime.now(timezone.utc)),
            "notification_id": _sid("ntf"), "data": data}


def paddle_transaction(*, price: str, subscription: str | None, period_end: datetime | None,
                       origin: str = "web", email: str | None = "buyer@example.com",
                       status: str = "completed") -> dict[str, Any]:
    """A Transaction (``transaction.completed`` / ``transaction.payment_failed``)."""
    data: dict[str, Any] = {
        "id": _sid("txn"), "status": status, "customer_id": _sid("ctm"),
        "subscription_id": subscription, "currency_code": "EUR", "origin": origin,
        "collection_mode": "automatic",
        "items": [{"price": {"id": price, "product_id": _sid("pro")}, "quantity": 1}],
        "billing_period": None if period_end is None else {
            "starts_at": iso(period_end - timedelta(days=30)), "ends_at": iso(period_end)},
        "custom_data": None}
    if email is not None:
        data["custom_data"] = {"email": email}
    return data


def paddle_subscription(*, subscription: str, price: str, period_end: datetime,
                        status: str = "active",
                        scheduled_cancel: bool = False) -> dict[str, Any]:
    """A Subscription (``subscription.updated`` / ``.past_due`` / ``.canceled``)."""
    return {"id": subscription, "status": status, "customer_id": _sid("ctm"),
            "current_billing_period": {"starts_at": iso(period_end - timedelta(days=30)),
                                       "ends_at": iso(period_end)},
            "scheduled_change": {"action": "cancel", "effective_at": iso(period_end),
                                 "resume_at": None} if scheduled_cancel else None,
            "items": [{"price": {"id": price}, "quantity": 1, "status": "active"}]}


def paddle_adjustment(*, transaction: str, subscription: str | None,
                      action: str = "refund", status: str = "approved") -> dict[str, Any]:
    """An Adjustment (``adjustment.created`` / ``.updated``): a refund or chargeback."""
    return {"id": _sid("adj"), "action": action, "status": status,
            "transaction_id": transaction, "subscription_id": subscription,
            "customer_id": _sid("ctm"), "reason": "requested by customer",
            "currency_code": "EUR", "totals": {"total": "4900"}}


# ---------------------------------------------------------------- Lemon Squeezy

def ls_event(event_name: str, data_type: str, object_id: str, attributes: dict[str, Any], *,
             test_mode: bool = False) -> dict[str, Any]:
    """A Lemon Squeezy webhook body (JSON:API resource with ``meta``)."""
    attributes = {**attributes, "test_mode": test_mode}
    return {"meta": {"event_name": event_name, "test_mode": test_mode,
                     "webhook_id": "c4d1e2f3-aaaa-bbbb-cccc-0123456789ab"},
            "data": {"type": data_type, "id": object_id, "attributes": attributes}}


def ls_order(*, variant: int, email: str = "buyer@example.com", status: str = "paid",
             at: datetime | None = None) -> dict[str, Any]:
    """Order attributes (``order_created`` / ``order_refunded``)."""
    stamp = iso(at or datetime.now(timezone.utc))
    return {"store_id": 1, "identifier": secrets.token_hex(8), "order_number": 1001,
            "user_name": "Ada Buyer", "user_email": email, "currency": "USD",
            "total": 1199, "status": status, "refunded": status == "refunded",
            "first_order_item": {"id": 1, "order_id": 1, "product_id": 7,
                                 "variant_id": variant, "product_name": "Editor",
                                 "variant_name": "Default", "price": 999},
            "created_at": stamp, "updated_at": stamp}


def ls_subscription(*, order_id: int, variant: int, renews_at: datetime,
                    status: str = "active", email: str = "buyer@example.com",
                    ends_at: datetime | None = None,
                    at: datetime | None = None) -> dict[str, Any]:
    """Subscription attributes (``subscription_*``)."""
    stamp = iso(at or datetime.now(timezone.utc))
    return {"store_id": 1, "customer_id": 9, "order_id": order_id, "order_item_id": 1,
            "product_id": 7, "variant_id": variant, "product_name": "Editor",
            "variant_name": "Monthly", "user_name": "Ada Buyer", "user_email": email,
            "status": status, "status_formatted": status.title(), "cancelled":
            status == "cancelled", "pause": None, "renews_at": iso(renews_at),
            "ends_at": iso(ends_at) if ends_at else None, "trial_ends_at": None,
            "created_at": stamp, "updated_at": stamp}


def ls_invoice(*, subscription_id: int, billing_reason: str = "renewal",
               status: str = "paid", at: datetime | None = None) -> dict[str, Any]:
    """Subscription invoice attributes (``subscription_payment_*``)."""
    stamp = iso(at or datetime.now(timezone.utc))
    return {"store_id": 1, "subscription_id": subscription_id, "customer_id": 9,
            "user_name": "Ada Buyer", "user_email": "buyer@example.com",
            "billing_reason": billing_reason, "card_brand": "visa", "card_last_four": "4242",
            "currency": "USD", "status": status, "total": 999, "refunded": status ==
            "refunded", "created_at": stamp, "updated_at": stamp}


# ---------------------------------------------------------------- posting

@dataclass
class Poster:
    """Posts deliveries to one server's webhook route over HTTP."""

    http: requests.Session
    url: str
    sent: list[requests.Response] = field(default_factory=list)

    def post(self, provider: str, body: bytes, headers: dict[str, str]) -> requests.Response:
        """POST ``body`` as is (the signature covers these bytes)."""
        answer = self.http.post(self.url + WEBHOOK.format(provider=provider), data=body,
                                headers=headers, timeout=30)
        self.sent.append(answer)
        return answer

    def stripe(self, doc: dict[str, Any], secret: str, **kw: Any) -> requests.Response:
        """Sign and post a Stripe event."""
        body = dumps(doc)
        return self.post("stripe", body, stripe_headers(body, secret, **kw))

    def paddle(self, doc: dict[str, Any], secret: str, **kw: Any) -> requests.Response:
        """Sign and post a Paddle notification."""
        body = dumps(doc)
        return self.post("paddle", body, paddle_headers(body, secret, **kw))

    def ls(self, doc: dict[str, Any], secret: str) -> requests.Response:
        """Sign and post a Lemon Squeezy event."""
        body = dumps(doc)
        return self.post("lemonsqueezy", body,
                         ls_headers(body, secret, doc["meta"]["event_name"]))


# ---------------------------------------------------------------- the server side

@dataclass
class _Db:
    """What a test reads the server's database with: sessions and the service context."""

    sessions: Any
    ctx: Context


class Shop:
    """One in-process server seen by a store test: set-up through the admin API,
    deliveries over HTTP, and the rows the deliveries left (read from the database)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.admin = server.admin
        if hasattr(server, "session"):  # in-process: the app's own engine and vault
            self.poster = Poster(server.session(), server.url)
            self.state: Any = server.app.state.sdna
        else:  # on a socket: the same database and master key, opened here
            self.poster = Poster(requests.Session(), server.url)
            self._engine = make_engine(server.settings)
            self.state = _Db(make_session_factory(self._engine),
                             Context.from_settings(server.settings))

    def close(self) -> None:
        """Close the HTTP session and any database connection opened here."""
        self.poster.http.close()
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()

    def product(self, *, subscription: bool = True, grace_days: int | None = None) -> str:
        """A new product (protection ``mandatory`` so subscriptions are allowed)."""
        product_id = f"p-{secrets.token_hex(5)}"
        self.admin.create_product(product_id, name="Acme Editor",
                                  protection="mandatory" if subscription else "opportunistic",
                                  features=["pro"])
        if grace_days is not None:
            self.execute(f"UPDATE products SET payment_grace_days = {int(grace_days)} "
                         "WHERE id = :p", p=product_id)
        return product_id

    def connect(self, provider: str, secret: str, *, mode: str = "live",
                refund_action: str = "revoke") -> str:
        """Connect (or re-connect) a store; returns the connector id."""
        row = self.admin.connect_store(provider, secret, mode=mode,
                                       refund_action=refund_action)
        return str(row["id"])

    def map(self, connector_id: str, price: str, product: str, **terms: Any) -> dict[str, Any]:
        """Map a price to the product."""
        result: dict[str, Any] = self.admin.map_price(connector_id, price, product, **terms)
        return result

    def licenses(self, product: str) -> list[dict[str, Any]]:
        """The product's licenses (admin API)."""
        found: list[dict[str, Any]] = self.admin.list_licenses(product)
        return found

    def only_license(self, product: str) -> dict[str, Any]:
        """The product's one license."""
        found = self.licenses(product)
        assert len(found) == 1, found
        return found[0]

    def execute(self, statement: str, **params: Any) -> None:
        """Run one SQL statement and commit (set-up the admin API does not offer)."""
        with self.state.sessions() as session:
            session.execute(sa.text(statement), params)
            session.commit()

    def scalar(self, statement: str, **params: Any) -> Any:
        """One value from the database."""
        with self.state.sessions() as session:
            return session.execute(sa.text(statement), params).scalar()

    def count(self, table: str, where: str = "1=1", **params: Any) -> int:
        """Rows of ``table`` matching ``where``."""
        return int(self.scalar(f"SELECT count(*) FROM {table} WHERE {where}", **params))

    def mails(self, license_id: str) -> list[str]:
        """The topics (templates) of the mails queued about a license, oldest first."""
        with self.state.sessions() as session:
            return [r[0] for r in session.execute(sa.text(
                "SELECT topic FROM outbox WHERE license_id = :l AND channel = 'email' "
                "ORDER BY created_at"), {"l": license_id})]

    def mail_context(self, license_id: str, template: str) -> dict[str, Any]:
        """The decrypted payload and recipient of the one mail ``template`` about a license."""
        with self.state.sessions() as session:
            item = session.query(OutboxItem).filter_by(license_id=license_id,
                                                       topic=template).one()
            return {"payload": outbox.payload_of(self.state.ctx, item),
                    "recipient": outbox.recipient_of(self.state.ctx, item),
                    "end_user_id": item.end_user_id}
