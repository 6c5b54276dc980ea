"""Vendor routes: a product's trial machines (list, forget)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, IdPath, ProductPath, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import TrialList, TrialOut

__all__ = ["router"]

_READ = [Depends(require(Permission.READ))]
_TEST_CODES = [Depends(require(Permission.TEST_CODES))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429)


@router.get("/products/{product}/trials", dependencies=_READ, response_model=TrialList)
def list_trials(product: ProductPath, session: Db,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> TrialList:
    """The machines that used the product's trial, newest first."""
    return TrialList(trials=[TrialOut.model_validate(t) for t in
                             services.list_trials(session, product, limit=limit)])


@router.delete("/trials/{trial_id}", dependencies=_TEST_CODES, response_model=TrialOut)
def remove_trial(trial_id: IdPath, session: Db) -> TrialOut:
    """Forget a trial machine (its trial is revoked); it may start a new trial."""
    return TrialOut.model_validate(services.remove_trial(session, trial_id, actor=ACTOR))
