"""Vendor routes: products and their policies."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, ProductPath, given, key_may, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import LogoOut, ProductIn, ProductList, ProductOut, ProductPatch
from software_dna.server.schemas.base import OkOut
from software_dna.server.schemas.products import Branding, logo_out
from software_dna.server.services import portal_branding
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["router"]

_PRODUCTS = [Depends(require(Permission.PRODUCTS))]
_READ = [Depends(require(Permission.READ))]
#: What a logo upload may declare itself as (the service reads the real type from the bytes).
LOGO_MEDIA_TYPES = (*portal_branding.LOGO_TYPES, "application/octet-stream")

def _branding_allowed(request: Request, branding: Branding | None,
                      current: dict[str, str] | None = None) -> None:
    """Changing the mails' branding needs COMMERCE: its support address receives buyers'
    replies, its logo is fetched (and its links followed) from every mail opened."""
    wanted = branding.model_dump(exclude_none=True) if branding is not None else None
    if (wanted is not None and {k: v for k, v in wanted.items() if v}
            != {k: v for k, v in (current or {}).items() if v}
            and not key_may(request, Permission.COMMERCE)):
        raise ServiceError(Code.FORBIDDEN, "Changing the mails' branding needs a key whose "
                           "role may run commerce (owner or admin).")


router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.post("/products", dependencies=_PRODUCTS, response_model=ProductOut, status_code=201)
def create_product(body: ProductIn, session: Db, request: Request) -> ProductOut:
    """Create a product."""
    _branding_allowed(request, body.branding)
    return ProductOut.model_validate(services.create_product(
        session, product_id=body.id, name=body.name, protection=body.protection,
        refresh_interval=body.refresh_interval, offline_grace_period=body.offline_grace_period,
        fingerprint_tolerance=body.fingerprint_tolerance, features=body.features,
        limited_features=body.limited_features, password_required=body.password_required,
        actor=ACTOR, trial_days=body.trial_days, test_code_limit=body.test_code_limit,
        lease_duration=body.lease_duration, reactivation_limit=body.reactivation_limit,
        reactivation_period=body.reactivation_period,
        address_activation_limit=body.address_activation_limit,
        rebind_limit=body.rebind_limit, rebind_period=body.rebind_period,
        sharing_policy=body.sharing_policy, air_gapped=body.air_gapped,
        air_gapped_token_days=body.air_gapped_token_days,
        air_gapped_perpetual=body.air_gapped_perpetual,
        payment_grace_days=body.payment_grace_days, reminder_days=body.reminder_days,
        branding=body.branding.model_dump(exclude_none=True),
        portal_release_limit=body.portal_release_limit,
        portal_release_days=body.portal_release_days,
    ))


@router.get("/products", dependencies=_READ, response_model=ProductList)
def list_products(session: Db) -> ProductList:
    """Every product."""
    return ProductList(products=[ProductOut.model_validate(p)
                                 for p in services.list_products(session)])


@router.get("/products/{product}", dependencies=_READ, response_model=ProductOut)
def show_product(product: ProductPath, session: Db) -> ProductOut:
    """One product."""
    return ProductOut.model_validate(services.get_product(session, product))


@router.patch("/products/{product}", dependencies=_PRODUCTS, response_model=ProductOut)
def configure_product(product: ProductPath, body: ProductPatch, session: Db,
                      request: Request) -> ProductOut:
    """Change a product's policy (absent fields stay as they are)."""
    _branding_allowed(request, body.branding,
                      dict(services.get_product(session, product).branding or {}))
    changes = given(body)
    if "trial_days" in changes:  # null, like 0: no trial
        changes["trial_days"] = changes["trial_days"] or 0
    if body.branding is not None:
        changes["branding"] = body.branding.model_dump(exclude_none=True)
    return ProductOut.model_validate(
        services.update_product(session, product, actor=ACTOR, **changes))


@router.put("/products/{product}/logo", dependencies=_PRODUCTS, response_model=LogoOut,
            responses=error_responses(413, 415), openapi_extra={"requestBody": {
                "required": True, "content": {t: {"schema": {"type": "string",
                                                             "format": "binary"}}
                                              for t in LOGO_MEDIA_TYPES}}})
async def set_logo(product: ProductPath, session: Db, request: Request) -> LogoOut:
    """Upload the product's logo for its license portal: the raw image as the body (PNG,
    JPEG or WebP, at most 256 KiB; the type is read from the bytes; SVG is refused)."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in LOGO_MEDIA_TYPES:
        raise ServiceError(Code.UNSUPPORTED_MEDIA_TYPE,
                           "Send the logo as the raw image: Content-Type image/png, image/jpeg "
                           "or image/webp (or application/octet-stream).")
    data = await request.body()
    row = await run_in_threadpool(portal_branding.set_logo, session, product, data,
                                  actor=ACTOR)
    return logo_out(row)


@router.delete("/products/{product}/logo", dependencies=_PRODUCTS, response_model=OkOut)
def remove_logo(product: ProductPath, session: Db) -> OkOut:
    """Remove the product's logo (404 ``not_found`` when it has none); its portal pages then
    show its name alone."""
    portal_branding.remove_logo(session, product, actor=ACTOR)
    return OkOut()
