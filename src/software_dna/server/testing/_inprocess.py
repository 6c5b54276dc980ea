"""The license server in-process: the real app on the real database, no socket.

:class:`InProcessServer` is a :class:`LocalServer` whose ``start()`` builds the
FastAPI app (``create_app(settings)``) in this process instead of running
uvicorn in a subprocess. Requests reach it through :class:`ASGIAdapter`, a
``requests`` transport adapter mounted on a session for the server's URL, so
anything that speaks HTTP through a ``requests.Session`` (the admin client, a
test's own session) talks to it unchanged::

    with InProcessServer(tmp_path) as srv:
        keys = srv.admin.setup_product("acme-editor")   # no socket, no subprocess
        http = srv.session()                            # a requests.Session to srv.url
        client = LicenseClient(product="acme-editor", public_keys=keys,
                               transport=srv.transport())  # the SDK, no socket

The SDK's transport (:meth:`InProcessServer.transport`) is
:class:`~software_dna.client.transport.HTTPTransport` itself, given a session
with the adapter mounted: the SDK gets exactly what it gets over HTTP (status,
parsed JSON, lower-case headers, ``ServerUnreachable``/``ServerError``, the
retries on 502/503/504), and its back-off between retries does not sleep.

"Offline" is :attr:`InProcessServer.online` set to False: every request is
then refused (``requests.exceptions.ConnectionError``, which the SDK sees as
``ServerUnreachable``) as a stopped server would be, while the app and its
database stay as they are. :class:`Link` takes one machine offline (its
transports refuse) while the server and the other clients stay online;
:func:`unreachable` is a transport with no server at all.

Clients that open their own connections (the CLI's remote mode, an SDK in a
child process) need a socket; what only a real process shows (deadlines, TLS,
signals, several workers, bytes on the socket, the process log) stays on
:class:`LocalServer`. This is the one module of the server that imports the
SDK's client (its transport): a test harness, which nothing in ``src`` imports.
"""

from __future__ import annotations

import http.client
import io
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
import requests
import requests.adapters
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from urllib3 import HTTPResponse
from urllib3._collections import HTTPHeaderDict

from software_dna.client.transport import HTTPTransport
from software_dna.server.adminclient import AdminClient
from software_dna.server.app import create_app
from software_dna.server.config import Settings
from software_dna.server.testing._local import LocalServer

__all__ = ["URL", "ASGIAdapter", "InProcessApp", "InProcessServer", "Link",
           "asgi_transport", "no_wait", "unreachable"]

#: The URL of every in-process server: ``.invalid`` never resolves, so a session
#: without the adapter mounted fails loudly instead of reaching something else.
URL = "http://inprocess.invalid"

_log = logging.getLogger(__name__)


def no_wait(seconds: float) -> None:
    """The in-process transports' back-off between retries: none (no fixed sleeps in tests).

    The retries themselves still happen, in the order :class:`HTTPTransport` makes them.
    """


def asgi_transport(target: Callable[[], InProcessApp | None], *,
                   sleep: Callable[[float], None] = no_wait) -> HTTPTransport:
    """An SDK transport (:class:`HTTPTransport`) to the app ``target()`` returns, no socket.

    Args:
        target: as for :class:`ASGIAdapter` (None: the request is refused).
        sleep: the back-off between retries (default: none).
    """

    def session() -> requests.Session:
        http = requests.Session()
        http.mount(URL, ASGIAdapter(target))
        return http

    return HTTPTransport(URL, session_factory=session, sleep=sleep)


def unreachable() -> HTTPTransport:
    """An SDK transport to a server that is never there: every request raises
    ``ServerUnreachable`` (after :class:`HTTPTransport`'s retries), as a refused
    connection does. For a machine without a network."""
    return asgi_transport(lambda: None)


