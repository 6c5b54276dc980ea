"""Air-gapped activation, server side: answer an activation request, take a deactivation receipt.

The text formats live in :mod:`software_dna.wire.airgap` (shared with the SDK).

- :func:`respond` parses an armored activation request, validates it as the
  body of ``POST /v1/activations`` would be validated, and runs
  :func:`~software_dna.server.services.activations.activate` with it: the same
  consent rule, rate limits, password check, idempotency and seat count.
  The request's nonce is the idempotency key, so answering the same request
  twice returns the same activation (a fresh token) and never takes a second
  seat.  The activation is marked ``offline``: its tokens have protection
  ``offline`` (no ``refresh_by``; ``exp`` = the product's
  ``air_gapped_token_days`` after issue, capped at the license's expiry; none
  only where the product explicitly allows perpetual air-gapped tokens).

  Invariants, all from state the server holds: air-gapped activation only
  where the product (or the license's override) allows it; an online
  activation is never turned into an air-gapped one (409
  ``already_activated_online``); the activation password is never read
  from the block (it travels by mail): the public route takes it beside the
  block, the vendor's staff (CLI, admin API) need none; every new
  air-gapped activation goes through the same rate limits and lock-out
  ledger as an online one.
- :func:`deactivate_from_receipt` verifies a deactivation receipt (signed
  with the key derived from the activation's secret) and frees the seat.
  Idempotent: a receipt for an activation already gone is answered the same
  way, with ``already_deactivated``.

Requests older than :data:`~software_dna.wire.airgap.REQUEST_LIFETIME` (30 days)
are refused (``request_expired``): the machine that made them would refuse
the response anyway.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.models import Activation
from software_dna.server.schemas import ActivateIn, error_location
from software_dna.server.services import ledger
from software_dna.server.services.activations import activate
from software_dna.server.services.bindings import invalid_fingerprint, parse_fingerprint
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.errors import ServiceError, invalid
from software_dna.server.services.messages import ActivationRequest
from software_dna.server.services.tokens import receipt_for
from software_dna.wire.airgap import (
    REQUEST_LIFETIME,
    ArmorError,
    build_response,
    parse_deactivation_receipt,
    parse_request,
    verify_deactivation_receipt,
)
from software_dna.wire.claims import DEACTIVATED
from software_dna.wire.codes import Code
from software_dna.wire.errors import InvalidToken

__all__ = [
    "MAX_REQUEST_AHEAD",
    "OfflineActivated",
    "OfflineDeactivated",
    "deactivate_from_receipt",
    "respond",
]

#: A request dated further ahead of the server's clock than this is refused
#: (the requesting machine's clock is wrong).
MAX_REQUEST_AHEAD = timedelta(days=1)
_ACTIVATION_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class OfflineActivated:
    """Result of :func:`respond`.

    Attributes:
        response: the armored activation response to hand back to the machine.
        activation_id, license_id, product: what was activated.
        fingerprint_id: the activation's opaque fingerprint id (``fp_...``).
        server_time: when (aware UTC).
        created: False when an existing activation was answered again (same
            request, or the same machine already holding a seat).
    """

    response: str
    activation_id: str
    license_id: str
    product: str
    fingerprint_id: str
    server_time: datetime
    created: bool


@dataclass(frozen=True)
class OfflineDeactivated:
    """Result of :func:`deactivate_from_receipt`.

    Attributes:
        activation_id, license_id, product: the activation the receipt named.
        deactivated_at: when its seat was freed (aware UTC).
        already_deactivated: True when it had been freed before this receipt.
        receipt: the server's own signed receipt (``result: "deactivated"``,
            echoing the machine's receipt nonce), or None without a signing key.
        nonce: the nonce of the machine's receipt.
        server_time: now (aware UTC).
    """

    activation_id: str
    license_id: str
    product: str
    deactivated_at: datetime
    already_deactivated: bool
    receipt: str | None
    nonce: str
    server_time: datetime


def _validation_message(exc: Any) -> str:
    """The first pydantic error as one sentence naming the field (never the value)."""
    errors = exc.errors()
    if not errors:
        return "The activation request is not valid."
    first = errors[0]
    where = error_location(first.get("loc", ())) or "request"
    return f"The activation request is not valid: {where}: {first.get('msg', 'invalid')}."[:300]


def _parse_request(text: str, password: str | None) -> tuple[ActivationRequest, datetime]:
    """The armored request as an :class:`ActivationRequest` (offline) and its creation time.

    ``password``: the activation password typed beside the block (never one
    from inside it: :func:`~software_dna.wire.airgap.parse_request` drops it).
    """
    try:
        doc = parse_request(text)
    except ArmorError as exc:
        raise invalid(str(exc)) from None
    fields: dict[str, Any] = {
        "product": doc.product, "license_key": doc.license_key,
        "fingerprint": dict(doc.fingerprint), "consent": doc.consent, "nonce": doc.nonce,
        "idempotency_key": doc.nonce, "client": dict(doc.client),
    }
    if password is not None:
        fields["password"] = password
    if doc.trusted_keys is not None:
        fields["trusted_keys"] = list(doc.trusted_keys)
    if doc.installation_id is not None:
        fields["installation_id"] = doc.installation_id
    for name in ("email", "registration", "label"):
        value = getattr(doc, name)
        if value is not None:
            fields[name] = value if not isinstance(value, dict) else dict(value)
    try:
        body = ActivateIn.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors()
        if errors and tuple(errors[0]["loc"])[:1] == ("fingerprint",):
            raise invalid_fingerprint(_validation_message(exc)) from None
        raise invalid(_validation_message(exc)) from None
    request = ActivationRequest(
        product=body.product, license_key=body.license_key,
        fingerprint=parse_fingerprint(body.fingerprint.algorithm, body.fingerprint.components),
        nonce=body.nonce, idempotency_key=body.idempotency_key, password=body.password,
        email=body.email, registration=body.registration, consent=body.consent,
        label=body.label, client=body.client.model_dump(), offline=True,
        trusted_keys=frozenset(body.trusted_keys) if body.trusted_keys is not None else None,
        installation_id=body.installation_id,
    )
    return request, doc.created_at


def respond(session: Session, ctx: Context, request_text: str, *,
            password: str | None = None, staff: bool = False, actor: str = "sdk",
            client_address: str | None = None) -> OfflineActivated:
    """Answer an air-gapped activation request; commits (the activation takes a seat).

    Args:
        session: a database session.
        ctx: the service context (master key, settings).
        request_text: the armored request (text around the block is ignored).
        password: the license's activation password, typed where the request
            is answered (the block never carries it); ignored with ``staff``.
        staff: the vendor's staff answer it (CLI, admin API, panel): no password needed.
        actor: the audit log's actor of the activation (``panel``, ``admin``, ``cli``;
            ``sdk`` for the end user's own request).
        client_address: the caller's address for the per-address rate limit
            (None from the CLI: the vendor is not rate limited by address).

    Returns:
        :class:`OfflineActivated` with the armored response.

    Raises:
        ServiceError: 400 ``invalid_request`` (damaged or malformed request),
        400 ``request_expired`` (older than 30 days, or dated more than a day
        ahead), 403 ``offline_not_allowed`` (not allowed by the product or the
        license, floating seats, subscriptions: see
        ``domain.refusals.offline_refusal``), 409 ``already_activated_online``
        (this machine holds an online activation of the license), and every
        refusal of
        :func:`activate` (``consent_required``,
        ``rate_limited``, ``unknown_license_key``, ``wrong_password``,
        ``license_revoked`` / ``_suspended`` / ``_expired``, ``no_seats_left``,
        ``activation_removed`` for a request whose activation was deactivated,
        ``no_signing_key``).
    """
    request, created_at = _parse_request(request_text, None if staff else password)
    now = utcnow()
    if now - created_at > REQUEST_LIFETIME:
        raise ServiceError(Code.REQUEST_EXPIRED,
                           "This activation request is more than 30 days old: create a new "
                           "one on the computer to activate.")
    if created_at - now > MAX_REQUEST_AHEAD:
        raise ServiceError(Code.REQUEST_EXPIRED,
                           "This activation request is dated in the future: set the clock of "
                           "the computer to activate, then create a new request.")
    result = activate(session, ctx, request, client_address=client_address, staff=staff,
                      actor=actor)
    activation = session.get(Activation, result.activation_id)
    assert activation is not None  # activate() just committed it
    fingerprint_id = activation.fingerprint_id
    response = build_response(
        product=request.product, activation_id=result.activation_id,
        activation_secret=result.activation_secret, token=result.token,
        nonce=result.nonce, server_time=result.server_time)
    return OfflineActivated(
        response=response, activation_id=result.activation_id,
        license_id=activation.license_id, product=request.product,
        fingerprint_id=fingerprint_id, server_time=result.server_time,
        created=result.created)


def _invalid_receipt() -> ServiceError:
    return ServiceError(Code.INVALID_RECEIPT,
                        "This deactivation receipt is not valid for any activation of its "
                        "product: it is damaged, forged, or from another server.")


def deactivate_from_receipt(session: Session, ctx: Context,
                            receipt_text: str) -> OfflineDeactivated:
    """Free the seat named by a machine's signed deactivation receipt; commits.

    Args:
        session: a database session.
        ctx: the service context.
        receipt_text: the armored receipt (text around the block is ignored).

    Returns:
        :class:`OfflineDeactivated` (``already_deactivated`` for a repeat).

    Raises:
        ServiceError: 400 ``invalid_request`` (damaged block), 400
        ``invalid_receipt`` (unknown activation, another product, a signature
        that does not verify: the same answer for all three).
    """
    try:
        doc = parse_deactivation_receipt(receipt_text)
    except ArmorError as exc:
        raise invalid(str(exc)) from None
    if _ACTIVATION_ID.fullmatch(doc.activation_id) is None:
        raise _invalid_receipt()
    activation = session.scalars(
        select(Activation).where(Activation.id == doc.activation_id)
        .with_for_update(of=Activation)
    ).one_or_none()
    if activation is None or activation.license.product_id != doc.product:
        session.rollback()
        raise _invalid_receipt()
    # Signed with the secret the machine holds: the current generation or the grace
    # one (its last validation answer lost), as every route accepts (services/sharing.py).
    generations = {activation.secret_generation, activation.secret_grace}
    claims: dict[str, Any] | None = None
    for generation in sorted(g for g in generations if g is not None):
        try:
            claims = verify_deactivation_receipt(
                doc, ctx.vault.activation_secret(activation.id, generation))
            break
        except InvalidToken:
            continue
    if claims is None:
        session.rollback()
        raise _invalid_receipt()
    now = utcnow()
    already = activation.deactivated_at is not None
    if not already:
        activation.deactivated_at = now
        activation.deactivated_by = "end_user"
        ledger.record(session, ledger.ACTIVATION_REMOVE, activation.id, at=now,
                      detail={"by": "end_user"})
    audit(session, "sdk", "activation.offline_deactivate", at=now,
          product_id=doc.product, license_id=activation.license_id,
          activation_id=activation.id, detail={"already_deactivated": already})
    nonce = str(claims["nonce"])
    receipt = receipt_for(session, ctx, product_id=doc.product, activation_id=activation.id,
                          result=DEACTIVATED, nonce=nonce, now=now)
    deactivated_at = activation.deactivated_at or now
    license_id = activation.license_id
    session.commit()
    return OfflineDeactivated(
        activation_id=activation.id, license_id=license_id, product=doc.product,
        deactivated_at=deactivated_at, already_deactivated=already, receipt=receipt,
        nonce=nonce, server_time=now)
