"""The client against servers that misbehave: deadlines hold, check() falls back.

Over real sockets, on purpose: what is tested is HTTPTransport on the network
(connect and read timeouts, the hard deadline against a server that trickles,
refused connections, DNS, proxies, bytes that are not HTTP), which the
in-process transport the other SDK tests use (tests/inprocess.py) skips.
"""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna import LicenseClient, LicenseError, ServerUnreachable
from software_dna.fingerprint import collect
from software_dna.wire.paseto import SecretKey

from .netfaults import free_port, garbage_server, silent_server, trickle_server
from .tokens import make_token, now_utc

PRODUCT = "acme-editor"
DEADLINE = 2.0


def due_client(url: str, tmp_path: Path, **options: Any) -> LicenseClient:
    """A client whose stored license is past refresh_by, within its grace."""
    key = SecretKey.generate()
    now = now_utc()
    token = make_token(key, PRODUCT, collect(PRODUCT), issued_at=now - timedelta(days=8),
                       refresh_by=now - timedelta(hours=1), expires_at=now + timedelta(days=3))
    client = LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                           server_url=url, store_path=tmp_path, timeout=DEADLINE, **options)
    client.install_token(token)
    with client._state.store.transaction() as data:
        data["activation_id"] = "act_1"
        data["activation_secret"] = "s" * 43
    return client


def timed(call: object) -> float:
    start = time.monotonic()
    assert callable(call)
    call()
    return time.monotonic() - start


@pytest.mark.parametrize("server", [silent_server, lambda: trickle_server(5.0)],
                         ids=["never-answers", "byte-every-5s"])
def test_activate_and_refresh_end_within_deadline(server: object, tmp_path: Path) -> None:
    assert callable(server)
    with server() as url:
        client = due_client(url, tmp_path)
        start = time.monotonic()
        with pytest.raises(ServerUnreachable):
            client.activate("ABCD-EFGH-JKLM-NPQR")
        assert time.monotonic() - start < DEADLINE + 1.0
        start = time.monotonic()
        with pytest.raises(ServerUnreachable):
            client.refresh()
        assert time.monotonic() - start < DEADLINE + 1.0
        # check() falls back to the stored license, inside its grace period.
        start = time.monotonic()
        lic = client.check()
        assert time.monotonic() - start < DEADLINE + 1.0
        assert lic.offline_grace_ends_at is not None
        # The failed attempt is remembered: the next check() does not wait again.
        assert timed(client.check) < 0.5


def test_connection_refused(tmp_path: Path) -> None:
    client = due_client(f"http://127.0.0.1:{free_port()}", tmp_path)
    with pytest.raises(ServerUnreachable):
        client.refresh()
    assert client.check().offline_grace_ends_at is not None


@pytest.mark.parametrize("status,body", [
    (200, b"<html>not json</html>"), (200, b"[1, 2]"), (200, b'{"token": 42}'),
    (403, b'{"error": "license_revoked"}'), (403, b'{"error": {"code": "license_revoked"}}'),
    (410, b'{"error": {"code": "activation_removed", "receipt": "v4.public.AAAA"}}'),
    (500, b"oops"), (503, b""),
])
def test_unusable_answers(status: int, body: bytes, tmp_path: Path) -> None:
    with garbage_server(status, body) as url:
        client = due_client(url, tmp_path)
        with pytest.raises(LicenseError):
            client.refresh()
        # An unsigned refusal is never stored: the license still works offline.
        assert client.check().offline_grace_ends_at is not None


def test_dns_failure(tmp_path: Path) -> None:
    client = due_client("https://license.invalid", tmp_path)
    with pytest.raises(ServerUnreachable):
        client.refresh()


def test_dead_proxy_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = due_client("http://license.example.com", tmp_path, allow_insecure_http=True)
    with pytest.raises(ServerUnreachable):
        client.refresh()
    assert client.check().offline_grace_ends_at is not None


@pytest.mark.parametrize("url", ["http://license.example.com", "http://10.0.0.5:8000",
                                 "http://127.0.0.1.example.com", "http://[2001:db8::1]"])
def test_plain_http_to_another_computer_is_refused(tmp_path: Path, url: str) -> None:
    """Without TLS anyone on the network reads the key and password and answers for the
    server: plain http:// only to this computer, or with a flag that says what it does."""
    key = SecretKey.generate().public_key.to_paserk()
    with pytest.raises(ValueError, match="https://"):
        LicenseClient(product=PRODUCT, public_keys=[key], server_url=url, store_path=tmp_path)
    LicenseClient(product=PRODUCT, public_keys=[key], server_url=url, store_path=tmp_path,
                  allow_insecure_http=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000",
                                 "http://[::1]:8000", "http://app.localhost",
                                 "https://license.example.com"])
def test_https_and_this_computer_need_no_flag(tmp_path: Path, url: str) -> None:
    key = SecretKey.generate().public_key.to_paserk()
    assert LicenseClient(product=PRODUCT, public_keys=[key], server_url=url,
                         store_path=tmp_path).server_url == url


def test_a_plain_http_answer_to_https_is_reported_as_such(tmp_path: Path) -> None:
    with garbage_server(200, b"{}") as url:
        client = due_client(url.replace("http://", "https://"), tmp_path)
        with pytest.raises(ServerUnreachable, match="without TLS"):
            client.refresh()
