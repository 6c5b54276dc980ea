"""Vendor routes: a product's test codes (issue, list, reset)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, IdPath, ProductPath, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.api.views import license_out
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import IssuedLicenseOut, LicenseList, LicenseOut, TestCodeIn

__all__ = ["router"]

_READ = [Depends(require(Permission.READ))]
_TEST_CODES = [Depends(require(Permission.TEST_CODES))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429)


@router.post("/products/{product}/test-codes", dependencies=_TEST_CODES,
             response_model=IssuedLicenseOut, status_code=201)
def issue_test_code(product: ProductPath, body: TestCodeIn, state: State,
                    session: Db) -> IssuedLicenseOut:
    """Issue a test code (kind ``test``); the answer is the only time its key is shown."""
    lic, key = services.issue_test_code(session, state.ctx, product_id=product, days=body.days,
                                       features=body.features, password=body.password,
                                       actor=ACTOR)
    out = LicenseOut.model_validate(lic, context={"seats_in_use": 0})
    return IssuedLicenseOut(**out.model_dump(), license_key=key)


@router.get("/products/{product}/test-codes", dependencies=_READ, response_model=LicenseList)
def list_test_codes(product: ProductPath, session: Db) -> LicenseList:
    """The product's test codes, newest first."""
    rows = services.list_test_codes(session, product)
    return LicenseList(licenses=[LicenseOut.model_validate(
        r, context={"seats_in_use": services.seats_in_use(session, r.id)})
                                 for r in rows])


@router.post("/licenses/{license_id}/reset", dependencies=_TEST_CODES, response_model=LicenseOut)
def reset_test_code(license_id: IdPath, session: Db) -> LicenseOut:
    """Reset a test code: activations removed, settings deleted, its days start again."""
    services.reset_test_code(session, license_id, actor=ACTOR)
    return license_out(session, license_id)
