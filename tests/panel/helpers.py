"""Driving the control panel over HTTP without a browser: staff accounts, sign-in, forms.

The browser tests (tests/panel/browser/) drive the same pages in Chromium;
these helpers test the server's side of every page and action in-process.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import requests

from software_dna.server.domain.roles import Role
from software_dna.server.services.staff import create_staff
from software_dna.server.testing import InProcessServer

__all__ = ["PASSWORD", "PanelUser", "add_staff", "csrf_of", "db"]

#: The password of every staff member these helpers create.
PASSWORD = "correct horse battery staple"
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')


def db(server: InProcessServer) -> Any:
    """A new database session of the in-process server (close it, or use ``with``)."""
    return server.app.state.sdna.sessions()


def add_staff(server: InProcessServer, role: Role | str, *, email: str | None = None,
              password: str = PASSWORD) -> str:
    """Create a staff member with ``role``; returns their email address."""
    address = email or f"{Role(role).value}-{secrets.token_hex(4)}@vendor.example"
    with db(server) as session:
        create_staff(session, email=address, password=password, role=role)
    return address


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page.

    Raises:
        AssertionError: the page has no form with a CSRF token.
    """
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


class PanelUser:
    """A browser-less staff member: a cookie jar on the in-process server."""

    def __init__(self, server: InProcessServer, email: str, password: str = PASSWORD) -> None:
        self.server = server
        self.email = email
        self.password = password
        self.http = server.session()
        self.csrf: str | None = None

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    def __enter__(self) -> PanelUser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str) -> str:
        """The full address of a panel path."""
        return self.server.url + path

    def sign_in(self, *, password: str | None = None) -> requests.Response:
        """Post the sign-in form; on success the session cookie is in the jar."""
        answer = self.http.post(self.url("/panel/sign-in"), data={
            "email": self.email, "password": password or self.password, "next": "/panel/"},
            allow_redirects=False)
        if answer.status_code == 303:
            self.csrf = csrf_of(self.get("/panel/").text)
        return answer

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        """GET a panel path (redirects not followed)."""
        return self.http.get(self.url(path), allow_redirects=False, **kwargs)

    def post(self, path: str, data: Mapping[str, Any] | None = None, *,
             csrf: str | None = None, **kwargs: Any) -> requests.Response:
        """POST a form with this session's CSRF token (or ``csrf``; '' for none)."""
        fields = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            fields["csrf"] = token
        return self.http.post(self.url(path), data=fields, allow_redirects=False, **kwargs)
