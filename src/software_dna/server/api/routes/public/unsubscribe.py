"""One-click unsubscribe from a license's reminders and notices (RFC 8058, RFC 2369).

A reminder carries ``List-Unsubscribe: <{public url}/v1/unsubscribe/{token}>``
and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.  ``GET`` (a person
following the link) shows a page with a button and changes nothing: link
scanners and previews fetch links.  ``POST`` (the button, or the mail
client's one-click request with the form body ``List-Unsubscribe=One-Click``)
records the opt-out, idempotently, and answers 200.  A forged or tampered
token gets 400.  The key delivery has no such link and is always sent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from software_dna.server.api.deps import Db, State
from software_dna.server.api.errors import error_responses
from software_dna.server.api.pages import page
from software_dna.server.schemas.mail import UnsubscribedOut
from software_dna.server.services import emails
from software_dna.server.services.errors import ServiceError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400)
#: Any text up to 200 characters: a malformed token is a refused one (400), never a 422.
Token = Annotated[str, Path(max_length=200)]


def _page(title: str, text: str, *, button: bool = False, status: int = 200) -> HTMLResponse:
    return page(title, text, button="Unsubscribe" if button else None,
                fields={"List-Unsubscribe": "One-Click"}, status=status)


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=_ERRORS)
def unsubscribe_page(token: Token, state: State) -> HTMLResponse:
    """A page with an Unsubscribe button (fetching the link changes nothing)."""
    try:
        emails.read_unsubscribe_token(state.ctx, token)
    except ServiceError as exc:
        return _page("Link not valid", exc.message, status=exc.status)
    return _page("Unsubscribe", "Press Unsubscribe to receive no more reminders and notices "
                 "about this license at this address. The license itself is not changed.",
                 button=True)


@router.post("/unsubscribe/{token}", response_model=UnsubscribedOut, responses=_ERRORS)
def unsubscribe(token: Token, request: Request, state: State,
                session: Db) -> UnsubscribedOut | HTMLResponse:
    """Record the opt-out (one click; repeating it changes nothing)."""
    wants_page = "text/html" in request.headers.get("accept", "")
    try:
        new = emails.unsubscribe(session, state.ctx, token)
    except ServiceError as exc:
        if wants_page:
            return _page("Link not valid", exc.message, status=exc.status)
        raise
    if wants_page:
        return _page("Unsubscribed", "You will receive no more reminders and notices about "
                     "this license at this address. You can close this page.")
    return UnsubscribedOut(unsubscribed=True, already=not new)
