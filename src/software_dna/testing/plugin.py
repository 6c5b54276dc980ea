"""A pytest plugin for apps that embed software_dna: the license server and machines as fixtures.

Enable it in the ``conftest.py`` at the root of your tests (it is never
loaded on its own)::

    pytest_plugins = ["software_dna.testing.plugin"]

Fixtures:

``license_server`` (module scope)
    The reference license server in this process: the real FastAPI app on a
    real SQLite database in a temp folder, reached with no socket (an
    :class:`~software_dna.server.testing.InProcessServer`). ``.admin`` is its
    :class:`~software_dna.server.adminclient.AdminClient`; ``.transport()`` an
    SDK transport for ``LicenseClient(transport=...)``; ``.link()`` one
    machine's network (``.transport()``, ``.offline()``, ``.online()``);
    ``.url`` its URL. Needs the ``server`` extra
    (``pip install "software_dna[server]"``); without it the fixture fails
    with a message saying so.
``machines`` (function scope)
    ``machines("laptop", **options)`` -> a
    :class:`~software_dna.testing.SimulatedMachine` whose home folder is
    under the test's ``tmp_path``; the same name again returns the same
    machine. ``machines.clone(laptop, "vm-copy")`` (a cloned VM: a copy of
    its disk), ``machines.account(laptop, "ben")`` (another OS account on
    it: its own home) and ``machines.container("box", host=laptop)`` (a
    container) make the others.
``license_product`` (function scope)
    ``license_product(**policy)`` -> :class:`Product` ``(name, public_keys)``:
    a new product on ``license_server`` with its first signing key; ``policy``
    are product fields (``fingerprint_tolerance``, ``refresh_interval``,
    ``offline_grace_period``, ``trial_days`` ...).
``license_client`` (function scope)
    ``license_client(product, machine, *, link=None, **options)`` -> a
    :class:`~software_dna.LicenseClient` for ``product`` running on
    ``machine``, talking to ``license_server`` (through ``link`` if given);
    ``options`` are more ``LicenseClient`` arguments (``clock=`` ...). Each
    call is a new start of the app; every client is closed after the test.
``app_clock`` (function scope)
    A :class:`~software_dna.testing.SimulatedClock` for ``clock=``: the
    time of the app *and* of the in-process license server while the test
    runs, moved with ``app_clock.advance(hours=2)``.

See docs/testing.md for the scenarios (two machines, drift, a cloned VM, a
container, offline grace, a copied store).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from software_dna import LicenseClient
from software_dna.testing import SimulatedClock, SimulatedMachine

if TYPE_CHECKING:  # the server stack is loaded by the fixtures that need it, not here
    from software_dna.server.testing import InProcessServer, Link

__all__ = ["Machines", "Product", "app_clock", "license_client", "license_product",
           "license_server", "machines"]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_products = itertools.count(1)
MISSING_SERVER = ("the license_server fixture runs the reference license server, which needs "
                  "the server extra: pip install \"software_dna[server]\" (missing: {missing})")


def server_harness() -> Any:
    """The :mod:`software_dna.server.testing` module, imported now.

    Raises:
        pytest.fail.Exception: the ``server`` extra is not installed (the
            message names the missing module and the command that installs it).
    """
    try:
        from software_dna.server import testing  # noqa: PLC0415  # lazy: the server extra is optional
    except ImportError as exc:
        pytest.fail(MISSING_SERVER.format(missing=exc.name or exc), pytrace=False)
    return testing


class Product(NamedTuple):
    """A product on the license server: what the app is built with."""

    name: str
    """The product id (``LicenseClient(product=...)``)."""
    public_keys: list[str]
    """Its ``k4.public`` keys (``LicenseClient(public_keys=...)``)."""


class Machines:
    """The ``machines`` fixture: simulated machines by name, each with a home under ``root``.

    Args:
        root: the folder holding one home folder per machine.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._made: dict[str, SimulatedMachine] = {}

    def _home(self, name: str) -> Path:
        if not _NAME.fullmatch(name):
            raise ValueError(f"a machine name is letters, digits, '.', '_', '-': {name!r}")
        if name in self._made:
            raise ValueError(f"there is already a machine named {name!r}")
        return self.root / name

    def __call__(self, name: str, **options: Any) -> SimulatedMachine:
        """The machine ``name``: made with ``options`` (:class:`SimulatedMachine` arguments)
        the first time, the same machine afterwards.

        Raises:
            ValueError: ``options`` given for a machine that exists already,
                or a name that is not a plain folder name.
        """
        if name in self._made:
            if options:
                raise ValueError(f"machine {name!r} exists: change it with .set() or .drift()")
            return self._made[name]
        machine = SimulatedMachine(self._home(name), **options)
        self._made[name] = machine
        return machine

    def clone(self, machine: SimulatedMachine, name: str) -> SimulatedMachine:
        """A cloned VM of ``machine``: the same component values and a copy of its disk.

        Raises:
            ValueError: ``name`` is taken or not a plain folder name.
        """
        twin = machine.clone(self._home(name))
        machine.copy_files_to(twin)
        self._made[name] = twin
        return twin

    def account(self, machine: SimulatedMachine, name: str) -> SimulatedMachine:
        """Another OS account on ``machine``: the same identifiers, a home of its own.

        Its store, witness and machine key are its own, as a second user's
        are (user seats tell such accounts apart).

        Raises:
            ValueError: ``name`` is taken or not a plain folder name.
        """
        other = machine.clone(self._home(name))
        self._made[name] = other
        return other

    def container(self, name: str, *, host: SimulatedMachine | None = None,
                  **options: Any) -> SimulatedMachine:
        """A container (no physical network card) with ``host``'s machine id mounted, or none.

        Raises:
            ValueError: ``name`` is taken or not a plain folder name.
        """
        box = SimulatedMachine.container(self._home(name), host=host, **options)
        self._made[name] = box
        return box


