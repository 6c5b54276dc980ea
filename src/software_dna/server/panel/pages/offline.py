"""Air-gapped answers: paste an activation request, get the response to copy or download.

Needs Permission.OFFLINE.  The request goes through the same service as
``POST /v1/admin/offline/activations`` (``services.offline.respond`` with
``staff=True``: the staff member needs no activation password; every other
rule applies).  Answering the same request again gives the same activation a
fresh response, which is how the download button gets its file without
keeping anything between two requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import PlainTextResponse, Response

from software_dna.server.api.deps import Db, State
from software_dna.server.domain.roles import Permission
from software_dna.server.panel.web import (
    ACTOR,
    HEADERS,
    PanelRoute,
    Posted,
    Staff,
    poster,
    render,
    viewer,
)
from software_dna.server.services import offline
from software_dna.server.services.errors import ServiceError

__all__ = ["MAX_REQUEST", "router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

#: The longest request text accepted (the admin API's limit).
MAX_REQUEST = 48 * 1024


@router.get("/offline")
def offline_page(request: Request,
                 staff: Annotated[Staff, Depends(viewer(Permission.OFFLINE))]) -> Response:
    """The form to paste a request into."""
    return render(request, "offline.html", staff, text="", result=None, errors={})


@router.post("/offline")
def answer(request: Request, state: State, session: Db,
           posted: Annotated[Posted, Depends(poster(Permission.OFFLINE))]) -> Response:
    """Answer the request: the response shown to copy, or (``download``) as a file."""
    text = posted.values.get("request", "")
    if not text.strip():
        return render(request, "offline.html", posted.staff, status=400, text=text,
                      result=None, errors={"request": "Paste the activation request block."})
    if len(text) > MAX_REQUEST:
        return render(request, "offline.html", posted.staff, status=400, text="",
                      result=None, errors={"request": "This is far longer than an activation "
                                           "request: paste only the request block."})
    try:
        result = offline.respond(session, state.ctx, text, staff=True, actor=ACTOR)
    except ServiceError as exc:
        session.rollback()
        return render(request, "offline.html", posted.staff, status=400, text=text,
                      result=None, errors={"request": f"{exc.message} ({exc.code.value})"})
    if posted.get("download"):
        return PlainTextResponse(result.response, headers={
            **HEADERS, "Content-Disposition":
            f'attachment; filename="{result.activation_id}-activation-response.txt"'})
    return render(request, "offline.html", posted.staff, text=text, result=result, errors={})
