"""The end user's personal data: what is held, its download, and its erasure."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State
from software_dna.server.portal.pages.license import page_context
from software_dna.server.portal.web import (
    HEADERS,
    PortalRoute,
    Posted,
    Redirect,
    Signed,
    holder,
    poster,
    render,
    translate,
)
from software_dna.server.schemas.end_users import export_document
from software_dna.server.services import portal_account

__all__ = ["router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


@router.get("/{product_id}/data")
def data_page(request: Request, state: State, session: Db, product_id: str,
              signed: Annotated[Signed, Depends(holder(personal=True))]) -> Response:
    """What the server holds about this end user, with a button to download all of it."""
    return render(request, "data.html", **page_context(session, signed),
                  held=portal_account.held_data(session, state.ctx, signed.holder))


@router.post("/{product_id}/data/export")
def export(state: State, session: Db, product_id: str,
           posted: Annotated[Posted, Depends(poster(personal=True))]) -> Response:
    """Everything held about this end user as a JSON download: the vendor's export."""
    person = posted.holder.end_user
    assert person is not None  # personal reach has an end user
    body = export_document(portal_account.export_for(session, state.ctx, posted.holder))
    return Response(body, media_type="application/json", headers={
        **HEADERS, "Content-Disposition": f'attachment; filename="{person.id}.json"'})


@router.get("/{product_id}/erase")
def erase_page(request: Request, session: Db, product_id: str,
               signed: Annotated[Signed, Depends(holder(personal=True))]) -> Response:
    """What erasure does, per license it touches, and what limited mode means here."""
    return render(request, "erase.html", **page_context(session, signed),
                  effects=portal_account.erasure_effects(session, signed.holder))


@router.post("/{product_id}/erase")
def erase(state: State, session: Db, product_id: str,
          posted: Annotated[Posted, Depends(poster(personal=True))]) -> Response:
    """Erase this end user's personal data; the license page then says limited."""
    portal_account.erase_self(session, state.ctx, posted.holder)
    raise Redirect(f"/portal/{quote(product_id)}/license", translate(
        "Your personal data is erased. The license goes on working in limited mode."))
