"""A FIFO in place of the fingerprint cache beside the store (the store's folder)."""

from __future__ import annotations

import os
from typing import Any

from ._helpers import finishes


def test_a_fifo_as_the_fingerprint_cache_does_not_hang_check(
        activated: Any, license_client: Any) -> None:
    """The component-hash cache (``fingerprint-v2-*.json``) sits beside the store, in a
    folder the user owns; opening it is a plain open(), which waits for a FIFO's writer."""
    product, laptop, _, store = activated
    caches = sorted(store.parent.glob("fingerprint-v2-*.json"))
    assert caches, sorted(p.name for p in store.parent.iterdir())
    cache = caches[0]
    cache.unlink()
    os.mkfifo(cache)
    laptop.forget()
    client = license_client(product, laptop)
    done, _result = finishes(client.check, cache, within=10.0)
    assert done, "check() hung opening the fingerprint cache FIFO"
