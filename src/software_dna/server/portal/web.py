"""What every portal page shares: the signed-in license holder, CSRF, language, branding.

Pages live under ``/portal/{product_id}/``: the product names the branding
(name, logo, colour, support address, privacy policy) and the session must
belong to it.  A page names its reach through :func:`holder` (GET) or
:func:`poster` (POST, which also checks the cross-site headers and the
form's CSRF token); ``personal=True`` asks for a session opened by a mailed
link whose end user is not erased.  Handlers raise :class:`Redirect` /
:class:`PortalError` (or let a ``ServiceError`` through) and
:class:`PortalRoute` turns them into pages.

Cookies (docs/portal.md lists them): the session, the browser's link cookie
(binds a mailed link to the browser that asked for it), a one-request notice,
and the language the end user chose.  All HttpOnly, SameSite=Strict,
``Secure`` with the ``__Host-`` prefix over HTTPS.  No script, no asset and
no request to anywhere else (the Content-Security-Policy says so).

Texts: the templates use ``{% trans %}`` / ``_()`` from the ``portal``
message catalogue (:mod:`software_dna.i18n`), in the language of the request
(:func:`language_of`).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, unquote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from software_dna.i18n import LANGUAGES, N_, negotiate, normalize, translation
from software_dna.server.api.browser import cross_site, is_secure
from software_dna.server.api.deps import AppState, get_session, get_state
from software_dna.server.models import Product, ProductLogo
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.mail_templates import BRANDING_DEFAULTS
from software_dna.server.services.portal import Holder, holder_of
from software_dna.server.services.staff import csrf_matches

__all__ = [
    "HEADERS",
    "Posted",
    "PortalError",
    "PortalRoute",
    "Redirect",
    "brand_of",
    "clear_cookie",
    "cookie_name",
    "holder",
    "is_object_id",
    "is_product_id",
    "language_of",
    "poster",
    "product_page",
    "render",
    "see_other",
    "set_cookie",
    "templates",
    "translate",
]

_TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "portal"
templates = Jinja2Templates(env=Environment(
    loader=FileSystemLoader(str(_TEMPLATES)), autoescape=select_autoescape(),
    extensions=["jinja2.ext.i18n"]))
_LANGUAGE: ContextVar[str] = ContextVar("portal_language", default="en")


def translate(message: str) -> str:
    """``message`` in the language of the page being rendered (the ``portal`` catalogue)."""
    return translation(_LANGUAGE.get(), "portal").gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return translation(_LANGUAGE.get(), "portal").ngettext(singular, plural, n)


templates.env.install_gettext_callables(  # type: ignore[attr-defined]  # the i18n extension adds it
    gettext=translate, ngettext=_ngettext, newstyle=True)
templates.env.globals["LANGUAGES"] = LANGUAGES

#: Headers of every portal response.  ``same-origin``, not ``no-referrer``: under
#: ``no-referrer`` a browser sends ``Origin: null`` with the portal's own form posts,
#: which the cross-site check must refuse; other sites still get no referrer.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": ("default-src 'none'; img-src 'self'; style-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
}
_NOTICE = "notice"
#: The language cookie's lifetime: set only when the end user picks a language.
_LANGUAGE_AGE = 365 * 86400


def cookie_name(request: Request, name: str) -> str:
    """A portal cookie's name: ``__Host-sdna_portal_<name>`` over HTTPS, else
    ``sdna_portal_<name>``."""
    return f"__Host-sdna_portal_{name}" if is_secure(request) else f"sdna_portal_{name}"


def set_cookie(response: Response, request: Request, name: str, value: str, *,
               max_age: int | None = None) -> None:
    """Set a portal cookie (HttpOnly, SameSite=Strict, Secure over HTTPS; path ``/portal``,
    or ``/`` as the ``__Host-`` prefix requires)."""
    secure = is_secure(request)
    response.set_cookie(cookie_name(request, name), value, max_age=max_age, httponly=True,
                        samesite="strict", secure=secure, path="/" if secure else "/portal")


def clear_cookie(response: Response, request: Request, name: str) -> None:
    """Remove a portal cookie."""
    secure = is_secure(request)
    response.delete_cookie(cookie_name(request, name), httponly=True, samesite="strict",
                           secure=secure, path="/" if secure else "/portal")


def language_of(request: Request) -> str:
    """The page's language: ``?lang=``, else the language cookie, else ``Accept-Language``."""
    for given in (request.query_params.get("lang"),
                  request.cookies.get(cookie_name(request, "lang"))):
        language = normalize(given)
        if language is not None:
            return language
    return negotiate(request.headers.get("accept-language"))


class Redirect(Exception):
    """Leave the handler with a 303 to ``url`` (and a notice, already translated, for the
    next page)."""

    def __init__(self, url: str, notice: str | None = None) -> None:
        super().__init__(url)
        self.url = url
        self.notice = notice


