"""The license server in a subprocess (uvicorn on 127.0.0.1), for tests, demos and benchmarks.

Re-exported by :mod:`software_dna.server.testing`::

    from software_dna.server.testing import LocalServer

    with LocalServer() as srv:                      # SQLite in a temp folder
        keys = srv.admin.setup_product("acme-editor", features=["pro"])
        key = srv.admin.issue_license("acme-editor", seats=2)["license_key"]
        # LicenseClient(product="acme-editor", public_keys=keys, server_url=srv.url) ...
        srv.stop(); srv.start()                     # same port, same database

:class:`LocalServer` runs ``software-dna server run`` (uvicorn) on
127.0.0.1 on a free port, after creating the data folder, the master key,
the schema and an admin API key; :attr:`LocalServer.admin` is an
:class:`~software_dna.server.adminclient.AdminClient` of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import requests

import software_dna
from software_dna.server.adminclient import AdminClient
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings, environ_without_settings
from software_dna.server.crypto import create_master_key_file

__all__ = ["LocalServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class LocalServer:
    """The license server in a subprocess on 127.0.0.1, with its own data folder.

    Args:
        data_dir: the data folder (created); default a fresh temp folder,
            deleted by :meth:`close`.
        database_url: SQLAlchemy URL; default SQLite ``server.db`` in the folder.
        workers: uvicorn worker processes.
        port: default a free port (kept across :meth:`stop` / :meth:`start`).
        rate_limit_attempts, rate_limit_address_attempts, rate_limit_window:
            activation rate limits (generous by default so tests are not throttled).
        env: extra environment variables for the server process.
        startup_timeout: seconds to wait for ``/v1/health``.
        migrate: run the migrations and create the admin key before starting
            (False: start on the database as it is, e.g. to test the refusal).
        log_level: uvicorn's log level; the log goes to ``log_path`` in the folder.
        forwarded_allow_ips: proxies trusted for ``X-Forwarded-For``
            (``software-dna server run --forwarded-allow-ips``); default none.

    Attributes: ``url``, ``admin_key``, ``data_dir``, ``database_url``,
    ``port``, ``admin`` (an :class:`AdminClient`), ``log_path``.
    """

    def __init__(
        self,
        data_dir: str | Path | None = None,
        *,
        database_url: str | None = None,
        workers: int = 1,
        port: int | None = None,
        rate_limit_attempts: int = 1000,
        rate_limit_address_attempts: int = 1000,
        rate_limit_window: int = 60,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        migrate: bool = True,
        log_level: str = "info",
        forwarded_allow_ips: str | None = None,
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else Path(
            tempfile.mkdtemp(prefix="sdna-server-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'server.db'}"
        self.workers = workers
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.log_path = self.data_dir / "server.log"
        self.admin_key: str = ""
        self._migrate = migrate
        self.log_level = log_level
        self.forwarded_allow_ips = forwarded_allow_ips
        self._extra_env = dict(env or {})
        self._settings = Settings.from_env({
            "SOFTWARE_DNA_SERVER_HOME": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            # A throwaway test server: its key stays with its data, never in the
            # user's config folder (the default for a real server).
            "SOFTWARE_DNA_MASTER_KEY_FILE": str(self.data_dir / "master.key"),
            "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS": str(rate_limit_attempts),
            "SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS": str(rate_limit_address_attempts),
            "SOFTWARE_DNA_RATE_LIMIT_WINDOW": str(rate_limit_window),
            "SOFTWARE_DNA_DB_POOL_SIZE": "3",
            "SOFTWARE_DNA_DB_MAX_OVERFLOW": "5",
        })
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin: AdminClient | None = None
        self._initialized = False

    @property
    def settings(self) -> Settings:
        """The server's settings (as passed to its process)."""
        return self._settings

    @property
    def admin(self) -> AdminClient:
        """An :class:`AdminClient` for this server."""
        if self._admin is None:
            self._admin = AdminClient(self.url, self.admin_key)
        return self._admin

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (with several workers: their supervisor)."""
        return self._proc.pid if self.running and self._proc is not None else None

    def rss_bytes(self) -> int:
        """Resident memory of the server's processes (the server and its workers), in bytes.

        Read from ``/proc/<pid>/status`` (``VmRSS``) on Linux.

        Raises:
            RuntimeError: the server is not running, or ``/proc`` is not there.
        """
        total = 0
        for status in self._proc_files("status"):
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes so far, in seconds.

        Read from ``/proc/<pid>/stat`` (``utime``, ``stime``) on Linux.

        Raises:
            RuntimeError: the server is not running, or ``/proc`` is not there.
        """
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for stat in self._proc_files("stat"):
            fields = stat.rsplit(")", 1)[1].split()  # after the command name
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def _proc_files(self, name: str) -> list[str]:
        """``/proc/<pid>/<name>`` of the server process and of every descendant."""
        pid = self.pid
        if pid is None:
            raise RuntimeError("the license server is not running")
        texts: list[str] = []
        todo, seen = [pid], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                texts.append(Path(f"/proc/{current}/{name}").read_text())
            except OSError as exc:
                if current == pid:
                    raise RuntimeError(f"cannot read /proc/{current}/{name}: {exc}") from exc
                continue  # a worker that just exited
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in task.read_text().split()]
        return texts

    def initialize(self) -> None:
        """Create the master key, the schema and an admin API key (once)."""
        if self._initialized:
            return
        if self._migrate:
            _, key = initialize(self._settings)
            if key is None:  # a folder set up before: its key was shown then, make ours
                _, key = initialize(self._settings, new_admin_key=True)
            assert key is not None
            self.admin_key = key
        else:
            create_master_key_file(self._settings.key_file)
        self._initialized = True

    def environment(self) -> dict[str, str]:
        """The environment of the server process."""
        env = environ_without_settings()
        env.update(self._settings.to_env())
        src = str(Path(next(iter(software_dna.__path__))).parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        env.update(self._extra_env)
        return env

    def command(self) -> list[str]:
        """The command line that runs the server."""
        command = [sys.executable, "-m", "software_dna.server.cli", "server", "run",
                   "--host", "127.0.0.1", "--port", str(self.port), "--workers",
                   str(self.workers), "--log-level", self.log_level]
        if self.forwarded_allow_ips is not None:
            command += ["--forwarded-allow-ips", self.forwarded_allow_ips]
        return command

    def start(self) -> LocalServer:
        """Start the server (initialising the folder the first time) and wait for health.

        Raises:
            RuntimeError: the process exited, or ``/v1/health`` did not answer
            within ``startup_timeout`` seconds (the message holds the log's tail).
        """
        if self.running:
            return self
        self.initialize()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                self.command(), env=self.environment(), stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )
        deadline = time.monotonic() + self.startup_timeout
        with requests.Session() as probe:
            while True:
                if self._proc.poll() is not None:
                    code = self._proc.returncode
                    self._proc = None
                    raise RuntimeError(f"the license server exited with status {code}:\n"
                                       + self.log_tail())
                try:
                    if probe.get(f"{self.url}/v1/health", timeout=2).status_code == 200:
                        return self
                except requests.RequestException:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the license server did not answer within "
                                       f"{self.startup_timeout} s:\n" + self.log_tail())
                time.sleep(0.05)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server process (SIGTERM, then SIGKILL after ``timeout`` seconds)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                if hasattr(os, "killpg"):
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
                proc.kill()
                proc.wait(timeout)

    def close(self) -> None:
        """Stop the server, close the admin client and delete a temp data folder."""
        self.stop()
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalServer(url={self.url!r}, database_url={self.database_url!r})"
