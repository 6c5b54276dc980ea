"""Bodies of a license's settings document."""

from __future__ import annotations

from typing import Any

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import UtcTime

__all__ = ["SettingsIn", "SettingsOut"]


class SettingsIn(Strict):
    """``PUT /v1/activations/{id}/settings``: a JSON object of at most 32 KiB.

    Within the shape limits of every body too (1,000 arrays and objects, 1,000
    members, 32 levels: :mod:`~software_dna.server.domain.json_shape`); the
    service holds the stored document to them again.
    """

    settings: dict[str, Any]


class SettingsOut(Out):
    """The settings document of the license."""

    settings: dict[str, Any]
    updated_at: UtcTime | None
    server_time: UtcTime
