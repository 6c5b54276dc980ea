"""The service layer's one error type: a refusal with a protocol code.

Every refusal of the service layer is a :class:`ServiceError`; the HTTP API
answers it as ``{"error": {"code", "message", ...}}`` with ``code.status``,
and the CLI maps it to an exit code and a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from software_dna.wire.codes import Code

__all__ = ["ServiceError", "conflict", "invalid", "not_found"]


class ServiceError(Exception):
    """A refusal with a protocol error code (docs/protocol.md).

    Args:
        code: the protocol's error code; the HTTP status is ``code.status``.
        message: a human sentence; never contains personal data.
        details: structured facts about the refusal (JSON-serialisable values),
            sent as the error body's ``details``; e.g. ``{"kind": "license"}``
            for a ``not_found``.
        receipt: a signed receipt for refusals the SDK stores, else None.
        retry_after: seconds until a retry can succeed (429), else None.
        retry_at: when a retry can succeed (aware UTC), e.g. the end of the
            earliest floating lease or of a lock-out; sent as ``retry_at``.
    """

    def __init__(
        self,
        code: Code,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        receipt: str | None = None,
        retry_after: int | None = None,
        retry_at: datetime | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details) if details is not None else None
        self.receipt = receipt
        self.retry_after = retry_after
        self.retry_at = retry_at

    @property
    def status(self) -> int:
        """The HTTP status the API answers with (``code.status``)."""
        return self.code.status

    def __repr__(self) -> str:
        return f"ServiceError({self.code.value!r}, {self.message!r})"


def not_found(kind: str) -> ServiceError:
    """404 ``not_found`` for an admin object; ``kind`` (e.g. ``"license"``) goes in details."""
    return ServiceError(Code.NOT_FOUND, f"No such {kind}.", details={"kind": kind})


def conflict(message: str) -> ServiceError:
    """409 ``conflict``."""
    return ServiceError(Code.CONFLICT, message)


def invalid(message: str) -> ServiceError:
    """400 ``invalid_request``."""
    return ServiceError(Code.INVALID_REQUEST, message)
