"""Bodies of email confirmation (docs/protocol.md)."""

from __future__ import annotations

from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["EmailConfirmedOut"]


class EmailConfirmedOut(Out):
    """``POST /v1/email-confirmations/{token}``: the address is confirmed since ``confirmed_at``."""

    ok: bool = True
    confirmed_at: UtcTime
