"""The vendor's control panel at ``/panel``: server-rendered pages for staff.

Jinja2 templates (``templates/panel``), plain HTML forms, one stylesheet and
no script from elsewhere (``static/panel``), so the panel works on a host
without internet access.  Every action calls the same service functions as
the admin API and the CLI, so the rules, the errors and the audit log are the
same; the audit entries name the staff member (``actor_id``).

:func:`install` mounts the pages and the static files on the app.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from software_dna.server.panel.pages import (
    account,
    activations,
    audit,
    auth,
    dashboard,
    end_users,
    keys,
    licenses,
    offline,
    products,
    staff,
    transfer,
    trials,
)

__all__ = ["ROUTERS", "STATIC", "install"]

#: The folder of the files served under ``/static`` (the panel's stylesheet, the
#: API documentation's scripts).
STATIC = Path(__file__).resolve().parent.parent / "static"

#: Every panel router, in the order they are mounted.
ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    dashboard.router,
    transfer.router,  # before the pages with /licenses/{id}: its paths are fixed ones
    products.router,
    keys.router,
    activations.router,
    end_users.router,
    offline.router,
    audit.router,
    account.router,
    staff.router,
    trials.router,
    # Last: its /licenses/{license_id} page would shadow other /licenses/<name> pages.
    licenses.router,
)


def install(app: FastAPI) -> None:
    """Mount the panel's pages and the static files on ``app``."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
