"""Payment providers' webhooks in: Stripe, Paddle Billing, Lemon Squeezy (docs/commerce.md).

:func:`receive_webhook` is the whole inbound path: the provider's signature
is checked over the raw bytes with the secret of a connector
(:mod:`.config`), the event is normalised by the provider's module
(:mod:`.stripe`, :mod:`.paddle`, :mod:`.lemonsqueezy`) and applied once by
:mod:`.effects`. :func:`suspend_overdue` is the worker's scheduled job that
ends the payment grace period.

Applied once: ``store_events`` (connector, event id) is unique, so a replayed
event answers ``duplicate`` and changes nothing, even when two deliveries race;
``store_orders`` (connector, order ref) is unique, so an order gives one
license however many events announce it; an event older than the last one
applied to its order changes nothing (``stale``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from software_dna.server.models import StoreConnector, StoreEvent
from software_dna.server.services.common import Context, utcnow
from software_dna.server.services.errors import ServiceError, invalid
from software_dna.server.services.stores import effects, lemonsqueezy, paddle, stripe
from software_dna.server.services.stores.config import (
    MODES,
    PROVIDERS,
    REFUND_ACTIONS,
    connector_secret,
    create_connector,
    create_mapping,
    get_connector,
    list_connectors,
    list_mappings,
    remove_connector,
    remove_mapping,
)
from software_dna.server.services.stores.effects import suspend_overdue
from software_dna.server.services.stores.events import NormalEvent, bad_signature
from software_dna.wire.codes import Code

__all__ = [
    "MODES",
    "PROVIDERS",
    "REFUND_ACTIONS",
    "Received",
    "create_connector",
    "create_mapping",
    "get_connector",
    "list_connectors",
    "list_mappings",
    "receive_webhook",
    "remove_connector",
    "remove_mapping",
    "suspend_overdue",
]

log = logging.getLogger("software_dna.server.stores")

#: Attempts when a concurrent delivery of another event of the same order wins the race.
_ATTEMPTS = 3


@dataclass(frozen=True)
class Received:
    """The answer to a delivery: ``outcome`` and what it concerned.

    ``outcome``: ``issued``, ``applied``, ``stale``, ``ignored`` (see
    :class:`.effects.Applied`) or ``duplicate`` (the event was handled
    before). A sale of a price no mapping names is no outcome but a 422
    ``price_not_mapped`` refusal that records nothing, so the provider
    retries it (and shows the failure) until the mapping exists; a sale
    naming no price at all is ``ignored``, unrecorded.
    """

    outcome: str
    event_id: str
    event_type: str
    connector_id: str
    license_id: str | None = None


def _normalise(provider: str, body: bytes, headers: Mapping[str, str]) -> NormalEvent:
    if provider == "stripe":
        return stripe.normalise(body)
    if provider == "paddle":
        return paddle.normalise(body)
    return lemonsqueezy.normalise(body, headers)


def _verify(provider: str, body: bytes, headers: Mapping[str, str], secret: str) -> None:
    verify = {"stripe": stripe.verify, "paddle": paddle.verify,
              "lemonsqueezy": lemonsqueezy.verify}[provider]
    verify(body, headers, secret, utcnow())


def _connector_for(session: Session, ctx: Context, provider: str, body: bytes,
                   headers: Mapping[str, str]) -> tuple[str, NormalEvent]:
    """The id of the connector whose secret signed the body, and the event."""
    connectors = [(c.id, c.mode, connector_secret(ctx, c)) for c in session.scalars(
        select(StoreConnector).where(StoreConnector.provider == provider))]
    session.rollback()  # SQLite: end the read before verifying
    if not connectors:
        raise bad_signature(f"no {provider} store is connected")
    verified: dict[str, str] = {}
    problem: ServiceError | None = None
    for connector_id, mode, secret in connectors:
        try:
            _verify(provider, body, headers, secret)
        except ServiceError as exc:
            problem = exc
            continue
        verified[mode] = connector_id
    if not verified:
        assert problem is not None
        raise problem
    event = _normalise(provider, body, headers)
    if event.test_mode is True:
        if "test" not in verified:
            raise ServiceError(Code.TEST_MODE_REFUSED, "A test-mode event needs a test "
                               "connector (software-dna stores connect --mode test); test "
                               "sales never reach live products.")
        return verified["test"], event
    if event.test_mode is False and "live" not in verified:
        raise bad_signature("a live event signed with the test connector's secret")
    return verified.get("live") or verified["test"], event


def _not_mapped(provider: str, event: NormalEvent) -> ServiceError:
    """The refusal of a sale no mapping names; logged for the vendor (ids only)."""
    prices = ", ".join(event.price_refs)
    log.warning("store sale not applied: no mapping for its price (provider %s, event %s, "
                "price %s); add the mapping, then the provider's retry or a resend issues "
                "the license", provider, event.event_id, prices)
    return ServiceError(Code.PRICE_NOT_MAPPED, f"No mapping names the price of this sale "
                        f"({prices}); nothing was recorded. Add the mapping (software-dna "
                        f"stores map); the provider's retry or a resend then issues the "
                        f"license.", details={"price_refs": list(event.price_refs)})


def _once(engine: Engine, ctx: Context, connector_id: str, event: NormalEvent) -> Received:
    """One attempt in one database transaction; the services' commits are savepoints."""
    with engine.connect() as conn:
        trans = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint",
                          expire_on_commit=False)
        try:
            connector = session.get(StoreConnector, connector_id)
            if connector is None:  # disconnected meanwhile
                raise bad_signature("the store was disconnected")
            row = StoreEvent(connector_id=connector.id, event_id=event.event_id,
                             event_type=event.event_type[:100], occurred_at=event.occurred_at,
                             received_at=utcnow(), outcome="pending", license_id=None)
            session.add(row)
            try:
                session.flush()
            except IntegrityError:
                trans.rollback()
                return Received("duplicate", event.event_id, event.event_type, connector_id)
            applied = effects.apply(session, ctx, connector, event)
            if applied.outcome == "not_mapped":
                trans.rollback()
                if not event.price_refs:  # e.g. a checkout naming no price: its invoice will
                    return Received("ignored", event.event_id, event.event_type, connector_id)
                raise _not_mapped(connector.provider, event)
            row.outcome = applied.outcome
            row.license_id = applied.license_id
            session.commit()  # releases the session's savepoint; the transaction is ours
            session.close()
            trans.commit()
            return Received(applied.outcome, event.event_id, event.event_type, connector_id,
                            applied.license_id)
        except BaseException:
            session.close()
            if trans.is_active:
                trans.rollback()
            raise


