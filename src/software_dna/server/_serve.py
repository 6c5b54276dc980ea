"""Serve the app with uvicorn: one process, or a dispatcher and N worker processes.

With several workers uvicorn's own supervisor shares one listening socket
between them, and the worker that wakes first accepts every connection
waiting: 16 keep-alive clients connecting at once often all land on one
worker while the other idles.  A listening socket per worker
(``SO_REUSEPORT``) spreads connections by a hash of their addresses, which is
no better for a handful of long-lived connections (with 16 of them, one worker
gets more than 60 % of them about half the time), and neither does granian
(docs/performance.md has the measurement).  So with ``workers > 1`` the
parent process accepts every connection itself and hands it to the workers in
turn over a Unix socket (``SCM_RIGHTS``): with N workers each holds 1/N of the
connections, give or take one.  The dispatcher only accepts and passes file
descriptors; it never reads a byte of a request.

Graceful shutdown (SIGTERM or SIGINT): the listening socket is closed first
(new connections are refused), each worker stops taking connections, answers
the requests in flight, closes its idle keep-alive connections, runs the
app's shutdown and exits; the dispatcher exits when they have.  A worker that
dies is replaced.

TCP_NODELAY is set on the listening socket (accepted connections inherit it):
uvicorn binds it with protocol number 0, and asyncio only switches Nagle's
algorithm off for sockets whose protocol is ``IPPROTO_TCP``; without it every
answer (headers, then body) waits for the client's delayed ACK, about 40 ms.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import selectors
import signal
import socket
import sys
import time
from contextlib import suppress
from multiprocessing.context import SpawnProcess
from typing import Any

import uvicorn
from uvicorn._subprocess import get_subprocess

__all__ = ["run"]

STARTUP_FAILURE = 3
#: Seconds between checks that every worker is alive (and replacing a dead one).
_WATCH = 0.5
#: Seconds a worker is given after SIGTERM beyond its own graceful-shutdown timeout
#: (uvicorn's ``timeout_graceful_shutdown``, which cancels what is still running and
#: runs the app's shutdown) before it is killed: a stuck worker never holds the stop.
_STOP_MARGIN = 10.0

_log = logging.getLogger("uvicorn.error")


class _Config(uvicorn.Config):
    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            with suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


class _HandedServer(uvicorn.Server):
    """A uvicorn server whose connections come accepted, over a Unix socket (one fd each)."""

    def __init__(self, config: uvicorn.Config, channel: socket.socket) -> None:
        super().__init__(config)
        self._channel = channel
        self._reading = False

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's startup; no listening socket here
        if not self.started:
            return
        config = self.config
        protocol = functools.partial(config.http_protocol_class,  # type: ignore[call-arg]
                                     config=config,
                                     server_state=self.server_state,
                                     app_state=self.lifespan.state)
        loop = asyncio.get_running_loop()
        self._channel.setblocking(False)

        def take() -> None:
            try:
                _data, fds, _flags, _addr = socket.recv_fds(self._channel, 1, 16)
            except BlockingIOError:
                return
            except OSError:
                fds, _data = [], b""
            if not _data:  # the dispatcher is gone: stop as on SIGTERM
                self._stop_taking()
                self.should_exit = True
            for fd in fds:
                conn = socket.socket(fileno=fd)
                conn.setblocking(False)
                task = loop.create_task(loop.connect_accepted_socket(protocol, conn))
                task.add_done_callback(_closed_on_failure(conn))

        loop.add_reader(self._channel.fileno(), take)
        self._reading = True

    def _stop_taking(self) -> None:
        if self._reading:
            self._reading = False
            with suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._channel.fileno())
            self._channel.close()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._stop_taking()
        await super().shutdown(sockets=None)


def _closed_on_failure(conn: socket.socket) -> Any:
    def done(task: asyncio.Task[Any]) -> None:
        if task.cancelled() or task.exception() is not None:
            conn.close()
    return done


def _worker(config: uvicorn.Config, sockets: list[socket.socket] | None = None) -> None:
    """A worker process's body (spawned): serve what the dispatcher hands over."""
    assert sockets
    server = _HandedServer(config, sockets[0])
    server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class _Dispatcher:
    """Accepts connections and hands them to ``workers`` processes in turn."""

    def __init__(self, config: uvicorn.Config) -> None:
        self.config = config
        self.listener = config.bind_socket()
        self.listener.listen(config.backlog)
        self.listener.setblocking(False)
        self.workers: list[tuple[SpawnProcess, socket.socket]] = []
        self.turn = 0
        self.stopping = False
        self.failed = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)

    def spawn(self) -> tuple[SpawnProcess, socket.socket]:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        process = get_subprocess(self.config, functools.partial(_worker, self.config),
                                 [theirs])
        process.start()
        theirs.close()
        return process, ours

    def on_signal(self, signum: int, _frame: object) -> None:
        self.stopping = True
        with suppress(OSError):
            self.wake_w.send(b"x")

    def run(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)
        _log.info("Started dispatcher process [%d]", os.getpid())
        self.workers = [self.spawn() for _ in range(self.config.workers)]
        selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ)
        selector.register(self.wake_r, selectors.EVENT_READ)
        next_watch = time.monotonic() + _WATCH
        try:
            while not self.stopping:
                for key, _events in selector.select(timeout=_WATCH):
                    if key.fileobj is self.listener:
                        self.accept()
                if time.monotonic() >= next_watch:
                    next_watch = time.monotonic() + _WATCH
                    self.replace_dead()
        finally:
            selector.close()
            self.stop()

    def accept(self) -> None:
        for _ in range(64):  # then let the signal and liveness checks run
            try:
                conn, _addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. out of file descriptors: retry at the next wake-up
                _log.error("accept failed: %s", exc)
                return
            try:
                self.hand(conn)
            finally:
                conn.close()

    def hand(self, conn: socket.socket) -> None:
        """Pass ``conn`` to the next live worker (round robin)."""
        for _ in range(len(self.workers)):
            process, channel = self.workers[self.turn]
            self.turn = (self.turn + 1) % len(self.workers)
            if not process.is_alive():
                continue
            try:
                socket.send_fds(channel, [b"c"], [conn.fileno()])
                return
            except OSError:
                continue
        _log.error("no worker took a connection; it was closed")

    def replace_dead(self) -> None:
        for index, (process, channel) in enumerate(self.workers):
            if process.is_alive() or self.stopping:
                continue
            if process.exitcode == STARTUP_FAILURE:  # the app cannot start: no point retrying
                _log.error("Worker process [%s] failed to start", process.pid)
                self.failed = True
                self.stopping = True
                return
            _log.warning("Worker process [%s] died (exit code %s); starting another",
                         process.pid, process.exitcode)
            channel.close()
            self.workers[index] = self.spawn()

    def stop(self) -> None:
        """Refuse new connections, let every worker finish its requests, wait for them."""
        self.listener.close()
        for process, channel in self.workers:
            channel.close()  # the worker stops taking connections
            if process.pid is not None and process.is_alive():
                with suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        grace = (self.config.timeout_graceful_shutdown or 0) + _STOP_MARGIN
        deadline = time.monotonic() + grace
        for process, _channel in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                _log.error("Worker process [%s] did not stop in %.0f s; killed",
                           process.pid, grace)
                process.kill()
                process.join()
        _log.info("Stopping dispatcher process [%d]", os.getpid())


def run(app: str, **options: Any) -> None:
    """Serve ``app`` (an import string) like ``uvicorn.run(app, **options)``.

    With ``workers`` > 1, a dispatcher process hands each accepted connection
    to the workers in turn (module docstring).  Exits with status 3 when a
    single-process server fails to start.
    """
    config = _Config(app, **options)
    if config.workers > 1:
        dispatcher = _Dispatcher(config)
        dispatcher.run()
        if dispatcher.failed:
            sys.exit(STARTUP_FAILURE)
        return
    server = uvicorn.Server(config=config)
    with suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