class PortalError(Exception):
    """Leave the handler with an error page (``status``, a title and a sentence, both
    already translated)."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message


@contextlib.contextmanager
def _speaking(language: str) -> Iterator[None]:
    reset = _LANGUAGE.set(language)
    try:
        yield
    finally:
        _LANGUAGE.reset(reset)


def see_other(request: Request, url: str, notice: str | None = None) -> RedirectResponse:
    """A 303 to ``url`` (a portal path), with ``notice`` shown once on the next page."""
    response = RedirectResponse(url, status_code=303, headers=HEADERS)
    if notice:
        set_cookie(response, request, _NOTICE, quote(notice[:300]), max_age=60)
    return response


def brand_of(session: Session, product: Product) -> dict[str, Any]:
    """The product's branding for its pages: the mail branding's keys (``vendor_name``,
    ``support_email``, ``colour``, ``privacy_url``) with their defaults, ``product_name``,
    ``product_id`` and ``logo`` (the logo's own address on this server, or None)."""
    brand: dict[str, Any] = dict(BRANDING_DEFAULTS)
    brand.update({k: v for k, v in (product.branding or {}).items()
                  if k in BRANDING_DEFAULTS and v})
    brand["vendor_name"] = brand["vendor_name"] or product.name
    logo = session.get(ProductLogo, product.id)
    brand.update(product_name=product.name, product_id=product.id,
                 logo=(f"/portal/{quote(product.id)}/logo?v={logo.sha256[:12]}"
                       if logo is not None else None))
    return brand


def render(request: Request, template: str, *, product: Product, brand: dict[str, Any],
           holder: Holder | None = None, csrf: str = "", status: int = 200,
           **context: Any) -> HTMLResponse:
    """Render ``templates/portal/<template>`` in the request's language.

    Every template gets ``product``, ``brand`` (:func:`brand_of`), ``holder``
    (None when signed out), ``csrf`` (the token for its forms), ``notice``
    (shown once), ``lang`` and ``request``.
    """
    raw = request.cookies.get(cookie_name(request, _NOTICE))
    notice = unquote(raw)[:300] if raw else None
    language = language_of(request)
    with _speaking(language):
        response: HTMLResponse = templates.TemplateResponse(
            request, template, {"product": product, "brand": brand, "holder": holder,
                                "csrf": csrf, "notice": notice, "lang": language, **context},
            status_code=status, headers=dict(HEADERS, **{"Content-Language": language}))
    if raw:
        clear_cookie(response, request, _NOTICE)
    if request.query_params.get("lang") and normalize(request.query_params["lang"]):
        set_cookie(response, request, "lang", language, max_age=_LANGUAGE_AGE)
    return response


def error_page(request: Request, status: int, title: str, message: str) -> HTMLResponse:
    """A page without branding (no product known): a title and a sentence, translated here."""
    language = language_of(request)
    with _speaking(language):
        page: HTMLResponse = templates.TemplateResponse(
            request, "error.html", {"title": translate(title), "message": translate(message),
                                    "product": None, "brand": None, "holder": None,
                                    "csrf": "", "notice": None, "lang": language},
            status_code=status, headers=dict(HEADERS, **{"Content-Language": language}))
    return page


@dataclass
class Signed:
    """The signed-in license holder of a page, with its product and the page's CSRF token."""

    holder: Holder
    token: str
    csrf: str

    @property
    def product(self) -> Product:
        """The license's product (the page's)."""
        return self.holder.product


_PRODUCT_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_OBJECT_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


def is_product_id(text: str) -> bool:
    """True when ``text`` has a product id's shape (else no product has it: never looked up,
    so odd bytes such as NUL never reach the database)."""
    return _PRODUCT_ID.fullmatch(text) is not None


def is_object_id(text: str) -> bool:
    """True when ``text`` has the shape of a row id of ours (``act_...``)."""
    return _OBJECT_ID.fullmatch(text) is not None


def _product(session: Session, product_id: str) -> Product:
    product = session.get(Product, product_id) if is_product_id(product_id) else None
    if product is None:
        raise PortalError(404, translate("Page not found"),
                          translate("There is no license portal at this address. Open the "
                                    "link your app or your mail gave you."))
    return product


def product_page(session: Session, product_id: str) -> tuple[Product, dict[str, Any]]:
    """The product of a page and its branding; a 404 page for an unknown product."""
    product = _product(session, product_id)
    return product, brand_of(session, product)


def _signed(request: Request, state: AppState, session: Session,
            product_id: str) -> Signed | None:
    token = request.cookies.get(cookie_name(request, "session"))
    try:
        found = holder_of(session, state.ctx, token, product_id)
        if found is None or token is None:
            return None
        return Signed(holder=found, token=token, csrf=state.ctx.vault.csrf_token(token))
    except BaseException:
        session.rollback()
        raise


_PERSONAL_TITLE = N_("Sign in with an email link")
_PERSONAL_TEXT = N_("Your personal data is reached only through a sign-in link mailed to your "
                    "confirmed address. Sign out, then ask for a link on the sign-in page.")


def holder(*, personal: bool = False,
           read_only: bool = False) -> Callable[..., AsyncIterator[Signed]]:
    """A dependency for a page (GET) of ``/portal/{product_id}/…``: the signed-in holder.

    Not signed in (or signed in to another product): a redirect to the
    product's sign-in page.  ``personal``: the session must have been opened
    by a mailed link and its end user not be erased, else a 403 page.
    ``read_only``: the page also serves a link session whose person erased
    their data (``Holder.member`` False: they see the limited license and
    nothing else); every other page sends them there.
    """
    async def dependency(request: Request, product_id: str,
                         state: Annotated[AppState, Depends(get_state)],
                         session: Annotated[Session, Depends(get_session)]
                         ) -> AsyncIterator[Signed]:
        with _speaking(language_of(request)):
            signed = await run_in_threadpool(_signed, request, state, session, product_id)
            if signed is None:
                raise Redirect(f"/portal/{quote(product_id)}/")
            if not signed.holder.member and not read_only and not personal:
                raise Redirect(f"/portal/{quote(product_id)}/license")
            if personal and not signed.holder.personal:
                raise PortalError(403, translate(_PERSONAL_TITLE), translate(_PERSONAL_TEXT))
        yield signed

    dependency.personal = personal  # type: ignore[attr-defined]  # read by the reach test
    dependency.read_only = read_only  # type: ignore[attr-defined]
    return dependency


@dataclass
class Posted:
    """A checked form post: who sent it and the form's fields (strings only)."""

    signed: Signed
    form: FormData
    values: dict[str, str] = field(default_factory=dict)

    @property
    def holder(self) -> Holder:
        """The signed-in license holder."""
        return self.signed.holder

    def get(self, name: str, default: str = "") -> str:
        """A field's value, stripped of surrounding spaces ('' when absent)."""
        return self.values.get(name, default).strip()

    def raw(self, name: str) -> str:
        """A field's value as sent (passwords: spaces are part of them)."""
        return self.values.get(name, "")


def poster(*, personal: bool = False,
           read_only: bool = False) -> Callable[..., AsyncIterator[Posted]]:
    """A dependency for a form post of ``/portal/{product_id}/…``: signed in, CSRF right.

    A post another site's page sent (``Sec-Fetch-Site``/``Origin``), without a
    session, or with a missing or wrong ``csrf`` field is refused with a 403
    page and changes nothing.  ``personal``, ``read_only``: as for :func:`holder`
    (a post that changes something never takes a read-only session).
    """
    async def dependency(request: Request, product_id: str,
                         state: Annotated[AppState, Depends(get_state)],
                         session: Annotated[Session, Depends(get_session)]
                         ) -> AsyncIterator[Posted]:
        with _speaking(language_of(request)):
            if cross_site(request):
                raise PortalError(403, translate("Form refused"),
                                  translate("This form was sent from another site. Open the "
                                            "license portal yourself and try again."))
            signed = await run_in_threadpool(_signed, request, state, session, product_id)
            form = await request.form(max_files=0, max_fields=50)
            csrf = form.get("csrf")
            if signed is None or not csrf_matches(state.ctx, signed.token,
                                                  csrf if isinstance(csrf, str) else None):
                raise PortalError(403, translate("Form expired"),
                                  translate("This form is no longer valid (you were signed "
                                            "out, or it was sent from elsewhere). Reload the "
                                            "page and try again."))
            if not signed.holder.member and not read_only and not personal:
                raise Redirect(f"/portal/{quote(product_id)}/license")
            if personal and not signed.holder.personal:
                raise PortalError(403, translate(_PERSONAL_TITLE), translate(_PERSONAL_TEXT))
        values = {key: value for key, value in form.multi_items() if isinstance(value, str)}
        yield Posted(signed=signed, form=form, values=values)

    dependency.personal = personal  # type: ignore[attr-defined]  # read by the reach test
    dependency.read_only = read_only  # type: ignore[attr-defined]
    return dependency


class PortalRoute(APIRoute):
    """A portal route: :class:`Redirect`, :class:`PortalError` and ``ServiceError`` become
    pages (a ``ServiceError``'s message through the catalogue)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            # The handler's translate() calls (form errors, notices) speak the page's
            # language; a plain-def handler's thread gets a copy of this context.
            with _speaking(language_of(request)):
                try:
                    return await handler(request)
                except Redirect as done:
                    return see_other(request, done.url, done.notice)
                except PortalError as exc:
                    return error_page(request, exc.status, exc.title, exc.message)
                except ServiceError as exc:
                    return error_page(request, exc.code.status, N_("Refused"), exc.message)

        return route
