"""The test harness: the license server for tests, demos and benchmarks.

Nothing else in ``src`` imports this package (the vendor's pytest plugin,
:mod:`software_dna.testing.plugin`, aside). Two ways to run the real server:

- :class:`LocalServer` -- ``software-dna server run`` (uvicorn) in a
  subprocess on a free port of 127.0.0.1 (``_local``): real sockets, real
  process. For demos, benchmarks, and what only a process shows.
- :class:`InProcessServer` -- the same app and database built in this
  process and reached with no socket (``_inprocess``): through
  :meth:`InProcessServer.transport` for the SDK, :attr:`InProcessServer.admin`
  or :meth:`InProcessServer.session` for HTTP; :class:`Link` takes one
  machine offline; :func:`unreachable` is a transport with no server at all;
  :func:`clock_override` runs the in-process server on a simulated clock.

::

    from software_dna.server.testing import InProcessServer, LocalServer

    with InProcessServer(tmp_path) as srv:          # SQLite in tmp_path
        keys = srv.admin.setup_product("acme-editor", features=["pro"])
        key = srv.admin.issue_license("acme-editor", seats=2)["license_key"]
        # LicenseClient(product="acme-editor", public_keys=keys, transport=srv.transport())

Both need the ``server`` extra (``pip install software_dna[server]``).
"""

from software_dna.server.services.common import clock_override
from software_dna.server.testing._inprocess import (
    URL,
    ASGIAdapter,
    InProcessApp,
    InProcessServer,
    Link,
    asgi_transport,
    no_wait,
    unreachable,
)
from software_dna.server.testing._local import LocalServer, free_port

__all__ = ["URL", "ASGIAdapter", "InProcessApp", "InProcessServer", "Link", "LocalServer",
           "asgi_transport", "clock_override", "free_port", "no_wait", "unreachable"]
