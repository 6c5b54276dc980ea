"""Store connectors (one per provider and mode) and their price -> license mappings.

A connector holds the provider's webhook signing secret, encrypted with the
master key (AES-GCM, bound to the connector's id), and what a refund or a
dispute does. A mapping says which license a price (Stripe, Paddle) or
variant (Lemon Squeezy) gives. Test data never mixes with live data: a
product mapped by a connector of one mode cannot be mapped by a connector of
the other mode.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from software_dna.server.domain.terms import terms_problem
from software_dna.server.models import StoreConnector, StoreEvent, StoreMapping, StoreOrder
from software_dna.server.services.common import Context, audit, new_id, precise_now
from software_dna.server.services.errors import conflict, invalid, not_found
from software_dna.server.services.lookups import get_product
from software_dna.server.services.products import clean_features
from software_dna.server.services.seats import check_seat_options

__all__ = [
    "MODES",
    "PROVIDERS",
    "REFUND_ACTIONS",
    "connector_secret",
    "create_connector",
    "create_mapping",
    "get_connector",
    "list_connectors",
    "list_mappings",
    "remove_connector",
    "remove_mapping",
]

PROVIDERS = ("stripe", "paddle", "lemonsqueezy")
MODES = ("live", "test")
REFUND_ACTIONS = ("revoke", "suspend", "none")
MAX_SECRET = 500


def _aad(connector_id: str) -> str:
    return f"store_connector:{connector_id}:secret"


def connector_secret(ctx: Context, connector: StoreConnector) -> str:
    """The connector's signing secret, decrypted."""
    return ctx.vault.decrypt_field(connector.secret_ciphertext,
                                   aad=_aad(connector.id)).decode("utf-8")


def _check_stripe_secret(secret: str) -> None:
    """Stripe's webhook signing secrets start ``whsec_``; its API keys are a common mix-up."""
    if secret.startswith(("sk_", "rk_", "pk_")):
        raise invalid("This is a Stripe API key, not the webhook signing secret: use the "
                      "endpoint's signing secret (whsec_...) from Developers > Webhooks; "
                      "the server needs no API key.")
    if not secret.startswith("whsec_"):
        raise invalid("A Stripe webhook signing secret starts with whsec_ (Developers > "
                      "Webhooks > the endpoint > Signing secret).")


def get_connector(session: Session, connector_id: str) -> StoreConnector:
    """A connector by id; raises 404 ``not_found`` (kind ``store_connector``)."""
    row = session.get(StoreConnector, connector_id)
    if row is None:
        raise not_found("store_connector")
    return row


def create_connector(session: Session, ctx: Context, *, provider: str, secret: str,
                     mode: str = "live", refund_action: str = "revoke",
                     actor: str = "admin") -> StoreConnector:
    """Connect a store (or replace the secret / refund action of the existing one); commits.

    Args:
        provider: ``stripe``, ``paddle`` or ``lemonsqueezy``.
        secret: the webhook signing secret (Stripe ``whsec_...``, Paddle's
            notification secret key, Lemon Squeezy's signing secret); stored
            encrypted and never shown again.
        mode: ``live`` or ``test`` (the provider's test mode / sandbox).
        refund_action: what a refund or dispute does: ``revoke``, ``suspend``
            or ``none``.

    Raises:
        ServiceError: 400 ``invalid_request`` (unknown provider, mode or action;
        an empty or overlong secret; for Stripe, a secret not starting ``whsec_``,
        e.g. an API key ``sk_``/``rk_``/``pk_``).
    """
    if provider not in PROVIDERS:
        raise invalid(f"provider must be one of {', '.join(PROVIDERS)}.")
    if mode not in MODES:
        raise invalid("mode must be live or test.")
    if refund_action not in REFUND_ACTIONS:
        raise invalid("refund_action must be revoke, suspend or none.")
    secret = secret.strip()
    if not 6 <= len(secret) <= MAX_SECRET or not secret.isprintable():
        raise invalid(f"The signing secret must be 6 to {MAX_SECRET} printable characters.")
    if provider == "stripe":
        _check_stripe_secret(secret)
    now = precise_now()
    row = session.scalars(select(StoreConnector).where(
        StoreConnector.provider == provider, StoreConnector.mode == mode)).first()
    if row is None:
        row = StoreConnector(id=new_id("sc"), provider=provider, mode=mode, created_at=now)
        session.add(row)
    row.secret_ciphertext = ctx.vault.encrypt_field(secret.encode("utf-8"), aad=_aad(row.id))
    row.refund_action = refund_action
    row.updated_at = now
    audit(session, actor, "store.connect", at=now,
          detail={"connector_id": row.id, "provider": provider, "mode": mode,
                  "refund_action": refund_action})
    try:
        session.commit()
    except IntegrityError:  # a concurrent connect of the same provider and mode
        session.rollback()
        raise conflict("This store was connected at the same time; try again.") from None
    return row


def list_connectors(session: Session) -> list[StoreConnector]:
    """Every connector (secrets stay encrypted)."""
    return list(session.scalars(select(StoreConnector).order_by(
        StoreConnector.provider, StoreConnector.mode)))


