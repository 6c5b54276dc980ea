"""Vendor routes: outbound webhook endpoints, their delivery log, re-send and test."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from software_dna.server.api.deps import ACTOR, Db, IdPath, State, given, key_may, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.models import WebhookEndpoint
from software_dna.server.schemas import OkOut
from software_dna.server.schemas.webhooks import (
    DeliveryList,
    DeliveryOut,
    EndpointCreated,
    EndpointIn,
    EndpointList,
    EndpointOut,
    EndpointPatch,
    ResentOut,
)
from software_dna.server.services import outbox, webhooks
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["router"]

_COMMERCE = [Depends(require(Permission.COMMERCE))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


def _out(endpoint: WebhookEndpoint) -> EndpointOut:
    return EndpointOut.model_validate(endpoint)


def _personal_data_allowed(request: Request, personal_data: bool | None) -> None:
    """Sending buyers' addresses to an endpoint is a view of personal data: its permission."""
    if personal_data and not key_may(request, Permission.PERSONAL_DATA):
        raise ServiceError(Code.FORBIDDEN, "This admin API key's role may not send personal "
                           "data to a webhook (personal_data).")


@router.post("/webhooks", dependencies=_COMMERCE, response_model=EndpointCreated, status_code=201)
def create_endpoint(body: EndpointIn, request: Request, state: State,
                    session: Db) -> EndpointCreated:
    """Add an endpoint; the answer holds its signing secret, shown this once."""
    _personal_data_allowed(request, body.personal_data)
    endpoint, secret = webhooks.create_endpoint(
        session, state.ctx, url=body.url, events=body.events, product_id=body.product,
        description=body.description, personal_data=body.personal_data,
        enabled=body.enabled, actor=ACTOR)
    return EndpointCreated(endpoint=_out(endpoint), secret=secret)


@router.get("/webhooks", dependencies=_READ, response_model=EndpointList)
def list_endpoints(session: Db,
                   product: Annotated[str | None, Query(max_length=64)] = None) -> EndpointList:
    """The endpoints (``product``: that product's and those of every product)."""
    return EndpointList(endpoints=[_out(e) for e in
                                   webhooks.list_endpoints(session, product_id=product)])


@router.get("/webhooks/deliveries", dependencies=_READ, response_model=DeliveryList)
def list_deliveries(
    session: Db,
    endpoint: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
) -> DeliveryList:
    """The delivery log, newest first: status, attempts, last response code and error."""
    rows = webhooks.list_deliveries(session, endpoint_id=endpoint, status=status, limit=limit,
                                    before=before)
    return DeliveryList(deliveries=[DeliveryOut.of(item, logged) for item, logged in rows])


@router.post("/webhooks/deliveries/{item_id}/resend", dependencies=_COMMERCE,
             response_model=ResentOut)
def resend(item_id: IdPath, session: Db) -> ResentOut:
    """Queue a delivered or failed message again, with the same webhook id."""
    item = outbox.resend(session, item_id, actor=ACTOR)
    return ResentOut(id=item.id, status=item.status)


@router.get("/webhooks/{endpoint_id}", dependencies=_READ, response_model=EndpointOut)
def show_endpoint(endpoint_id: IdPath, session: Db) -> EndpointOut:
    """One endpoint (never its secret)."""
    return _out(webhooks.get_endpoint(session, endpoint_id))


@router.patch("/webhooks/{endpoint_id}", dependencies=_COMMERCE, response_model=EndpointOut)
def update_endpoint(endpoint_id: IdPath, body: EndpointPatch, request: Request,
                    session: Db) -> EndpointOut:
    """Change an endpoint (absent fields stay as they are)."""
    _personal_data_allowed(request, body.personal_data)
    changes = given(body)
    if "product" in changes:
        changes["product_id"] = changes.pop("product")
    for name in ("url", "events", "description", "personal_data", "enabled"):
        if name in changes and changes[name] is None:
            del changes[name]  # null: unchanged (only product may be cleared)
    return _out(webhooks.update_endpoint(session, endpoint_id, changes, actor=ACTOR))


@router.post("/webhooks/{endpoint_id}/rotate-secret", dependencies=_COMMERCE,
             response_model=EndpointCreated)
def rotate_secret(endpoint_id: IdPath, state: State, session: Db) -> EndpointCreated:
    """A new signing secret (shown this once); the old one stops signing at once."""
    endpoint, secret = webhooks.rotate_secret(session, state.ctx, endpoint_id, actor=ACTOR)
    return EndpointCreated(endpoint=_out(endpoint), secret=secret)


@router.post("/webhooks/{endpoint_id}/test", dependencies=_COMMERCE,
             response_model=ResentOut, status_code=202)
def send_test(endpoint_id: IdPath, session: Db) -> ResentOut:
    """Queue a ``webhook.ping`` event to this endpoint."""
    item = webhooks.send_test(session, endpoint_id, actor=ACTOR)
    return ResentOut(id=item.id, status=item.status)


@router.delete("/webhooks/{endpoint_id}", dependencies=_COMMERCE, response_model=OkOut)
def remove_endpoint(endpoint_id: IdPath, session: Db) -> OkOut:
    """Remove an endpoint; its queued messages are cancelled, its log kept."""
    webhooks.remove_endpoint(session, endpoint_id, actor=ACTOR)
    return OkOut()
