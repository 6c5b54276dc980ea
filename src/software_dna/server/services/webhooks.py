"""Outbound webhook endpoints (the vendor's own systems) and their deliverer.

An endpoint is a URL subscribed to event types (:data:`events.EVENT_TYPES`),
optionally limited to one product, with its own signing secret
(``whsec_`` + base64 of 24 random bytes, shown once at creation and rotation,
stored encrypted).  Events are queued by :mod:`services.events`; the worker
calls :func:`deliver` for each: an HTTP POST signed per the Standard Webhooks
specification (headers ``webhook-id`` = the outbox item's id, the same on
every retry; ``webhook-timestamp``; ``webhook-signature``).

URLs: ``https://`` anywhere, or ``http://`` to the loopback only (localhost,
127.0.0.0/8, ::1: a receiver on the same machine).  The vendor configures the
URL, so any public or private https host is allowed; redirects are never
followed (a 3xx is a failed attempt), so the server only ever calls the
URL the vendor wrote.  No credentials in the URL (use the signature).

Answers: 2xx delivered; 410 Gone disables the endpoint (per the
specification: the receiver says it is gone for good) and fails the item;
anything else (other status, timeout, refused connection) is retried per
:data:`outbox.BACKOFF`.  A removed or disabled endpoint's items fail without
a call.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from software_dna.server.config import ascii_host
from software_dna.server.models import DeliveryAttempt, OutboxItem, WebhookEndpoint
from software_dna.server.services import events, outbox
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.errors import invalid, not_found
from software_dna.server.services.lookups import get_product

__all__ = [
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "USER_AGENT",
    "create_endpoint",
    "deliver",
    "deliverer",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "remove_endpoint",
    "rotate_secret",
    "send_test",
    "update_endpoint",
]

#: Seconds to connect to a receiver, and to wait for its answer.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0
USER_AGENT = "software-dna-webhooks/1"
_URL_LENGTH = 2000
_DESCRIPTION_LENGTH = 200
_SECRET_BYTES = 24
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


def _aad(endpoint_id: str) -> str:
    return f"webhook-secret:{endpoint_id}"


def _check_url(url: str) -> str:
    """The endpoint URL, checked and normalised (scheme and host lower-case).

    Raises:
        ServiceError: 400 ``invalid_request`` for whitespace or control characters
            (they would reach the request line and the listings), a port outside
            1..65535, credentials, a fragment, or plain http to a remote host.
    """
    url = url.strip()
    if not url or len(url) > _URL_LENGTH:
        raise invalid(f"The URL must be 1 to {_URL_LENGTH} characters.")
    # urlsplit silently drops tabs and line breaks; the stored text must not hold them.
    if any(ch.isspace() or ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in url):
        raise invalid("The URL must not contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError as exc:
        raise invalid("The URL is not valid.") from exc
    if port is not None and not 1 <= port <= 65535:
        raise invalid("The URL's port must be 1 to 65535.")
    if parts.scheme not in ("https", "http") or not host:
        raise invalid("The URL must start with https:// and name a host.")
    if parts.username is not None or parts.password is not None:
        raise invalid("The URL must not carry credentials; receivers verify the signature.")
    if parts.fragment:
        raise invalid("The URL must not have a #fragment.")
    wire_host = ascii_host(host)
    if wire_host is None:
        raise invalid("The URL's host is not a valid host name or address.")
    host = wire_host
    if parts.scheme == "http" and not _loopback(host):
        raise invalid("Plain http:// is allowed only to this machine (localhost); "
                      "use https://.")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path,
                       parts.query, ""))


def _loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_events(names: Sequence[str]) -> list[str]:
    chosen = sorted(set(names))
    if not chosen:
        raise invalid("Choose at least one event type.")
    unknown = [name for name in chosen if name not in events.EVENT_TYPES]
    if unknown:
        raise invalid(f"Unknown event type(s): {', '.join(unknown)}; choose from "
                      f"{', '.join(events.EVENT_TYPES)}.")
    return chosen


def _check_description(text: str) -> str:
    if len(text) > _DESCRIPTION_LENGTH:
        raise invalid(f"The description must be at most {_DESCRIPTION_LENGTH} characters.")
    return text


def _new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _secret(ctx: Context, endpoint: WebhookEndpoint) -> str:
    return ctx.vault.decrypt_field(endpoint.secret_ciphertext, aad=_aad(endpoint.id)).decode()


def create_endpoint(
    session: Session, ctx: Context, *, url: str, events: Sequence[str],
    product_id: str | None = None, description: str = "", personal_data: bool = False,
    enabled: bool = True, actor: str = "admin",
) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint. Commits.

    Args:
        url: https (or http to the loopback) URL; redirects are never followed.
        events: event types it receives (:data:`events.EVENT_TYPES`).
        product_id: only this product's events (default: every product).
        personal_data: may receive personal data (a buyer's email) in payloads.

    Returns:
        The endpoint and its signing secret (``whsec_...``), shown this once.

    Raises:
        ServiceError: 400 ``invalid_request`` (URL, events, description); 404
        ``not_found`` (product).
    """
    url = _check_url(url)
    chosen = _check_events(events)
    description = _check_description(description)
    if product_id is not None:
        get_product(session, product_id)
    now = utcnow()
    endpoint_id = new_id("whe")
    secret = _new_secret()
    endpoint = WebhookEndpoint(
        id=endpoint_id, url=url, description=description, events=chosen,
        product_id=product_id, personal_data=personal_data, enabled=enabled,
        secret_ciphertext=ctx.vault.encrypt_field(secret.encode(), aad=_aad(endpoint_id)),
        created_at=now, updated_at=now)
    session.add(endpoint)
    audit(session, actor, "webhook_endpoint.create", at=now, product_id=product_id,
          detail={"endpoint": endpoint_id, "events": chosen, "personal_data": personal_data})
    session.commit()
    return endpoint, secret


