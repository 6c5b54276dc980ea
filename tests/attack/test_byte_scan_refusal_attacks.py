"""Attack review (second pass): documents the byte scan refuses though the rules allow them.

The SDK against the app and database in this process.  The settings document is
documented (docs/client-api: ``settings``; ``SettingsIn``; the settings service) as
"at most 32 levels, 1,000 arrays and objects and 1,000 members"; the SDK sends it
wrapped in the PUT body's own object, which the byte scan counts too.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from software_dna.server.domain.json_shape import MAX_DEPTH, MAX_MEMBERS, refusal
from tests.inprocess import InProcessServer
from tests.test_client_e2e import App, make_app, new_product, server  # noqa: F401


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` deep ({} is 1)."""
    doc: dict[str, Any] = {}
    for _ in range(levels - 1):
        doc = {"a": doc}
    return doc


@pytest.mark.parametrize("document", [
    nested(MAX_DEPTH - 1),
    {f"k{i}": i for i in range(MAX_MEMBERS - 1)},
], ids=["31 levels", "999 members"])
def test_settings_document_at_the_documented_limit_is_kept_from_the_honest_sdk(
        server: InProcessServer, make_app: Callable[..., App],  # noqa: F811
        document: dict[str, Any]) -> None:
    """The documented limits (docs/api.md: 31 levels, 999 members) are what the SDK's PUT
    body -- ``{"settings": document}``, one level deeper and one member more -- can carry
    past the byte scan: a document at them is kept and read back."""
    assert refusal(json.dumps(document, separators=(",", ":")).encode()) is None
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product)["license_key"]
    app = make_app(product, keys, "pc")
    app.client.activate(key)
    app.client.settings = document
    assert app.restart().settings == document
