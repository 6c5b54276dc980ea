"""Bodies of outbound webhook endpoints and their delivery log (docs/commerce.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StringConstraints

from software_dna.server.models import OutboxItem
from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import ProductId, UtcTime

__all__ = [
    "DeliveryList",
    "DeliveryOut",
    "EndpointCreated",
    "EndpointIn",
    "EndpointList",
    "EndpointOut",
    "EndpointPatch",
    "ResentOut",
]

Url = Annotated[str, StringConstraints(strict=True, min_length=8, max_length=2000)]
EventType = Annotated[str, StringConstraints(strict=True, pattern=r"^[a-z_]{1,32}\.[a-z_]{1,32}$")]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=32)]
Description = Annotated[str, StringConstraints(strict=True, max_length=200)]


class EndpointIn(Strict):
    """``POST /v1/admin/webhooks``: a new endpoint (its secret is in the answer, once)."""

    url: Url
    events: EventTypes
    product: ProductId | None = None
    description: Description = ""
    personal_data: StrictBool = False
    enabled: StrictBool = True


class EndpointPatch(Strict):
    """``PATCH /v1/admin/webhooks/{id}``: absent fields stay; ``product`` null: every product."""

    url: Url | None = None
    events: EventTypes | None = None
    product: ProductId | None = None
    description: Description | None = None
    personal_data: StrictBool | None = None
    enabled: StrictBool | None = None


class EndpointOut(Out):
    """An endpoint (never its secret)."""

    id: str
    url: str
    events: list[str]
    product_id: str | None
    description: str
    personal_data: bool
    enabled: bool
    created_at: UtcTime
    updated_at: UtcTime


class EndpointCreated(Out):
    """An endpoint with its signing secret: shown at creation and rotation only."""

    endpoint: EndpointOut
    secret: str


class EndpointList(Out):
    """``GET /v1/admin/webhooks``."""

    endpoints: list[EndpointOut]


class DeliveryOut(Out):
    """One webhook message in the delivery log (no payload, no personal data)."""

    id: str
    endpoint_id: str | None
    event: str
    status: str
    attempts: int
    attempts_logged: int
    last_status: int | None
    last_error: str | None
    created_at: UtcTime
    next_attempt_at: UtcTime
    delivered_at: UtcTime | None

    @classmethod
    def of(cls, item: OutboxItem, logged: int) -> DeliveryOut:
        """The log entry of ``item`` with ``logged`` attempts recorded."""
        return cls(id=item.id, endpoint_id=item.endpoint_id, event=item.topic,
                   status=item.status, attempts=item.attempts, attempts_logged=logged,
                   last_status=item.last_status, last_error=item.last_error,
                   created_at=item.created_at, next_attempt_at=item.next_attempt_at,
                   delivered_at=item.delivered_at)


class DeliveryList(Out):
    """``GET /v1/admin/webhooks/deliveries``: newest first."""

    deliveries: list[DeliveryOut]


class ResentOut(Out):
    """A message queued again (same id) or a test event queued."""

    id: str
    status: str
