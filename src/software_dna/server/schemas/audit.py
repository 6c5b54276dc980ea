"""Bodies of the audit log (ids only)."""

from __future__ import annotations

from typing import Any

from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["AuditList", "AuditOut"]


class AuditOut(Out):
    """One audit entry (ids only)."""

    id: int
    at: UtcTime
    actor: str
    #: Who within the actor: the staff member (``stf_…``) or admin API key (``adk_…``).
    actor_id: str | None = None
    action: str
    product_id: str | None
    license_id: str | None
    activation_id: str | None
    end_user_id: str | None
    kid: str | None
    detail: dict[str, Any] | None



class AuditList(Out):
    """``GET /v1/admin/audit``."""

    entries: list[AuditOut]
