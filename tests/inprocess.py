"""The license server in-process for the project's tests: fixtures over the packaged harness.

The machinery (the real FastAPI app and database in this process, reached with
no socket) lives in :mod:`software_dna.server.testing` (``_inprocess``), where
a vendor's tests can use it too (:mod:`software_dna.testing.plugin`). This
module re-exports its names, so tests keep importing them from here::

    from .inprocess import InProcessServer, unreachable

and is a pytest plugin (loaded by tests/conftest.py) with module-scoped
fixtures ``inprocess_server`` (SQLite) and ``inprocess_any_server`` (on
``database_url``: SQLite, then PostgreSQL).

Use it where a test only needs the HTTP API or the SDK. Clients that open
their own connections (the CLI's remote mode, an SDK in a child process) use
:class:`tests.threaded.ThreadedServer`; what only a real process shows
(deadlines, TLS, signals, several workers, bytes on the socket, the process
log) stays on :class:`~software_dna.server.testing.LocalServer`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from software_dna.server.testing import (
    URL,
    ASGIAdapter,
    InProcessApp,
    InProcessServer,
    Link,
    asgi_transport,
    no_wait,
    unreachable,
)

__all__ = ["URL", "ASGIAdapter", "InProcessApp", "InProcessServer", "Link",
           "asgi_transport", "inprocess_any_server", "inprocess_server", "no_wait",
           "unreachable"]


@pytest.fixture(scope="module")
def inprocess_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """An :class:`InProcessServer` on SQLite, one per test module."""
    with InProcessServer(tmp_path_factory.mktemp("inprocess-server")) as srv:
        yield srv


@pytest.fixture(scope="module")
def inprocess_any_server(tmp_path_factory: pytest.TempPathFactory,
                         database_url: str) -> Iterator[InProcessServer]:
    """An :class:`InProcessServer` on ``database_url`` (SQLite, then PostgreSQL)."""
    with InProcessServer(tmp_path_factory.mktemp("inprocess-any-server"),
                         database_url=database_url) as srv:
        yield srv
