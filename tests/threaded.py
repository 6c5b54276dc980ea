"""The license server's app in this process, served by uvicorn on a thread.

:class:`ThreadedServer` is for clients that open their own connections and take
no session or transport (the SDK, the CLI's remote mode): a real socket on
127.0.0.1, but no subprocess to start. It is also a pytest plugin (loaded by
tests/conftest.py) with module-scoped fixtures ``threaded_server`` (SQLite)
and ``threaded_any_server`` (on ``database_url``: SQLite, then PostgreSQL);
a module opts in by overriding ``server`` / ``any_server`` with them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from software_dna.server.app import create_app
from software_dna.server.config import Settings
from software_dna.server.testing import LocalServer

__all__ = ["ThreadedServer"]


class ThreadedServer(LocalServer):
    """A :class:`LocalServer` whose app runs in this process, served by uvicorn on a thread.

    For clients that open their own HTTP connections and take no session or
    transport (the SDK, the CLI's remote mode): a real socket on 127.0.0.1, no
    subprocess to start. Takes the arguments of :class:`LocalServer` (``env``
    adds server settings); ``workers``, ``log_level`` and ``forwarded_allow_ips``
    have no effect. Signals, several workers and the process log need
    :class:`LocalServer`.
    """

    def __init__(self, data_dir: str | Path | None = None, *,
                 env: Mapping[str, str] | None = None, **options: Any) -> None:
        super().__init__(data_dir, env=env, **options)
        base = super().settings
        self._threaded_settings = (Settings.from_env({**base.to_env(), **env}) if env
                                   else base)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._app: FastAPI | None = None

    @property
    def settings(self) -> Settings:
        """The app's settings (those of :class:`LocalServer` plus ``env``)."""
        return self._threaded_settings

    @property
    def running(self) -> bool:
        """True while uvicorn serves."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def pid(self) -> int | None:
        """Always None: there is no server process."""
        return None

    def start(self) -> ThreadedServer:
        """Initialise the folder the first time, build the app and serve it on :attr:`port`.

        Raises:
            RuntimeError: uvicorn did not start within ``startup_timeout`` seconds.
        """
        if self.running:
            return self
        self.initialize()
        app = create_app(self.settings)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, loop="asyncio",
                                lifespan="off", log_config=None, log_level="warning",
                                access_log=False, server_header=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, name="uvicorn-in-tests", daemon=True)
        self._app, self._server, self._thread = app, server, thread
        thread.start()
        deadline = time.monotonic() + self.startup_timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"uvicorn did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 15.0) -> None:
        """Stop serving (open connections are closed) and close the database connections."""
        server, self._server = self._server, None
        thread, self._thread = self._thread, None
        app, self._app = self._app, None
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(timeout)
        if app is not None:
            app.state.sdna.dispose()

    def __enter__(self) -> ThreadedServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"ThreadedServer(url={self.url!r}, database_url={self.database_url!r})"


@pytest.fixture(scope="module")
def threaded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A :class:`ThreadedServer` on SQLite, one per test module."""
    with ThreadedServer(tmp_path_factory.mktemp("threaded-server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def threaded_any_server(tmp_path_factory: pytest.TempPathFactory,
                        database_url: str) -> Iterator[LocalServer]:
    """A :class:`ThreadedServer` on ``database_url`` (SQLite, then PostgreSQL)."""
    with ThreadedServer(tmp_path_factory.mktemp("threaded-any-server"),
                        database_url=database_url) as srv:
        yield srv
