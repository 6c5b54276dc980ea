"""Signing in and out of the panel, and the staff member's own password."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.domain.roles import Permission
from software_dna.server.panel.web import (
    PanelRoute,
    Posted,
    Staff,
    clear_cookie,
    field_errors,
    poster,
    render,
    see_other,
    set_cookie,
    viewer,
)
from software_dna.server.services import ratelimit
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.staff import change_password, end_session, sign_in

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)


def _next(target: str | None) -> str:
    """Where to go after signing in: a panel path only (never another site)."""
    if target and target.startswith("/panel") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return "/panel/"


@router.get("/sign-in")
def sign_in_page(request: Request, next: str | None = None) -> Response:
    """The sign-in form."""
    return render(request, "sign_in.html", None, next=_next(next), errors={}, email="")


@router.post("/sign-in")
async def sign_in_post(request: Request, state: State, session: Db) -> Response:
    """Check the address and password (rate limited per network and per address)."""
    form = await request.form(max_files=0, max_fields=10)
    email = str(form.get("email") or "")[:254]
    password = str(form.get("password") or "")
    target = _next(str(form.get("next") or ""))
    settings = state.settings
    try:
        address = client_address(request)
        if address:
            ratelimit.hit(session, "panel:" + state.ctx.vault.address_key(address),
                          limit=settings.panel_sign_in_attempts,
                          window=settings.panel_sign_in_window)
        ratelimit.hit(session, "staff:" + state.ctx.vault.email_index(email.strip().lower()),
                      limit=settings.panel_sign_in_attempts, window=settings.panel_sign_in_window)
    except ServiceError as exc:
        return render(request, "sign_in.html", None, status=429, next=target, email=email,
                      errors={"form": "Too many sign-in attempts. Try again in "
                              f"{exc.retry_after or 60} seconds."})
    done = sign_in(session, state.ctx, email, password)
    if done is None:
        return render(request, "sign_in.html", None, status=400, next=target, email=email,
                      errors={"form": "Wrong email address or password."})
    response = see_other(request, ("/panel/sign-in/code?" + urlencode({"next": target}))
                         if done.second_factor_due else target)
    set_cookie(response, request, "session", done.token)
    return response


@router.post("/sign-out")
def sign_out(request: Request, state: State, session: Db,
             posted: Annotated[Posted, Depends(poster(Permission.READ))]) -> Response:
    """End this session."""
    end_session(session, state.ctx, posted.staff.token)
    response = see_other(request, "/panel/sign-in", "Signed out.")
    clear_cookie(response, request, "session")
    return response


@router.get("/account/password")
def password_page(request: Request,
                  staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """The form to change one's own password."""
    return render(request, "password.html", staff, errors={})


@router.post("/account/password")
def password_post(request: Request, session: Db,
                  posted: Annotated[Posted, Depends(poster(Permission.READ))]) -> Response:
    """Change one's own password; other sessions end."""
    staff = posted.staff
    member = session.merge(staff.member)
    try:
        change_password(session, member, posted.values.get("current", ""),
                        posted.values.get("new", ""), keep_session=staff.session_id)
    except ServiceError as exc:
        return render(request, "password.html", staff, status=400,
                      errors=field_errors(exc))
    return see_other(request, "/panel/", "Password changed.")