def get_endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint:
    """One endpoint. Raises ServiceError 404 ``not_found``."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise not_found("webhook endpoint")
    return endpoint


def list_endpoints(session: Session, *, product_id: str | None = None) -> list[WebhookEndpoint]:
    """The endpoints, oldest first (``product_id``: those of that product and of every one)."""
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    if product_id is not None:
        query = query.where((WebhookEndpoint.product_id == product_id)
                            | WebhookEndpoint.product_id.is_(None))
    return list(session.scalars(query))


_UPDATABLE = ("url", "events", "enabled", "description", "personal_data", "product_id")


def update_endpoint(session: Session, endpoint_id: str, changes: Mapping[str, Any], *,
                    actor: str = "admin") -> WebhookEndpoint:
    """Change an endpoint. Commits.

    Args:
        changes: any of ``url``, ``events``, ``enabled``, ``description``,
            ``personal_data``, ``product_id`` (None: every product).  Disabling
            fails its queued items at their next attempt; enabling again does
            not bring them back (re-send them).

    Raises:
        ServiceError: 400 ``invalid_request``; 404 ``not_found``.
    """
    endpoint = get_endpoint(session, endpoint_id)
    unknown = sorted(set(changes) - set(_UPDATABLE))
    if unknown:
        raise invalid(f"Cannot change: {', '.join(unknown)}.")
    if "url" in changes:
        endpoint.url = _check_url(str(changes["url"]))
    if "events" in changes:
        endpoint.events = _check_events(list(changes["events"]))
    if "description" in changes:
        endpoint.description = _check_description(str(changes["description"]))
    if "enabled" in changes:
        endpoint.enabled = bool(changes["enabled"])
    if "personal_data" in changes:
        endpoint.personal_data = bool(changes["personal_data"])
    if "product_id" in changes:
        if changes["product_id"] is not None:
            get_product(session, str(changes["product_id"]))
        endpoint.product_id = changes["product_id"]
    now = utcnow()
    endpoint.updated_at = now
    audit(session, actor, "webhook_endpoint.update", at=now, product_id=endpoint.product_id,
          detail={"endpoint": endpoint.id, "changed": sorted(changes)})
    session.commit()
    return endpoint


def rotate_secret(session: Session, ctx: Context, endpoint_id: str, *,
                  actor: str = "admin") -> tuple[WebhookEndpoint, str]:
    """Give the endpoint a new signing secret (shown once); the old one stops at once. Commits.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    endpoint = get_endpoint(session, endpoint_id)
    secret = _new_secret()
    endpoint.secret_ciphertext = ctx.vault.encrypt_field(secret.encode(), aad=_aad(endpoint.id))
    now = utcnow()
    endpoint.updated_at = now
    audit(session, actor, "webhook_endpoint.rotate_secret", at=now,
          product_id=endpoint.product_id, detail={"endpoint": endpoint.id})
    session.commit()
    return endpoint, secret


def remove_endpoint(session: Session, endpoint_id: str, *, actor: str = "admin") -> None:
    """Delete an endpoint; its queued items are cancelled (the log is kept). Commits.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    endpoint = get_endpoint(session, endpoint_id)
    session.execute(
        update(OutboxItem).where(OutboxItem.endpoint_id == endpoint.id,
                                 OutboxItem.status == "pending")
        .values(status="cancelled", claim=None, locked_until=None)
        .execution_options(synchronize_session=False))
    audit(session, actor, "webhook_endpoint.remove", at=utcnow(),
          product_id=endpoint.product_id, detail={"endpoint": endpoint.id})
    session.delete(endpoint)
    session.commit()


def send_test(session: Session, endpoint_id: str, *, actor: str = "admin") -> OutboxItem:
    """Queue a ``webhook.ping`` event to this endpoint (enabled or not subscribed). Commits.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    endpoint = get_endpoint(session, endpoint_id)
    now = utcnow()
    item = outbox.enqueue(session, None, channel=outbox.WEBHOOK, topic=events.PING,
                          payload=events.payload(events.PING, now, {"endpoint_id": endpoint.id}),
                          product_id=endpoint.product_id, endpoint_id=endpoint.id)
    assert item is not None
    audit(session, actor, "webhook_endpoint.test", at=now, product_id=endpoint.product_id,
          detail={"endpoint": endpoint.id, "item": item.id})
    session.commit()
    return item


