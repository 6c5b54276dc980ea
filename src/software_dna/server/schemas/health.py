"""Body of the health check."""

from __future__ import annotations

from typing import Literal

from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["HealthOut"]


class HealthOut(Out):
    """``GET /v1/health``."""

    status: Literal["ok"]
    server_time: UtcTime
