"""Run uvicorn the way ``uvicorn.run`` does, with TCP_NODELAY on the shared socket.

With several workers uvicorn binds the listening socket itself with
``socket.socket(family)`` (protocol number 0), and asyncio only switches
Nagle's algorithm off for sockets whose protocol is ``IPPROTO_TCP``. Every
answer (headers, then body, in two writes) then waits for the client's delayed
ACK: about 40-50 ms per request at low concurrency. Setting TCP_NODELAY on the
listening socket fixes it: accepted connections inherit the option.
"""

from __future__ import annotations

import socket
import sys
from contextlib import suppress
from typing import Any

import uvicorn

__all__ = ["run"]

STARTUP_FAILURE = 3


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def run(app: str, **options: Any) -> None:
    """Serve ``app`` (an import string) like ``uvicorn.run(app, **options)``."""
    config = _Config(app, **options)
    server = uvicorn.Server(config=config)
    if config.workers > 1:
        from uvicorn.supervisors import Multiprocess  # noqa: PLC0415  # lazy: only with workers

        sock = config.bind_socket()
        try:
            supervisor = Multiprocess(config, sockets=[sock])
        except TypeError:  # uvicorn before 0.30 took the target explicitly
            supervisor = Multiprocess(config, target=server.run, sockets=[sock])  # type: ignore[call-arg]
        with suppress(KeyboardInterrupt):
            supervisor.run()
        return
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
