"""A real webhook receiver for the tests: a local HTTP server that checks signatures.

Every request is verified with the Standard Webhooks reference implementation
(``standardwebhooks.Webhook(secret).verify``: the signature over
``id.timestamp.body`` and the timestamp's tolerance).  The receiver records
every request (id, parsed body, raw body, whether the signature verified) and
can misbehave on purpose:

- ``fail_first``: answer 500 to the first N requests (then 2xx);
- ``status``: always answer this status (410 Gone, 302, ...);
- ``delay``: wait a random 0 to ``delay`` seconds after recording, before answering;
- ``hold``: after recording a request (it was received), wait until
  :meth:`Receiver.release` before answering (a worker killed meanwhile never
  records the outcome).

Use as a context manager; ``url`` is ``http://127.0.0.1:<port>/hook``.
:class:`WorkerProcess` runs ``software-dna server worker`` in a real process.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

import software_dna

__all__ = ["Received", "Receiver", "WorkerProcess"]


@dataclass
class Received:
    """One request as the receiver saw it."""

    webhook_id: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    verified: bool
    error: str | None = None


@dataclass
class Receiver:
    """A local webhook receiver; see the module docstring.

    Attributes:
        secret: the endpoint's ``whsec_`` secret (set it after creating the endpoint).
        requests: every request, in order of arrival.
    """

    secret: str = ""
    fail_first: int = 0
    status: int = 200
    hold: bool = False
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _released: threading.Event = field(default_factory=threading.Event)
    _arrived: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The URL to configure on the endpoint."""
        assert self._server is not None, "the receiver is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                verified, error, body = False, None, None
                try:
                    body = Webhook(receiver.secret).verify(raw, headers)
                    verified = True
                except (WebhookVerificationError, ValueError) as exc:
                    error = str(exc)
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = None
                with receiver._lock:
                    receiver.requests.append(Received(headers.get("webhook-id", ""), headers,
                                                      raw, body, verified, error))
                    failing = receiver.fail_first > 0
                    if failing:
                        receiver.fail_first -= 1
                with receiver._arrived:
                    receiver._arrived.notify_all()
                if receiver.hold:
                    receiver._released.wait(30)
                if receiver.delay:
                    time.sleep(random.uniform(0, receiver.delay))
                status = 500 if failing else (receiver.status if verified else 400)
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("location", "http://127.0.0.1:9/elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def release(self) -> None:
        """Let held requests answer (and every later one answer at once)."""
        self.hold = False
        self._released.set()

    def wait_for(self, count: int, timeout: float = 30.0) -> bool:
        """Wait until at least ``count`` requests arrived; True if so within ``timeout`` s."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def ids(self) -> Counter[str]:
        """How many times each webhook id was received."""
        with self._lock:
            return Counter(r.webhook_id for r in self.requests)

    def events(self) -> list[dict[str, Any]]:
        """The verified bodies, in order."""
        with self._lock:
            return [r.body for r in self.requests if r.verified]


class WorkerProcess:
    """``software-dna server worker`` in a subprocess (a real process to SIGKILL or SIGTERM).

    Args:
        settings_env: the server settings as environment variables (``Settings.to_env()``).
        log: the file its output goes to.
        extra: more command-line options (``--once``, ``--poll 0.05``).
    """

    def __init__(self, settings_env: dict[str, str], log: Path, *extra: str) -> None:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SOFTWARE_DNA_SERVER", "DATABASE_URL"))}
        env.update(settings_env)
        src = str(Path(software_dna.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "software_dna.server.cli", "server", "worker",
                 "--poll", "0.05", *extra],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        """SIGKILL: no chance to record anything."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait; the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def output(self) -> str:
        """What the process wrote."""
        return self.log.read_text(errors="replace")

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()