def remove_connector(session: Session, connector_id: str, *, actor: str = "admin") -> None:
    """Disconnect a store: its mappings and its record of events go; commits.

    Licenses it issued stay as they are; the record of which order gave which
    license is kept while it names a license, so that reconnecting finds them.

    Raises:
        ServiceError: 404 ``not_found``; 409 ``conflict`` when orders still
        refer to it (remove them with the licenses, or keep the connector).
    """
    row = get_connector(session, connector_id)
    if session.scalars(select(StoreOrder.id).where(
            StoreOrder.connector_id == row.id).limit(1)).first() is not None:
        raise conflict("This connector issued licenses; keep it (change its secret with "
                       "connect) so that their renewals and refunds still apply.")
    session.execute(delete(StoreMapping).where(StoreMapping.connector_id == row.id))
    session.execute(delete(StoreEvent).where(StoreEvent.connector_id == row.id))
    session.delete(row)
    audit(session, actor, "store.disconnect",
          detail={"connector_id": row.id, "provider": row.provider, "mode": row.mode})
    session.commit()


def create_mapping(session: Session, connector_id: str, *, price_ref: str, product_id: str,
                   seats: int = 1, features: Iterable[str] | None = None,
                   kind: str = "full", subscription: bool = False,
                   seat_mode: str = "machine", duration_days: int | None = None,
                   actor: str = "admin") -> StoreMapping:
    """Map a price / variant id to the license a sale of it issues; commits.

    Args:
        connector_id: the connector whose events carry ``price_ref``.
        price_ref: Stripe price (``price_...``, or a payment link ``plink_...``,
            or a Checkout Session's ``metadata.price_id``), Paddle price
            (``pri_...``) or Lemon Squeezy variant id.
        product_id: the product; refused when a connector of the other mode
            maps it (test sales never reach live products).
        seats, features, kind, seat_mode: the license issued (see
            ``issue_license``).
        subscription: the license follows the provider's subscription (expires
            at each paid period's end plus a day; needs protection ``mandatory``).
        duration_days: a one-off sale: the license runs this many days from its
            first activation (None: perpetual); a subscription: the term used
            when the provider gives no period end.

    Raises:
        ServiceError: 404 ``not_found`` (connector, product); 400
        ``invalid_request`` (terms the product does not allow, or a product
        that requires an activation password); 409
        ``conflict`` (the price is mapped already; the product belongs to the
        other mode).
    """
    connector = get_connector(session, connector_id)
    product = get_product(session, product_id)
    price_ref = price_ref.strip()
    if not 1 <= len(price_ref) <= 200 or not price_ref.isprintable():
        raise invalid("price_ref must be 1 to 200 printable characters.")
    if not 1 <= seats <= 100_000:
        raise invalid("seats must be 1 to 100000.")
    problem = terms_problem(protection=product.protection, kind=kind, expires_at=None,
                            duration_days=duration_days, subscription=subscription)
    if problem is not None:
        raise invalid(problem)
    check_seat_options(seat_mode, False)
    if product.password_required:
        raise invalid("This product requires an activation password for every license; a "
                      "store sale cannot set one.")
    other = session.scalars(
        select(StoreConnector.id).join(StoreMapping, StoreMapping.connector_id
                                       == StoreConnector.id)
        .where(StoreMapping.product_id == product.id, StoreConnector.mode != connector.mode)
        .limit(1)).first()
    if other is not None:
        other_mode = "live" if connector.mode == "test" else "test"
        raise conflict(f"Product {product.id} is mapped by a {other_mode} connector: test "
                       "and live sales never share a product.")
    now = precise_now()
    row = StoreMapping(connector_id=connector.id, price_ref=price_ref, product_id=product.id,
                       seats=seats, features=(clean_features(features)
                                              if features is not None else None),
                       kind=kind, subscription=subscription, seat_mode=seat_mode,
                       duration_days=duration_days, created_at=now)
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise conflict("This price is mapped already; unmap it first.") from None
    audit(session, actor, "store.map", at=now, product_id=product.id,
          detail={"connector_id": connector.id, "mapping_id": row.id})
    session.commit()
    return row


def list_mappings(session: Session, connector_id: str | None = None) -> list[StoreMapping]:
    """Mappings, of one connector or all."""
    query = select(StoreMapping).order_by(StoreMapping.connector_id, StoreMapping.id)
    if connector_id is not None:
        query = query.where(StoreMapping.connector_id == connector_id)
    return list(session.scalars(query))


def remove_mapping(session: Session, mapping_id: int, *, actor: str = "admin") -> None:
    """Unmap a price (licenses already issued stay); commits.

    Raises:
        ServiceError: 404 ``not_found`` (kind ``store_mapping``).
    """
    row = session.get(StoreMapping, mapping_id)
    if row is None:
        raise not_found("store_mapping")
    session.delete(row)
    audit(session, actor, "store.unmap", product_id=row.product_id,
          detail={"connector_id": row.connector_id, "mapping_id": mapping_id})
    session.commit()
