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

import html
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from software_dna.server.api.deps import Db, State
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas.mail import UnsubscribedOut
from software_dna.server.services import emails
from software_dna.server.services.errors import ServiceError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400)
#: Any text up to 200 characters: a malformed token is a refused one (400), never a 422.
Token = Annotated[str, Path(max_length=200)]
_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}
_STYLE = ("body{font-family:system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em;"
          "line-height:1.5}button{font-size:1.1em;padding:.5em 1.5em}")


def _page(title: str, text: str, *, button: bool = False, status: int = 200) -> HTMLResponse:
    form = ('<form method="post"><input type="hidden" name="List-Unsubscribe" '
            'value="One-Click"><button type="submit">Unsubscribe</button></form>'
            if button else "")
    body = (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"<p>{html.escape(text)}</p>{form}</body></html>")
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


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
