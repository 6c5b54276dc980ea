"""Air-gapped activation: answer a request made by a computer without internet access."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.portal.pages.auth import retry_text
from software_dna.server.portal.pages.license import offline_allowed, page_context
from software_dna.server.portal.web import (
    HEADERS,
    PortalError,
    PortalRoute,
    Posted,
    Signed,
    holder,
    poster,
    render,
    translate,
)
from software_dna.server.services import portal_account
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


def _allowed(signed: Signed) -> None:
    if not offline_allowed(signed.holder.license):
        raise PortalError(404, translate("Page not found"), translate(
            "This license cannot be activated on a computer without internet access."))


def _page(request: Request, session: Db, signed: Signed, *, status: int = 200,
          errors: dict[str, str] | None = None, pasted: str = "",
          answer: str | None = None) -> Response:
    lic = signed.holder.license
    return render(request, "offline.html", **page_context(session, signed), status=status,
                  errors=errors or {}, pasted=pasted, answer=answer,
                  asks_password=lic.password_hash is not None)


def _refusal(exc: ServiceError) -> dict[str, str]:
    """A refusal of the answer, in words of the catalogue, next to its field."""
    code = exc.code
    if code is Code.RATE_LIMITED:
        return {"request": retry_text(exc.retry_after)}
    if code is Code.WRONG_PASSWORD:
        return {"password": translate("The activation password is wrong.")}
    if code is Code.PASSWORD_RESET_REQUIRED:
        # The license has no password to type (erased): the request's field says why.
        return {"request": translate("This license needs a new activation password first. "
                                     "Set one on the Password page, then answer the request "
                                     "with it.")}
    texts = {
        Code.UNKNOWN_LICENSE_KEY: translate(
            "This license key does not exist for this product. Check the key."),
        Code.INVALID_REQUEST: translate(
            "This is not a valid activation request: paste the whole text the app showed, "
            "from its first line to its last."),
        Code.REQUEST_EXPIRED: translate(
            "This activation request is too old, or dated in the future: check the clock "
            "of the computer to activate, then create a new request."),
        Code.NO_SEATS_LEFT: translate(
            "Every seat of this license is in use. Free a computer first."),
        Code.ALREADY_ACTIVATED_ONLINE: translate(
            "This computer already holds an online activation of this license."),
        Code.CONSENT_REQUIRED: translate(
            "The request carries personal details without consent. Create a new request "
            "on the computer to activate."),
    }
    return {"request": texts.get(code, translate(
        "This request cannot be answered for this license: %(reason)s") % {
            "reason": translate(exc.message)})}


@router.get("/{product_id}/offline")
def offline_page(request: Request, session: Db, product_id: str,
                 signed: Annotated[Signed, Depends(holder())]) -> Response:
    """Paste the request the app showed on the computer without internet access."""
    _allowed(signed)
    return _page(request, session, signed)


@router.post("/{product_id}/offline")
def answer(request: Request, state: State, session: Db, product_id: str,
           posted: Annotated[Posted, Depends(poster())]) -> Response:
    """Answer the pasted request (this license's only): the answer on the page, or as a
    file to carry to the computer (``then=download``).  A plain ``def``: the password hash
    runs in the thread pool."""
    _allowed(posted.signed)
    pasted = posted.raw("request")[:20_000]
    if not pasted.strip():
        return _page(request, session, posted.signed, status=400, errors={
            "request": translate("Paste the activation request the app showed.")})
    try:
        result = portal_account.answer_request(
            session, state.ctx, posted.holder, pasted,
            password=posted.raw("password")[:1000] or None,
            client_address=client_address(request))
    except ServiceError as exc:
        session.rollback()
        return _page(request, session, posted.signed, status=exc.code.status,
                     errors=_refusal(exc), pasted=pasted)
    if posted.get("then") == "download":
        return Response(result.response, media_type="text/plain; charset=utf-8", headers={
            **HEADERS,
            "Content-Disposition": 'attachment; filename="activation-response.txt"'})
    return _page(request, session, posted.signed, answer=result.response)
