"""Routes of trials, test codes, terms and renewal (docs/protocol.md).

``public_router``: ``POST /v1/trials`` and ``POST /v1/activations/{id}/renewal``
(called by the SDK).  ``admin_router`` (admin API key): extend, make
perpetual, cancel a subscription, renewal codes, test codes, trial machines.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from software_dna.server import service
from software_dna.server.api import (
    Db,
    IdPath,
    State,
    bearer,
    require_admin,
)
from software_dna.server.routes_admin import license_out
from software_dna.server.schemas import (
    ActivateOut,
    ErrorBody,
    IssuedLicenseOut,
    LicenseList,
    LicenseOut,
)
from software_dna.server.schemas_terms import (
    ExtendIn,
    RenewalCodeList,
    RenewalCodeOut,
    RenewalCodesIn,
    RenewIn,
    RenewOut,
    TestCodeIn,
    TrialIn,
    TrialList,
    TrialOut,
)

__all__ = ["admin_router", "public_router"]

public_router = APIRouter(prefix="/v1", tags=["end user"])
admin_router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={code: {"model": ErrorBody} for code in (400, 401, 404, 409)},
)

ProductPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
ACTOR = "admin"
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 410, 429)
}


def _address(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


# --------------------------------------------------------------------------- end user


@public_router.post("/trials", response_model=ActivateOut, status_code=201, responses={
    **_ERRORS, 200: {"model": ActivateOut, "description": "This machine's running trial"}})
def start_trial(body: TrialIn, request: Request, response: Response, state: State,
                session: Db) -> ActivateOut:
    """Start this machine's trial (201), or get back the one that runs (200)."""
    req = service.TrialRequest(
        product=body.product,
        fingerprint=service.FingerprintData(id=body.fingerprint.id,
                                            components=dict(body.fingerprint.components),
                                            algorithm=body.fingerprint.algorithm),
        nonce=body.nonce, client=body.client.model_dump(),
    )
    result = service.start_trial(session, state.ctx, req, client_address=_address(request))
    if not result.created:
        response.status_code = 200
    return ActivateOut(activation_id=result.activation_id,
                       activation_secret=result.activation_secret, token=result.token,
                       nonce=result.nonce, server_time=result.server_time)


@public_router.post("/activations/{activation_id}/renewal", response_model=RenewOut,
                    responses=_ERRORS)
def renew(activation_id: IdPath, body: RenewIn, request: Request, state: State,
          session: Db) -> RenewOut:
    """Redeem a renewal code: days are added to this activation's license."""
    result = service.redeem_renewal_code(session, state.ctx, activation_id, bearer(request),
                                         code=body.code, nonce=body.nonce,
                                         client_address=_address(request))
    return RenewOut(token=result.token, nonce=result.nonce, server_time=result.server_time,
                    license_expires_at=result.license_expires_at)


# --------------------------------------------------------------------------- terms


@admin_router.post("/licenses/{license_id}/extend", response_model=LicenseOut)
def extend(license_id: IdPath, body: ExtendIn, session: Db) -> LicenseOut:
    """Add days to a timed license (from its end, or from now if it ended), or move its end."""
    service.extend_license(session, license_id, days=body.days, until=body.until, actor=ACTOR)
    return license_out(session, license_id)


@admin_router.post("/licenses/{license_id}/perpetual", response_model=LicenseOut)
def perpetual(license_id: IdPath, session: Db) -> LicenseOut:
    """Convert to a perpetual ``full`` license (no end, no subscription)."""
    service.make_perpetual(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@admin_router.post("/licenses/{license_id}/cancel", response_model=LicenseOut)
def cancel(license_id: IdPath, session: Db) -> LicenseOut:
    """Cancel a subscription: suspended; apps stop after the warning period."""
    service.cancel_subscription(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@admin_router.post("/renewal-codes", response_model=RenewalCodeList, status_code=201)
def issue_renewal_codes(body: RenewalCodesIn, state: State, session: Db) -> RenewalCodeList:
    """Make single-use renewal codes; the answer is the only time the codes are shown."""
    made = service.issue_renewal_codes(session, state.ctx, days=body.days,
                                       product_id=body.product, license_id=body.license_id,
                                       count=body.count, actor=ACTOR)
    return RenewalCodeList(renewal_codes=[RenewalCodeOut.of(row, code) for row, code in made])


@admin_router.get("/renewal-codes", response_model=RenewalCodeList)
def list_renewal_codes(
    session: Db,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    license_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> RenewalCodeList:
    """Renewal codes (newest first), shown by their last four characters."""
    rows = service.list_renewal_codes(session, product_id=product, license_id=license_id,
                                      limit=limit)
    return RenewalCodeList(renewal_codes=[RenewalCodeOut.of(row) for row in rows])


# --------------------------------------------------------------------------- test codes


@admin_router.post("/products/{product}/test-codes", response_model=IssuedLicenseOut,
                   status_code=201)
def issue_test_code(product: ProductPath, body: TestCodeIn, state: State,
                    session: Db) -> IssuedLicenseOut:
    """Issue a test code (kind ``test``); the answer is the only time its key is shown."""
    lic, key = service.issue_test_code(session, state.ctx, product_id=product, days=body.days,
                                       features=body.features, password=body.password,
                                       actor=ACTOR)
    out = LicenseOut.of(lic, 0)
    return IssuedLicenseOut(**out.model_dump(), license_key=key)


@admin_router.get("/products/{product}/test-codes", response_model=LicenseList)
def list_test_codes(product: ProductPath, session: Db) -> LicenseList:
    """The product's test codes, newest first."""
    rows = service.list_test_codes(session, product)
    return LicenseList(licenses=[LicenseOut.of(r, service.seats_in_use(session, r.id))
                                 for r in rows])


@admin_router.post("/licenses/{license_id}/reset", response_model=LicenseOut)
def reset_test_code(license_id: IdPath, session: Db) -> LicenseOut:
    """Reset a test code: activations removed, settings deleted, its days start again."""
    service.reset_test_code(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


# --------------------------------------------------------------------------- trials


@admin_router.get("/products/{product}/trials", response_model=TrialList)
def list_trials(product: ProductPath, session: Db,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> TrialList:
    """The machines that used the product's trial, newest first."""
    return TrialList(trials=[TrialOut.of(t) for t in
                             service.list_trials(session, product, limit=limit)])


@admin_router.delete("/trials/{trial_id}", response_model=TrialOut)
def remove_trial(trial_id: IdPath, session: Db) -> TrialOut:
    """Forget a trial machine (its trial is revoked); it may start a new trial."""
    return TrialOut.of(service.remove_trial(session, trial_id, actor=ACTOR))
