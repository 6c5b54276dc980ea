"""Renewal codes: the vendor sells days, the end user redeems them (docs/licenses.md).

A single-use renewal code adds days to the license of the activation that
redeems it (:func:`issue_renewal_codes`, :func:`redeem_renewal_code`); the
next refresh brings the app a token with the new ``license_expires_at``.
How days are added: :func:`~software_dna.server.services.license_terms.add_days`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from software_dna.server import licensekeys
from software_dna.server.domain.refusals import ACTIVATION_REMOVED, standing_refusal
from software_dna.server.domain.terms import MAX_DAYS
from software_dna.server.models import RenewalCode
from software_dna.server.services.authentication import authenticate
from software_dna.server.services.common import Context, audit, new_id, precise_now, utcnow
from software_dna.server.services.errors import ServiceError, conflict, invalid
from software_dna.server.services.license_terms import add_days, is_perpetual
from software_dna.server.services.lookups import get_license, get_product
from software_dna.server.services.ratelimit import hit, hit_address
from software_dna.server.services.tokens import issue_for, refusal_error
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code

__all__ = [
    "Renewed",
    "issue_renewal_codes",
    "list_renewal_codes",
    "redeem_renewal_code",
]

#: Renewal codes made by one request.
MAX_CODES_PER_REQUEST = 100
#: Renewal codes start with this prefix (RENEW-XXXX-XXXX-XXXX-XXXX).
RENEWAL_PREFIX = "RENEW"


@dataclass(frozen=True)
class Renewed:
    """Result of :func:`redeem_renewal_code`: a fresh token with the new expiry."""

    token: str
    nonce: str
    server_time: datetime
    license_expires_at: datetime | None


def issue_renewal_codes(
    session: Session,
    ctx: Context,
    *,
    days: int,
    product_id: str | None = None,
    license_id: str | None = None,
    count: int = 1,
    actor: str = "admin",
) -> list[tuple[RenewalCode, str]]:
    """Make single-use renewal codes; commits. Returns ``[(row, code), ...]``.

    A code is shown only here (the server keeps a keyed hash and its last
    four characters), e.g. ``RENEW-7KQ2-XPNM-4R9T-HCWZ``.

    Args:
        days: days each code adds (1-3650).
        product_id: the product whose licenses may use the codes.
        license_id: or bind the codes to one license (its product is used).
        count: how many codes (1-100).

    Raises:
        ServiceError: 404 ``not_found``; 400 ``invalid_request``.
    """
    if not 1 <= days <= MAX_DAYS:
        raise invalid(f"days must be 1 to {MAX_DAYS}.")
    if not 1 <= count <= MAX_CODES_PER_REQUEST:
        raise invalid(f"count must be 1 to {MAX_CODES_PER_REQUEST}.")
    if license_id is not None:
        lic = get_license(session, license_id)
        if product_id is not None and product_id != lic.product_id:
            raise invalid("The license belongs to another product.")
        product_id = lic.product_id
    if product_id is None:
        raise invalid("Give the product or the license.")
    get_product(session, product_id)
    now = precise_now()
    made: list[tuple[RenewalCode, str]] = []
    while len(made) < count:
        code = licensekeys.generate(RENEWAL_PREFIX)
        row = RenewalCode(
            id=new_id("rnw"), product_id=product_id, license_id=license_id,
            code_hash=ctx.vault.license_key_hash("renewal:" + licensekeys.normalize(code)),
            code_last4=code[-4:], days=days, created_at=now, redeemed_at=None,
            redeemed_license_id=None,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:  # pragma: no cover - a 2**80 key space collision
            session.rollback()
            raise conflict("Could not generate unique codes; try again.") from None
        made.append((row, code))
    audit(session, actor, "renewal_code.issue", at=now, product_id=product_id,
          license_id=license_id, detail={"count": count, "days": days})
    session.commit()
    return made


def list_renewal_codes(session: Session, *, product_id: str | None = None,
                       license_id: str | None = None, limit: int = 100) -> list[RenewalCode]:
    """Renewal codes, newest first, of a product and / or bound to a license."""
    query = select(RenewalCode).order_by(RenewalCode.created_at.desc(), RenewalCode.id)
    if product_id is not None:
        query = query.where(RenewalCode.product_id == product_id)
    if license_id is not None:
        query = query.where(RenewalCode.license_id == license_id)
    return list(session.scalars(query.limit(limit)))


def _find_code(session: Session, ctx: Context, code: str) -> RenewalCode | None:
    try:
        canonical = licensekeys.normalize(code)
    except licensekeys.InvalidKeyFormat:
        return None
    return session.scalars(
        select(RenewalCode)
        .where(RenewalCode.code_hash == ctx.vault.license_key_hash("renewal:" + canonical))
        .with_for_update(of=RenewalCode)
    ).one_or_none()


def _unknown_code() -> ServiceError:
    return ServiceError(Code.UNKNOWN_RENEWAL_CODE,
                        "This renewal code does not exist for this product. Check the code.")


def redeem_renewal_code(session: Session, ctx: Context, activation_id: str,
                        secret: str | None, *, code: str, nonce: str,
                        client_address: str | None = None) -> Renewed:
    """The end user enters a renewal code: days are added to the activation's license.

    Works on an expired license (that is the point). A retry with a code
    this license already redeemed answers a fresh token and adds nothing.
    Commits.

    Raises:
        ServiceError: 401 ``unauthorized``; 410 ``activation_removed``; 429
        ``rate_limited``; 403 ``license_revoked`` / ``license_suspended`` /
        ``subscription_cancelled`` (each with a receipt); 404
        ``unknown_renewal_code``; 409 ``renewal_code_used`` /
        ``renewal_not_applicable`` (a perpetual license, or a code bound to
        another license); 503 ``no_signing_key``.
    """
    settings = ctx.settings
    hit_address(session, ctx, client_address)
    activation = authenticate(session, ctx, activation_id, secret)
    license_id = activation.license_id
    hit(session, "renew:" + license_id, limit=settings.rate_limit_attempts,
                  window=settings.rate_limit_window)
    now = utcnow()
    if activation.deactivated_at is not None:
        raise refusal_error(session, ctx, activation, ACTIVATION_REMOVED, nonce=nonce, now=now)
    lic = get_license(session, license_id, lock=True)
    # Expiry is no refusal here: renewing an expired license is the point.
    refusal = standing_refusal(status=lic.status, cancelled_at=lic.cancelled_at)
    if refusal is not None:
        raise refusal_error(session, ctx, activation, refusal, nonce=nonce, now=now)
    row = _find_code(session, ctx, code)
    if row is None or row.product_id != lic.product_id:
        audit(session, "sdk", "renewal_code.unknown", at=now, product_id=lic.product_id,
              license_id=lic.id, activation_id=activation.id)
        session.commit()
        raise _unknown_code()
    if row.redeemed_at is not None and row.redeemed_license_id != lic.id:
        raise ServiceError(Code.RENEWAL_CODE_USED, "This renewal code was already used.")
    if row.license_id is not None and row.license_id != lic.id:
        raise ServiceError(Code.RENEWAL_NOT_APPLICABLE,
                           "This renewal code is for another license of this product.")
    if row.redeemed_at is None:
        if is_perpetual(lic):
            raise ServiceError(Code.RENEWAL_NOT_APPLICABLE,
                               "This license is perpetual: it needs no renewal.")
        if lic.kind == Kind.TEST.value:  # a developer's code keeps its few days
            raise ServiceError(Code.RENEWAL_NOT_APPLICABLE,
                               "A test code cannot be renewed: ask for a new one.")
        add_days(lic, row.days, now)
        row.redeemed_at = now
        row.redeemed_license_id = lic.id
        lic.updated_at = now
        audit(session, "sdk", "license.renew", at=now, product_id=lic.product_id,
              license_id=lic.id, activation_id=activation.id,
              detail={"days": row.days, "renewal_code_id": row.id})
    activation.last_seen_at = now
    session.flush()
    token = issue_for(session, ctx, activation, nonce=nonce, now=now)
    expires = lic.expires_at
    session.commit()
    return Renewed(token=token, nonce=nonce, server_time=now, license_expires_at=expires)
