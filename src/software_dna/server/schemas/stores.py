"""Bodies of the store routes: connectors, mappings, and the webhook's answer."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, StringConstraints

from software_dna.server.models import StoreConnector, StoreMapping
from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import (
    Days,
    Features,
    IssuableKind,
    ObjectId,
    ProductId,
    SeatMode,
    UtcTime,
)

__all__ = ["ConnectorIn", "ConnectorList", "ConnectorOut", "MappingIn", "MappingList",
           "MappingOut", "StoreWebhookOut", "connector_out", "mapping_out"]

Provider = Literal["stripe", "paddle", "lemonsqueezy"]
#: A signing secret: printable, no surrounding blanks.
Secret = Annotated[str, StringConstraints(strict=True, min_length=6, max_length=500,
                                          pattern=r"^[\x21-\x7e]+$")]
PriceRef = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=200,
                                            pattern=r"^[\x21-\x7e]+$")]


class StoreWebhookOut(Out):
    """``POST /v1/stores/{provider}/webhook``: ``issued``, ``applied``, ``stale``
    (older than the last event of its order), ``ignored`` (nothing to do, or a sale
    of an unmapped price) or ``duplicate`` (handled before)."""

    outcome: str


class ConnectorIn(Strict):
    """Connect a store (or replace the secret / refund action of the connected one)."""

    provider: Provider
    mode: Literal["live", "test"] = "live"
    secret: Secret
    refund_action: Literal["revoke", "suspend", "none"] = "revoke"


class ConnectorOut(Out):
    """A connector (its secret is never shown); ``webhook_path`` is where the provider posts."""

    id: str
    provider: str
    mode: str
    refund_action: str
    webhook_path: str
    #: The full address to give the provider: ``SOFTWARE_DNA_PUBLIC_URL`` + ``webhook_path``
    #: (null when the public URL is not set).
    webhook_url: str | None = None
    created_at: UtcTime
    updated_at: UtcTime


class ConnectorList(Out):
    """Every connector."""

    connectors: list[ConnectorOut]


class MappingIn(Strict):
    """Map a price (Stripe, Paddle) or variant (Lemon Squeezy) id to the license it gives."""

    connector_id: ObjectId
    price_ref: PriceRef
    product: ProductId
    seats: Annotated[StrictInt, Field(ge=1, le=100_000)] = 1
    features: Features | None = None
    kind: IssuableKind = "full"
    subscription: StrictBool = False
    seat_mode: SeatMode = "machine"
    duration_days: Days | None = None


class MappingOut(Out):
    """A mapping."""

    id: int
    connector_id: str
    price_ref: str
    product: str
    seats: int
    features: list[str] | None
    kind: str
    subscription: bool
    seat_mode: str
    duration_days: int | None
    created_at: UtcTime


class MappingList(Out):
    """Mappings."""

    mappings: list[MappingOut]


def connector_out(row: StoreConnector, public_url: str | None = None) -> ConnectorOut:
    """The answer about a connector (never its secret).

    ``public_url``: the server's ``SOFTWARE_DNA_PUBLIC_URL``, for ``webhook_url``.
    """
    path = f"/v1/stores/{row.provider}/webhook"
    return ConnectorOut(id=row.id, provider=row.provider, mode=row.mode,
                        refund_action=row.refund_action, webhook_path=path,
                        webhook_url=public_url.rstrip("/") + path if public_url else None,
                        created_at=row.created_at, updated_at=row.updated_at)


def mapping_out(row: StoreMapping) -> MappingOut:
    """The answer about a mapping."""
    return MappingOut(id=row.id, connector_id=row.connector_id, price_ref=row.price_ref,
                      product=row.product_id, seats=row.seats, features=row.features,
                      kind=row.kind, subscription=row.subscription, seat_mode=row.seat_mode,
                      duration_days=row.duration_days, created_at=row.created_at)
