"""What every panel page shares: the signed-in staff member, CSRF, templates, pages of rows.

A page handler names the :class:`~software_dna.server.domain.roles.Permission`
it needs through :func:`viewer` (GET) or :func:`poster` (POST, which also
checks the form's CSRF token).  Both read the session from the cookie at
every request, so a role changed or an account removed takes effect at once.
Handlers raise :class:`Redirect` / :class:`PanelError` (or let a
``ServiceError`` through) and :class:`PanelRoute` turns them into pages.

Cookies: the session (HttpOnly, SameSite=Strict, ``Secure`` and the
``__Host-`` prefix when the panel is reached over HTTPS, path ``/panel``)
and a one-request notice ("License revoked.") of the same kind.  Nothing
else; no script or asset comes from elsewhere (the Content-Security-Policy
says so).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import quote, unquote, urlencode

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from software_dna.server.api.browser import cross_site, is_secure
from software_dna.server.api.deps import AppState, get_session, get_state
from software_dna.server.domain.roles import Permission, allows
from software_dna.server.models import StaffMember
from software_dna.server.services.common import acting_as
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.staff import csrf_matches, session_staff

__all__ = [
    "ACTOR",
    "HEADERS",
    "PER_PAGE",
    "Page",
    "PanelError",
    "PanelRoute",
    "Posted",
    "Redirect",
    "Staff",
    "cookie_name",
    "field_errors",
    "clear_cookie",
    "cross_site",
    "paginate",
    "poster",
    "query_string",
    "render",
    "see_other",
    "set_cookie",
    "templates",
    "viewer",
]

#: The audit log's actor for changes made in the panel (``actor_id``: the staff member).
ACTOR = "panel"
#: Rows per page of every list.
PER_PAGE = 50
_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "panel"
templates = Jinja2Templates(directory=str(_TEMPLATES))
templates.env.globals["Permission"] = Permission

#: Headers of every panel response.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; "
                                "style-src 'self'; script-src 'self'; form-action 'self'; "
                                "frame-ancestors 'none'; base-uri 'none'"),
}
_NOTICE = "notice"


def cookie_name(request: Request, name: str = "session") -> str:
    """A panel cookie's name: ``__Host-sdna_<name>`` over HTTPS, else ``sdna_<name>``."""
    return f"__Host-sdna_{name}" if is_secure(request) else f"sdna_{name}"


def set_cookie(response: Response, request: Request, name: str, value: str, *,
               max_age: int | None = None) -> None:
    """Set a panel cookie (HttpOnly, SameSite=Strict, Secure over HTTPS)."""
    response.set_cookie(cookie_name(request, name), value, max_age=max_age, httponly=True,
                        samesite="strict", secure=is_secure(request),
                        path="/" if is_secure(request) else "/panel")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Remove a panel cookie."""
    response.delete_cookie(cookie_name(request, name), httponly=True, samesite="strict",
                           secure=is_secure(request), path="/" if is_secure(request) else "/panel")


@dataclass
class Staff:
    """The signed-in staff member of a request.

    Attributes:
        member: their row (role, email, name).
        token: the session cookie's token (never shown; keyed-hashed for the CSRF token).
        csrf: the CSRF token every form of the page carries.
        session_id: the session row's id (its token's keyed hash).
    """

    member: StaffMember
    token: str
    csrf: str
    session_id: str

    @property
    def id(self) -> str:
        """The staff member's id (``stf_...``)."""
        return self.member.id

    @property
    def role(self) -> str:
        """Their role's name."""
        return self.member.role

    def can(self, permission: Permission) -> bool:
        """True when their role allows ``permission``."""
        return allows(self.member.role, permission)


class Redirect(Exception):
    """Leave the handler with a 303 to ``url`` (and a notice for the next page)."""

    def __init__(self, url: str, notice: str | None = None) -> None:
        super().__init__(url)
        self.url = url
        self.notice = notice


class PanelError(Exception):
    """Leave the handler with an error page (``status``, a title and a sentence)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


def see_other(request: Request, url: str, notice: str | None = None) -> RedirectResponse:
    """A 303 to ``url`` (a panel path), with ``notice`` shown once on the next page."""
    response = RedirectResponse(url, status_code=303, headers=HEADERS)
    if notice:
        set_cookie(response, request, _NOTICE, quote(notice[:300]), max_age=60)
    return response


def render(request: Request, template: str, staff: Staff | None, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    """Render ``templates/panel/<template>`` with the staff member and the pending notice.

    Every template gets ``staff`` (None on the sign-in pages), ``csrf`` (the
    token for its forms), ``notice`` (shown once) and ``request``.
    """
    raw = request.cookies.get(cookie_name(request, _NOTICE))
    notice = unquote(raw)[:300] if raw else None
    response = templates.TemplateResponse(
        request, template, {"staff": staff, "csrf": staff.csrf if staff else "",
                            "notice": notice, **context},
        status_code=status, headers=HEADERS)
    if raw:
        clear_cookie(response, request, _NOTICE)
    return response


def field_errors(exc: ServiceError, default: str = "form") -> dict[str, str]:
    """A service refusal as ``{field: message}`` for the form (``details.field`` names it)."""
    name = exc.details.get("field") if isinstance(exc.details, Mapping) else None
    return {str(name) if name else default: exc.message}


def _session_of(request: Request, state: AppState, session: Session
                ) -> tuple[Staff | None, bool, bool]:
    """The cookie's live session as ``(staff, second factor due, must change password)``."""
    token = request.cookies.get(cookie_name(request))
    try:
        row = session_staff(session, state.ctx, token)
        if row is None or token is None:
            return None, False, False
        staff = Staff(member=row.staff, token=token, csrf=state.ctx.vault.csrf_token(token),
                      session_id=row.id)
        return staff, row.second_factor_due, row.staff.must_change_password
    finally:
        session.rollback()  # end the read transaction (SQLite: release the lock)


