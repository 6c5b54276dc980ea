"""Vendor routes: store connectors and price mappings (docs/commerce.md, "Stores")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from software_dna.server.api.deps import ACTOR, Db, IdPath, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import OkOut
from software_dna.server.schemas.stores import (
    ConnectorIn,
    ConnectorList,
    ConnectorOut,
    MappingIn,
    MappingList,
    MappingOut,
    connector_out,
    mapping_out,
)
from software_dna.server.services import stores

__all__ = ["router"]

_COMMERCE = [Depends(require(Permission.COMMERCE))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin/stores",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.post("/connectors", dependencies=_COMMERCE, response_model=ConnectorOut, status_code=201)
def connect_store(body: ConnectorIn, state: State, session: Db) -> ConnectorOut:
    """Connect a store in one mode (again: replace its secret and refund action)."""
    row = stores.create_connector(session, state.ctx, provider=body.provider, mode=body.mode,
                                  secret=body.secret, refund_action=body.refund_action,
                                  actor=ACTOR)
    return connector_out(row, state.ctx.settings.public_url)


@router.get("/connectors", dependencies=_READ, response_model=ConnectorList)
def list_connectors(session: Db, state: State) -> ConnectorList:
    """Every connected store."""
    public_url = state.ctx.settings.public_url
    return ConnectorList(connectors=[connector_out(r, public_url)
                                     for r in stores.list_connectors(session)])


@router.delete("/connectors/{connector_id}", dependencies=_COMMERCE, response_model=OkOut)
def disconnect_store(connector_id: IdPath, session: Db) -> OkOut:
    """Disconnect a store that issued no license (its mappings go with it)."""
    stores.remove_connector(session, connector_id, actor=ACTOR)
    return OkOut()


@router.post("/mappings", dependencies=_COMMERCE, response_model=MappingOut, status_code=201)
def map_price(body: MappingIn, session: Db) -> MappingOut:
    """Map a price or variant id to the license a sale of it issues."""
    row = stores.create_mapping(
        session, body.connector_id, price_ref=body.price_ref, product_id=body.product,
        seats=body.seats, features=body.features, kind=body.kind,
        subscription=body.subscription, seat_mode=body.seat_mode,
        duration_days=body.duration_days, actor=ACTOR)
    return mapping_out(row)


@router.get("/mappings", dependencies=_READ, response_model=MappingList)
def list_mappings(
    session: Db,
    connector_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
) -> MappingList:
    """Mappings, of one connector or all."""
    return MappingList(mappings=[mapping_out(r) for r in stores.list_mappings(
        session, connector_id)])


@router.delete("/mappings/{mapping_id}", dependencies=_COMMERCE, response_model=OkOut)
def unmap_price(mapping_id: Annotated[int, Path(ge=1, le=2**62)], session: Db) -> OkOut:
    """Remove a mapping (licenses issued stay)."""
    stores.remove_mapping(session, mapping_id, actor=ACTOR)
    return OkOut()
