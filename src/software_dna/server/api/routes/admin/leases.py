"""Vendor routes: a floating license's leases."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from software_dna.server import services
from software_dna.server.api.deps import Db, IdPath, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import LeaseList, LeaseOut
from software_dna.server.services import leases

__all__ = ["router"]

_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.get("/licenses/{license_id}/leases", dependencies=_READ, response_model=LeaseList)
def list_leases(license_id: IdPath, session: Db) -> LeaseList:
    """The live floating leases of a license, earliest end first."""
    lic = services.get_license(session, license_id)
    rows = leases.list_leases(session, lic.id, services.utcnow())
    return LeaseList(license_id=lic.id, seats=lic.seats, leases=[
        LeaseOut(activation_id=r.activation_id, fingerprint_id=r.fingerprint_id,
                 created_at=r.created_at, renewed_at=r.renewed_at, expires_at=r.expires_at)
        for r in rows
    ])
