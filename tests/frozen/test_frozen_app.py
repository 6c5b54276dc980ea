"""A one-file PyInstaller app using the SDK: activates over TLS, checks offline, and keeps
working once its unpacked folder is gone.

Everything is real: PyInstaller builds ``app.py`` (once per module, in a temp folder) from
this checkout's sources; the license server runs in its own process (uvicorn, TLS with a
certificate from a CA made here); the app trusts that CA only, shipped inside the app as a
data file; it runs as its own process with its own home folders, so its store lives where
platformdirs puts it. The unpacked folder (``sys._MEIPASS``) is removed by this test while
the app runs: the app must then still check, reach the server (TLS), write its store, run a
periodic check and speak German (the catalogues are data files in that folder too).

Invariants checked:
- the frozen app trusts the vendor's CA it ships, and nothing else: no ``verify=False``,
  no environment variable (the app's environment has none);
- its store is under the user data folder (platformdirs), never beside the executable;
- a second run needs no server;
- after the unpacked folder is removed, no SDK call raises an undocumented error and the
  online ones still reach the server (the network stack, the CA bundle and the message
  catalogue are loaded when the client is built).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import requests

import software_dna
from software_dna import LicenseClient, LicenseRevoked
from software_dna.server.testing import LocalServer

from ..netfaults import free_port
from ..tls import CA

pytestmark = pytest.mark.timeout(900)

APP = Path(__file__).with_name("app.py")
PRODUCT = "frozen-notes"
# The build needs PyInstaller (dev extra) and a Python with a shared libpython.
BUILD_TIMEOUT = 600.0


def _pyinstaller() -> list[str]:
    """The PyInstaller command of this interpreter (skip when it is not installed)."""
    if importlib.util.find_spec("PyInstaller") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("PyInstaller is not installed (pip install -e '.[dev]')", pytrace=False)
        pytest.skip("PyInstaller is not installed (pip install -e '.[dev]')")
    return [sys.executable, "-m", "PyInstaller"]


@pytest.fixture(scope="module")
def authority() -> CA:
    """The vendor's own CA: the server's certificate is issued by it; the app trusts it."""
    return CA("Acme licensing CA")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("frozen")


@pytest.fixture(scope="module")
def ca_file(authority: CA, workdir: Path) -> Path:
    path = workdir / "vendor-ca.pem"
    path.write_bytes(authority.pem())
    return path


@pytest.fixture(scope="module")
def frozen_app(workdir: Path, ca_file: Path) -> Path:
    """``app.py`` built into one file by PyInstaller, from this checkout's sources."""
    command = _pyinstaller()
    src = Path(next(iter(software_dna.__path__))).parent
    locale = src / "software_dna" / "locale"
    build = workdir / "build"
    env = dict(os.environ, PYTHONPATH=str(src), PYINSTALLER_CONFIG_DIR=str(build / "config"))
    started = time.monotonic()
    done = subprocess.run(
        [*command, "--onefile", "--noconfirm", "--clean", "--log-level", "WARN",
         "--name", "frozen-notes", "--paths", str(src),
         "--distpath", str(build / "dist"), "--workpath", str(build / "work"),
         "--specpath", str(build),
         "--add-data", f"{ca_file}{os.pathsep}.",
         "--add-data", f"{locale}{os.pathsep}software_dna/locale",
         "--exclude-module", "software_dna.server", "--exclude-module", "software_dna.testing",
         str(APP)],
        env=env, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    print(f"PyInstaller build: {time.monotonic() - started:.1f} s")
    executable = build / "dist" / "frozen-notes"
    assert executable.is_file()
    return executable


class TLSServer:
    """The license server's app served by uvicorn over TLS, in its own process."""

    def __init__(self, local: LocalServer, cert: Path, key: Path, ca_file: Path) -> None:
        self.local = local
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.command = [sys.executable, "-m", "uvicorn", "--factory",
                        "software_dna.server.app:app_from_env", "--host", "127.0.0.1",
                        "--port", str(self.port), "--ssl-certfile", str(cert),
                        "--ssl-keyfile", str(key), "--log-level", "warning"]
        self.ca_file = ca_file
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start and wait for ``/v1/health`` (verified against the CA)."""
        with open(self.local.data_dir / "tls.log", "ab") as log:
            self._proc = subprocess.Popen(
                self.command, env=self.local.environment(), stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        ends = time.monotonic() + 60
        while True:
            assert self._proc.poll() is None, (self.local.data_dir / "tls.log").read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/v1/health", verify=str(self.ca_file),
                                timeout=2).status_code == 200:
                    return
            assert time.monotonic() < ends, "the TLS server did not start"
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)


@pytest.fixture(scope="module")
def server(authority: CA, workdir: Path, ca_file: Path) -> Iterator[TLSServer]:
    """The license server (SQLite) over TLS; its admin API over plain HTTP on 127.0.0.1."""
    cert, key = authority.issue("127.0.0.1")
    (workdir / "server.pem").write_bytes(cert)
    (workdir / "server.key").write_bytes(key)
    with LocalServer(workdir / "server") as local:
        tls = TLSServer(local, workdir / "server.pem", workdir / "server.key", ca_file)
        tls.start()
        try:
            yield tls
        finally:
            tls.stop()


@pytest.fixture(scope="module")
def config(server: TLSServer, workdir: Path) -> Path:
    """The app's settings: product, keys, the TLS URL, a license and a revoked one."""
    admin = server.local.admin
    keys = admin.setup_product(PRODUCT, name="Frozen Notes")
    license_key = admin.issue_license(PRODUCT, seats=1)["license_key"]
    revoked = admin.issue_license(PRODUCT, seats=1)
    admin.revoke_license(revoked["id"])
    path = workdir / "app.json"
    path.write_text(json.dumps({
        "product": PRODUCT, "public_keys": keys, "server_url": server.url,
        "license_key": license_key, "revoked_key": revoked["license_key"],
        "german_store": str(workdir / "german-store"), "go": str(workdir / "go"),
    }), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def user_home(workdir: Path) -> dict[str, str]:
    """The end user's environment: own home and data folders, no CA bundle variables."""
    home = workdir / "home"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "XDG_DATA_HOME": str(home / "data"), "XDG_CACHE_HOME": str(home / "cache"),
           "XDG_STATE_HOME": str(home / "state"), "XDG_CONFIG_HOME": str(home / "config"),
           "TMPDIR": str(workdir / "tmp"), "LANG": "C.UTF-8"}
    for name in ("data", "cache", "state", "config"):
        (home / name).mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    return env


def _result(output: str) -> dict[str, Any]:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, output
    report: dict[str, Any] = json.loads(lines[0][len("RESULT "):])
    return report


def run_app(app: Path, config: Path, step: str, env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([str(app), str(config), step], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return _result(done.stdout)


@pytest.fixture(scope="module")
def first_run(frozen_app: Path, config: Path, user_home: dict[str, str]) -> dict[str, Any]:
    """The app's first run: it activates against the server over TLS."""
    return run_app(frozen_app, config, "activate", user_home)


def test_first_run_activates_over_tls(first_run: dict[str, Any], frozen_app: Path,
                                      user_home: dict[str, str]) -> None:
    assert first_run["frozen"] is True
    assert first_run["activate"] == {"ok": True, "mode": "full"}, first_run
    store = Path(first_run["store"])
    assert store.is_file()
    assert store.is_relative_to(user_home["XDG_DATA_HOME"])
    assert not store.is_relative_to(frozen_app.parent)


def test_second_run_checks_offline(first_run: dict[str, Any], frozen_app: Path, config: Path,
                                   server: TLSServer, user_home: dict[str, str]) -> None:
    assert first_run["activate"]["ok"], first_run
    server.stop()
    try:
        second = run_app(frozen_app, config, "check", user_home)
    finally:
        server.start()
    assert second["check"] == {"ok": True, "mode": "full"}, second
    assert second["store"] == first_run["store"]


def test_the_app_refuses_a_server_its_ca_did_not_certify(
        first_run: dict[str, Any], frozen_app: Path, config: Path, workdir: Path,
        user_home: dict[str, str]) -> None:
    """Control for the TLS trust: the same app against a server whose certificate comes
    from another CA (even one the environment names) is ServerUnreachable."""
    assert first_run["activate"]["ok"], first_run
    stranger = CA("another CA")
    cert, key = stranger.issue("127.0.0.1")
    (workdir / "stranger.pem").write_bytes(cert)
    (workdir / "stranger.key").write_bytes(key)
    (workdir / "stranger-ca.pem").write_bytes(stranger.pem())
    with LocalServer(workdir / "stranger") as local:
        impostor = TLSServer(local, workdir / "stranger.pem", workdir / "stranger.key",
                             workdir / "stranger-ca.pem")
        impostor.start()
        try:
            settings = json.loads(config.read_text(encoding="utf-8"))
            settings["server_url"] = impostor.url
            other = workdir / "impostor.json"
            other.write_text(json.dumps(settings), encoding="utf-8")
            env = dict(user_home, REQUESTS_CA_BUNDLE=str(workdir / "stranger-ca.pem"),
                       SSL_CERT_FILE=str(workdir / "stranger-ca.pem"))
            outcome = run_app(frozen_app, other, "activate", env)["activate"]
        finally:
            impostor.stop()
    assert outcome["ok"] is False and outcome["error"] == "ServerUnreachable", outcome
    assert "certificate" in outcome["message"], outcome


def _read_line(stream: IO[str], prefix: str, seconds: float) -> str:
    """The first line of ``stream`` starting with ``prefix`` (the app prints it)."""
    ends = time.monotonic() + seconds
    seen: list[str] = []
    while time.monotonic() < ends:
        line = stream.readline()
        if not line:
            break
        if line.startswith(prefix):
            return line[len(prefix):].strip()
        seen.append(line)
    raise AssertionError(f"no {prefix!r} line from the app: {''.join(seen)}")


def test_it_keeps_working_after_its_unpacked_folder_is_removed(
        first_run: dict[str, Any], frozen_app: Path, config: Path, server: TLSServer,
        workdir: Path, user_home: dict[str, str]) -> None:
    assert first_run["activate"]["ok"], first_run
    settings = json.loads(config.read_text(encoding="utf-8"))
    proc = subprocess.Popen([str(frozen_app), str(config), "survive"], env=user_home,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        ready = json.loads(_read_line(proc.stdout, "READY ", 120))
        unpacked = Path(ready["meipass"])
        assert unpacked.is_dir() and unpacked.is_relative_to(user_home["TMPDIR"]), ready
        shutil.rmtree(unpacked)
        Path(settings["go"]).touch()
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(output)  # shown when an assertion below fails
    assert proc.returncode == 0, output
    report = _result(output)
    assert report["unpacked_folder_exists"] is False
    assert report["before"] == {"ok": True, "mode": "full"}, report
    assert report["check"] == {"ok": True, "mode": "full"}, report
    # Reaching the server needs the TLS trust (the CA file was in the removed folder).
    assert report["refresh"] == {"ok": True, "mode": "full"}, report
    assert report["periodic"] == {"errors": [], "license": True}, report
    # The refusal in German, as the SDK (not frozen) gives it.
    reference = LicenseClient(product=PRODUCT, public_keys=settings["public_keys"],
                              server_url=server.url, ca_bundle=str(server.ca_file),
                              language="de", store_path=workdir / "reference-store")
    with reference, pytest.raises(LicenseRevoked) as expected:
        reference.activate(settings["revoked_key"])
    assert report["german"] == {"ok": False, "error": "LicenseRevoked",
                                "message": str(expected.value)}, report


_FLAGS = {
    "pyinstaller": "sys.frozen = True\n",
    # Nuitka sets no sys.frozen; each module it compiled has a __compiled__ global.
    "nuitka": "import software_dna.client.facade as f\nf.__compiled__ = object()\n",
    "control-not-frozen": "",
}


@pytest.mark.parametrize("flag", list(_FLAGS))
def test_a_frozen_client_loads_the_store_lock_when_it_is_built(flag: str,
                                                               tmp_path: Path) -> None:
    """The store's first write imports filelock (which needs ``_decimal`` and
    ``_contextvars``, extension modules in the unpacked folder), and the first request
    requests: a frozen app (PyInstaller's flag, or Nuitka's) loads both when the client is
    built; otherwise (control) they stay lazy."""
    script = (
        "import sys\n" + _FLAGS[flag] +
        "from software_dna import LicenseClient\n"
        "from software_dna.wire.paseto import SecretKey\n"
        "key = SecretKey.generate().public_key.to_paserk()\n"
        "LicenseClient(product='p', public_keys=[key], store_path=sys.argv[1],\n"
        "              server_url='https://license.example.com')\n"
        "print(*(name in sys.modules for name in ('filelock', '_decimal', 'requests')))\n")
    src = str(Path(next(iter(software_dna.__path__))).parent)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)],
                          env=dict(os.environ, PYTHONPATH=src), capture_output=True,
                          text=True, timeout=60, check=True)
    loaded = str(flag != "control-not-frozen")
    assert done.stdout.split() == [loaded] * 3, done.stdout + done.stderr
