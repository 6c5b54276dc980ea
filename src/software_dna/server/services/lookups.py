"""Every look-up of an object by its id or key, raising 404 ``not_found``.

The one place that turns "no such row" into a refusal: the error carries
``details={"kind": ...}`` naming what was missing.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server import licensekeys
from software_dna.server.models import (
    Activation,
    EndUser,
    License,
    Product,
    RenewalCode,
    SigningKey,
    Trial,
)
from software_dna.server.services.common import Context
from software_dna.server.services.errors import not_found

__all__ = [
    "find_license_by_key",
    "get_activation",
    "get_end_user",
    "get_license",
    "get_product",
    "get_renewal_code",
    "get_signing_key",
    "get_trial",
]


def get_product(session: Session, product_id: str) -> Product:
    """The product ``product_id``; raises 404 ``not_found``."""
    product = session.get(Product, product_id)
    if product is None:
        raise not_found("product")
    return product


def get_license(session: Session, license_id: str, *, lock: bool = False) -> License:
    """The license ``license_id``; raises 404 ``not_found``.

    ``lock``: the row is locked (``FOR UPDATE``) for the rest of the
    transaction and read afresh.
    """
    if not lock:
        lic = session.get(License, license_id)
    else:
        lic = session.scalars(
            select(License).where(License.id == license_id)
            .with_for_update(of=License).execution_options(populate_existing=True)
        ).one_or_none()
    if lic is None:
        raise not_found("license")
    return lic


def find_license_by_key(session: Session, ctx: Context, license_key: str, *,
                        lock: bool = False) -> License | None:
    """The license with this key (as typed: case and spaces do not matter), or None.

    ``lock``: the row found is locked (``FOR UPDATE``) for the rest of the
    transaction and read afresh, as :func:`get_license` does.
    """
    try:
        canonical = licensekeys.normalize(license_key)
    except licensekeys.InvalidKeyFormat:
        return None
    query = select(License).where(License.key_hash == ctx.vault.license_key_hash(canonical))
    if lock:
        query = query.with_for_update(of=License).execution_options(populate_existing=True)
    return session.scalars(query).one_or_none()


def get_activation(session: Session, activation_id: str) -> Activation:
    """The activation ``activation_id``; raises 404 ``not_found``."""
    activation = session.get(Activation, activation_id)
    if activation is None:
        raise not_found("activation")
    return activation


def get_end_user(session: Session, end_user_id: str) -> EndUser:
    """The end user ``end_user_id``; raises 404 ``not_found``."""
    end_user = session.get(EndUser, end_user_id)
    if end_user is None:
        raise not_found("end user")
    return end_user


def get_signing_key(session: Session, product_id: str, kid: str) -> SigningKey:
    """The signing key ``kid`` of ``product_id``; raises 404 ``not_found`` (also for
    another product's key)."""
    row = session.get(SigningKey, kid)
    if row is None or row.product_id != product_id:
        raise not_found("signing key")
    return row


def get_trial(session: Session, trial_id: str) -> Trial:
    """The trial machine ``trial_id``; raises 404 ``not_found``."""
    trial = session.get(Trial, trial_id)
    if trial is None:
        raise not_found("trial")
    return trial


def get_renewal_code(session: Session, code_id: str) -> RenewalCode:
    """One renewal code; raises 404 ``not_found``."""
    row = session.get(RenewalCode, code_id)
    if row is None:
        raise not_found("renewal code")
    return row
