"""Vendor routes: the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from software_dna.server import services
from software_dna.server.api.deps import Db, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import AuditList, AuditOut

__all__ = ["router"]

_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.get("/audit", dependencies=_READ, response_model=AuditList)
def audit(
    session: Db,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    license_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
) -> AuditList:
    """The audit log, newest first (ids only, no personal data)."""
    rows = services.list_audit(session, limit=limit, before_id=before_id, product_id=product,
                              license_id=license_id)
    return AuditList(entries=[AuditOut.model_validate(e) for e in rows])
