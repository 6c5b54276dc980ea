"""The client against servers that misbehave: deadlines hold, check() falls back.

Over real sockets, on purpose: what is tested is HTTPTransport on the network
(connect and read timeouts, the hard deadline against a server that trickles,
refused connections, DNS, proxies, bytes that are not HTTP), which the
in-process transport the other SDK tests use (tests/inprocess.py) skips.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import certifi
import pytest
import requests.adapters
import requests.utils

from software_dna import LicenseClient, LicenseError, ServerUnreachable
from software_dna.fingerprint import collect
from software_dna.wire.paseto import SecretKey

from .netfaults import free_port, garbage_server, silent_server, trickle_server
from .security.test_network_faults import tls_server
from .tls import CA
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
                                 "http://127.0.0.1.example.com", "http://[2001:db8::1]",
                                 "http://app.localhost", "http://localhost.:8000"])
def test_plain_http_to_another_computer_is_refused(tmp_path: Path, url: str) -> None:
    """Without TLS anyone on the network reads the key and password and answers for the
    server: plain http:// only to this computer, or with a flag that says what it does."""
    key = SecretKey.generate().public_key.to_paserk()
    with pytest.raises(ValueError, match="https://"):
        LicenseClient(product=PRODUCT, public_keys=[key], server_url=url, store_path=tmp_path)
    LicenseClient(product=PRODUCT, public_keys=[key], server_url=url, store_path=tmp_path,
                  allow_insecure_http=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:8000",
                                 "http://[::1]:8000",
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


# --------------------------------------------------------------------------- the network stack


def _tls_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path]:
    """A CA, and the app's default CA bundle in its "unpacked folder" (certifi's + the CA).

    A frozen app (PyInstaller one-file) reads certifi's bundle from the folder it
    unpacked itself into; requests names that file for every connection
    (``DEFAULT_CA_BUNDLE_PATH``). The environment's bundle variables are unset,
    so that only the default one counts.
    """
    authority = CA()
    unpacked = tmp_path / "_MEI-unpacked"
    unpacked.mkdir()
    bundle = unpacked / "cacert.pem"
    bundle.write_bytes(Path(certifi.where()).read_bytes() + b"\n" + authority.pem())
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(requests.utils, "DEFAULT_CA_BUNDLE_PATH", str(bundle))
    monkeypatch.setattr(requests.adapters, "DEFAULT_CA_BUNDLE_PATH", str(bundle))
    return authority, unpacked


@pytest.mark.parametrize("frozen", [True, False], ids=["frozen", "control-not-frozen"])
def test_frozen_app_reaches_the_server_after_its_unpacked_folder_is_removed(
        frozen: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A frozen app builds its TLS context at construction: removing the unpacked folder
    (where certifi's bundle is) while it runs breaks nothing; without it (control) every
    later connection needs the file, and the server is lost until a restart."""
    authority, unpacked = _tls_setup(tmp_path, monkeypatch)
    if frozen:
        monkeypatch.setattr("sys.frozen", True, raising=False)
    with tls_server(*authority.issue("127.0.0.1")) as port:
        client = due_client(f"https://127.0.0.1:{port}", tmp_path / "store")
        shutil.rmtree(unpacked)
        error: LicenseError | None = None
        try:
            client.refresh()
        except LicenseError as exc:
            error = exc
        # The fake server answers 401: reaching it means the TLS handshake worked.
        if frozen:
            assert error is not None and not isinstance(error, ServerUnreachable), error
        else:
            assert isinstance(error, ServerUnreachable), error
        client.close()


def test_frozen_app_still_refuses_an_untrusted_certificate(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The context loaded at construction verifies as strictly as requests does."""
    _tls_setup(tmp_path, monkeypatch)
    monkeypatch.setattr("sys.frozen", True, raising=False)
    with tls_server(*CA("an attacker's CA").issue("127.0.0.1")) as port:
        client = due_client(f"https://127.0.0.1:{port}", tmp_path / "store")
        with pytest.raises(ServerUnreachable, match="certificate"):
            client.refresh()
        assert client.check().offline_grace_ends_at is not None  # falls back
        client.close()


def test_frozen_app_checks_the_host_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A certificate of the trusted CA for another host is refused by the preloaded context."""
    authority, _ = _tls_setup(tmp_path, monkeypatch)
    monkeypatch.setattr("sys.frozen", True, raising=False)
    with tls_server(*authority.issue("license.example.com")) as port:
        client = due_client(f"https://127.0.0.1:{port}", tmp_path / "store")
        with pytest.raises(ServerUnreachable, match="certificate"):
            client.refresh()
        client.close()


def test_a_network_stack_that_cannot_be_imported_is_server_unreachable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``import requests`` failing (a removed unpacked folder, a broken install) is a
    ServerUnreachable saying to restart the app, from refresh() and activate() alike;
    check() falls back to the stored license."""
    client = due_client("http://127.0.0.1:9", tmp_path)
    monkeypatch.setitem(sys.modules, "requests", None)  # import raises
    with pytest.raises(ServerUnreachable, match="network components") as caught:
        client.refresh()
    assert isinstance(caught.value.__cause__, ImportError)
    with pytest.raises(ServerUnreachable, match="Restart the app"):
        client.activate("ABCD-EFGH-JKLM-NPQR")
    assert client.check().offline_grace_ends_at is not None


_FILE_GONE = r'''
import sys, importlib.abc
class Gone(importlib.abc.MetaPathFinder):
    """A frozen app's loader once its unpacked folder is gone."""
    def find_spec(self, name, path=None, target=None):
        if name == "requests" or name.startswith("requests."):
            raise FileNotFoundError(2, "No such file or directory", "/tmp/_MEI1234/" + name)
        return None
sys.meta_path.insert(0, Gone())
from software_dna.client.transport import HTTPTransport
from software_dna.errors import ServerUnreachable
try:
    HTTPTransport("http://127.0.0.1:9").request("GET", "/v1/health")
except ServerUnreachable as exc:
    print("ServerUnreachable", type(exc.__cause__).__name__)
except BaseException as exc:
    print("ESCAPED", type(exc).__name__)
'''


def test_a_file_not_found_while_importing_requests_is_server_unreachable() -> None:
    """The frozen loader's FileNotFoundError (not an ImportError) is translated too.

    In a child process: the import machinery of this one must stay intact.
    """
    done = subprocess.run([sys.executable, "-c", _FILE_GONE], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "ServerUnreachable FileNotFoundError", done.stdout + done.stderr


def test_a_normal_import_stays_light() -> None:
    """Building a client (not frozen) loads neither requests nor ssl; the frozen path is
    taken only when ``sys.frozen`` is set."""
    code = ("import sys, tempfile\n"
            "from software_dna import LicenseClient\n"
            "from software_dna.wire.paseto import SecretKey\n"
            "LicenseClient(product='p', public_keys=[SecretKey.generate().public_key.to_paserk()],"
            " server_url='https://license.example.com', store_path=tempfile.mkdtemp())\n"
            "print('requests' in sys.modules, 'urllib3' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "False False", done.stdout + done.stderr
