"""Run the license server locally, in a subprocess, for tests and demos.

::

    from software_dna.server.local import LocalServer

    with LocalServer() as srv:                      # SQLite in a temp folder
        keys = srv.admin.setup_product("acme-editor", features=["pro"])
        key = srv.admin.issue_license("acme-editor", seats=2)["license_key"]
        # LicenseClient(product="acme-editor", public_keys=keys, server_url=srv.url) ...
        srv.stop(); srv.start()                     # same port, same database

:class:`LocalServer` runs ``software-dna server run`` (uvicorn) on
127.0.0.1 on a free port, after creating the data folder, the master key,
the schema and an admin API key.  :class:`AdminClient` is a small
``requests`` client of the admin API.
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
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

import software_dna
from software_dna.server.config import Settings

__all__ = ["AdminClient", "AdminError", "LocalServer", "free_port"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class AdminError(Exception):
    """The admin API refused a request: ``status``, ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _time(value: datetime | str | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("expires_at must be timezone-aware")
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class AdminClient:
    """A client of the admin API (``/v1/admin``) authenticated with an admin API key.

    Every method returns the decoded JSON answer and raises
    :class:`AdminError` for an error answer.  ``timeout`` is in seconds.
    """

    def __init__(self, url: str, admin_key: str, *, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {admin_key}"

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._session.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """Call ``/v1/admin<path>``; returns the JSON body; raises :class:`AdminError`."""
        answer = self._session.request(method, f"{self.url}/v1/admin{path}", json=json,
                                       params=params, timeout=self.timeout)
        try:
            body = answer.json()
        except ValueError:
            body = None
        if answer.status_code >= 400:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            raise AdminError(answer.status_code, str(error.get("code", "http_error")),
                             str(error.get("message", answer.text[:200])))
        return body

    # -- products

    def create_product(self, product_id: str, **fields: Any) -> dict[str, Any]:
        """Create a product (fields as in ``POST /v1/admin/products``)."""
        result: dict[str, Any] = self.request("POST", "/products", json={"id": product_id,
                                                                         **fields})
        return result

    def setup_product(self, product_id: str, **fields: Any) -> list[str]:
        """Create a product and its first signing key; returns its ``k4.public`` keys."""
        self.create_product(product_id, **fields)
        self.generate_key(product_id)
        return self.public_keys(product_id)

    def list_products(self) -> list[dict[str, Any]]:
        """Every product."""
        result: list[dict[str, Any]] = self.request("GET", "/products")["products"]
        return result

    def get_product(self, product_id: str) -> dict[str, Any]:
        """One product."""
        result: dict[str, Any] = self.request("GET", f"/products/{product_id}")
        return result

    def update_product(self, product_id: str, **fields: Any) -> dict[str, Any]:
        """Change a product's settings."""
        result: dict[str, Any] = self.request("PATCH", f"/products/{product_id}", json=fields)
        return result

    # -- keys

    def generate_key(self, product_id: str) -> dict[str, Any]:
        """Generate a signing key (the first becomes active)."""
        result: dict[str, Any] = self.request("POST", f"/products/{product_id}/keys")
        return result

    def list_keys(self, product_id: str) -> list[dict[str, Any]]:
        """Every key of the product with its status."""
        result: list[dict[str, Any]] = self.request("GET", f"/products/{product_id}/keys")["keys"]
        return result

    def rotate_key(self, product_id: str, kid: str | None = None) -> dict[str, Any]:
        """Rotate to a new key (or to the trusted key ``kid``); returns the new active key."""
        body = {"kid": kid} if kid is not None else None
        result: dict[str, Any] = self.request("POST", f"/products/{product_id}/keys/rotate",
                                              json=body)
        return result

    def retire_key(self, product_id: str, kid: str) -> dict[str, Any]:
        """Retire a (non-active) key."""
        result: dict[str, Any] = self.request("POST",
                                              f"/products/{product_id}/keys/{kid}/retire")
        return result

    def public_keys(self, product_id: str) -> list[str]:
        """The ``k4.public`` keys to build into the app."""
        result: list[str] = self.request("GET",
                                         f"/products/{product_id}/public-keys")["public_keys"]
        return result

    # -- licenses

    def issue_license(
        self,
        product_id: str,
        *,
        seats: int = 1,
        expires_at: datetime | str | None = None,
        features: Iterable[str] | None = None,
        password: str | None = None,
        key_prefix: str | None = None,
        **terms: Any,
    ) -> dict[str, Any]:
        """Issue a license; the answer's ``license_key`` is the only copy of the key.

        ``terms``: more fields of ``POST /v1/admin/licenses``, e.g. ``kind``,
        ``expires_after_days``, ``subscription``, ``seat_mode``, ``rollover``.
        """
        body: dict[str, Any] = {"product": product_id, "seats": seats, **terms}
        if expires_at is not None:
            body["expires_at"] = _time(expires_at)
        if features is not None:
            body["features"] = list(features)
        if password is not None:
            body["password"] = password
        if key_prefix is not None:
            body["key_prefix"] = key_prefix
        result: dict[str, Any] = self.request("POST", "/licenses", json=body)
        return result

    def list_licenses(self, product_id: str | None = None, **params: Any) -> list[dict[str, Any]]:
        """Licenses, newest first."""
        query = dict(params)
        if product_id is not None:
            query["product"] = product_id
        result: list[dict[str, Any]] = self.request("GET", "/licenses",
                                                    params=query)["licenses"]
        return result

    def get_license(self, license_id: str) -> dict[str, Any]:
        """One license."""
        result: dict[str, Any] = self.request("GET", f"/licenses/{license_id}")
        return result

    def update_license(self, license_id: str, **fields: Any) -> dict[str, Any]:
        """Set ``seats``, ``expires_at`` (None: perpetual) or ``features``."""
        if "expires_at" in fields:
            fields["expires_at"] = _time(fields["expires_at"])
        if "features" in fields and fields["features"] is not None:
            fields["features"] = list(fields["features"])
        result: dict[str, Any] = self.request("PATCH", f"/licenses/{license_id}", json=fields)
        return result

    def suspend_license(self, license_id: str) -> dict[str, Any]:
        """Suspend a license."""
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/suspend")
        return result

    def resume_license(self, license_id: str) -> dict[str, Any]:
        """Resume a suspended license."""
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/resume")
        return result

    def revoke_license(self, license_id: str) -> dict[str, Any]:
        """Revoke a license for good."""
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/revoke")
        return result

    def set_password(self, license_id: str, password: str | None) -> dict[str, Any]:
        """Set (or with None remove) the activation password."""
        result: dict[str, Any] = self.request("PUT", f"/licenses/{license_id}/password",
                                              json={"password": password})
        return result

    # -- terms, renewal, test codes, trials (docs/licenses.md, docs/trials.md)

    def extend_license(self, license_id: str, *, days: int | None = None,
                       until: datetime | str | None = None) -> dict[str, Any]:
        """Add ``days`` to a timed license, or move its end to ``until``."""
        body = {"days": days} if days is not None else {"until": _time(until)}
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/extend",
                                              json=body)
        return result

    def make_perpetual(self, license_id: str) -> dict[str, Any]:
        """Convert a license to perpetual."""
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/perpetual")
        return result

    def cancel_subscription(self, license_id: str) -> dict[str, Any]:
        """Cancel a subscription (the license is suspended)."""
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/cancel")
        return result

    def issue_renewal_codes(self, days: int, *, product_id: str | None = None,
                            license_id: str | None = None, count: int = 1) -> list[str]:
        """Make renewal codes; returns the codes (shown only here)."""
        body: dict[str, Any] = {"days": days, "count": count}
        if product_id is not None:
            body["product"] = product_id
        if license_id is not None:
            body["license_id"] = license_id
        answer = self.request("POST", "/renewal-codes", json=body)
        return [str(c["code"]) for c in answer["renewal_codes"]]

    def list_renewal_codes(self, **params: Any) -> list[dict[str, Any]]:
        """Renewal codes (``product``, ``license_id``, ``limit``)."""
        result: list[dict[str, Any]] = self.request("GET", "/renewal-codes",
                                                    params=params)["renewal_codes"]
        return result

    def issue_test_code(self, product_id: str, *, days: int = 1,
                        **fields: Any) -> dict[str, Any]:
        """Issue a test code; the answer's ``license_key`` is the only copy."""
        result: dict[str, Any] = self.request("POST", f"/products/{product_id}/test-codes",
                                              json={"days": days, **fields})
        return result

    def list_test_codes(self, product_id: str) -> list[dict[str, Any]]:
        """The product's test codes."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/products/{product_id}/test-codes")["licenses"]
        return result

    def reset_test_code(self, license_id: str) -> dict[str, Any]:
        """Reset a test code (activations removed, its days start again)."""
        result: dict[str, Any] = self.request("POST", f"/licenses/{license_id}/reset")
        return result

    def list_trials(self, product_id: str) -> list[dict[str, Any]]:
        """The machines that used the product's trial."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/products/{product_id}/trials")["trials"]
        return result

    def remove_trial(self, trial_id: str) -> dict[str, Any]:
        """Forget a trial machine (its trial license is revoked)."""
        result: dict[str, Any] = self.request("DELETE", f"/trials/{trial_id}")
        return result

    # -- activations

    def list_activations(self, license_id: str) -> list[dict[str, Any]]:
        """Activations of a license."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/licenses/{license_id}/activations")["activations"]
        return result

    def remove_activation(self, activation_id: str) -> dict[str, Any]:
        """Remove an activation (frees its seat)."""
        result: dict[str, Any] = self.request("DELETE", f"/activations/{activation_id}")
        return result

    # -- seats (docs/seats.md)

    def list_leases(self, license_id: str) -> list[dict[str, Any]]:
        """The live floating leases of a license, earliest end first."""
        result: list[dict[str, Any]] = self.request(
            "GET", f"/licenses/{license_id}/leases")["leases"]
        return result

    def lockout(self, license_id: str) -> dict[str, Any]:
        """A license's re-activation lock-out (activations in the period, until when)."""
        result: dict[str, Any] = self.request("GET", f"/licenses/{license_id}/lockout")
        return result

    def reset_lockout(self, *, license_id: str | None = None,
                      address: str | None = None) -> dict[str, Any]:
        """Lift the lock-out of a license and/or a client address."""
        body = {k: v for k, v in (("license_id", license_id), ("address", address)) if v}
        result: dict[str, Any] = self.request("POST", "/lockouts/reset", json=body)
        return result

    # -- end users, audit

    def find_end_users(self, email: str) -> list[dict[str, Any]]:
        """End users with this email."""
        result: list[dict[str, Any]] = self.request("GET", "/end-users",
                                                    params={"email": email})["end_users"]
        return result

    def export_end_user(self, end_user_id: str) -> dict[str, Any]:
        """Everything held about one end user."""
        result: dict[str, Any] = self.request("GET", f"/end-users/{end_user_id}")
        return result

    def erase_end_user(self, end_user_id: str) -> dict[str, Any]:
        """Erase one end user's personal data."""
        result: dict[str, Any] = self.request("POST", f"/end-users/{end_user_id}/erase")
        return result

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        """The audit log, newest first (``limit``, ``before_id``, ``product``, ``license_id``)."""
        result: list[dict[str, Any]] = self.request("GET", "/audit", params=params)["entries"]
        return result


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
        pid = self.pid
        if pid is None:
            raise RuntimeError("the license server is not running")
        total, todo, seen = 0, [pid], set()
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            try:
                status = Path(f"/proc/{current}/status").read_text()
            except OSError as exc:
                if current == pid:
                    raise RuntimeError(f"cannot read /proc/{current}/status: {exc}") from exc
                continue  # a worker that just exited
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{current}/task").glob("*/children"):
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in task.read_text().split()]
        return total

    def initialize(self) -> None:
        """Create the master key, the schema and an admin API key (once)."""
        if self._initialized:
            return
        from software_dna.server.cli import initialize

        if self._migrate:
            _, key = initialize(self._settings)
            if key is None:  # a folder set up before: its key was shown then, make ours
                _, key = initialize(self._settings, new_admin_key=True)
            assert key is not None
            self.admin_key = key
        else:
            from software_dna.server.crypto import create_master_key_file

            create_master_key_file(self._settings.key_file)
        self._initialized = True

    def environment(self) -> dict[str, str]:
        """The environment of the server process."""
        env = dict(os.environ)
        for name in ("SOFTWARE_DNA_MASTER_KEY", "SOFTWARE_DNA_MASTER_KEY_FILE", "DATABASE_URL",
                     "SOFTWARE_DNA_DATABASE_URL"):
            env.pop(name, None)
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