class InProcessApp:
    """An ASGI app served on an event loop in a background thread.

    Args:
        app: the ASGI application (the server's FastAPI app).
        client: the (address, port) the app sees as the peer of every request.

    Thread-safe: any thread may call :meth:`request`; the app's sync routes
    run in its thread pool as under uvicorn.
    """

    def __init__(self, app: Any, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client
        self._portal_cm = start_blocking_portal()
        self._portal: BlockingPortal | None = self._portal_cm.__enter__()

    def close(self) -> None:
        """Stop the event loop thread (idempotent)."""
        if self._portal is not None:
            self._portal = None
            self._portal_cm.__exit__(None, None, None)

    def request(self, method: str, url: str, headers: Mapping[str, str],
                body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """Run one HTTP request through the app; returns (status, headers, body).

        Raises:
            RuntimeError: :meth:`close` was called.
            Exception: what the app raised before it started answering.
        """
        if self._portal is None:
            raise RuntimeError("the in-process app is closed")
        return self._portal.call(self._call, method, url, dict(headers), body)

    async def _call(self, method: str, url: str, headers: dict[str, str],
                    body: bytes) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        parts = urlsplit(url)
        raw_path = parts.path or "/"
        names = {name.lower() for name in headers}
        if "host" not in names:
            headers["host"] = parts.netloc
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method.upper(), "scheme": parts.scheme or "http",
            "path": unquote(raw_path), "raw_path": raw_path.encode("latin-1"),
            "query_string": parts.query.encode("latin-1"), "root_path": "",
            "client": self.client, "server": ("127.0.0.1", 80),
            "headers": [(k.lower().encode("latin-1"), str(v).encode("latin-1"))
                        for k, v in headers.items()],
        }
        sent_request = False
        answered = anyio.Event()
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent_request
            if not sent_request:
                sent_request = True
                return {"type": "http.request", "body": body, "more_body": False}
            await answered.wait()  # the client "disconnects" once it has the answer
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()

        try:
            await self.app(scope, receive, send)
        except Exception:
            if not start:
                raise
            # Starlette raises again after sending its 500; uvicorn logs it and the
            # client keeps the answer, so do the same.
            _log.exception("the app raised after answering %s %s", method, raw_path)
        answered.set()
        if not start:
            raise RuntimeError(f"the app sent no answer to {method} {raw_path}")
        return int(start["status"]), list(start.get("headers", [])), b"".join(chunks)


class ASGIAdapter(requests.adapters.HTTPAdapter):
    """A ``requests`` transport adapter that sends every request to an :class:`InProcessApp`.

    Args:
        target: returns the app to send to, or None while there is none (the
            server is stopped or offline): the request then fails with
            ``requests.exceptions.ConnectionError``, as a refused connection does.
            Asked at every request, so the adapter follows a server's restarts.

    Mount it on a session for the server's URL (``session.mount(url, adapter)``).
    Closing the adapter (``session.close()``) leaves the app running.
    """

    def __init__(self, target: Callable[[], InProcessApp | None]) -> None:
        super().__init__()
        self.target = target

    def send(self, request: requests.PreparedRequest, stream: bool = False,  # noqa: PLR0917 - requests' signature
             timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> requests.Response:
        """Run ``request`` through the app and wrap its answer as a ``requests.Response``.

        Raises:
            requests.exceptions.ConnectionError: the server is stopped or offline.
        """
        target = self.target()
        if target is None:
            raise requests.exceptions.ConnectionError(
                f"connection refused: the in-process server at {request.url} is not running",
                request=request)
        body = request.body
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode("utf-8")
        else:  # a file or an iterable of chunks
            payload = body.read() if hasattr(body, "read") else b"".join(body)
        status, headers, content = target.request(
            request.method or "GET", request.url or "/", request.headers, payload)
        header_dict = HTTPHeaderDict()
        for name, value in headers:
            header_dict.add(name.decode("latin-1"), value.decode("latin-1"))
        raw = HTTPResponse(body=io.BytesIO(content), headers=header_dict, status=status,
                           preload_content=False, decode_content=False,
                           request_url=request.url)
        # requests reads Set-Cookie from the http.client message a socket would have given.
        message = http.client.HTTPMessage()
        for key, text in header_dict.items():
            message[key] = text
        raw._original_response = SimpleNamespace(  # type: ignore[assignment]
            msg=message, isclosed=lambda: True)
        response = self.build_response(request, raw)
        if not stream:
            _ = response.content  # read now, as requests does without stream=True
        return response


class InProcessServer(LocalServer):
    """A :class:`LocalServer` whose app runs in this process, reached without a socket.

    Takes the arguments of :class:`LocalServer`; ``workers``, ``port``,
    ``log_level`` and ``forwarded_allow_ips`` have no effect (there is no
    uvicorn). ``env`` adds server settings (e.g. the SMTP variables).

    Attributes: as :class:`LocalServer`, with ``url`` = :data:`URL` and
    :attr:`online` (set False to refuse every request, like a stopped server).
    """

    def __init__(self, data_dir: str | Path | None = None, *,
                 env: Mapping[str, str] | None = None, **options: Any) -> None:
        super().__init__(data_dir, env=env, **options)
        self.url = URL
        self.online = True
        self._env = dict(env or {})
        self._target: InProcessApp | None = None
        self._app: FastAPI | None = None
        self._in_process_settings = (Settings.from_env({**super().settings.to_env(),
                                                        **self._env})
                                     if self._env else super().settings)

    @property
    def settings(self) -> Settings:
        """The app's settings (those of :class:`LocalServer` plus ``env``)."""
        return self._in_process_settings

    @property
    def running(self) -> bool:
        """True while the app is built (whether or not :attr:`online`)."""
        return self._target is not None

    @property
    def pid(self) -> int | None:
        """Always None: there is no server process."""
        return None

    @property
    def app(self) -> FastAPI:
        """The running FastAPI app.

        Raises:
            RuntimeError: the server is not started.
        """
        if self._app is None:
            raise RuntimeError("the in-process server is not started")
        return self._app

    @property
    def admin(self) -> AdminClient:
        """An admin client whose session reaches the in-process app."""
        if self._admin is None:
            self._admin = AdminClient(self.url, self.admin_key,
                                      session=self.mount(requests.Session()))
        return self._admin

    def adapter(self) -> ASGIAdapter:
        """A new transport adapter to this server (follows :attr:`online` and restarts)."""
        return ASGIAdapter(lambda: self._target if self.online else None)

    def transport(self, *, reachable: Callable[[], bool] | None = None) -> HTTPTransport:
        """An SDK transport to this server with no socket: ``LicenseClient(transport=...)``.

        Args:
            reachable: asked at every request; while it returns False (or while
                :attr:`online` is False) the request is refused as by a stopped
                server, and the SDK raises ``ServerUnreachable``.

        Returns:
            An :class:`HTTPTransport` on a session with an :class:`ASGIAdapter`
            mounted (so its deadlines, retries and answer parsing are the real
            ones), whose back-off between retries does not sleep (:func:`no_wait`).
        """
        def target() -> InProcessApp | None:
            if not self.online or (reachable is not None and not reachable()):
                return None
            return self._target

        return asgi_transport(target)

    def link(self) -> Link:
        """A new :class:`Link` (one machine's network) to this server."""
        return Link(self)

    def mount(self, session: requests.Session) -> requests.Session:
        """Route ``session``'s requests to :attr:`url` into this server; returns ``session``."""
        session.mount(self.url, self.adapter())
        return session

    def session(self) -> requests.Session:
        """A new ``requests.Session`` mounted on this server."""
        return self.mount(requests.Session())

    def start(self) -> InProcessServer:
        """Initialise the folder the first time, then build the app (no process, no port)."""
        if self._target is not None:
            return self
        self.initialize()
        app = create_app(self.settings)
        self._app = app
        self._target = InProcessApp(app)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the event loop and close the app's database connections."""
        target, self._target = self._target, None
        app, self._app = self._app, None
        if target is not None:
            target.close()
        if app is not None:
            app.state.sdna.dispose()

    def __enter__(self) -> InProcessServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"InProcessServer(database_url={self.database_url!r})"


class Link:
    """One machine's network connection to an :class:`InProcessServer`, which can go offline.

    Give :meth:`transport` to the client; after :meth:`offline` its requests are
    refused (``ServerUnreachable``) as by a stopped server, while the server,
    its admin client and every other client stay online; :meth:`online` ends it.
    Also a context manager that goes back online at the end.

    Args:
        server: the server reached.
    """

    def __init__(self, server: InProcessServer) -> None:
        self.server = server
        self.is_online = True

    def online(self) -> None:
        """Reach the server again."""
        self.is_online = True

    def offline(self) -> None:
        """Refuse every request from now on."""
        self.is_online = False

    def transport(self) -> HTTPTransport:
        """An SDK transport to :attr:`server` through this link."""
        return self.server.transport(reachable=lambda: self.is_online)

    def __enter__(self) -> Link:
        return self

    def __exit__(self, *exc: object) -> None:
        self.online()
