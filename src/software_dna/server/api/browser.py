"""What the HTML front ends (the vendor's panel, the end user's portal) share about browsers.

HTTPS as the browser sees it, and the cross-site check every form post
passes besides its CSRF token.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request

__all__ = ["cross_site", "is_secure"]


def is_secure(request: Request) -> bool:
    """HTTPS as the browser sees it: the request's scheme (a trusted proxy's
    ``X-Forwarded-Proto``), or a ``SOFTWARE_DNA_PUBLIC_URL`` on https."""
    public = request.app.state.sdna.settings.public_url or ""
    return request.url.scheme == "https" or public.lower().startswith("https://")


def cross_site(request: Request) -> bool:
    """True when the browser says the request comes from another site.

    ``Sec-Fetch-Site`` (``cross-site``, or ``same-site``: a sibling subdomain),
    else an ``Origin`` that is not this server's (its ``Host``, or
    ``SOFTWARE_DNA_PUBLIC_URL``'s host), or ``null`` (a ``file:`` or ``data:``
    page).  A second line behind the CSRF token and the SameSite cookie, which
    also covers the forms that have no session yet (signing in: login CSRF).
    A request without either header (not a browser's) is judged by the token
    alone.  Behind a reverse proxy, pass the original ``Host`` or set the public URL.
    """
    if request.headers.get("sec-fetch-site", "").lower() in ("cross-site", "same-site"):
        return True
    origin = request.headers.get("origin")
    if origin is None:
        return False
    if origin.strip().lower() == "null":
        return True
    given = urlsplit(origin.strip()).netloc.lower()
    ours = {request.headers.get("host", "").lower()}
    public = request.app.state.sdna.settings.public_url
    if public:
        ours.add(urlsplit(public).netloc.lower())
    return given not in ours
