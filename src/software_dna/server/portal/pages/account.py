"""The activation password, and the end user's own email address."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State
from software_dna.server.portal.pages.auth import retry_text
from software_dna.server.portal.pages.license import page_context
from software_dna.server.portal.web import (
    PortalRoute,
    Posted,
    Redirect,
    Signed,
    holder,
    poster,
    render,
    translate,
)
from software_dna.server.services import portal, portal_account
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.licenses import MAX_PASSWORD
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)


def _license_page(product_id: str) -> str:
    return f"/portal/{quote(product_id)}/license"


# --------------------------------------------------------------------------- password


def _password_errors(exc: ServiceError) -> dict[str, str]:
    """A refusal of :func:`portal.change_password` as the field it is about, in words of
    the catalogue."""
    field = str((exc.details or {}).get("field") or "password")
    if field == "current":
        return {"current": translate("The current activation password is wrong.")}
    if exc.message == "Choose a password other than the current one.":
        return {"password": translate("Choose a password other than the current one.")}
    if exc.message == "Enter the new activation password.":
        return {"password": translate("Enter the new activation password.")}
    if exc.message == f"An activation password is 1 to {MAX_PASSWORD} characters.":
        return {"password": translate("An activation password is 1 to %(max)s characters.")
                % {"max": MAX_PASSWORD}}
    return {"password": translate(exc.message)}


def _password_page(request: Request, session: Db, signed: Signed, *, status: int = 200,
                   errors: dict[str, str] | None = None) -> Response:
    lic = signed.holder.license
    return render(request, "password.html", **page_context(session, signed), status=status,
                  errors=errors or {}, needs_current=lic.password_hash is not None
                  and not portal.may_set_password_without_current(signed.holder),
                  has_password=lic.password_hash is not None, max_length=MAX_PASSWORD)


@router.get("/{product_id}/password")
def password_page(request: Request, session: Db, product_id: str,
                  signed: Annotated[Signed, Depends(holder())]) -> Response:
    """Change the activation password (some link sessions may set one without the current:
    services.portal.change_password says which)."""
    return _password_page(request, session, signed)


@router.post("/{product_id}/password")
def change_password(request: Request, state: State, session: Db, product_id: str,
                    posted: Annotated[Posted, Depends(poster())]) -> Response:
    """Set the new activation password: never the current one again; the license's other
    password sessions end.  A plain ``def``: the password hashes run in the thread pool."""
    new, repeat = posted.raw("password")[:1000], posted.raw("repeat")[:1000]
    if new and new != repeat:
        return _password_page(request, session, posted.signed, status=400, errors={
            "repeat": translate("The two new passwords differ. Type the same password twice.")})
    current = posted.raw("current")[:1000] or None
    try:
        portal.change_password(session, state.ctx, posted.holder, new, current=current)
    except ServiceError as exc:
        session.rollback()
        if exc.code is not Code.INVALID_REQUEST:
            raise
        return _password_page(request, session, posted.signed, status=400,
                              errors=_password_errors(exc))
    raise Redirect(_license_page(product_id), translate(
        "The activation password is changed. Use the new one when you activate the app."))


# --------------------------------------------------------------------------- email


def _email_page(request: Request, state: State, session: Db, signed: Signed, *,
                status: int = 200, errors: dict[str, str] | None = None,
                typed: str = "") -> Response:
    person = signed.holder.end_user
    return render(request, "email.html", **page_context(session, signed), status=status,
                  errors=errors or {}, typed=typed,
                  email=portal_account.email_of(state.ctx, signed.holder),
                  confirmed=person is not None and person.email_confirmed_at is not None)


@router.get("/{product_id}/email")
def email_page(request: Request, state: State, session: Db, product_id: str,
               signed: Annotated[Signed, Depends(holder(personal=True))]) -> Response:
    """The address on file (this end user's only), with forms to change or remove it."""
    return _email_page(request, state, session, signed)


@router.post("/{product_id}/email")
def set_email(request: Request, state: State, session: Db, product_id: str,
              posted: Annotated[Posted, Depends(poster(personal=True))]) -> Response:
    """Set or change the address: a confirmation link goes to the new one."""
    typed = posted.get("email")[:254]
    try:
        changed = portal_account.set_email(session, state.ctx, posted.holder, typed)
    except ServiceError as exc:
        session.rollback()
        if exc.code is Code.RATE_LIMITED:
            error = retry_text(exc.retry_after)
        elif exc.code is Code.INVALID_REQUEST:
            error = translate("Enter a whole email address (name@example.com, no spaces).")
        else:
            raise
        return _email_page(request, state, session, posted.signed, status=exc.code.status,
                           errors={"email": error}, typed=typed)
    if not changed:
        raise Redirect(f"/portal/{quote(product_id)}/email",
                       translate("This is the address on file already."))
    raise Redirect(f"/portal/{quote(product_id)}/email", translate(
        "The address is changed. Open the link we mailed to it to confirm it; until then "
        "no sign-in link or password reset is sent to it."))


@router.post("/{product_id}/email/remove")
def remove_email(request: Request, state: State, session: Db, product_id: str,
                 posted: Annotated[Posted, Depends(poster(personal=True))]) -> Response:
    """Remove the address: no mail reaches the end user until they set one again."""
    portal_account.remove_email(session, state.ctx, posted.holder)
    raise Redirect(f"/portal/{quote(product_id)}/email", translate(
        "Your address is removed. You stay signed in; to sign in by email again, set an "
        "address and confirm it."))
