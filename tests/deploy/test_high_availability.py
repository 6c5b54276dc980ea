"""Two server instances on one PostgreSQL behind the nginx recipe; one is SIGKILLed under load.

Invariants:
- No client ends without a valid license: after the kill every SDK client's
  ``check()`` passes and its ``refresh()`` succeeds through the proxy.
- The only errors a client sees are ones the SDK handles (server unreachable,
  unusable answer: the stored license stays valid within its offline grace).
- The surviving instance carries the load: every validation answered after
  the kill was served by it (nginx's $upstream_addr, and its own access log).

The same scenario at a larger scale is the ``node-failure`` family of
``make stress`` (:func:`family`). The figures are printed with ``-s`` and in
docs/operations.md ("High availability").
"""

from __future__ import annotations

import itertools
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from software_dna import LicenseClient
from software_dna.errors import LicenseError, ServerError, ServerUnreachable
from software_dna.server.testing import LocalServer
from software_dna.testing import SimulatedMachine
from tests.deploy._proxy import PROXY_SOURCE, Nginx, nginx_binary
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases
from tests.security._family import Scale, Tally
from tests.tls import make_tls

#: What the SDK handles by itself: the stored license keeps working within its grace.
HANDLED = (ServerUnreachable, ServerError)


@dataclass
class Figures:
    """What one run measured (counts of validations, seconds)."""

    clients: int = 0
    #: validations answered 200 by each instance ("a" survives, "b" is killed), by
    #: whether they started before the killed instance was gone or after.
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    #: requests nginx sent to a second instance after the first failed.
    retried_by_proxy: int = 0
    #: validations answered other than 200 by the proxy, after its retries.
    failed_at_proxy: int = 0
    #: errors raised to the clients, by exception class.
    client_errors: Counter[str] = field(default_factory=Counter)
    #: longest wait between two answered validations before the kill / around it.
    gap_before: float = 0.0
    gap_after: float = 0.0
    #: validations the survivor's own access log shows after the kill.
    survivor_log_after: int = 0
    clients_without_license: int = 0

    def line(self) -> str:
        """The figures in one line."""
        return (f"{self.clients} clients; validations before the kill a={self.before['a']} "
                f"b={self.before['b']}, after a={self.after['a']} b={self.after['b']}; "
                f"retried by the proxy {self.retried_by_proxy}; failed at the proxy "
                f"{self.failed_at_proxy}; errors raised to clients "
                f"{dict(self.client_errors) or 0}; longest gap between answers "
                f"{self.gap_before * 1000:.0f} ms before, {self.gap_after * 1000:.0f} ms "
                f"around the kill; {self.clients_without_license} clients without a license")


def _validations_in_log(server: LocalServer) -> int:
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if "/validate HTTP/1.1\" 200" in line)


