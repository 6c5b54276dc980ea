"""Vendor routes: a license's activations, and removing one."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, IdPath, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import ActivationList, ActivationOut

__all__ = ["router"]

_LICENSES = [Depends(require(Permission.LICENSES))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)


@router.get("/licenses/{license_id}/activations", dependencies=_READ, response_model=ActivationList)
def list_activations(license_id: IdPath, session: Db) -> ActivationList:
    """Activations of a license (removed ones included, with ``deactivated_at``)."""
    rows = services.list_activations(session, license_id)
    return ActivationList(activations=[ActivationOut.model_validate(a) for a in rows])


@router.delete("/activations/{activation_id}", dependencies=_LICENSES, response_model=ActivationOut)
def remove_activation(activation_id: IdPath, session: Db) -> ActivationOut:
    """Remove an activation: its seat is free, its next validation answers 410."""
    removed = services.remove_activation(session, activation_id, actor=ACTOR)
    return ActivationOut.model_validate(removed)
