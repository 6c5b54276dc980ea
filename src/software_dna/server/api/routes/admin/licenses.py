"""Vendor routes: licenses (issue, list, change, suspend, revoke, password, term, rekey)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, IdPath, State, given, require
from software_dna.server.api.errors import error_responses
from software_dna.server.api.views import license_out
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas import (
    ExtendIn,
    IssuedLicenseOut,
    LicenseIn,
    LicenseList,
    LicenseOut,
    LicensePatch,
    PasswordIn,
)
from software_dna.server.schemas.licenses import RekeyedLicenseOut, RekeyIn
from software_dna.server.services.licenses import buyer_on_file, rekey_license

__all__ = ["router"]

_ERASE = [Depends(require(Permission.ERASE))]
_LICENSES = [Depends(require(Permission.LICENSES))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404, 409),
)
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 429)


@router.post("/licenses/{license_id}/extend", dependencies=_LICENSES, response_model=LicenseOut)
def extend(license_id: IdPath, body: ExtendIn, session: Db) -> LicenseOut:
    """Add days to a timed license (from its end, or from now if it ended), or move its end."""
    services.extend_license(session, license_id, days=body.days, until=body.until, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/perpetual", dependencies=_LICENSES, response_model=LicenseOut)
def perpetual(license_id: IdPath, session: Db) -> LicenseOut:
    """Convert to a perpetual ``full`` license (no end, no subscription)."""
    services.make_perpetual(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/restore", dependencies=_ERASE, response_model=LicenseOut)
def restore(license_id: IdPath, session: Db) -> LicenseOut:
    """Lift the limits an erasure put on the license and its user seats (audited)."""
    services.restore_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/cancel", dependencies=_LICENSES, response_model=LicenseOut)
def cancel(license_id: IdPath, session: Db) -> LicenseOut:
    """Cancel a subscription: suspended; apps stop after the warning period."""
    services.cancel_subscription(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses", dependencies=_LICENSES, response_model=IssuedLicenseOut, status_code=201)
def issue_license(body: LicenseIn, state: State, session: Db) -> IssuedLicenseOut:
    """Issue a license; the answer is the only time the key is shown."""
    lic, key = services.issue_license(
        session, state.ctx, product_id=body.product, seats=body.seats,
        expires_at=body.expires_at, features=body.features, password=body.password,
        key_prefix=body.key_prefix, actor=ACTOR, kind=body.kind,
        duration_days=body.expires_after_days, subscription=body.subscription,
        seat_mode=body.seat_mode, rollover=body.rollover, air_gapped=body.air_gapped,
        buyer_email=body.email,
    )
    out = LicenseOut.model_validate(lic, context={"seats_in_use": 0})
    return IssuedLicenseOut(**out.model_dump(), license_key=key)


@router.get("/licenses", dependencies=_READ, response_model=LicenseList)
def list_licenses(
    session: Db,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(active|suspended|revoked)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # beyond: SQLite INTEGER overflow
) -> LicenseList:
    """Licenses, newest first."""
    rows = services.list_licenses(session, product_id=product, status=status, limit=limit,
                                 offset=offset)
    return LicenseList(licenses=[LicenseOut.model_validate(
        r, context={"seats_in_use": services.seats_in_use(session, r.id)})
                                 for r in rows])


@router.get("/licenses/{license_id}", dependencies=_READ, response_model=LicenseOut)
def show_license(license_id: IdPath, session: Db) -> LicenseOut:
    """One license (the key shown as its last four characters)."""
    return license_out(session, license_id)


@router.patch("/licenses/{license_id}", dependencies=_LICENSES, response_model=LicenseOut)
def update_license(license_id: IdPath, body: LicensePatch, session: Db) -> LicenseOut:
    """Set seats, expiry (``null``: perpetual) or features."""
    services.update_license(session, license_id, actor=ACTOR, **given(body))
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/suspend", dependencies=_LICENSES, response_model=LicenseOut)
def suspend_license(license_id: IdPath, session: Db) -> LicenseOut:
    """Suspend (validations answer ``license_suspended``)."""
    services.suspend_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/resume", dependencies=_LICENSES, response_model=LicenseOut)
def resume_license(license_id: IdPath, session: Db) -> LicenseOut:
    """Resume a suspended license."""
    services.resume_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/revoke", dependencies=_LICENSES, response_model=LicenseOut)
def revoke_license(license_id: IdPath, session: Db) -> LicenseOut:
    """Revoke for good (validations answer ``license_revoked``)."""
    services.revoke_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.put("/licenses/{license_id}/password", dependencies=_LICENSES, response_model=LicenseOut)
def set_password(license_id: IdPath, body: PasswordIn, session: Db) -> LicenseOut:
    """Set (string) or remove (``null``) the activation password."""
    services.set_license_password(session, license_id, body.password, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/rekey", dependencies=_LICENSES,
             response_model=RekeyedLicenseOut)
def rekey(license_id: IdPath, state: State, session: Db,
          body: RekeyIn | None = None) -> RekeyedLicenseOut:
    """A new key for a lost one: the old key stops activating, activations keep working.

    The new key is shown this once and mailed to ``email`` (recorded as the
    buyer) or to the buyer on file.
    """
    lic, key = rekey_license(session, state.ctx, license_id,
                             email=body.email if body is not None else None, actor=ACTOR)
    mailed = buyer_on_file(session, lic) is not None
    out = license_out(session, license_id)
    return RekeyedLicenseOut(**out.model_dump(), license_key=key, key_mailed=mailed)
