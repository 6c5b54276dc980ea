"""Vendor routes: renewal codes (issue, list)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import RenewalCodeList, RenewalCodeOut, RenewalCodesIn

__all__ = ["router"]

_LICENSES = [Depends(require(Permission.LICENSES))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429)


@router.post("/renewal-codes", dependencies=_LICENSES,
             response_model=RenewalCodeList, status_code=201)
def issue_renewal_codes(body: RenewalCodesIn, state: State, session: Db) -> RenewalCodeList:
    """Make single-use renewal codes; the answer is the only time the codes are shown."""
    made = services.issue_renewal_codes(session, state.ctx, days=body.days,
                                       product_id=body.product, license_id=body.license_id,
                                       count=body.count, actor=ACTOR)
    return RenewalCodeList(renewal_codes=[
        RenewalCodeOut.model_validate(row, context={"code": code}) for row, code in made])


@router.get("/renewal-codes", dependencies=_READ, response_model=RenewalCodeList)
def list_renewal_codes(
    session: Db,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    license_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RenewalCodeList:
    """Renewal codes (newest first), shown by their last four characters."""
    rows = services.list_renewal_codes(session, product_id=product, license_id=license_id,
                                      limit=limit)
    return RenewalCodeList(renewal_codes=[RenewalCodeOut.model_validate(row) for row in rows])
