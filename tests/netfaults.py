"""Misbehaving TCP servers on 127.0.0.1, for network-fault tests.

Each fault server is a context manager yielding a base URL. They run on daemon threads,
serve a bounded number of connections and stop when the block ends.
(A server taken off the network without stopping it is
:class:`tests.inprocess.Link`.)
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator


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
