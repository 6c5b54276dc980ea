"""Shared pieces of the service layer: errors, context, ids, time, audit."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from software_dna.server.config import Settings
from software_dna.server.crypto import Vault
from software_dna.server.models import AuditEntry

__all__ = [
    "Context",
    "ServiceError",
    "Unset",
    "UNSET",
    "audit",
    "new_id",
    "precise_now",
    "utcnow",
]


class ServiceError(Exception):
    """A refusal with an HTTP status and a protocol error code (docs/protocol.md).

    Attributes:
        status: the HTTP status the API answers with (4xx; 503 for a missing
            signing key).
        code: the protocol's error code, e.g. ``"no_seats_left"``.
        message: a human sentence; never contains personal data.
        receipt: a signed receipt for refusals the SDK stores, else None.
        retry_after: seconds until a retry can succeed (429), else None.
        retry_at: when a retry can succeed (aware UTC), e.g. the end of the
            earliest floating lease or of a lock-out; sent as ``retry_at``.
        details: structured facts about the refusal (e.g. ``{"kind": "product"}``
            for ``not_found``), sent as ``details``; None when there are none.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        receipt: str | None = None,
        retry_after: int | None = None,
        retry_at: datetime | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.receipt = receipt
        self.retry_after = retry_after
        self.retry_at = retry_at
        self.details = dict(details) if details is not None else None

    def __repr__(self) -> str:
        return f"ServiceError({self.status}, {self.code!r}, {self.message!r})"


def not_found(what: str) -> ServiceError:
    """404 ``not_found`` for an admin object."""
    return ServiceError(404, "not_found", f"No such {what}.", details={"kind": what})


def conflict(message: str) -> ServiceError:
    """409 ``conflict``."""
    return ServiceError(409, "conflict", message)


def invalid(message: str) -> ServiceError:
    """400 ``invalid_request``."""
    return ServiceError(400, "invalid_request", message)


@dataclass(frozen=True)
class Context:
    """What the service functions need besides a session: settings and the vault.

    Build one per process (``Context.from_settings``) and share it: the vault
    caches decrypted signing keys.
    """

    settings: Settings
    vault: Vault

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        """Load the master key named by ``settings``; raises ``ConfigError``."""
        return cls(settings=settings, vault=Vault.from_settings(settings))


class Unset:
    """Type of :data:`UNSET`: "leave this field as it is" (where None is a value)."""

    _instance: Unset | None = None

    def __new__(cls) -> Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __bool__(self) -> bool:
        return False


UNSET = Unset()


def utcnow() -> datetime:
    """Now, timezone-aware UTC, truncated to whole seconds (what tokens carry)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def precise_now() -> datetime:
    """Now, timezone-aware UTC, with microseconds (creation times that order rows)."""
    return datetime.now(timezone.utc)


def new_id(prefix: str) -> str:
    """A random id ``<prefix>_<22 base64url chars>`` (128 bits)."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


def audit(
    session: Session,
    actor: str,
    action: str,
    *,
    at: datetime | None = None,
    product_id: str | None = None,
    license_id: str | None = None,
    activation_id: str | None = None,
    end_user_id: str | None = None,
    kid: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Add an audit entry to the session (committed with the caller's change).

    Never pass personal data: ids, counts and statuses only.
    """
    session.add(
        AuditEntry(
            at=at or utcnow(),
            actor=actor,
            action=action,
            product_id=product_id,
            license_id=license_id,
            activation_id=activation_id,
            end_user_id=end_user_id,
            kid=kid,
            detail=detail,
        )
    )
