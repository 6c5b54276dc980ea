"""Driving the license portal over HTTP without a browser: licenses, sign-in, forms.

The browser tests (tests/portal/browser/) drive the same pages in Chromium;
these helpers test the server's side of every page in-process, with a real
SMTP server (aiosmtpd) and the real outbox worker (tests.server.mailing.drain).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select, update

from software_dna.server.db import checkpoint_job
from software_dna.server.models import Product
from software_dna.server.models.base import Base
from software_dna.server.testing import InProcessServer
from software_dna.wire import airgap
from tests.server.helpers import Api, fingerprint, nonce, session_for
from tests.server.mailing import drain
from tests.smtp import Mailbox, mailed_link

__all__ = ["PASSWORD", "ROOMY", "PortalLicense", "PortalUser", "add_seat", "airgap_request",
           "csrf_of", "db", "portal_link", "raw_database", "set_product", "setup_license",
           "tables"]

#: Server settings for modules that sign in, ask for links and activate many times from
#: the one address every in-process request comes from (127.0.0.1).
ROOMY = {"SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS": "100000",
         "SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS": "100000",
         "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS": "100000"}

#: The activation password of the licenses these helpers issue.
PASSWORD = "old secret"
_CSRF = re.compile(r'name="csrf" value="([0-9a-f]{64})"')
#: A portal sign-in link in a mail's text.
PORTAL_LINK = re.compile(r"(\S+/portal/[^/\s]+/link/[A-Za-z0-9_-]+)")


def db(server: InProcessServer) -> Any:
    """A new database session of the in-process server (close it, or use ``with``)."""
    return server.app.state.sdna.sessions()


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page (AssertionError if there is none)."""
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


@dataclass
class PortalLicense:
    """A product with one license activated on ``machines`` machines.

    Attributes: ``product_id``, ``license`` (the admin API's answer: ``id``,
    ``license_key``, ...), ``email`` (the end user's, confirmed; None if not
    given), ``activations`` (the SDK-level answers of each activation, with
    ``activation_id`` and ``activation_secret``).
    """

    product_id: str
    license: dict[str, Any]
    email: str | None
    activations: list[dict[str, Any]]

    @property
    def key(self) -> str:
        """The license key."""
        return str(self.license["license_key"])


def setup_license(srv: InProcessServer, api: Api, box: Mailbox | None, *,
                  email: str | None = None, password: str | None = PASSWORD,
                  machines: int = 1, seats: int = 3, seat_mode: str | None = None,
                  product: dict[str, Any] | None = None,
                  product_id: str | None = None) -> PortalLicense:
    """A product (``product``: its settings) and a license activated on ``machines``
    machines; with ``email``, the first activation gives it and it is confirmed through
    the link mailed to ``box``."""
    pid = product_id or "p-" + secrets.token_hex(4)
    if product_id is None:
        srv.admin.setup_product(pid, name="Acme Editor", **(product or {}))
    extra: dict[str, Any] = {"seats": seats, "password": password}
    if seat_mode:
        extra["seat_mode"] = seat_mode
    lic = srv.admin.issue_license(pid, **extra)
    made = []
    for n in range(machines):
        body: dict[str, Any] = {}
        if password is not None:
            body["password"] = password
        if email and n == 0:
            body.update(email=email, consent=True)
        before = len(box.messages) if box is not None else 0
        answer = api.activate(pid, lic["license_key"], machine=f"machine-{n}", **body)
        assert answer.status_code in (200, 201), answer.text
        made.append(answer.json())
        if email and n == 0:
            assert box is not None
            drain(srv)
            link = mailed_link(box.wait_for(before + 1)[before])
            with session_for(srv) as http:
                done = http.post(link, timeout=30)
            assert done.status_code == 200, done.text
    return PortalLicense(product_id=pid, license=lic, email=email, activations=made)


def portal_link(box: Mailbox, count: int) -> str:
    """The first portal sign-in link of the ``count``-th mail ``box`` received."""
    message = box.wait_for(count)[count - 1]
    body = message.get_body(("plain",))
    assert body is not None
    found = PORTAL_LINK.search(body.get_content())
    assert found, body.get_content()
    return found[1]


