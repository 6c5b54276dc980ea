"""The client's side of the network: the license server it talks to, and what every call shares.

:class:`ServerAPI` holds the :class:`~software_dna.client.transport.Transport`
(an :class:`~software_dna.client.transport.HTTPTransport` made on first use,
or the one given to the client) and sends the JSON requests of docs/protocol.md.
:func:`new_nonce` and :func:`client_facts` are the request parts that are
not the end user's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from software_dna._version import __version__
from software_dna.errors import NetworkError
from software_dna.i18n import N_

from .transport import HTTPTransport, Response, Transport

__all__ = ["ServerAPI", "check_app_version", "client_facts", "new_nonce"]


def new_nonce() -> str:
    """A fresh request nonce (24 random bytes, base64url: 32 characters)."""
    import secrets  # lazy: not needed by an offline check()

    return secrets.token_urlsafe(24)


def client_facts(app_version: str | None = None) -> dict[str, str]:
    """The client facts a request sends: SDK version, OS name, Python version.

    Args:
        app_version: the vendor app's version (``LicenseClient(app_version=...)``),
            sent as ``app_version`` when given.

    Returns:
        ``{"sdk_version", "os", "python"[, "app_version"]}``.
    """
    import platform  # lazy: only when activating

    facts = {
        "sdk_version": __version__,
        "os": platform.system() or "unknown",
        "python": platform.python_version(),
    }
    if app_version is not None:
        facts["app_version"] = app_version
    return facts


def check_app_version(value: object) -> str | None:
    """``value`` if it is a valid app version (1-32 printable characters) or None.

    Raises:
        ValueError: anything else (another type, empty, too long, a control
            or non-printable character).
    """
    if value is None:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 32 or not value.isprintable():
        raise ValueError("app_version must be 1 to 32 printable characters, e.g. \"1.4.2\"")
    return value


class ServerAPI:
    """The license server of one client.

    Args:
        server_url: the base URL (``https://...``), or None.
        transport: a transport to use instead of an :class:`HTTPTransport`, or None.
        timeout: seconds one operation may take in total (retries included).
        connect_timeout: seconds to establish a connection (HTTP transport).
        ca_bundle: a PEM CA bundle to pin for TLS (HTTP transport).
        proxies: explicit proxies (HTTP transport); None: the environment's.

    Raises:
        ValueError: a malformed URL or timeouts that are not positive.
    """

    def __init__(self, server_url: str | None, *, transport: Transport | None = None,
                 timeout: float, connect_timeout: float, ca_bundle: str | None,
                 proxies: Mapping[str, str] | None, allow_insecure_http: bool = False) -> None:
        self.url = server_url
        self.timeout = timeout
        self._transport = transport
        if transport is None and server_url is not None:
            if not allow_insecure_http and not secure_enough(server_url):
                raise ValueError(
                    f"server_url must be https:// ({server_url!r}): plain http:// is accepted "
                    "only for a license server on this computer (localhost, 127.0.0.1, ::1), "
                    "or with allow_insecure_http=True")
            # Validates the URL now; requests itself is imported on the first request.
            self._transport = HTTPTransport(server_url, deadline=timeout,
                                            connect_timeout=connect_timeout,
                                            ca_bundle=ca_bundle, proxies=proxies)

    def prepare(self) -> None:
        """Load the network stack and the TLS trust now (a frozen app); never raises.

        See :meth:`HTTPTransport.prepare`; a transport given by the app is left alone.
        """
        if isinstance(self._transport, HTTPTransport):
            self._transport.prepare()

    @property
    def configured(self) -> bool:
        """True when there is a server to talk to (a URL or a transport)."""
        return self._transport is not None

    def request(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
                bearer: str | None = None, retry: bool = False,
                deadline: float | None = None) -> Response:
        """Send one request (see :meth:`Transport.request` for the arguments and errors).

        Raises:
            NetworkError: no server is configured for this app.
            ServerUnreachable, ServerError: as the transport raises them.
        """
        if self._transport is None:
            raise NetworkError(N_("No license server is configured for this app."))
        return self._transport.request(method, path, json_body=json_body, bearer=bearer,
                                       retry=retry,
                                       deadline=self.timeout if deadline is None else deadline)

    def close(self) -> None:
        """Release the transport's pooled connections. Never raises."""
        if self._transport is not None:
            self._transport.close()


def secure_enough(url: str) -> bool:
    """``https://``, or ``http://`` to this computer only (a loopback host).

    Args:
        url: the license server's URL.
    """
    import ipaddress  # noqa: PLC0415  # lazy: only when a client is built with a URL
    from urllib.parse import urlsplit  # noqa: PLC0415

    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").lower()
    # Exactly "localhost" (the hosts file answers it); not "localhost." nor
    # "*.localhost", which a resolver without special handling asks DNS for.
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
