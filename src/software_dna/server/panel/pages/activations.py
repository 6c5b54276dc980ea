"""Activations: the machines holding seats, with filters; one activation; removing one.

Reading needs Permission.READ, removing Permission.LICENSES.  The mode shown
is the one the machine's tokens carry (``Activation.token_mode``, the token
issuer's rule), with "air-gapped" for activations whose tokens are offline.
No personal data is shown here: the end user is named by id only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import or_, select

from software_dna.server.api.deps import Db, IdPath
from software_dna.server.domain.roles import Permission
from software_dna.server.models import Activation, License
from software_dna.server.panel.web import (
    ACTOR,
    PanelRoute,
    Posted,
    Staff,
    paginate,
    poster,
    query_string,
    render,
    see_other,
    viewer,
)
from software_dna.server.services import get_activation, remove_activation

__all__ = ["MODES", "STATES", "router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

#: The mode filter's choices: ``(value, label)``.
MODES = [("", "any"), ("full", "full"), ("limited", "limited (after erasure)"),
         ("offline", "air-gapped (offline tokens)")]
#: The state filter's choices.
STATES = [("live", "live"), ("removed", "removed or deactivated"), ("all", "all")]


@router.get("/activations")
def activations(request: Request, session: Db, *,
                staff: Annotated[Staff, Depends(viewer(Permission.READ))],
                product: str = "", license: str = "", shared: str = "", mode: str = "",
                state: str = "live", page: int = 1) -> Response:
    """Activations, newest first, filtered by product, license, sharing flag, mode, state."""
    query = select(Activation).join(License, Activation.license_id == License.id)
    if product.strip():
        query = query.where(License.product_id == product.strip())
    if license.strip():
        query = query.where(Activation.license_id == license.strip())
    if shared:
        query = query.where(Activation.shared_at.is_not(None))
    # The SQL form of domain.tokens.token_mode (limited: the license or the activation
    # was erased); the rows shown use the rule itself.
    limited = or_(License.erased.is_(True), Activation.erased.is_(True))
    if mode == "full":
        query = query.where(~limited)
    elif mode == "limited":
        query = query.where(limited)
    elif mode == "offline":
        query = query.where(Activation.offline.is_(True))
    if state == "live":
        query = query.where(Activation.deactivated_at.is_(None))
    elif state == "removed":
        query = query.where(Activation.deactivated_at.is_not(None))
    listing = paginate(session, query.order_by(Activation.created_at.desc(),
                                               Activation.id.desc()), page)
    filters = {"product": product, "license": license, "shared": shared, "mode": mode,
               "state": state}
    params = query_string(**filters).replace("?", "&", 1)
    return render(request, "activations.html", staff, page=listing, filters=filters,
                  params=params, modes=MODES, states=STATES)


@router.get("/activations/{activation_id}")
def show(request: Request, session: Db, activation_id: IdPath,
         staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """One activation: its machine, client, mode, sharing flag."""
    return render(request, "activations_show.html", staff,
                  activation=get_activation(session, activation_id))


@router.get("/activations/{activation_id}/remove")
def remove_page(request: Request, session: Db, activation_id: IdPath,
                staff: Annotated[Staff, Depends(viewer(Permission.LICENSES))]) -> Response:
    """Confirm removing an activation."""
    return render(request, "activations_remove.html", staff,
                  activation=get_activation(session, activation_id))


@router.post("/activations/{activation_id}/remove")
def remove(request: Request, session: Db, activation_id: IdPath,
           posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Remove the activation: its seat is free, the machine is refused at its next check."""
    remove_activation(session, activation_id, actor=ACTOR)
    return see_other(request, f"/panel/activations/{activation_id}",
                     "Activation removed: its seat is free.")
