"""Signing in (key and password, or a mailed link) and out; language; the product's logo."""

from __future__ import annotations

import math
import re
import secrets
import time
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response

from software_dna.i18n import N_, normalize
from software_dna.server.api.browser import cross_site
from software_dna.server.api.deps import Db, State, client_address
from software_dna.server.models import ProductLogo
from software_dna.server.portal.web import (
    PortalError,
    PortalRoute,
    Posted,
    Redirect,
    clear_cookie,
    cookie_name,
    error_page,
    is_product_id,
    poster,
    product_page,
    render,
    see_other,
    set_cookie,
    translate,
)
from software_dna.server.services import portal
from software_dna.server.services.email_confirmation import links_possible
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["retry_text", "router"]

router = APIRouter(prefix="/portal", route_class=PortalRoute, include_in_schema=False)

#: A form field as the sign-in forms take it (any length: cut here, never refused as JSON).
_Field = Annotated[str, Form()]
#: Seconds every answer to a link request takes at least (the slowest path, a known
#: address on a loaded server, stays well under it).
LINK_ANSWER_SECONDS = 0.15
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")


def _home(product_id: str) -> str:
    return f"/portal/{quote(product_id)}/"


def _refuse_cross_site(request: Request) -> None:
    if cross_site(request):
        raise PortalError(403, translate("Form refused"),
                          translate("This form was sent from another site. Open the license "
                                    "portal yourself and try again."))


def _sign_in_page(request: Request, session: Db, state: State, product_id: str, *,
                  status: int = 200, errors: dict[str, str] | None = None,
                  license_key: str = "", email: str = "") -> Response:
    product, brand = product_page(session, product_id)
    return render(request, "sign_in.html", product=product, brand=brand, status=status,
                  errors=errors or {}, license_key=license_key, email=email,
                  links=links_possible(state.ctx))


@router.get("/")
def portal_home(request: Request) -> Response:
    """The portal without a product: it is opened from the app's or a mail's link."""
    return error_page(request, 404, N_("License portal"),
                      N_("Open the license portal from your app (its “Manage my license” "
                         "command) or from the link in a mail you received."))


@router.get("/{product_id}/")
def sign_in_page(request: Request, state: State, session: Db, product_id: str) -> Response:
    """The sign-in page: key and password, or an email link (signed in: the license)."""
    token = request.cookies.get(cookie_name(request, "session"))
    if portal.holder_of(session, state.ctx, token, product_id) is not None:
        return see_other(request, _home(product_id) + "license")
    return _sign_in_page(request, session, state, product_id)


def retry_text(seconds: int | None) -> str:
    minutes = max(1, math.ceil((seconds or 60) / 60))
    return translate("Too many attempts. Try again in %(minutes)s minutes.") % {
        "minutes": minutes}


@router.post("/{product_id}/sign-in")
def sign_in(request: Request, state: State, session: Db, product_id: str, *,
            license_key: _Field = "", password: _Field = "") -> Response:
    """Sign in with the license key and the activation password (rate limited, counters of
    the portal's own).  A plain ``def``: the password hash runs in the thread pool."""
    _refuse_cross_site(request)
    product_page(session, product_id)
    try:
        token = portal.sign_in_with_password(
            session, state.ctx, product_id=product_id, license_key=license_key[:200],
            password=password[:1000], client_address=client_address(request))
    except ServiceError as exc:
        session.rollback()
        if exc.code is Code.RATE_LIMITED:
            return _sign_in_page(request, session, state, product_id, status=429,
                                 errors={"key_form": retry_text(exc.retry_after)},
                                 license_key=license_key[:200])
        return _sign_in_page(request, session, state, product_id, status=401,
                             errors={"key_form": translate(
                                 "The license key or the activation password is wrong. "
                                 "A license without an activation password is reached "
                                 "with a link sent by email.")},
                             license_key=license_key[:200])
    response = see_other(request, _home(product_id) + "license")
    set_cookie(response, request, "session", token)
    return response


