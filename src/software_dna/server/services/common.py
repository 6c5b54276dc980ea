"""Shared pieces of the service layer: context, ids, time, audit."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from software_dna.server.config import Settings
from software_dna.server.crypto import Vault
from software_dna.server.models import AuditEntry

__all__ = [
    "Context",
    "acting_as",
    "audit",
    "clock_override",
    "new_id",
    "on_audit",
    "precise_now",
    "utcnow",
]


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


def _system_clock() -> datetime:
    return datetime.now(timezone.utc)


class _Clock:
    """The one source of "now" for every service; replaced only by clock_override."""

    now: Callable[[], datetime] = staticmethod(_system_clock)


_clock = _Clock()


def utcnow() -> datetime:
    """Now, timezone-aware UTC, truncated to whole seconds (what tokens carry)."""
    return _clock.now().replace(microsecond=0)


def precise_now() -> datetime:
    """Now, timezone-aware UTC, with microseconds (creation times that order rows)."""
    return _clock.now()


@contextmanager
def clock_override(clock: Callable[[], datetime]) -> Iterator[None]:
    """Run the services of this process on ``clock`` (tests: move time without waiting).

    Args:
        clock: returns an aware datetime; called for every "now".

    Process-wide (every thread, every in-process server) until the block ends.
    A running server never calls it: a deployment always uses the system clock.
    """
    previous = _clock.now
    _clock.now = clock
    try:
        yield
    finally:
        _clock.now = previous


def new_id(prefix: str) -> str:
    """A random id ``<prefix>_<22 base64url chars>`` (128 bits)."""
    return f"{prefix}_{secrets.token_urlsafe(16)}"


#: The staff member or admin API key behind the current request (see :func:`acting_as`).
_acting: ContextVar[str | None] = ContextVar("software_dna_acting", default=None)


@contextmanager
def acting_as(actor_id: str | None) -> Iterator[None]:
    """Record ``actor_id`` (``stf_...`` or ``adk_...``) in every audit entry made inside.

    The admin API's and the panel's authentication set it for the request, so
    the service functions, which know only the actor's kind (``admin``,
    ``panel``), need no new argument to say who.
    """
    token = _acting.set(actor_id)
    try:
        yield
    finally:
        _acting.reset(token)


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

    Never pass personal data: ids, counts and statuses only.  Every listener
    registered with :func:`on_audit` sees the entry, in the same transaction
    (outbound webhook events are queued this way).
    """
    entry = AuditEntry(at=at or utcnow(), actor=actor, actor_id=_acting.get(), action=action,
                       product_id=product_id, license_id=license_id,
                       activation_id=activation_id, end_user_id=end_user_id, kid=kid,
                       detail=detail)
    session.add(entry)
    for listener in tuple(_audit_listeners):
        listener(session, entry)


AuditListener = Callable[[Session, AuditEntry], None]
_audit_listeners: list[AuditListener] = []


def on_audit(listener: AuditListener) -> None:
    """Call ``listener(session, entry)`` for every audit entry added from now on.

    The listener runs inside :func:`audit`, on the caller's session and before
    its commit: whatever it adds is committed (or rolled back) with the change.
    Registering the same listener twice has no effect.
    """
    if listener not in _audit_listeners:
        _audit_listeners.append(listener)