def list_deliveries(session: Session, *, endpoint_id: str | None = None,
                    status: str | None = None, limit: int = 100,
                    before: str | None = None) -> list[tuple[OutboxItem, int]]:
    """The webhook delivery log, newest first: (item, number of attempts logged).

    Args:
        endpoint_id: only this endpoint's items.
        status: ``pending``, ``delivered``, ``failed`` or ``cancelled``.
        limit: at most this many (1-1000).
        before: items created before this item (paging).

    Raises:
        ServiceError: 400 ``invalid_request`` (status, limit); 404 (``before``).
    """
    if status is not None and status not in ("pending", "delivered", "failed", "cancelled"):
        raise invalid("status must be pending, delivered, failed or cancelled.")
    if not 1 <= limit <= 1000:
        raise invalid("limit must be 1 to 1000.")
    query = select(OutboxItem).where(OutboxItem.channel == outbox.WEBHOOK)
    if endpoint_id is not None:
        query = query.where(OutboxItem.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(OutboxItem.status == status)
    if before is not None:
        anchor = session.get(OutboxItem, before)
        if anchor is None:
            raise not_found("outbox item")
        query = query.where((OutboxItem.created_at < anchor.created_at)
                            | ((OutboxItem.created_at == anchor.created_at)
                               & (OutboxItem.id < anchor.id)))
    items = list(session.scalars(
        query.order_by(OutboxItem.created_at.desc(), OutboxItem.id.desc()).limit(limit)))
    counts: dict[str, int] = {}
    if items:
        for item_id in session.scalars(select(DeliveryAttempt.item_id).where(
                DeliveryAttempt.item_id.in_([i.id for i in items]))):
            counts[item_id] = counts.get(item_id, 0) + 1
    return [(item, counts.get(item.id, 0)) for item in items]


def deliver(ctx: Context, item: OutboxItem, payload: dict[str, Any], *,
            sessions: sessionmaker[Session]) -> outbox.Outcome:
    """POST one queued event to its endpoint, signed (Standard Webhooks); never raises.

    The endpoint (URL, secret, enabled) is read in a short transaction, the
    call is made outside any.  ``webhook-timestamp`` is the wall clock of the
    attempt (receivers compare it with theirs).

    Args:
        ctx: the context (decrypts the secret).
        item: the claimed outbox item (its id is the ``webhook-id``).
        payload: the item's payload (the Standard Webhooks body).
        sessions: the session factory.

    Returns:
        The outcome: delivered on 2xx; permanent when the endpoint is gone,
        disabled or answered 410 (then it is disabled); else a retry.
    """
    with sessions() as session:
        endpoint = session.get(WebhookEndpoint, item.endpoint_id) if item.endpoint_id else None
        if endpoint is None:
            return outbox.Outcome(False, error="endpoint removed", permanent=True)
        if not endpoint.enabled:
            return outbox.Outcome(False, error="endpoint disabled", permanent=True)
        url, secret = endpoint.url, _secret(ctx, endpoint)
    body = json.dumps(payload, separators=(",", ":"), sort_keys=True)
    # The wall clock, not the services' clock: the receiver checks it against its own.
    sent_at = datetime.fromtimestamp(int(time.time()), tz=timezone.utc)
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": item.id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(item.id, sent_at, body),
    }
    try:
        answer = requests.post(url, data=body.encode(), headers=headers,
                               timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False)
        answer.close()
    except requests.RequestException as exc:
        return outbox.Outcome(False, error=type(exc).__name__)
    code = answer.status_code
    if 200 <= code < 300:
        return outbox.Outcome(True, status_code=code)
    if code == 410:
        _disable(sessions, item.endpoint_id or "")
        return outbox.Outcome(False, status_code=code, error="410 Gone: endpoint disabled",
                              permanent=True)
    reason = "redirect not followed" if 300 <= code < 400 else f"HTTP {code}"
    return outbox.Outcome(False, status_code=code, error=reason)


def _disable(sessions: sessionmaker[Session], endpoint_id: str) -> None:
    with sessions() as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is not None and endpoint.enabled:
            endpoint.enabled = False
            endpoint.updated_at = utcnow()
            audit(session, "worker", "webhook_endpoint.disable", product_id=endpoint.product_id,
                  detail={"endpoint": endpoint.id, "reason": "gone"})
            session.commit()




def deliverer(sessions: sessionmaker[Session]) -> outbox.Handler:
    """:func:`deliver` bound to ``sessions``: the worker's handler for the webhook channel."""
    def handler(ctx: Context, item: OutboxItem, payload: dict[str, Any]) -> outbox.Outcome:
        return deliver(ctx, item, payload, sessions=sessions)
    return handler