def receive_webhook(engine: Engine, ctx: Context, provider: str, body: bytes,
                    headers: Mapping[str, str]) -> Received:
    """Verify and apply one delivery of a provider's webhook (its own transaction).

    Takes the engine, not a session: the event's record, the license change
    (through the license services, whose commits become savepoints) and the
    e-mail it queues commit in one database transaction, or none of it does.

    Args:
        provider: ``stripe``, ``paddle`` or ``lemonsqueezy``.
        body: the raw request body (the signature covers these bytes).
        headers: the request headers, names lower-case.

    Raises:
        ServiceError: 400 ``invalid_request`` (unknown provider, malformed
        body), 400 ``invalid_signature`` (unsigned, wrong secret, old
        timestamp, no connector), 400 ``unknown_event``, 400
        ``test_mode_refused`` (a test-mode event and no test connector), 422
        ``price_not_mapped`` (a sale of a price no mapping names; nothing is
        recorded and a warning with the provider, event id and prices is logged).
    """
    if provider not in PROVIDERS:
        raise invalid(f"Unknown store provider; use one of {', '.join(PROVIDERS)}.")
    with Session(engine) as session:
        connector_id, event = _connector_for(session, ctx, provider, body, headers)
    for attempt in range(_ATTEMPTS):
        try:
            return _once(engine, ctx, connector_id, event)
        except IntegrityError:
            # Another event of the same order recorded it first: now it exists.
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
