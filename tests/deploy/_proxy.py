"""nginx from the shipped recipe (deploy/nginx/software-dna.conf), started by the tests.

:class:`Nginx` renders the recipe with the test's ports, certificate and
upstreams (each substitution must match the recipe exactly once, so a change
to the recipe that the tests no longer cover fails loudly) and runs nginx as
a foreground process on unprivileged ports.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import pytest

from software_dna.server.testing import free_port
from tests.tls import Tls

__all__ = ["PROXY_SOURCE", "RECIPE", "Nginx", "nginx_binary", "require_nginx"]

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "deploy" / "nginx" / "software-dna.conf"
#: The address nginx connects to the instances from (``proxy_bind``), so that the
#: servers can trust it alone for X-Forwarded-For while the tests' direct
#: clients connect from 127.0.0.1.
PROXY_SOURCE = "127.0.0.2"


def nginx_binary() -> str | None:
    """The nginx executable (``SDNA_NGINX``, the PATH, /usr/sbin/nginx), or None."""
    for candidate in (os.environ.get("SDNA_NGINX"), shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def require_nginx() -> str:
    """The nginx executable; skips the test when missing (fails when ``CI=true``)."""
    found = nginx_binary()
    if found is None:
        message = ("nginx is not installed; skipped (Debian: `sudo make proxy` or "
                   "`sudo apt-get install nginx`; elsewhere set SDNA_NGINX)")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message.replace("; skipped", ": required when CI=true"), pytrace=False)
        pytest.skip(message)
    return found


def _once(pattern: str, replacement: str, text: str) -> str:
    """``text`` with the one match of ``pattern`` replaced (AssertionError unless exactly one)."""
    found = len(re.findall(pattern, text, flags=re.MULTILINE))
    assert found == 1, f"the recipe has {found} lines matching {pattern!r}, expected 1"
    return re.sub(pattern, lambda _m: replacement, text, flags=re.MULTILINE)


def render(recipe: str, *, https_port: int, http_port: int, tls: Tls, upstreams: Sequence[int],
           overrides: Mapping[str, str] | None = None, backup: Sequence[int] = ()) -> str:
    """The recipe with the test's listen ports, certificate, upstream ports and source address.

    Args:
        recipe: the text of deploy/nginx/software-dna.conf.
        https_port, http_port: where nginx listens on 127.0.0.1.
        tls: the certificate and key to serve.
        upstreams: the instances' ports on 127.0.0.1 (their lines keep the recipe's options).
        backup: those of ``upstreams`` marked ``backup`` (used only when the others fail).
        overrides: directive -> value for directives the recipe sets once
            (e.g. ``{"client_body_timeout": "1s"}``).
    """
    text = _once(r"^\s*listen \[::\]:80;\n", "", recipe)
    text = _once(r"^\s*listen \[::\]:443 ssl;\n", "", text)
    text = _once(r"listen 80;", f"listen 127.0.0.1:{http_port};", text)
    text = _once(r"listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;", text)
    text = _once(r"ssl_certificate\s+\S+;", f"ssl_certificate {tls.certificate};", text)
    text = _once(r"ssl_certificate_key\s+\S+;", f"ssl_certificate_key {tls.key};", text)
    servers = re.findall(r"^(\s*)server 127\.0\.0\.1:\d+( [^;]*);\n", text, flags=re.MULTILINE)
    assert servers, "the recipe's upstream has no `server 127.0.0.1:PORT ...;` line"
    indent, options = servers[0]
    lines = "".join(f"{indent}server 127.0.0.1:{port}{options}{' backup' * (port in backup)};\n"
                    for port in upstreams)
    text = re.sub(r"^\s*server 127\.0\.0\.1:\d+ [^;]*;\n", "", text, flags=re.MULTILINE)
    text = _once(r"^upstream software_dna \{\n", "upstream software_dna {\n" + lines, text)
    text = _once(r"proxy_http_version 1\.1;",
                 f"proxy_http_version 1.1;\n    proxy_bind {PROXY_SOURCE};", text)
    for directive, value in (overrides or {}).items():
        text = _once(rf"^(\s*){re.escape(directive)} [^;]+;", rf"    {directive} {value};", text)
    return text


class Nginx:
    """nginx in the foreground with the rendered recipe; a context manager.

    Args:
        folder: where its configuration, logs and temp files go.
        tls: the certificate it serves.
        upstreams: the license server instances' ports on 127.0.0.1.
        overrides, backup: see :func:`render`.

    Attributes: ``https_url`` (``https://127.0.0.1:<port>``), ``http_url``,
    ``access_log`` (one line per request: ``msec|status|upstream_addr|
    upstream_status|uri|request_time``, times in seconds; ``msec`` is when the
    request ended; a retried request lists both upstreams, comma-separated), ``error_log``.
    """

    def __init__(self, folder: Path, tls: Tls, upstreams: Sequence[int],
                 overrides: Mapping[str, str] | None = None, backup: Sequence[int] = ()) -> None:
        self.binary = require_nginx()
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.https_port, self.http_port = free_port(), free_port()
        self.https_url = f"https://127.0.0.1:{self.https_port}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"
        self.access_log = folder / "access.log"
        self.error_log = folder / "error.log"
        site = render(RECIPE.read_text(encoding="utf-8"), https_port=self.https_port,
                      http_port=self.http_port, tls=tls, upstreams=upstreams,
                      overrides=overrides, backup=backup)
        (folder / "software-dna.conf").write_text(site, encoding="utf-8")
        # As root the workers would switch to nobody; they stay this account instead.
        user = ""
        if os.geteuid() == 0:
            user = (f"user {pwd.getpwuid(os.getuid()).pw_name} "
                    f"{grp.getgrgid(os.getgid()).gr_name};")
        temp = "\n".join(f"    {kind}_temp_path {folder / ('tmp-' + kind)};"
                         for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (folder / "nginx.conf").write_text(f"""\
daemon off;
worker_processes 1;
pid {folder / 'nginx.pid'};
error_log {self.error_log} warn;
{user}
events {{ worker_connections 512; }}
http {{
    log_format upstreams '$msec|$status|$upstream_addr|$upstream_status|$uri|$request_time';
    access_log {self.access_log} upstreams;
{temp}
    include {folder / 'software-dna.conf'};
}}
""", encoding="utf-8")
        self._proc: subprocess.Popen[bytes] | None = None

    def command(self, *extra: str) -> list[str]:
        """The nginx command line for this configuration."""
        return [self.binary, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
                "-e", str(self.error_log), *extra]

    def start(self) -> Nginx:
        """Check the configuration (``nginx -t``), start nginx, wait for its ports.

        Raises:
            RuntimeError: the configuration is refused or nginx exits / does not listen.
        """
        checked = subprocess.run(self.command("-t"), capture_output=True, text=True,
                                 timeout=30, check=False)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t refused the rendered recipe:\n{checked.stderr}")
        self._proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while True:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode() if self._proc.stderr else ""
                raise RuntimeError(f"nginx exited with status {self._proc.returncode}: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.https_port), timeout=1), \
                        socket.create_connection(("127.0.0.1", self.http_port), timeout=1):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("nginx did not listen within 20 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop nginx (SIGQUIT: finish the requests in flight; SIGKILL after 15 s)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
        if proc.stderr is not None:
            proc.stderr.close()

    def access_lines(self) -> list[list[str]]:
        """The access log so far, each line split into its fields."""
        try:
            text = self.access_log.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        lines = []
        for line in text.splitlines():
            if line.strip():
                rest, took = line.rsplit("|", 1)
                lines.append([*rest.split("|", 4), took])
        return lines

    def lines_after(self, before: int, count: int = 1, wait: float = 10.0) -> list[list[str]]:
        """The access log's lines after the first ``before``, once ``count`` are there.

        nginx writes a line when the request ends, which may be just after the
        client has its answer: waits up to ``wait`` seconds for them.
        """
        deadline = time.monotonic() + wait
        while True:
            lines = self.access_lines()[before:]
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.02)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
