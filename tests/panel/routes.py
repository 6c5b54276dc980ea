"""The panel's routes as the tests see them: each one's methods, path and permission.

A panel page names its permission through the ``viewer`` / ``poster``
dependency of software_dna.server.panel.web (its ``permission`` attribute);
:func:`permission_of` finds it in the route's dependency tree.  The role
matrix (tests/panel/test_role_matrix.py) and the browser tour
(tests/panel/browser/test_pages.py) read the routes from here, so pages added
to the panel are covered without a change to the tests.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from software_dna.server.domain.roles import Permission
from software_dna.server.panel import ROUTERS

__all__ = ["PUBLIC", "PanelPage", "find_route", "needs_pages", "panel_pages", "permission_of"]

#: The panel routes anyone may use (no staff session): signing in and its second step.
PUBLIC = frozenset({
    ("GET", "/panel/sign-in"),
    ("POST", "/panel/sign-in"),
    ("GET", "/panel/sign-in/code"),
    ("POST", "/panel/sign-in/code"),
})


@dataclass(frozen=True)
class PanelPage:
    """One method of one panel route.

    Attributes:
        method: ``GET`` or ``POST`` (HEAD is GET's).
        path: the route's path with its ``{parameters}``.
        permission: what the ``viewer`` / ``poster`` dependency asks for (None: public,
            or a route that forgot it).
        route: the route itself.
    """

    method: str
    path: str
    permission: Permission | None
    route: APIRoute

    @property
    def params(self) -> list[str]:
        """The names of the path's parameters, in order."""
        return list(self.route.param_convertors)

    @property
    def public(self) -> bool:
        """True when the route is listed in :data:`PUBLIC`."""
        return (self.method, self.path) in PUBLIC

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def permission_of(dependant: Dependant) -> Permission | None:
    """The permission named by a ``viewer`` / ``poster`` dependency anywhere in the tree.

    Raises:
        AssertionError: two different permissions on one route.
    """
    found: set[Permission] = set()
    todo = [dependant]
    while todo:
        current = todo.pop()
        named = getattr(current.call, "permission", None)
        if isinstance(named, Permission):
            found.add(named)
        todo.extend(current.dependencies)
    assert len(found) <= 1, f"{dependant.path}: several permissions {found}"
    return found.pop() if found else None


def panel_pages(routes: Iterable[BaseRoute]) -> list[PanelPage]:
    """Every method of every route under ``/panel``, sorted by path then method.

    ``routes``: an app's or a router's routes (included routers are walked).

    Raises:
        AssertionError: something under /panel that is not an API route (a mount, a
            websocket), which the matrix could not check.
    """
    pages: list[PanelPage] = []
    for context in iter_route_contexts(list(routes)):
        path = context.path or ""
        if not (path == "/panel" or path.startswith("/panel/")):
            continue
        route = context.original_route
        assert isinstance(route, APIRoute), f"{path}: not a page route ({type(route).__name__})"
        assert route.path == path, f"{path}: included under another prefix ({route.path})"
        permission = permission_of(route.dependant)
        for method in sorted((context.methods or set()) - {"HEAD"}):
            pages.append(PanelPage(method=method, path=path, permission=permission,
                                   route=route))
    return sorted(pages, key=lambda page: (page.path, page.method))


def find_route(pages: Iterable[PanelPage], method: str, path: str) -> PanelPage | None:
    """The page that serves ``method path`` (a concrete path, no query), or None."""
    for page in pages:
        if page.method == method and page.route.path_regex.match(path):
            return page
    return None


def needs_pages(*specs: str) -> pytest.MarkDecorator:
    """A mark that skips a test until the panel has every page of ``specs`` (``"GET /path"``).

    For flows written ahead of their pages; the server and the browser are not
    started for a skipped test.
    """
    pages = panel_pages(route for router in ROUTERS for route in router.routes)
    missing = [spec for spec in specs if find_route(pages, *spec.split(" ", 1)) is None]
    return pytest.mark.skipif(bool(missing), reason=f"no {', '.join(missing)} page in this "
                              "build yet")
