"""Vendor routes: licenses (issue, list, change, suspend, revoke, password, term, rekey)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from software_dna.server import services
from software_dna.server.api.deps import ACTOR, Db, IdPath, State, given, key_may, require
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
from software_dna.server.schemas.licenses import (
    LicenseLookupIn,
    RekeyedLicenseOut,
    RekeyIn,
    looks_like_full_key,
)
from software_dna.server.services.errors import ServiceError, not_found
from software_dna.server.services.licenses import buyer_on_file, rekey_license
from software_dna.wire.codes import Code

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
    services.extend_license(session, license_id, days=body.days, until=body.until, actor=ACTOR,
                            allow_past=body.allow_past)
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
        buyer_email=body.email, customer_ref=body.customer_ref, order_ref=body.order_ref,
        notes=body.notes, allow_past=body.allow_past,
    )
    out = LicenseOut.model_validate(lic, context={"seats_in_use": 0})
    return IssuedLicenseOut(**out.model_dump(), license_key=key)


@router.post("/licenses/lookup", response_model=LicenseOut,
             dependencies=[Depends(require(Permission.READ))], responses=_ERRORS)
def lookup_license(body: LicenseLookupIn, state: State, session: Db) -> LicenseOut:
    """The license of a full license key (case, spaces and dashes do not matter).

    The key travels in the body, so it never lands in an access log. 404
    ``not_found`` when no license has this key.
    """
    lic = services.find_license_by_key(session, state.ctx, body.key)
    if lic is None:
        raise not_found("license")
    return license_out(session, lic.id)


@router.get("/licenses", dependencies=_READ, response_model=LicenseList)
def list_licenses(
    request: Request, session: Db, state: State, *,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(active|suspended|revoked)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # beyond: SQLite INTEGER overflow
    q: Annotated[str | None, Query(max_length=200, description=(
        "a key hint (last 4 characters), a customer or order reference (prefix, any case), "
        "a license id or an email address; a full key goes to POST /licenses/lookup"))] = None,
    kind: Annotated[str | None, Query(pattern=r"^(full|trial|evaluation|test)$")] = None,
) -> LicenseList:
    """Licenses, newest first; ``q`` searches (see its description)."""
    if q and looks_like_full_key(q):
        raise ServiceError(Code.INVALID_REQUEST, "q looks like a full license key: send it in "
                           "the body of POST /v1/admin/licenses/lookup (a key in a URL ends "
                           "up in access logs).", details={"field": "q"})
    if q and "@" in q and not key_may(request, Permission.PERSONAL_DATA):
        # Whether an address holds a license is personal data.
        raise ServiceError(Code.FORBIDDEN, "Searching by email address needs a key whose role "
                           "may see personal data.", details={"field": "q"})
    if q or kind:
        found = services.search_licenses(session, state.ctx, q=q, product_id=product,
                                         status=status, kind=kind)
        rows = list(session.scalars(found.query.limit(limit).offset(offset)))
    else:
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
    """Set seats, expiry (``null``: perpetual), features, references or notes.

    ``expires_at`` takes a plain date ``YYYY-MM-DD`` (valid through that day: the
    license ends at the next day's 00:00 UTC) or an RFC 3339 time; a date in
    the past is refused unless ``allow_past`` is true.
    """
    fields = given(body)
    fields.pop("allow_past", None)
    services.update_license(session, license_id, actor=ACTOR, allow_past=body.allow_past,
                            **fields)
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
