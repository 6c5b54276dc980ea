"""The end user's license portal at ``/portal/{product_id}/``: server-rendered pages.

Jinja2 templates (``templates/portal``) with texts from the ``portal``
message catalogue, plain HTML forms, one stylesheet (``static/portal``) and
the product's branding (its logo served by this server), so the portal
loads nothing from elsewhere.  Every action calls the service layer
(:mod:`software_dna.server.services.portal` and the services the API uses),
so the rules, the errors and the audit log (actor ``portal``) are the same.

:func:`install` mounts the pages on the app.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from software_dna.server.portal.pages import account, auth, data, license, offline

__all__ = ["ROUTERS", "install"]

#: Every portal router, in the order they are mounted.
ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    account.router,
    data.router,
    offline.router,
    license.router,
)


def install(app: FastAPI) -> None:
    """Mount the portal's pages on ``app``."""
    for router in ROUTERS:
        app.include_router(router)
