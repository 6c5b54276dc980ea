"""End users: find by email (posted), see one (decrypted, audited), export as JSON, erase.

Every page needs Permission.PERSONAL_DATA; erasing needs Permission.ERASE.
Looking up an address uses its keyed hash (nothing is decrypted to search);
every page that shows decrypted data, and every export, adds an audit entry
``end_user.viewed`` naming the staff member, before the data is shown.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, IdPath, State
from software_dna.server.domain.roles import Permission
from software_dna.server.panel.web import (
    ACTOR,
    HEADERS,
    PanelRoute,
    Posted,
    Staff,
    poster,
    render,
    see_other,
    viewer,
)
from software_dna.server.schemas.end_users import export_document
from software_dna.server.services import erase_end_user, find_end_users, get_end_user
from software_dna.server.services.endusers import (
    export_end_user_viewed,
    is_email_address,
    view_end_user,
)

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)


@router.get("/end-users")
def search_page(request: Request,
                staff: Annotated[Staff, Depends(viewer(Permission.PERSONAL_DATA))]) -> Response:
    """The search form (the address is posted, so it stays out of URLs, history and logs)."""
    return render(request, "end_users.html", staff, email="", found=None, errors={})


@router.post("/end-users")
def search(request: Request, state: State, session: Db,
           posted: Annotated[Posted, Depends(poster(Permission.PERSONAL_DATA))]) -> Response:
    """The end users with the posted address (ids and dates only; nothing is decrypted)."""
    email = posted.get("email")[:254]
    if not is_email_address(email):
        return render(request, "end_users.html", posted.staff, status=400, email=email,
                      found=None, errors={"email": "Enter a whole email address "
                                          "(name@example.com)."})
    return render(request, "end_users.html", posted.staff, email=email,
                  found=find_end_users(session, state.ctx, email), errors={})


@router.get("/end-users/{end_user_id}")
def show(request: Request, state: State, session: Db, end_user_id: IdPath,
         staff: Annotated[Staff, Depends(viewer(Permission.PERSONAL_DATA))]) -> Response:
    """One end user, decrypted; the view is recorded in the audit log first."""
    view = view_end_user(session, state.ctx, end_user_id, actor=ACTOR)
    return render(request, "end_users_show.html", staff, view=view)


@router.get("/end-users/{end_user_id}/export.json")
def export(state: State, session: Db, end_user_id: IdPath,
           staff: Annotated[Staff, Depends(viewer(Permission.PERSONAL_DATA))]) -> Response:
    """Everything held about the end user, as the admin API exports it, as a download."""
    body = export_document(export_end_user_viewed(session, state.ctx, end_user_id, actor=ACTOR))
    return Response(body, media_type="application/json", headers={
        **HEADERS, "Content-Disposition": f'attachment; filename="{end_user_id}.json"'})


@router.get("/end-users/{end_user_id}/erase")
def erase_page(request: Request, session: Db, end_user_id: IdPath,
               staff: Annotated[Staff, Depends(viewer(Permission.ERASE))]) -> Response:
    """Confirm the erasure: what goes, and what limited mode means for their licenses."""
    return render(request, "end_users_erase.html", staff,
                  end_user=get_end_user(session, end_user_id))


@router.post("/end-users/{end_user_id}/erase")
def erase(request: Request, state: State, session: Db, end_user_id: IdPath,
          posted: Annotated[Posted, Depends(poster(Permission.ERASE))]) -> Response:
    """Erase the end user's personal data; their licenses go on in limited mode."""
    erase_end_user(session, state.ctx, end_user_id, actor=ACTOR)
    return see_other(request, "/panel/end-users",
                     f"End user {end_user_id} erased: their licenses now run in limited mode.")
