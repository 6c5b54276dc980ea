"""Vendor routes under ``/v1/admin`` (admin API key required on every one)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query
from sqlalchemy.orm import Session

from software_dna.server import service
from software_dna.server.api import (
    Db,
    IdPath,
    State,
    require_admin,
)
from software_dna.server.schemas import (
    ActivationList,
    ActivationOut,
    AuditList,
    AuditOut,
    Email,
    EndUserExport,
    EndUserList,
    EndUserSummary,
    ErrorBody,
    IssuedLicenseOut,
    KeyList,
    KeyOut,
    LicenseIn,
    LicenseList,
    LicenseOut,
    LicensePatch,
    OkOut,
    PasswordIn,
    ProductIn,
    ProductList,
    ProductOut,
    ProductPatch,
    PublicKeysOut,
    RotateIn,
)

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    dependencies=[Depends(require_admin)],
    responses={code: {"model": ErrorBody} for code in (400, 401, 404, 409)},
)

ProductPath = Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]
KidPath = Annotated[str, Path(pattern=r"^k4\.pid\.[A-Za-z0-9_-]{1,60}$")]
ACTOR = "admin"


# --------------------------------------------------------------------------- products


@router.post("/products", response_model=ProductOut, status_code=201)
def create_product(body: ProductIn, session: Db) -> ProductOut:
    """Create a product."""
    return ProductOut.of(service.create_product(
        session, product_id=body.id, name=body.name, protection=body.protection,
        refresh_interval=body.refresh_interval, offline_grace_period=body.offline_grace_period,
        fingerprint_tolerance=body.fingerprint_tolerance, features=body.features,
        limited_features=body.limited_features, password_required=body.password_required,
        actor=ACTOR, trial_days=body.trial_days, test_code_limit=body.test_code_limit,
        lease_duration=body.lease_duration, reactivation_limit=body.reactivation_limit,
        reactivation_period=body.reactivation_period,
        address_activation_limit=body.address_activation_limit,
    ))


@router.get("/products", response_model=ProductList)
def list_products(session: Db) -> ProductList:
    """Every product."""
    return ProductList(products=[ProductOut.of(p) for p in service.list_products(session)])


@router.get("/products/{product}", response_model=ProductOut)
def show_product(product: ProductPath, session: Db) -> ProductOut:
    """One product."""
    return ProductOut.of(service.get_product(session, product))


@router.patch("/products/{product}", response_model=ProductOut)
def configure_product(product: ProductPath, body: ProductPatch, session: Db) -> ProductOut:
    """Change a product's policy (absent fields stay as they are)."""
    return ProductOut.of(service.update_product(
        session, product, name=body.name, protection=body.protection,
        refresh_interval=body.refresh_interval, offline_grace_period=body.offline_grace_period,
        fingerprint_tolerance=body.fingerprint_tolerance, features=body.features,
        limited_features=body.limited_features, password_required=body.password_required,
        actor=ACTOR, test_code_limit=body.test_code_limit,
        trial_days=(body.trial_days or 0) if "trial_days" in body.model_fields_set else None,
        lease_duration=body.lease_duration, reactivation_period=body.reactivation_period,
        **_lockout_limits(body),
    ))


def _lockout_limits(body: ProductPatch) -> dict[str, int | None]:
    """The lock-out limits present in a PATCH body (null turns one off; absent: unchanged)."""
    return {name: getattr(body, name) for name in ("reactivation_limit",
                                                    "address_activation_limit")
            if name in body.model_fields_set}


# --------------------------------------------------------------------------- keys


@router.post("/products/{product}/keys", response_model=KeyOut, status_code=201)
def generate_key(product: ProductPath, state: State, session: Db) -> KeyOut:
    """Generate a signing key (the product's first key becomes active, later ones trusted)."""
    return KeyOut.of(service.generate_key(session, state.ctx, product, actor=ACTOR))


@router.get("/products/{product}/keys", response_model=KeyList)
def list_keys(product: ProductPath, session: Db) -> KeyList:
    """Every key of the product, with its status."""
    return KeyList(keys=[KeyOut.of(k) for k in service.list_keys(session, product)])


@router.post("/products/{product}/keys/rotate", response_model=KeyOut)
def rotate_key(product: ProductPath, state: State, session: Db,
               body: Annotated[RotateIn | None, Body()] = None) -> KeyOut:
    """A new key (or the given trusted key) signs from now on; the old one stays trusted."""
    kid = body.kid if body is not None else None
    return KeyOut.of(service.rotate_key(session, state.ctx, product, kid=kid, actor=ACTOR))


@router.post("/products/{product}/keys/{kid}/retire", response_model=KeyOut)
def retire_key(product: ProductPath, kid: KidPath, state: State, session: Db) -> KeyOut:
    """Stop trusting a key (it disappears from the public keys)."""
    return KeyOut.of(service.retire_key(session, state.ctx, product, kid, actor=ACTOR))


@router.get("/products/{product}/public-keys", response_model=PublicKeysOut)
def public_keys(product: ProductPath, session: Db) -> PublicKeysOut:
    """The ``k4.public`` keys to build into the app (active first, then trusted)."""
    return PublicKeysOut(product=product, public_keys=service.public_keys(session, product))


# --------------------------------------------------------------------------- licenses


