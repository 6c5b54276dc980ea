"""The error body every error answer has (docs/protocol.md, "Errors")."""

from __future__ import annotations

from typing import Any

from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["ErrorBody", "ErrorDetail"]


class ErrorDetail(Out):
    """The ``error`` object of every error answer."""

    code: str
    message: str
    #: Structured facts about the refusal, e.g. ``{"kind": "license"}`` for ``not_found``.
    details: dict[str, Any] | None = None
    receipt: str | None = None
    retry_at: UtcTime | None = None


class ErrorBody(Out):
    """Every error answer: ``{"error": {"code", "message"[, "receipt"]}}``."""

    error: ErrorDetail