@pytest.fixture(scope="module")
def license_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessServer]:
    """The reference license server in this process on SQLite (one per test module)."""
    harness = server_harness()
    with harness.InProcessServer(tmp_path_factory.mktemp("license-server")) as server:
        yield server


@pytest.fixture
def machines(tmp_path: Path) -> Machines:
    """Simulated machines of this test: ``machines("laptop", **options)``."""
    return Machines(tmp_path / "machines")


@pytest.fixture
def license_product(license_server: InProcessServer) -> Iterator[Callable[..., Product]]:
    """``license_product(**policy)`` -> a new :class:`Product` on ``license_server``."""

    def make(**policy: Any) -> Product:
        name = f"product-{next(_products)}"
        return Product(name, license_server.admin.setup_product(name, **policy))

    yield make


@pytest.fixture
def license_client(
        license_server: InProcessServer) -> Iterator[Callable[..., LicenseClient]]:
    """``license_client(product, machine, *, link=None, **options)`` -> a ``LicenseClient``."""
    made: list[LicenseClient] = []

    def start(product: Product, machine: SimulatedMachine, *, link: Link | None = None,
              **options: Any) -> LicenseClient:
        transport = link.transport() if link is not None else license_server.transport()
        client = LicenseClient(product=product.name, public_keys=product.public_keys,
                               machine=machine, transport=transport, **options)
        made.append(client)
        return client

    yield start
    for client in made:
        client.close()


@pytest.fixture
def app_clock() -> Iterator[SimulatedClock]:
    """One simulated time for the app (``clock=``) and the in-process license server.

    At the real time until moved. While the test runs, the in-process server
    (``license_server``) reads this clock too, so time passes for everyone:
    tokens, grace periods, expiries and rate limits follow ``advance()``.
    Without the ``server`` extra it is the app's clock only.
    """
    clock = SimulatedClock()
    try:
        from software_dna.server.testing import clock_override  # noqa: PLC0415  # optional extra
    except ImportError:
        yield clock
        return
    with clock_override(clock):
        yield clock