def _longest_gap(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def node_failure(folder: Path, database_url: str, *, clients: int, before: float,
                 after: float, tally: Tally) -> Figures:
    """Run the scenario; count each invariant in ``tally``; returns the figures.

    Args:
        folder: for the instances' data folders, nginx and the clients' machines.
        database_url: an empty PostgreSQL database (both instances use it).
        clients: SDK clients, one thread and one simulated machine each.
        before, after: seconds of load before and after the SIGKILL.
        tally: receives one case per client (license at the end) and per check.
    """
    figures = Figures(clients=clients)
    tls = make_tls(folder)
    survivor = LocalServer(folder / "a", database_url=database_url,
                           forwarded_allow_ips=PROXY_SOURCE)
    # One `server init` (by the first); the second shares its database and master key.
    victim = LocalServer(folder / "b", database_url=database_url, migrate=False,
                         forwarded_allow_ips=PROXY_SOURCE)
    proxy: Nginx | None = None
    try:
        survivor.start()
        shutil.copy2(survivor.settings.key_file, victim.settings.key_file)
        victim.start()
        proxy = Nginx(folder / "nginx", tls, [survivor.port, victim.port]).start()
        names = {f"127.0.0.1:{survivor.port}": "a", f"127.0.0.1:{victim.port}": "b"}
        product = "ha-" + secrets.token_hex(3)
        keys = survivor.admin.setup_product(product)
        key = survivor.admin.issue_license(product, seats=clients)["license_key"]
        sdk = [LicenseClient(product=product, public_keys=keys, server_url=proxy.https_url,
                             ca_bundle=str(tls.ca), machine=SimulatedMachine(folder / f"m{i}"),
                             store_path=folder / f"m{i}" / "store", timeout=10)
               for i in range(clients)]
        for client in sdk:
            client.activate(key)
        stop = threading.Event()
        lock = threading.Lock()
        unexpected: list[str] = []

        def validate(client: LicenseClient) -> None:
            while not stop.is_set():
                try:
                    client.refresh()
                except HANDLED as exc:
                    with lock:
                        figures.client_errors[type(exc).__name__] += 1
                except LicenseError as exc:
                    with lock:
                        unexpected.append(f"{type(exc).__name__}: {exc}")
                stop.wait(0.02)

        start_line = len(proxy.access_lines())
        threads = [threading.Thread(target=validate, args=(c,), daemon=True) for c in sdk]
        for thread in threads:
            thread.start()
        time.sleep(before)
        assert victim.pid is not None
        os.killpg(victim.pid, signal.SIGKILL)
        victim.stop()  # reaps it: a request that starts from here on cannot reach it
        survivor_log_at_kill = _validations_in_log(survivor)
        killed_at = time.time()
        time.sleep(after)
        stop.set()
        for thread in threads:
            thread.join(60)
        lines = [line for line in proxy.lines_after(start_line)
                 if line[4].endswith("/validate")]
        answered: list[float] = []
        for msec, status, upstream, _statuses, _uri, took in lines:
            if "," in upstream:
                figures.retried_by_proxy += 1
            if status != "200":
                figures.failed_at_proxy += 1
                continue
            served_by = names.get(upstream.rsplit(", ", 1)[-1], upstream)
            # By when the request started: one in flight at the kill counts as before.
            started = float(msec) - float(took)
            (figures.before if started < killed_at else figures.after)[served_by] += 1
            answered.append(float(msec))
        figures.gap_before = _longest_gap([t for t in answered if t < killed_at])
        figures.gap_after = _longest_gap([t for t in answered if t >= killed_at - 1.0])
        figures.survivor_log_after = _validations_in_log(survivor) - survivor_log_at_kill
        for note in unexpected:
            tally.check(False, f"an error the SDK does not handle: {note}")
        tally.check(figures.before["a"] > 0 and figures.before["b"] > 0,
                    f"both instances served before the kill: {dict(figures.before)}")
        tally.check(figures.after["b"] == 0 and figures.after["a"] > 0,
                    f"the survivor alone served after the kill: {dict(figures.after)}")
        tally.check(figures.survivor_log_after >= figures.after["a"],
                    f"the survivor's own log shows {figures.survivor_log_after} validations "
                    f"after the kill, the proxy {figures.after['a']}")
        for i, client in enumerate(sdk):
            try:
                client.check()
                client.refresh()
                ok = True
            except LicenseError as exc:
                ok = False
                figures.clients_without_license += 1
                tally.check(False, f"client {i} without a license: {type(exc).__name__}: {exc}")
            if ok:
                tally.check(True, "")
            client.close()
    finally:
        if proxy is not None:
            proxy.stop()
        victim.close()
        survivor.close()
    return figures


class NodeFailureTally(Tally):
    """A :class:`Tally` whose line ends with the clients left without a license."""

    clients_without_license: int = 0

    def line(self) -> str:
        """The usual line, then ``N clients without a license``."""
        return f"{super().line()}   {self.clients_without_license} clients without a license"


def family(scale: Scale) -> Tally:
    """``make stress``: many clients validating through a SIGKILL of one instance."""
    tally = NodeFailureTally("node-failure")
    if nginx_binary() is None:
        tally.check(False, "nginx is not installed (Debian: sudo make proxy)")
        return tally
    databases = PgDatabases(PG_ADMIN_URL)
    try:
        with tempfile.TemporaryDirectory(prefix="sdna-ha-") as folder:
            figures = node_failure(Path(folder), databases.create(),
                                   clients=scale.pick(6, 32), before=scale.pick(2, 10),
                                   after=scale.pick(3, 20), tally=tally)
    finally:
        databases.drop_all()
    tally.clients_without_license = figures.clients_without_license
    print(f"  node-failure: {figures.line()}", flush=True)
    return tally


@pytest.mark.postgres
def test_validations_survive_a_sigkill_of_one_instance(tmp_path: Path,
                                                      pg_databases: PgDatabases) -> None:
    if nginx_binary() is None:
        from tests.deploy._proxy import require_nginx  # noqa: PLC0415

        require_nginx()
    tally = Tally("node failure")
    figures = node_failure(tmp_path, pg_databases.create(), clients=6, before=2.0, after=3.0,
                           tally=tally)
    print(figures.line())
    tally.assert_clean()
    assert figures.clients_without_license == 0
