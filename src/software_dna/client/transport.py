"""How the client reaches the license server: :class:`Transport`, and :class:`HTTPTransport`.

:class:`Transport` is the seam: one method, :meth:`Transport.request`, that
sends a JSON request to a path of the server and returns its :class:`Response`.
:class:`HTTPTransport` is the real one, on ``requests``; tests (and special
environments) pass their own subclass to ``LicenseClient(transport=...)``.

``requests`` is imported lazily, the first time the server is contacted:
``import software_dna`` and an offline :meth:`LicenseClient.check` never load it.
That import is inside the boundary: a network stack that cannot be loaded
(a frozen app whose unpacked folder was removed while it ran, a broken
install) is a :class:`~software_dna.errors.ServerUnreachable`, never an
``ImportError`` or ``FileNotFoundError``. A frozen app (``sys.frozen``) calls
:meth:`HTTPTransport.prepare` when its client is built: the network stack is
imported then and the CA bundle is read once into an ``ssl.SSLContext`` kept
in memory, so a later connection reads no file at all.

Every call has a connect timeout, a read timeout and a hard total deadline.
The request runs on a short-lived daemon thread and the caller waits at most
the deadline, so a server that trickles one byte every few seconds (which
defeats per-read socket timeouts) still cannot hold the app. Errors from
``requests``/``urllib3``/``ssl`` are translated at this boundary into
:class:`~software_dna.errors.ServerUnreachable` or
:class:`~software_dna.errors.ServerError`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from software_dna._version import __version__
from software_dna.errors import LicenseError, Message, ServerError, ServerUnreachable
from software_dna.i18n import N_
from software_dna.wire.frozen import Frozen
from software_dna.wire.strict_json import loads_object

if TYPE_CHECKING:
    import requests

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_DEADLINE", "HTTPTransport", "Response", "Transport",
           "network_unavailable"]

#: Seconds to wait for the TCP/TLS connection.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds one whole operation may take, retries included.
DEFAULT_DEADLINE = 15.0
#: Largest answer body read, in bytes.
MAX_BODY = 1024 * 1024
#: Statuses worth retrying (when the request is safe to repeat).
_RETRY_STATUSES = frozenset({502, 503, 504})
#: Largest CA bundle read into memory (certifi's is about 300 KiB).
_MAX_CA_BUNDLE = 16 * 1024 * 1024


def network_unavailable(exc: BaseException) -> ServerUnreachable:
    """The error for a network stack that could not be loaded (``ImportError``, ``OSError``).

    Raise it ``from exc``. A frozen app's unpacked folder removed while it
    runs, or a damaged install: restarting the app is the way back.
    """
    return ServerUnreachable(Message(
        N_("The app's network components could not be loaded (%(error)s), so the license "
           "server cannot be contacted. Restart the app; if this keeps happening, reinstall "
           "it."), error=type(exc).__name__))


def _load_requests() -> Any:
    """The ``requests`` module, imported inside the boundary.

    Raises:
        ServerUnreachable: it cannot be loaded.
    """
    try:
        import requests  # lazy: heavy; only once the server is contacted
    except (ImportError, OSError) as exc:
        raise network_unavailable(exc) from exc
    return requests


class Response(Frozen):
    """A server answer: HTTP status, parsed JSON object body, and headers (lower-case names).

    Immutable, compared by all three.
    """

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, body: Mapping[str, Any], headers: Mapping[str, str]) -> None:
        self._open()
        self.status: Final[int] = status
        self.body: Final[Mapping[str, Any]] = body
        self.headers: Final[Mapping[str, str]] = headers
        self._seal()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Response)
        return (self.status, self.body, self.headers) == (other.status, other.body, other.headers)

    __hash__ = None  # type: ignore[assignment]  # the body is a dict

    def __repr__(self) -> str:
        return (f"Response(status={self.status!r}, body={self.body!r}, "
                f"headers={self.headers!r})")


class Transport:
    """Carries the client's requests to the license server (base class).

    A subclass implements :meth:`request`; :meth:`close` releases what it
    holds (nothing here). The client calls it with paths such as
    ``"/v1/activations"`` and JSON-ready bodies, and acts on every
    :class:`Response`, error statuses included.
    """

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        bearer: str | None = None,
        retry: bool = False,
        deadline: float | None = None,
    ) -> Response:
        """Send one request and return the server's answer.

        Args:
            method: ``"GET"``, ``"POST"``, ``"PUT"`` ...
            path: path under the server's base URL, e.g. ``"/v1/activations"``.
            json_body: the JSON object to send, or None.
            bearer: a secret for ``Authorization: Bearer``, or None.
            retry: the request is safe to repeat (idempotency key, GET, PUT).
            deadline: seconds the whole operation may take (None: the transport's own).

        Returns:
            The :class:`Response`, whatever its status (4xx included).

        Raises:
            ServerUnreachable: no answer (the request may or may not have arrived).
            ServerError: an answer that is not a JSON object.
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release pooled connections; the transport stays usable. Never raises."""


class HTTPTransport(Transport):
    """One ``requests.Session`` to the license server, used by one client.

    Args:
        base_url: the server's base URL, e.g. ``"https://license.example.com"``.
        connect_timeout: seconds for the connection (per attempt).
        deadline: seconds for a whole operation, retries included (default).
        ca_bundle: path of a PEM CA bundle to pin. When given, TLS is
            verified against it only; ``REQUESTS_CA_BUNDLE`` and similar
            environment variables cannot override it. TLS verification is
            always on.
        proxies: ``{"https": "http://proxy:3128"}``. When ``None`` the
            environment's proxy settings (``HTTPS_PROXY``, ``NO_PROXY``) apply.
        session_factory: makes the ``requests.Session`` used (default:
            ``requests.Session``), called on first use and again after
            :meth:`close`; the headers, proxies and TLS settings above are
            applied to it. For tests and special environments: e.g. a session
            with a transport adapter mounted that serves the app in-process.
        sleep: waits between retries, given seconds (default ``time.sleep``);
            a test passes one that returns at once, so the back-off costs no time.
    """

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        deadline: float = DEFAULT_DEADLINE,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        session_factory: Callable[[], requests.Session] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url.startswith(("https://", "http://")):
            raise ValueError("server_url must start with https:// (or http:// for local testing)")
        if connect_timeout <= 0 or deadline <= 0:
            raise ValueError("timeouts must be positive numbers of seconds")
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = connect_timeout
        self.deadline = deadline
        self._ca_bundle = ca_bundle
        self._proxies = dict(proxies) if proxies is not None else None
        self._session_factory = session_factory
        self._sleep = sleep
        self._session: requests.Session | None = None
        self._lock = threading.Lock()
        self._tls_context: Any = None  # an ssl.SSLContext once prepare() ran

    def prepare(self) -> None:
        """Load the network stack and the TLS trust now, for a frozen app (``sys.frozen``).

        Imports ``requests`` and reads the CA bundle (``ca_bundle``; else,
        without explicit ``proxies``, ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``;
        else certifi's) once into an ``ssl.SSLContext`` kept in memory, used
        for every later connection: a frozen app whose unpacked folder is
        removed while it runs still reaches the server. Nothing is read from
        disk afterwards. Never raises: what cannot be loaded now is loaded
        (and reported as :class:`ServerUnreachable`) at the first request.
        """
        try:
            requests = _load_requests()
            import ssl  # noqa: PLC0415  # lazy: with requests, only when contacting the server

            path = self._ca_bundle
            if path is None and self._proxies is None:
                path = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            if path is None:
                path = requests.utils.DEFAULT_CA_BUNDLE_PATH
            with open(path, "rb") as bundle:
                pem = bundle.read(_MAX_CA_BUNDLE + 1)
            if len(pem) > _MAX_CA_BUNDLE:
                return
            context = ssl.create_default_context(cadata=pem.decode("ascii", "replace"))
            # The rest of what a request loads lazily (idna host names, the user agent).
            for name in ("encodings.idna", "platform", "secrets", "random"):
                with contextlib.suppress(ImportError, OSError):
                    importlib.import_module(name)
        except (LicenseError, OSError, ValueError):
            return  # loaded (or reported) at the first request instead
        with self._lock:
            self._tls_context = context
        with contextlib.suppress(LicenseError):
            self._get_session()

    @property
    def user_agent(self) -> str:
        """``software_dna/<version> (Python <version>; <OS>)``, sent with every request."""
        import platform  # lazy: only when a request is made

        return (f"software_dna/{__version__} (Python {platform.python_version()}; "
                f"{platform.system()})")

    def _get_session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                requests = _load_requests()
                factory = self._session_factory or requests.Session
                session = factory()
                if self._tls_context is not None:
                    session.mount("https://", _preloaded_adapter(requests, self._tls_context))
                session.headers["User-Agent"] = self.user_agent
                session.headers["Accept"] = "application/json"
                if self._proxies is not None:
                    session.trust_env = False
                    session.proxies.update(self._proxies)
                session.verify = self._ca_bundle if self._ca_bundle is not None else True
                self._session = session
            return self._session

    def close(self) -> None:
        """Close the pooled connections. The transport stays usable."""
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None

    def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Mapping[str, Any] | None = None,
        bearer: str | None = None,
        retry: bool = False,
        deadline: float | None = None,
    ) -> Response:
        """Send one request and return the server's JSON answer.

        Args:
            method: ``"GET"``, ``"POST"``, ``"PUT"`` ...
            path: path under the base URL, e.g. ``"/v1/activations"``.
            json_body: the JSON object to send.
            bearer: a secret for ``Authorization: Bearer``.
            retry: repeat after a connection failure or 502/503/504. Only
                for requests that are safe to repeat (idempotency key, GET, PUT).
            deadline: seconds for the whole operation (default: the transport's).

        Returns:
            The :class:`Response`, whatever its status (4xx included).

        Raises:
            ServerUnreachable: no answer within the deadline, connection
                refused, DNS or TLS failure, proxy failure.
            ServerError: an answer that is not a JSON object.
        """
        total = self.deadline if deadline is None else deadline
        ends = time.monotonic() + total
        attempt = 0
        while True:
            attempt += 1
            remaining = ends - time.monotonic()
            if remaining <= 0:
                raise ServerUnreachable(Message(
                    N_("The license server at %(url)s did not answer within %(seconds)s s. "
                       "Check the internet connection and try again."),
                    url=self.base_url, seconds=f"{total:g}"))
            try:
                answer = self._attempt(method, path, json_body, bearer, remaining)
            except ServerUnreachable:
                if not retry or attempt >= 3 or ends - time.monotonic() < 0.5:
                    raise
            else:
                if retry and answer.status in _RETRY_STATUSES and attempt < 3:
                    self._sleep(min(0.2 * attempt, max(0.0, ends - time.monotonic())))
                    continue
                return answer
            self._sleep(min(0.2 * attempt, max(0.0, ends - time.monotonic() - 0.1)))

    def _attempt(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None,
        bearer: str | None,
        remaining: float,
    ) -> Response:
        outcome: list[Response | BaseException] = []

        def run() -> None:
            try:
                outcome.append(self._send(method, path, json_body, bearer, remaining))
            except BaseException as exc:  # handed to the caller's thread
                outcome.append(exc)

        worker = threading.Thread(target=run, name="software_dna-http", daemon=True)
        try:
            worker.start()
        except RuntimeError as exc:
            if "shutdown" in str(exc):
                # Python 3.12.0-3.12.x refuses new threads in atexit handlers (the lease's
                # check-in at exit): send from this thread, bounded by the socket timeouts.
                return self._send(method, path, json_body, bearer, remaining)
            # No thread can be started: the process is at its limit.
            raise ServerUnreachable(N_("The license server could not be contacted now "
                                       "(no thread available). Try again later.")) from exc
        worker.join(remaining)
        if not outcome:
            raise ServerUnreachable(Message(
                N_("The license server at %(url)s did not answer in time. Check the "
                   "internet connection and try again."), url=self.base_url))
        result = outcome[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _send(
        self,
        method: str,
        path: str,
        json_body: Mapping[str, Any] | None,
        bearer: str | None,
        remaining: float,
    ) -> Response:
        requests = _load_requests()
        try:
            session = self._get_session()
        except (ImportError, OSError) as exc:  # the user agent's platform module, ...
            raise network_unavailable(exc) from exc
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        read_timeout = max(0.1, remaining)
        try:
            with session.request(
                method,
                self.base_url + path,
                json=json_body,
                headers=headers,
                # Per request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override
                # a session's verify, but never an explicit one (the pin must win).
                verify=self._ca_bundle if self._ca_bundle is not None else True,
                timeout=(min(self.connect_timeout, read_timeout), read_timeout),
                stream=True,
                allow_redirects=False,
            ) as answer:
                raw = answer.raw.read(MAX_BODY + 1, decode_content=True)
                status = answer.status_code
                answer_headers = {k.lower(): v for k, v in answer.headers.items()}
        except requests.exceptions.SSLError as exc:
            if "wrong version number" in str(exc).lower():  # OpenSSL, seeing plain HTTP
                raise ServerUnreachable(Message(
                    N_("The server at %(url)s answered without TLS (plain HTTP) on an "
                       "https:// address: check the license server's address and port."),
                    url=self.base_url)) from exc
            raise ServerUnreachable(Message(
                N_("The TLS certificate of %(url)s could not be verified. The connection "
                   "may be intercepted; check the system clock and network."),
                url=self.base_url)) from exc
        except (requests.exceptions.RequestException, OSError) as exc:
            raise ServerUnreachable(Message(
                N_("Could not reach the license server at %(url)s. Check the internet "
                   "connection (and proxy settings) and try again."),
                url=self.base_url)) from exc
        except ImportError as exc:  # a module requests or urllib3 loads on demand
            raise network_unavailable(exc) from exc
        except Exception as exc:  # urllib3 internals (e.g. ProtocolError while streaming)
            raise ServerUnreachable(Message(
                N_("The connection to %(url)s failed. Try again later."),
                url=self.base_url)) from exc
        if len(raw) > MAX_BODY:
            raise ServerError(N_("The license server's answer was too large."))
        try:
            # Strict: no duplicate keys, NaN, runaway nesting (RecursionError) or
            # 5,000-digit numbers (ValueError) reach the caller as anything but this.
            body = loads_object(raw, max_size=MAX_BODY) if raw else {}
        except ValueError as exc:
            if status >= 500:
                body = {}
            else:
                raise ServerError(Message(
                    N_("The license server answered with something that is not a JSON "
                       "object (HTTP %(status)s)."), status=status)) from exc
        return Response(status=status, body=body, headers=answer_headers)


def _preloaded_adapter(requests: Any, context: Any) -> Any:
    """A ``requests`` adapter whose HTTPS connections verify with ``context`` (in memory).

    ``requests`` itself checks that its CA bundle file exists before each
    connection and hands its path to urllib3, which reads it: this adapter
    gives urllib3 the loaded context instead and never names a file.
    Verification stays on (``CERT_REQUIRED``, host name checked).
    """

    class PreloadedTLSAdapter(requests.adapters.HTTPAdapter):  # type: ignore[misc]
        def build_connection_pool_key_attributes(
            self, request: Any, verify: Any, cert: Any = None,
        ) -> tuple[dict[str, Any], dict[str, Any]]:
            host, pool = super().build_connection_pool_key_attributes(request, verify, cert)
            if host.get("scheme") == "https":
                pool.pop("ca_certs", None)
                pool.pop("ca_cert_dir", None)
                pool["cert_reqs"] = "CERT_REQUIRED"
                pool["ssl_context"] = context
            return host, pool

        def cert_verify(self, conn: Any, url: str, verify: Any, cert: Any) -> None:
            if url.lower().startswith("https"):
                conn.cert_reqs = "CERT_REQUIRED"
                conn.ca_certs = None
                conn.ca_cert_dir = None
                return
            super().cert_verify(conn, url, verify, cert)

    return PreloadedTLSAdapter()