def license_out(session: Session, lic_id: str) -> LicenseOut:
    """The admin API's view of the license ``lic_id`` (404 when unknown)."""
    lic = service.get_license(session, lic_id)
    return LicenseOut.of(lic, service.seats_in_use(session, lic.id))


@router.post("/licenses", response_model=IssuedLicenseOut, status_code=201)
def issue_license(body: LicenseIn, state: State, session: Db) -> IssuedLicenseOut:
    """Issue a license; the answer is the only time the key is shown."""
    lic, key = service.issue_license(
        session, state.ctx, product_id=body.product, seats=body.seats,
        expires_at=body.expires_at, features=body.features, password=body.password,
        key_prefix=body.key_prefix, actor=ACTOR, kind=body.kind,
        duration_days=body.expires_after_days, subscription=body.subscription,
        seat_mode=body.seat_mode, rollover=body.rollover,
    )
    out = LicenseOut.of(lic, 0)
    return IssuedLicenseOut(**out.model_dump(), license_key=key)


@router.get("/licenses", response_model=LicenseList)
def list_licenses(
    session: Db,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    status: Annotated[str | None, Query(pattern=r"^(active|suspended|revoked)$")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,  # beyond: SQLite INTEGER overflow
) -> LicenseList:
    """Licenses, newest first."""
    rows = service.list_licenses(session, product_id=product, status=status, limit=limit,
                                 offset=offset)
    return LicenseList(licenses=[LicenseOut.of(r, service.seats_in_use(session, r.id))
                                 for r in rows])


@router.get("/licenses/{license_id}", response_model=LicenseOut)
def show_license(license_id: IdPath, session: Db) -> LicenseOut:
    """One license (the key shown as its last four characters)."""
    return license_out(session, license_id)


@router.patch("/licenses/{license_id}", response_model=LicenseOut)
def update_license(license_id: IdPath, body: LicensePatch, session: Db) -> LicenseOut:
    """Set seats, expiry (``null``: perpetual) or features."""
    expires = body.expires_at if "expires_at" in body.model_fields_set else service.UNSET
    service.update_license(session, license_id, seats=body.seats, expires_at=expires,
                           features=body.features, actor=ACTOR, seat_mode=body.seat_mode,
                           rollover=body.rollover)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/suspend", response_model=LicenseOut)
def suspend_license(license_id: IdPath, session: Db) -> LicenseOut:
    """Suspend (validations answer ``license_suspended``)."""
    service.suspend_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/resume", response_model=LicenseOut)
def resume_license(license_id: IdPath, session: Db) -> LicenseOut:
    """Resume a suspended license."""
    service.resume_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.post("/licenses/{license_id}/revoke", response_model=LicenseOut)
def revoke_license(license_id: IdPath, session: Db) -> LicenseOut:
    """Revoke for good (validations answer ``license_revoked``)."""
    service.revoke_license(session, license_id, actor=ACTOR)
    return license_out(session, license_id)


@router.put("/licenses/{license_id}/password", response_model=LicenseOut)
def set_password(license_id: IdPath, body: PasswordIn, session: Db) -> LicenseOut:
    """Set (string) or remove (``null``) the activation password."""
    service.set_license_password(session, license_id, body.password, actor=ACTOR)
    return license_out(session, license_id)


# --------------------------------------------------------------------------- activations


@router.get("/licenses/{license_id}/activations", response_model=ActivationList)
def list_activations(license_id: IdPath, session: Db) -> ActivationList:
    """Activations of a license (removed ones included, with ``deactivated_at``)."""
    rows = service.list_activations(session, license_id)
    return ActivationList(activations=[ActivationOut.of(a) for a in rows])


@router.delete("/activations/{activation_id}", response_model=ActivationOut)
def remove_activation(activation_id: IdPath, session: Db) -> ActivationOut:
    """Remove an activation: its seat is free, its next validation answers 410."""
    return ActivationOut.of(service.remove_activation(session, activation_id, actor=ACTOR))


# --------------------------------------------------------------------------- end users


@router.get("/end-users", response_model=EndUserList)
def find_end_users(email: Annotated[Email, Query()], state: State, session: Db) -> EndUserList:
    """End users with this email (case-insensitive)."""
    rows = service.find_end_users(session, state.ctx, email)
    return EndUserList(end_users=[
        EndUserSummary(id=u.id, created_at=u.created_at, consent_at=u.consent_at,
                       erased_at=u.erased_at) for u in rows
    ])


@router.get("/end-users/{end_user_id}", response_model=EndUserExport)
def export_end_user(end_user_id: IdPath, state: State, session: Db) -> EndUserExport:
    """Everything held about one end user (GDPR access)."""
    return EndUserExport.model_validate(service.export_end_user(session, state.ctx, end_user_id))


@router.post("/end-users/{end_user_id}/erase", response_model=OkOut)
def erase_end_user(end_user_id: IdPath, state: State, session: Db) -> OkOut:
    """Erase the end user's personal data; their licenses go on in limited mode."""
    service.erase_end_user(session, state.ctx, end_user_id, actor=ACTOR)
    return OkOut()


# --------------------------------------------------------------------------- audit


@router.get("/audit", response_model=AuditList)
def audit(
    session: Db,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    product: Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")] = None,
    license_id: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = None,
) -> AuditList:
    """The audit log, newest first (ids only, no personal data)."""
    rows = service.list_audit(session, limit=limit, before_id=before_id, product_id=product,
                              license_id=license_id)
    return AuditList(entries=[AuditOut.of(e) for e in rows])
