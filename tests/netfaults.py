"""Misbehaving TCP servers on 127.0.0.1, for network-fault tests.

Each fault server is a context manager yielding a base URL. They run on daemon threads,
serve a bounded number of connections and stop when the block ends.
:class:`OfflineSwitch` puts a real server on and off the network without
stopping it.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _serving(
    handler: Callable[[socket.socket, threading.Event], None], *, max_connections: int = 32
) -> Iterator[str]:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    stop = threading.Event()
    held: list[socket.socket] = []

    def accept_loop() -> None:
        served = 0
        while not stop.is_set() and served < max_connections:
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            served += 1
            held.append(conn)
            threading.Thread(target=handler, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        listener.close()
        for conn in held:
            with contextlib.suppress(OSError):
                conn.close()


def _silent(conn: socket.socket, stop: threading.Event) -> None:
    stop.wait(60)


def silent_server() -> contextlib.AbstractContextManager[str]:
    """Accepts connections and never answers."""
    return _serving(_silent)


def trickle_server(interval: float = 5.0) -> contextlib.AbstractContextManager[str]:
    """Answers a valid-looking HTTP response one byte every ``interval`` seconds."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            for byte in answer:
                if stop.wait(interval):
                    return
                conn.sendall(bytes([byte]))

    return _serving(handler)


def garbage_server(status: int = 200, body: bytes = b"<html>not json</html>") -> (
    contextlib.AbstractContextManager[str]
):
    """Answers every request at once with ``status`` and ``body``."""

    def handler(conn: socket.socket, stop: threading.Event) -> None:
        with contextlib.suppress(OSError):
            conn.recv(65536)
            head = (f"HTTP/1.1 {status} X\r\nContent-Length: {len(body)}\r\n"
                    "Connection: close\r\n\r\n").encode()
            conn.sendall(head + body)
            time.sleep(0.05)

    return _serving(handler)


class OfflineSwitch:
    """A TCP forwarder on 127.0.0.1 to the server at ``target_url`` that can go offline.

    Give :attr:`url` to the client instead of the server's. :meth:`offline`
    closes the listening socket and every forwarded connection, so the client's
    next request is refused exactly as by a stopped server, while the server
    itself keeps running (no restart); :meth:`online` listens again on the same
    port. Also a context manager that closes everything at the end.
    """

    def __init__(self, target_url: str) -> None:
        parts = urlsplit(target_url)
        self._target = (parts.hostname or "127.0.0.1", int(parts.port or 80))
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = 0
        self.online()
        self.url = f"http://127.0.0.1:{self.port}"

    @property
    def is_online(self) -> bool:
        """True while connections are accepted."""
        return self._listener is not None

    def online(self) -> None:
        """Accept and forward connections again (same port)."""
        if self._listener is not None:
            return
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(0.05)
        self.port = int(listener.getsockname()[1])
        self._stop = threading.Event()
        self._listener = listener
        self._thread = threading.Thread(target=self._accept, args=(listener, self._stop),
                                        daemon=True)
        self._thread.start()

    def offline(self) -> None:
        """Refuse new connections and cut the open ones (returns once the port is closed)."""
        listener, self._listener = self._listener, None
        if listener is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        listener.close()
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def close(self) -> None:
        """Stop forwarding for good."""
        self.offline()

    def __enter__(self) -> OfflineSwitch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _accept(self, listener: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            try:
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)
