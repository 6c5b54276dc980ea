"""The fixture the local-state attack tests share: a machine right after one activation."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def activated(license_server: Any, license_product: Any, license_client: Any,
              machines: Any) -> Any:
    """(product, laptop, issued license, store path) after one online activation."""
    product = license_product()
    issued = license_server.admin.issue_license(product.name, seats=3)
    laptop = machines("laptop")
    client = license_client(product, laptop)
    client.activate(issued["license_key"])
    return product, laptop, issued, client.store_path
