"""The license and its computers; freeing a computer (within the product's limit)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State
from software_dna.server.domain.refusals import air_gapped_allowed, status_refusal
from software_dna.server.models import Activation, License
from software_dna.server.portal.web import (
    PortalError,
    PortalRoute,
    Posted,
    Redirect,
    Signed,
    brand_of,
    holder,
    is_object_id,
    poster,
    render,
    translate,
)
from software_dna.server.services import portal
from software_dna.server.services.common import Context, utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["page_context", "router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


def offline_allowed(lic: License) -> bool:
    """True when the license may be activated from an air-gapped request (the vendor's
    setting; floating seats and subscriptions never are)."""
    return (air_gapped_allowed(product_setting=lic.product.air_gapped,
                               license_setting=lic.air_gapped)
            and lic.seat_mode != "floating" and not lic.subscription)


def page_context(session: Db, signed: Signed) -> dict[str, Any]:
    """What every signed-in page's template needs: product, brand, holder, csrf and
    ``offline_allowed`` (the navigation shows the air-gapped page only then)."""
    lic = signed.holder.license
    return {"product": lic.product, "brand": brand_of(session, lic.product),
            "holder": signed.holder, "csrf": signed.csrf,
            "offline_allowed": offline_allowed(lic)}


def _status(lic: License) -> tuple[str, str | None]:
    """The license's state for the page: ``active``, ``expired``, ``suspended``,
    ``revoked`` (with the refusal's code), and when it is limited, why."""
    refusal = status_refusal(status=lic.status, cancelled_at=lic.cancelled_at,
                             expires_at=lic.expires_at, kind=lic.kind, now=utcnow())
    state = "active" if refusal is None else {
        Code.LICENSE_EXPIRED: "expired", Code.LICENSE_REVOKED: "revoked",
        Code.LICENSE_SUSPENDED: "suspended", Code.SUBSCRIPTION_CANCELLED: "suspended",
    }.get(refusal.code, "suspended")
    return state, ("erased" if lic.erased else None)


def _rows(ctx: Context, session: Db, signed: Signed) -> list[dict[str, Any]]:
    rows = []
    for activation in portal.visible_activations(session, signed.holder):
        rows.append({
            "id": activation.id, "created_at": activation.created_at,
            "last_seen_at": activation.last_seen_at, "os": activation.client_os,
            "app_version": activation.app_version,
            "label": portal.label_of(ctx, signed.holder, activation),
            "offline": activation.offline,
            "mode": activation.token_mode,
        })
    return rows


@router.get("/{product_id}/license")
def license_page(request: Request, state: State, session: Db, product_id: str,
                 signed: Annotated[Signed, Depends(holder(read_only=True))]) -> Response:
    """The license (kind, expiry, seats, features, protection, limited mode and why) and
    the computers using it, each with a button to free it."""
    lic = signed.holder.license
    status, limited = _status(lic)
    person = signed.holder.end_user
    if person is not None and person.erased_at is not None:
        # This end user's erasure: on a user-seat license only their seats are limited,
        # and the license row says nothing of it.
        limited = "erased"
    product = lic.product
    return render(request, "license.html", **page_context(session, signed),
                  license=lic, license_status=status, limited=limited,
                  limited_features=list(product.limited_features or []),
                  activations=_rows(state.ctx, session, signed),
                  allowance=portal.release_allowance(session, lic))


def _air_gapped_text() -> str:
    return translate("This computer was activated air-gapped: it never tells the server "
                     "that it stopped using the license. Its seat is freed by the "
                     "deactivation receipt the app makes on that computer: send it to "
                     "support.")


def _activation(session: Db, signed: Signed, activation_id: str) -> Activation:
    activation = session.get(Activation, activation_id) if is_object_id(activation_id) else None
    if activation is None or activation.deactivated_at is not None \
            or not signed.holder.sees(activation):
        raise PortalError(404, translate("Computer not found"),
                          translate("This computer is not among this license's activations "
                                    "(it may have been freed already)."))
    return activation


@router.get("/{product_id}/activations/{activation_id}/release")
def release_page(request: Request, state: State, session: Db, product_id: str, *,
                 activation_id: str,
                 signed: Annotated[Signed, Depends(holder())]) -> Response:
    """Confirm freeing a computer: what happens to the app on it, and the limit left."""
    activation = _activation(session, signed, activation_id)
    if activation.offline:
        raise PortalError(409, translate("Air-gapped computer"), _air_gapped_text())
    return render(request, "release.html", **page_context(session, signed),
                  activation={"id": activation.id, "created_at": activation.created_at,
                              "last_seen_at": activation.last_seen_at,
                              "os": activation.client_os,
                              "label": portal.label_of(state.ctx, signed.holder, activation)},
                  allowance=portal.release_allowance(session, signed.holder.license))


@router.post("/{product_id}/activations/{activation_id}/release")
def release(request: Request, state: State, session: Db, product_id: str, *,
            activation_id: str,
            posted: Annotated[Posted, Depends(poster())]) -> Response:
    """Free the computer's seat: the app on it learns at its next check."""
    try:
        portal.release_activation(session, state.ctx, posted.holder, activation_id)
    except ServiceError as exc:
        if exc.code is Code.RELEASE_LIMIT_REACHED:
            raise PortalError(429, translate("Limit reached"), translate(
                "You have freed as many computers as this product allows for now. Contact "
                "support to free another one.")) from None
        if exc.code is Code.CONFLICT:
            raise PortalError(409, translate("Air-gapped computer"), _air_gapped_text()) from None
        raise PortalError(404, translate("Computer not found"),
                          translate("This computer is not among this license's activations "
                                    "(it may have been freed already).")) from None
    raise Redirect(f"/portal/{quote(product_id)}/license", translate(
        "The computer was freed. The app on it stops using the license at its next check."))