class PortalUser:
    """A browser-less end user: a cookie jar on the in-process server, for one product."""

    def __init__(self, server: InProcessServer, product_id: str, *,
                 language: str | None = None) -> None:
        self.server = server
        self.product_id = product_id
        self.http = server.session()
        if language:
            self.http.headers["Accept-Language"] = language
        self.csrf: str | None = None

    def close(self) -> None:
        """Close the HTTP session."""
        self.http.close()

    def __enter__(self) -> PortalUser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def url(self, path: str = "") -> str:
        """The full address of a page of this product's portal (``path`` after its root)."""
        return f"{self.server.url}/portal/{self.product_id}/{path}"

    def get(self, path: str = "", **kwargs: Any) -> requests.Response:
        """GET a page (redirects not followed)."""
        return self.http.get(self.url(path), allow_redirects=False, **kwargs)

    def post(self, path: str, data: Mapping[str, Any] | None = None, *,
             csrf: str | None = None, **kwargs: Any) -> requests.Response:
        """POST a form with the session's CSRF token (or ``csrf``; '' for none)."""
        fields = dict(data or {})
        token = self.csrf if csrf is None else csrf
        if token:
            fields["csrf"] = token
        return self.http.post(self.url(path), data=fields, allow_redirects=False, **kwargs)

    def _signed_in(self, answer: requests.Response) -> requests.Response:
        if answer.status_code == 303:
            self.csrf = csrf_of(self.get("license").text)
        return answer

    def sign_in(self, key: str, password: str = PASSWORD) -> requests.Response:
        """Sign in with the key and password; on success the session is in the jar."""
        return self._signed_in(self.post("sign-in", {"license_key": key,
                                                     "password": password}, csrf=""))

    def ask_link(self, email: str) -> requests.Response:
        """Ask for sign-in links to ``email`` (sets this browser's link cookie)."""
        return self.post("link", {"email": email}, csrf="")

    def use_link(self, link: str) -> requests.Response:
        """Open a mailed link and press its button."""
        page = self.http.get(link, allow_redirects=False)
        assert page.status_code == 200, page.text
        return self._signed_in(self.http.post(link, allow_redirects=False))

    def sign_in_by_link(self, box: Mailbox, email: str) -> requests.Response:
        """Ask for a link, deliver the mail (the real worker), and use the link."""
        before = len(box.messages)
        assert self.ask_link(email).status_code == 200
        drain(self.server)
        return self.use_link(portal_link(box, before + 1))


def add_seat(srv: InProcessServer, api: Api, box: Mailbox, held: PortalLicense, email: str, *,
             machine: str, password: str | None = PASSWORD, **extra: Any) -> dict[str, Any]:
    """Activate ``held``'s license on ``machine`` giving ``email`` (with consent; ``extra``:
    more fields of the activation), and confirm the address through the link mailed to
    ``box``; returns the activation."""
    before = len(box.messages)
    body: dict[str, Any] = {"email": email, "consent": True, **extra}
    if password is not None:
        body["password"] = password
    answer = api.activate(held.product_id, held.key, machine=machine, **body)
    assert answer.status_code in (200, 201), answer.text
    drain(srv)
    link = mailed_link(box.wait_for(before + 1)[before])
    with session_for(srv) as http:
        assert http.post(link, timeout=30).status_code == 200
    made: dict[str, Any] = answer.json()
    return made


def set_product(srv: InProcessServer, product_id: str, **columns: Any) -> None:
    """Change a product's columns directly in the database (settings no route sets yet)."""
    with db(srv) as session:
        session.execute(update(Product).where(Product.id == product_id).values(**columns))
        session.commit()


def tables(srv: InProcessServer, *, ignore: Mapping[str, set[str]] | None = None
           ) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, sorted: compare two snapshots to see that nothing changed.

    ``ignore``: columns left out, per table (e.g. a session's ``last_seen_at``, which
    any request may move on once a minute)."""
    skip = ignore or {}
    with db(srv) as session:
        snapshot = {}
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if c.name not in skip.get(table.name, set())]
            snapshot[table.name] = sorted(
                (tuple(row) for row in session.execute(select(*columns))), key=repr)
        return snapshot


def raw_database(srv: InProcessServer) -> bytes:
    """Every byte of the SQLite database files, once the pending WAL checkpoint has run."""
    checkpoint_job(srv.app.state.sdna.engine).flush()
    path = Path(srv.database_url.removeprefix("sqlite:///"))
    data = b""
    for suffix in ("", "-wal", "-journal"):
        part = Path(str(path) + suffix)
        if part.exists():
            data += part.read_bytes()
    return data


def airgap_request(product: str, key: str, machine: str = "air-1", **extra: Any) -> str:
    """An armored air-gapped activation request from a made-up machine (no password in it)."""
    return airgap.build_request(product=product, license_key=key,
                                fingerprint=fingerprint(machine), nonce=nonce(),
                                created_at=datetime.now(timezone.utc), **extra)
