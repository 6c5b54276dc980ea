"""Vendor routes: a product's signing keys (generate, rotate, retire, export)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, KidPath, ProductPath, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import KeyList, KeyOut, PublicKeysOut, RotateIn

__all__ = ["router"]

_KEYS = [Depends(require(Permission.KEYS))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.post("/products/{product}/keys", dependencies=_KEYS, response_model=KeyOut, status_code=201)
def generate_key(product: ProductPath, state: State, session: Db) -> KeyOut:
    """Generate a signing key (the product's first key becomes active, later ones trusted)."""
    return KeyOut.model_validate(services.generate_key(session, state.ctx, product, actor=ACTOR))


@router.get("/products/{product}/keys", dependencies=_READ, response_model=KeyList)
def list_keys(product: ProductPath, session: Db) -> KeyList:
    """Every key of the product, with its status."""
    return KeyList(keys=[KeyOut.model_validate(k) for k in services.list_keys(session, product)])


@router.post("/products/{product}/keys/rotate", dependencies=_KEYS, response_model=KeyOut)
def rotate_key(product: ProductPath, state: State, session: Db,
               body: Annotated[RotateIn | None, Body()] = None) -> KeyOut:
    """A new key (or the given trusted key) signs from now on; the old one stays trusted."""
    kid = body.kid if body is not None else None
    rotated = services.rotate_key(session, state.ctx, product, kid=kid, actor=ACTOR)
    return KeyOut.model_validate(rotated)


@router.post("/products/{product}/keys/{kid}/retire", dependencies=_KEYS, response_model=KeyOut)
def retire_key(product: ProductPath, kid: KidPath, state: State, session: Db) -> KeyOut:
    """Stop trusting a key (it disappears from the public keys)."""
    return KeyOut.model_validate(services.retire_key(session, state.ctx, product, kid, actor=ACTOR))


@router.get("/products/{product}/public-keys", dependencies=_READ, response_model=PublicKeysOut)
def public_keys(product: ProductPath, session: Db) -> PublicKeysOut:
    """The ``k4.public`` keys to build into the app (active first, then trusted)."""
    return PublicKeysOut(product=product, public_keys=services.public_keys(session, product))
