"""Bodies of the health and readiness checks."""

from __future__ import annotations

from typing import Literal

from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["HealthOut", "ReadyOut"]


class HealthOut(Out):
    """``GET /v1/health``."""

    status: Literal["ok"]
    server_time: UtcTime


class ReadyOut(Out):
    """``GET /v1/ready``: the database answers and its schema is this server's."""

    status: Literal["ready"]
    server_time: UtcTime
    #: The schema revision the database and this server share.
    schema_revision: str
