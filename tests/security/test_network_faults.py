"""Network faults: TLS with a self-made CA (wrong host, expired, untrusted), stalls, lies.

Each gives the right typed error within its deadline, and check() falls back
to the stored license. tests/test_client_network.py covers refused
connections, DNS failures, dead proxies and garbage answers; here: TLS (a
local HTTPS server whose certificates come from cryptography's x509
builder), answers that stall, and a 200 carrying a genuine token of another
product.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from software_dna import (
    License,
    LicenseClient,
    LicenseError,
    ServerError,
    ServerUnreachable,
    WrongProduct,
)
from tests.netfaults import garbage_server, silent_server, trickle_server
from tests.security._family import Scale, Tally
from tests.security._tokenlab import OTHER_PRODUCT, PRODUCT, Lab
from tests.tls import CA

NOW = dt.datetime.now(dt.timezone.utc)


class _Handler(http.server.BaseHTTPRequestHandler):
    body = b'{"error": {"code": "unauthorized", "message": "no"}}'

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(length)
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def tls_server(cert: bytes, key: bytes) -> Iterator[int]:
    """An HTTPS server on 127.0.0.1 with this certificate; yields its port."""
    with tempfile.TemporaryDirectory() as folder:
        cert_file, key_file = Path(folder) / "cert.pem", Path(folder) / "key.pem"
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield int(httpd.server_address[1])
        finally:
            httpd.shutdown()
            httpd.server_close()


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def ca_file(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_bytes(ca.pem())
    return str(path)


def _stored_client(lab: Lab, url: str, **kwargs: object) -> LicenseClient:
    """A client with a valid stored license whose refresh is due, talking to ``url``."""
    lab.client.install_token(lab.token(refresh_by=NOW - dt.timedelta(hours=1)))
    lab.client._state.update(lambda d: d.update({"activation_id": "act_1",
                                                 "activation_secret": "sas_test"}))
    return lab.make_client(server_url=url, timeout=3.0, connect_timeout=2.0, **kwargs)


def _refresh_outcome(client: LicenseClient) -> tuple[LicenseError | None, float]:
    started = time.monotonic()
    try:
        client.refresh()
    except LicenseError as exc:
        return exc, time.monotonic() - started
    return None, time.monotonic() - started


def _falls_back(client: LicenseClient) -> bool:
    lic = client.check()
    return isinstance(lic, License) and lic.offline_grace_ends_at is not None


def test_control_the_pinned_ca_reaches_the_server(ca: CA, ca_file: str, tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    with tls_server(*ca.issue("127.0.0.1")) as port:
        client = _stored_client(lab, f"https://127.0.0.1:{port}", ca_bundle=ca_file)
        error, _ = _refresh_outcome(client)
        # The TLS handshake worked: the (fake) server's 401 came back.
        assert error is not None and not isinstance(error, ServerUnreachable), error


@pytest.mark.parametrize("case", ["wrong host", "expired", "untrusted CA", "system CAs only"])
def test_tls_certificate_refused(case: str, ca: CA, ca_file: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab(tmp_path)
    issuer = CA("an attacker's CA") if case == "untrusted CA" else ca
    cert = issuer.issue("license.example.com" if case == "wrong host" else "127.0.0.1",
                        expired=case == "expired")
    pinned: str | None = None if case == "system CAs only" else ca_file
    if pinned is not None:
        # The environment trusting the certificate's issuer cannot override the pinned bundle.
        issuer_file = tmp_path / "issuer.pem"
        issuer_file.write_bytes(issuer.pem())
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.setenv(name, str(issuer_file))
    with tls_server(*cert) as port:
        client = _stored_client(lab, f"https://127.0.0.1:{port}", ca_bundle=pinned)
        error, took = _refresh_outcome(client)
        assert isinstance(error, ServerUnreachable), error
        assert "certificate" in str(error).lower() or "TLS" in str(error)
        assert took < 3.0 + 1.0
        assert _falls_back(client)


@pytest.mark.parametrize("kind", ["silent", "trickle"])
def test_answers_that_stall(kind: str, tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    server = silent_server() if kind == "silent" else trickle_server(1.0)
    with server as url:
        client = _stored_client(lab, url)
        error, took = _refresh_outcome(client)
        assert isinstance(error, ServerUnreachable), error
        assert took < 3.0 + 1.0
        started = time.monotonic()
        assert _falls_back(client)  # check() tries once more, within its own 5 s deadline
        assert time.monotonic() - started < 5.0 + 1.0


class _OtherProductHandler(_Handler):
    token = ""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        nonce = json.loads(self.rfile.read(length) or b"{}").get("nonce", "")
        body = json.dumps({"token": self.token.replace("NONCE", nonce), "nonce": nonce,
                           "server_time": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_200_with_a_genuine_token_for_another_product(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    _OtherProductHandler.token = lab.token(product=OTHER_PRODUCT)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OtherProductHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = _stored_client(lab, f"http://127.0.0.1:{httpd.server_address[1]}")
        error, _ = _refresh_outcome(client)
        assert isinstance(error, WrongProduct), error
        lic = client.check()  # falls back to the stored license, which is unchanged
        assert lic.product == PRODUCT
    finally:
        httpd.shutdown()
        httpd.server_close()


def family(scale: Scale) -> Tally:
    """TLS refusals and stalls, repeated: each a ServerUnreachable in time and a fallback."""
    tally = Tally("network faults")
    authority, stranger = CA(), CA("stranger")
    with tempfile.TemporaryDirectory() as folder:
        ca_path = Path(folder) / "ca.pem"
        ca_path.write_bytes(authority.pem())
        cases = {
            "wrong host": authority.issue("license.example.com"),
            "expired": authority.issue("127.0.0.1", expired=True),
            "untrusted CA": stranger.issue("127.0.0.1"),
        }
        for round_ in range(scale.pick(1, 5)):
            for name, cert in cases.items():
                lab = Lab(Path(folder) / f"{name}-{round_}")
                with tls_server(*cert) as port:
                    client = _stored_client(lab, f"https://127.0.0.1:{port}",
                                            ca_bundle=str(ca_path))
                    error, took = _refresh_outcome(client)
                    ok = isinstance(error, ServerUnreachable) and took < 4.0
                    tally.check(ok and _falls_back(client), f"{name}: {error!r} in {took:.1f} s")
                lab.close()
            for name, server in (("silent", silent_server()), ("trickle", trickle_server(1.0))):
                lab = Lab(Path(folder) / f"{name}-{round_}")
                with server as url:
                    client = _stored_client(lab, url)
                    error, took = _refresh_outcome(client)
                    ok = isinstance(error, ServerUnreachable) and took < 4.0
                    tally.check(ok and _falls_back(client), f"{name}: {error!r} in {took:.1f} s")
                lab.close()
            lab = Lab(Path(folder) / f"garbage-{round_}")
            with contextlib.suppress(Exception), garbage_server(200, b"[1, 2") as url:
                client = _stored_client(lab, url)
                error, _ = _refresh_outcome(client)
                tally.check(isinstance(error, ServerError) and _falls_back(client),
                            f"200 with garbage: {error!r}")
            lab.close()
    return tally


def test_family_short_run() -> None:
    family(Scale.SHORT).assert_clean()
