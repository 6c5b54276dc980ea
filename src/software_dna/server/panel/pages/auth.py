"""Signing in and out of the panel, and the staff member's own password."""

from __future__ import annotations

import contextlib
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.domain.roles import Permission
from software_dna.server.panel.web import (
    PanelError,
    PanelRoute,
    Posted,
    Staff,
    clear_cookie,
    cookie_name,
    cross_site,
    field_errors,
    poster,
    render,
    see_other,
    set_cookie,
    viewer,
)
from software_dna.server.services import ratelimit
from software_dna.server.services.common import utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.staff import (
    change_password,
    csrf_matches,
    end_session,
    session_staff,
    sign_in,
    verify_second_factor,
)

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


#: A form field as the sign-in forms take it (any length: cut here, never refused as JSON).
_Field = Annotated[str, Form()]


@router.post("/sign-in")
def sign_in_post(request: Request, state: State, session: Db, *, email: _Field = "",
                 password: _Field = "", next: _Field = "") -> Response:
    """Check the address and password (rate limited per network and per address).

    A plain ``def``: the password hash and the database run in the thread pool.
    """
    if cross_site(request):
        raise PanelError(403, "Form refused", "Sign in from the panel's own page.")
    email = email[:254]
    password = password[:1000]
    target = _next(next)
    settings = state.settings
    limit, window = settings.panel_sign_in_attempts, settings.panel_sign_in_window
    # Failed sign-ins are limited per client network: every attempt is counted first
    # (concurrent guesses cannot pass the limit) and a good one is taken back.  Per
    # account, failures from everywhere count, but an account over its limit refuses
    # only networks that failed in the window: a stranger's wrong guesses never lock the
    # owner out from the owner's own network.
    address = client_address(request)
    network = "panel:" + state.ctx.vault.address_key(address) if address else None
    account = "staff:" + state.ctx.vault.email_index(email.strip().lower())
    try:
        if network is not None:
            ratelimit.hit(session, network, limit=limit, window=window)
    except ServiceError as exc:
        return _too_many(request, target, email, exc.retry_after)
    failed_here = (network is None or ratelimit.counter_state(
        session, network, limit=limit, window=window).count > 1)
    locked = ratelimit.counter_state(session, account, limit=limit, window=window)
    session.rollback()
    if failed_here and locked.locked_until is not None:
        return _too_many(request, target, email, max(
            1, int((locked.locked_until - utcnow()).total_seconds())))
    done = sign_in(session, state.ctx, email, password)
    if done is None:
        with contextlib.suppress(ServiceError):  # at its limit: it refuses failing networks
            ratelimit.hit(session, account, limit=limit, window=window)
        return render(request, "sign_in.html", None, status=400, next=target, email=email,
                      errors={"form": "Wrong email address or password."})
    if network is not None:
        ratelimit.refund(session, network)
    session.commit()
    response = see_other(request, ("/panel/sign-in/code?" + urlencode({"next": target}))
                         if done.second_factor_due else target)
    set_cookie(response, request, "session", done.token)
    return response


def _too_many(request: Request, target: str, email: str, retry_after: int | None) -> Response:
    return render(request, "sign_in.html", None, status=429, next=target, email=email,
                  errors={"form": "Too many failed sign-ins. Try again in "
                          f"{retry_after or 60} seconds."})


def _waiting_token(request: Request, state: State, session: Db) -> str | None:
    """The cookie's token when its session waits for the second factor (else None).

    The code page cannot use ``viewer()``: that sends such a session here.
    """
    token = request.cookies.get(cookie_name(request))
    row = session_staff(session, state.ctx, token)
    due = row is not None and row.second_factor_due
    session.rollback()  # end the read transaction (SQLite: release the lock)
    return token if due else None


@router.get("/sign-in/code")
def code_page(request: Request, state: State, session: Db, next: str | None = None
              ) -> Response:
    """The second step of signing in: the code of the authenticator app."""
    token = _waiting_token(request, state, session)
    if token is None:  # signed out, or already fully signed in
        return see_other(request, _next(next) if request.cookies.get(cookie_name(request))
                         else "/panel/sign-in")
    return render(request, "sign_in_code.html", None, csrf=state.ctx.vault.csrf_token(token),
                  next=_next(next), errors={})


@router.post("/sign-in/code")
def code_post(request: Request, state: State, session: Db, *, code: _Field = "",
              csrf: _Field = "", next: _Field = "") -> Response:
    """Check the code (each code once; rate limited per staff member, then signed out)."""
    target = _next(next)
    token = _waiting_token(request, state, session)
    if cross_site(request) or token is None or not csrf_matches(state.ctx, token, csrf):
        raise PanelError(403, "Form expired", "This form is no longer valid (signed out, "
                         "or sent from elsewhere). Sign in again.")
    code = code[:20]
    csrf = state.ctx.vault.csrf_token(token)
    try:
        good = verify_second_factor(session, state.ctx, token, code)
    except ServiceError as exc:  # too many codes: the session has been ended
        response = render(request, "sign_in.html", None, status=429, next=target, email="",
                          errors={"form": "Too many wrong codes: sign in again in "
                                  f"{exc.retry_after or 60} seconds."})
        clear_cookie(response, request, "session")
        return response
    if not good:
        return render(request, "sign_in_code.html", None, status=400, csrf=csrf, next=target,
                      errors={"code": "That code is wrong or was used already: type the "
                              "6 digits your app shows now."})
    return see_other(request, target)


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
    if posted.values.get("new", "") != posted.values.get("again", ""):
        return render(request, "password.html", staff, status=400,
                      errors={"again": "The two new passwords differ: type the same twice."})
    member = session.merge(staff.member)
    try:
        change_password(session, member, posted.values.get("current", ""),
                        posted.values.get("new", ""), keep_session=staff.session_id)
    except ServiceError as exc:
        return render(request, "password.html", staff, status=400,
                      errors=field_errors(exc))
    return see_other(request, "/panel/", "Password changed.")
