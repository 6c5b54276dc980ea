"""Email confirmation links: ``GET`` shows a page with a button, the button ``POST``s.

The link mailed to an end user (``<public url>/v1/email-confirmations/<token>``)
confirms nothing when it is merely fetched: mail scanners and link previews
fetch links, people press buttons.  The page is self-contained (no script,
no external asset, no referrer sent).  ``POST`` answers the page's form with
a page and any other client (``Accept`` without ``text/html``) with JSON.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse

from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.api.errors import error_responses
from software_dna.server.api.pages import page
from software_dna.server.schemas.email_confirmations import EmailConfirmedOut
from software_dna.server.services import email_confirmation
from software_dna.server.services.errors import ServiceError

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(404, 429)
#: Any text up to 64 characters: a malformed token is an unknown one (404), never a 422.
Token = Annotated[str, Path(max_length=64)]


def _page(title: str, text: str, *, button: bool = False, status: int = 200) -> HTMLResponse:
    return page(title, text, button="Confirm" if button else None, status=status)


def _refused(exc: ServiceError) -> HTMLResponse:
    answer = _page("Not now" if exc.status == 429 else "Link not valid", exc.message,
                   status=exc.status)
    if exc.retry_after is not None:
        answer.headers["Retry-After"] = str(exc.retry_after)
    return answer


@router.get("/email-confirmations/{token}", response_class=HTMLResponse, responses=_ERRORS)
def confirmation_page(token: Token, request: Request, state: State,
                      session: Db) -> HTMLResponse:
    """A page with a Confirm button (fetching the link confirms nothing)."""
    try:
        found = email_confirmation.link_state(session, state.ctx, token,
                                              client_address=client_address(request))
    except ServiceError as exc:
        return _refused(exc)
    if found.done:
        return _page("Email address confirmed", "This address is confirmed already. You can "
                     "close this page.")
    if not found.live:
        return _page("Link not valid", "This confirmation link is not valid (any more): it "
                     "expired, was replaced by a newer one, or the address changed.", status=404)
    return _page("Confirm your email address", "Press Confirm to confirm that this email "
                 "address is yours. Password reset codes for your license can then be sent "
                 "to it.", button=True)


@router.post("/email-confirmations/{token}", response_model=EmailConfirmedOut,
             responses=_ERRORS)
def confirm_email(token: Token, request: Request, state: State,
                  session: Db) -> EmailConfirmedOut | HTMLResponse | JSONResponse:
    """Confirm the address the link was mailed to (the page's button, or an API client)."""
    wants_page = "text/html" in request.headers.get("accept", "")
    try:
        confirmed_at = email_confirmation.confirm(session, state.ctx, token,
                                                  client_address=client_address(request))
    except ServiceError as exc:
        if wants_page:
            return _refused(exc)
        raise
    if wants_page:
        return _page("Email address confirmed", "Thank you: this address is confirmed. You "
                     "can close this page.")
    return EmailConfirmedOut(confirmed_at=confirmed_at)
