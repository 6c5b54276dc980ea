"""The vendor's app on an air-gapped machine, for the tests of air-gapped activation.

:class:`AirGapped` is a client with no server URL and a movable clock; the
``machine`` fixture (a plugin of ``tests/conftest.py``) makes one per name
in the test's temporary folder. A module that needs another kind of
``machine`` defines its own fixture of that name, which wins.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import LicenseClient

__all__ = ["AirGapped", "machine"]


class AirGapped:
    """The vendor's app on a machine with no network: server_url=None, a movable clock."""

    def __init__(self, product: str, keys: list[str], store: Path, **kwargs: Any) -> None:
        self.offset = timedelta(0)
        self.args: dict[str, Any] = {"product": product, "public_keys": keys,
                                     "server_url": None, "store_path": store,
                                     "clock": self.now, **kwargs}
        self.client = LicenseClient(**self.args)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def restart(self) -> LicenseClient:
        self.client = LicenseClient(**self.args)
        return self.client


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[Callable[..., AirGapped]]:
    def make(product: str, keys: list[str], name: str = "machine", **kwargs: Any) -> AirGapped:
        return AirGapped(product, keys, tmp_path / name, **kwargs)
    yield make
