"""Signing keys per product: list, generate, rotate, retire; the public keys to copy or download.

Reading needs Permission.READ; generating, rotating and retiring need
Permission.KEYS.  Rotating and retiring change what apps can verify, so both
go through a confirmation page that says what happens.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import select

from software_dna.server.api.deps import Db, KidPath, ProductPath, State
from software_dna.server.domain.roles import Permission
from software_dna.server.models import Product
from software_dna.server.panel.web import (
    ACTOR,
    HEADERS,
    PanelRoute,
    Posted,
    Staff,
    paginate,
    poster,
    render,
    see_other,
    viewer,
)
from software_dna.server.services import (
    generate_key,
    get_product,
    list_keys,
    public_keys,
    retire_key,
    rotate_key,
)
from software_dna.server.services.lookups import get_signing_key

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)
_PRODUCTS_PER_PAGE = 10


@router.get("/keys")
def keys(request: Request, session: Db,
         staff: Annotated[Staff, Depends(viewer(Permission.READ))],
         product: str = "", page: int = 1) -> Response:
    """Every product's keys (or one product's: ``?product=``), with its public keys."""
    query = select(Product).order_by(Product.id)
    if product:
        query = query.where(Product.id == product)
    listing = paginate(session, query, page, per_page=_PRODUCTS_PER_PAGE)
    sections = [(p, list_keys(session, p.id), public_keys(session, p.id)) for p in listing.items]
    return render(request, "keys.html", staff, page=listing, sections=sections,
                  product=product)


@router.get("/keys/{product_id}/public-keys.txt")
def download(session: Db, product_id: ProductPath,
             staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """The product's ``k4.public`` keys, one a line (active first), as a file."""
    get_product(session, product_id)
    text = "".join(key + "\n" for key in public_keys(session, product_id))
    return PlainTextResponse(text, headers={
        **HEADERS, "Content-Disposition":
        f'attachment; filename="{product_id}-public-keys.txt"'})


@router.post("/keys/{product_id}/generate")
def generate(request: Request, state: State, session: Db, product_id: ProductPath,
             posted: Annotated[Posted, Depends(poster(Permission.KEYS))]) -> Response:
    """Generate a key: the product's first becomes active, later ones trusted."""
    row = generate_key(session, state.ctx, product_id, actor=ACTOR)
    what = ("It signs every new token." if row.status == "active" else
            "It is trusted, not yet signing: build it into the app, then rotate to it.")
    return see_other(request, f"/panel/keys?product={product_id}", f"Key generated. {what}")


@router.get("/keys/{product_id}/rotate")
def rotate_page(request: Request, session: Db, product_id: ProductPath,
                staff: Annotated[Staff, Depends(viewer(Permission.KEYS))],
                kid: str = "") -> Response:
    """Confirm a rotation: what signs from now on, and who must trust it first."""
    product = get_product(session, product_id)
    rows = list_keys(session, product_id)
    target = get_signing_key(session, product_id, kid) if kid else None
    return render(request, "keys_rotate.html", staff, product=product, keys=rows,
                  target=target, kid=kid)


@router.post("/keys/{product_id}/rotate")
def rotate(request: Request, state: State, session: Db, product_id: ProductPath,
           posted: Annotated[Posted, Depends(poster(Permission.KEYS))]) -> Response:
    """Rotate: a new key (or the chosen trusted one) signs; the old one stays trusted."""
    row = rotate_key(session, state.ctx, product_id, kid=posted.get("kid") or None,
                     actor=ACTOR)
    return see_other(request, f"/panel/keys?product={product_id}",
                     f"Key rotated: {row.kid} signs new tokens.")


@router.get("/keys/{product_id}/{kid}/retire")
def retire_page(request: Request, session: Db, product_id: ProductPath, kid: KidPath,
                staff: Annotated[Staff, Depends(viewer(Permission.KEYS))]) -> Response:
    """Confirm retiring a key: apps that trust only it stop verifying new tokens."""
    product = get_product(session, product_id)
    row = get_signing_key(session, product_id, kid)
    return render(request, "keys_retire.html", staff, product=product, key=row)


@router.post("/keys/{product_id}/{kid}/retire")
def retire(request: Request, state: State, session: Db, *, product_id: ProductPath,
           kid: KidPath,
           posted: Annotated[Posted, Depends(poster(Permission.KEYS))]) -> Response:
    """Retire the key: no longer exported, never signs again."""
    retire_key(session, state.ctx, product_id, kid, actor=ACTOR)
    return see_other(request, f"/panel/keys?product={product_id}", f"Key {kid} retired.")