async def _signed_in(request: Request, state: AppState, session: Session) -> Staff | None:
    # In the thread pool: a database wait (SQLite's lock) must never hold the event loop.
    staff, due, must_change = await run_in_threadpool(_session_of, request, state, session)
    if staff is None:
        return None
    if due:
        raise Redirect("/panel/sign-in/code")
    if must_change and request.url.path != "/panel/account/password":
        raise Redirect("/panel/account/password", "Choose a new password first.")
    return staff


def _allowed(staff: Staff, permission: Permission) -> None:
    if not staff.can(permission):
        raise PanelError(403, "Not allowed", f"Your role ({staff.role}) does not allow this "
                         "page or action. Ask an owner if you need it.")


def viewer(permission: Permission) -> Callable[..., AsyncIterator[Staff]]:
    """A dependency for a page (GET): the signed-in staff member, allowed ``permission``.

    Not signed in: a redirect to the sign-in page (which comes back here).
    Not allowed: a 403 page.  Audit entries the page makes (a view of personal
    data) name the staff member.
    """
    async def dependency(request: Request, state: Annotated[AppState, Depends(get_state)],
                         session: Annotated[Session, Depends(get_session)]
                         ) -> AsyncIterator[Staff]:
        staff = await _signed_in(request, state, session)
        if staff is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise Redirect("/panel/sign-in?" + urlencode({"next": target}))
        _allowed(staff, permission)
        # async: the context set here reaches the handler's thread (FastAPI copies it).
        with acting_as(staff.id):
            yield staff

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the role matrix test
    return dependency


@dataclass
class Posted:
    """A checked form post: who sent it and the form's fields."""

    staff: Staff
    form: FormData
    #: Values as strings (a field sent twice: its last value; files are refused).
    values: dict[str, str] = field(default_factory=dict)

    def get(self, name: str, default: str = "") -> str:
        """A field's value, stripped of surrounding spaces ('' when absent)."""
        return self.values.get(name, default).strip()

    def all(self, name: str) -> list[str]:
        """Every value of a field sent several times (checkboxes)."""
        return [v for v in self.form.getlist(name) if isinstance(v, str)]


def poster(permission: Permission, *, max_files: int = 0) -> Callable[..., AsyncIterator[Posted]]:
    """A dependency for a form post: signed in, allowed ``permission``, the CSRF token right.

    A post without a session, or with a missing or wrong ``csrf`` field, is
    refused with a 403 page and changes nothing.  The staff member's id goes
    into every audit entry the handler makes.  ``max_files``: how many
    uploaded files the form may carry (``Posted.form``; default none).
    """
    async def dependency(request: Request, state: Annotated[AppState, Depends(get_state)],
                         session: Annotated[Session, Depends(get_session)]
                         ) -> AsyncIterator[Posted]:
        if cross_site(request):
            raise PanelError(403, "Form refused", "This form was sent from another site. "
                             "Open the panel yourself and try again.")
        staff = await _signed_in(request, state, session)
        form = await request.form(max_files=max_files, max_fields=2000)
        try:  # an uploaded file is closed however the post ends (a refusal included)
            if staff is None or not csrf_matches(state.ctx, staff.token,
                                                 _text(form.get("csrf"))):
                raise PanelError(403, "Form expired", "This form is no longer valid (signed "
                                 "out, or sent from elsewhere). Reload the page and try again.")
            _allowed(staff, permission)
            values = {key: value for key, value in form.multi_items() if isinstance(value, str)}
            with acting_as(staff.id):
                yield Posted(staff=staff, form=form, values=values)
        finally:
            await form.close()

    dependency.permission = permission  # type: ignore[attr-defined]  # read by the role matrix test
    return dependency


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


T = TypeVar("T")


@dataclass
class Page(Generic[T]):
    """One page of a list: its rows, its number (from 1) and how many rows there are."""

    items: Sequence[T]
    number: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        """How many pages there are (at least 1)."""
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_previous(self) -> bool:
        """True when a page comes before this one."""
        return self.number > 1

    @property
    def has_next(self) -> bool:
        """True when a page comes after this one."""
        return self.number < self.pages


def paginate(session: Session, query: Select[T], number: int,
             per_page: int = PER_PAGE) -> Page[T]:
    """Run ``query`` (already ordered) for page ``number`` (from 1; out of range: clamped)."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(1, math.ceil(total / per_page))
    number = min(max(1, number), pages)
    items: list[T] = list(session.scalars(query.limit(per_page).offset((number - 1) * per_page)))
    return Page(items=items, number=number, per_page=per_page, total=total)


class PanelRoute(APIRoute):
    """A panel route: :class:`Redirect`, :class:`PanelError` and ``ServiceError`` become pages.

    (The staff member is recorded in the audit entries by :func:`viewer` and
    :func:`poster`, through services.common.acting_as.)
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except Redirect as done:
                return see_other(request, done.url, done.notice)
            except PanelError as exc:
                return render(request, "error.html", None, status=exc.status,
                              title=exc.title, message=exc.message)
            except ServiceError as exc:
                return render(request, "error.html", None, status=exc.code.status,
                              title="Refused", message=exc.message)

        return route


def query_string(**params: Any) -> str:
    """``?a=1&b=2`` of the params that are set (for pagination and filter links)."""
    given = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode(given) if given else ""