@router.post("/{product_id}/link")
def request_link(request: Request, state: State, session: Db, product_id: str, *,
                 email: _Field = "") -> Response:
    """Mail sign-in links to the address if it is confirmed and on file (same answer for
    every address); the links work only in this browser (its link cookie)."""
    _refuse_cross_site(request)
    product, brand = product_page(session, product_id)
    browser = request.cookies.get(cookie_name(request, "browser")) or ""
    if not 20 <= len(browser) <= 100:
        browser = secrets.token_urlsafe(32)
    started = time.monotonic()
    try:
        portal.request_links(session, state.ctx, product_id=product_id, email=email[:254],
                             browser_token=browser, client_address=client_address(request))
    except ServiceError as exc:
        session.rollback()
        if exc.code is Code.RATE_LIMITED:
            return _sign_in_page(request, session, state, product_id, status=429,
                                 errors={"link_form": retry_text(exc.retry_after)},
                                 email=email[:254])
        raise
    # An address on file costs the request a few writes more than an unknown one: the
    # answer waits for a fixed time, so its timing does not tell them apart.
    time.sleep(max(0.0, LINK_ANSWER_SECONDS - (time.monotonic() - started)))
    response = render(request, "link_sent.html", product=product, brand=brand,
                      minutes=state.settings.portal_link_ttl // 60)
    set_cookie(response, request, "browser", browser, max_age=state.settings.portal_link_ttl)
    return response


@router.get("/{product_id}/link/{token}")
def link_page(request: Request, session: Db, product_id: str, token: str) -> Response:
    """A mailed link: a page with a button (a mail scanner fetching the link uses nothing)."""
    product, brand = product_page(session, product_id)
    return render(request, "link_open.html", product=product, brand=brand,
                  action=f"{_home(product_id)}link/{quote(token[:100])}")


@router.post("/{product_id}/link/{token}")
def use_link(request: Request, state: State, session: Db, product_id: str,
             token: str) -> Response:
    """Sign in with the link, in the browser that asked for it; the link is used up."""
    _refuse_cross_site(request)
    product, brand = product_page(session, product_id)
    try:
        session_token = portal.use_link(
            session, state.ctx, product_id=product_id, token=token,
            browser_token=request.cookies.get(cookie_name(request, "browser")),
            client_address=client_address(request))
    except ServiceError as exc:
        session.rollback()
        status = exc.code.status
        text = (retry_text(exc.retry_after) if exc.code is Code.RATE_LIMITED else translate(
            "This sign-in link cannot be used: it was used already, it expired, or it was "
            "opened in another browser than the one that asked for it. Ask for a new link "
            "from this browser."))
        return render(request, "link_failed.html", product=product, brand=brand,
                      status=status, message=text)
    response = see_other(request, _home(product_id) + "license")
    set_cookie(response, request, "session", session_token)
    return response


@router.post("/{product_id}/sign-out")
def sign_out(request: Request, state: State, session: Db, product_id: str,
             posted: Annotated[Posted, Depends(poster(read_only=True))]) -> Response:
    """Sign out (this browser's session ends on the server)."""
    portal.end_session(session, state.ctx, posted.signed.token)
    response = see_other(request, _home(product_id), translate("You are signed out."))
    clear_cookie(response, request, "session")
    return response


@router.post("/{product_id}/language")
def choose_language(request: Request, session: Db, product_id: str, *,
                    lang: _Field = "", next: _Field = "") -> Response:
    """Keep the language the end user picked (a cookie set only by this choice)."""
    _refuse_cross_site(request)
    product_page(session, product_id)
    target = next if next.startswith(f"/portal/{quote(product_id)}/") and \
        "//" not in next and "\\" not in next else _home(product_id)
    response = see_other(request, target)
    language = normalize(lang)
    if language is None:
        raise Redirect(target)
    set_cookie(response, request, "lang", language, max_age=365 * 86400)
    return response


@router.get("/{product_id}/logo")
def logo(session: Db, product_id: str) -> Response:
    """The product's logo (uploaded by the vendor; PNG, JPEG or WebP)."""
    row = session.get(ProductLogo, product_id) if is_product_id(product_id) else None
    if row is None:
        return Response(status_code=404)
    return Response(row.data, media_type=row.content_type, headers={
        "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'"})


@router.get("/{product_id}/brand.css")
def brand_css(request: Request, session: Db, product_id: str) -> Response:
    """The product's colour as a stylesheet (the pages allow no inline style)."""
    _, brand = product_page(session, product_id)
    colour = brand.get("colour") or "#1f4e79"
    if not isinstance(colour, str) or not _COLOUR.match(colour):
        colour = "#1f4e79"
    return Response(f":root{{--brand:{colour}}}\n", media_type="text/css", headers={
        "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

