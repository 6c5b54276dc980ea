"""Timed licenses, renewal and subscriptions (docs/licenses.md).

A license's term is one of:

- perpetual: ``expires_at`` and ``duration_days`` both None;
- a fixed end: ``expires_at`` set when issued (or later);
- N days after the first activation: ``duration_days`` set, ``expires_at``
  filled in by :func:`start_term` at the first activation (evaluations and
  test codes always work this way).

Renewal adds days to the same license: the vendor with :func:`extend_license`
(admin API, CLI), or the end user with a single-use renewal code
(:func:`issue_renewal_codes`, :func:`redeem_renewal_code`).  Days are added
to the current end, or to now when the license already ended, so a lapsed
license that is renewed runs for the full time bought.  The next refresh
brings the app a token with the new ``license_expires_at``.

A subscription (``subscription=True``) needs the product's protection level
``mandatory``, so every app reaches the server within the refresh interval.
:func:`cancel_subscription` suspends it (``cancelled_at`` set); validations
then answer 403 ``subscription_cancelled`` with a receipt, and the app keeps
working until its current token ends -- the product's warning period --
then stops.  Resuming the license (``resume_license``) re-activates the
subscription.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from software_dna.server import licensekeys
from software_dna.server.models import License, Product, RenewalCode
from software_dna.server.service import ratelimit
from software_dna.server.service._common import (
    Context,
    ServiceError,
    audit,
    conflict,
    invalid,
    new_id,
    not_found,
    precise_now,
    utcnow,
)

__all__ = [
    "EVALUATION_MAX_DAYS",
    "KINDS",
    "MAX_DAYS",
    "TEST_CODE_MAX_DAYS",
    "Renewed",
    "cancel_subscription",
    "check_terms",
    "expired_message",
    "extend_license",
    "get_renewal_code",
    "issue_renewal_codes",
    "list_renewal_codes",
    "make_perpetual",
    "redeem_renewal_code",
    "start_term",
    "subscription_refusal",
]

#: The kinds of license (the token's ``kind`` claim).
KINDS = ("full", "trial", "evaluation", "test")
#: Longest term, extension or renewal code, in days (10 years).
MAX_DAYS = 3650
#: Evaluation keys run 1 to 60 days after their first activation.
EVALUATION_MAX_DAYS = 60
#: Test codes run 1 to 7 days after their first activation.
TEST_CODE_MAX_DAYS = 7
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


# --------------------------------------------------------------------------- terms


def check_terms(product: Product, *, kind: str, expires_at: datetime | None,
                duration_days: int | None, subscription: bool) -> None:
    """Refuse (400 ``invalid_request``) a combination of terms that makes no sense.

    Args:
        product: the license's product (its protection level matters).
        kind: ``full``, ``evaluation`` or ``test`` (trials are started by the app).
        expires_at: a fixed end (aware), or None.
        duration_days: days after the first activation, or None.
        subscription: True for a subscription.
    """
    if kind not in KINDS or kind == "trial":
        raise invalid("kind must be full, evaluation or test (trials are started by the app).")
    if expires_at is not None and duration_days is not None:
        raise invalid("Give either expires_at or expires_after_days, not both.")
    if duration_days is not None and not 1 <= duration_days <= MAX_DAYS:
        raise invalid(f"expires_after_days must be 1 to {MAX_DAYS}.")
    if kind == "evaluation" and (duration_days is None
                                 or duration_days > EVALUATION_MAX_DAYS):
        raise invalid(f"An evaluation key needs expires_after_days of 1 to "
                      f"{EVALUATION_MAX_DAYS}.")
    if kind == "test" and (duration_days is None or duration_days > TEST_CODE_MAX_DAYS):
        raise invalid(f"A test code runs 1 to {TEST_CODE_MAX_DAYS} days.")
    if subscription and kind != "full":
        raise invalid("Only a full license can be a subscription.")
    if subscription and product.protection != "mandatory":
        raise invalid("A subscription needs the product's protection level 'mandatory' "
                      "(so that a cancellation reaches every app).")


def start_term(lic: License, now: datetime) -> bool:
    """Record the license's first activation; start an "N days after" term. No commit.

    Returns True when this was the first activation.
    """
    if lic.first_activated_at is not None:
        return False
    lic.first_activated_at = now
    if lic.duration_days is not None and lic.expires_at is None:
        lic.expires_at = now + timedelta(days=lic.duration_days)
    return True


def subscription_refusal(lic: License) -> tuple[int, str, str] | None:
    """The refusal of a cancelled subscription, else None (used by validation)."""
    if lic.status == "suspended" and lic.cancelled_at is not None:
        return 403, "subscription_cancelled", (
            "The subscription was cancelled. Renew it with the vendor to keep using the product."
        )
    return None


def expired_message(kind: str) -> str:
    """The refusal message of an ended license, by its kind (what the end user reads)."""
    return {
        "trial": "The trial has ended. Buy a license to keep using the product.",
        "evaluation": "The evaluation period has ended. Buy a license to keep using the "
                      "product.",
        "test": "This test code has expired. Ask the vendor for a new one.",
    }.get(kind, "This license has expired. Renew it with the vendor.")


def _is_perpetual(lic: License) -> bool:
    return lic.expires_at is None and lic.duration_days is None


def _add_days(lic: License, days: int, now: datetime) -> None:
    """Add ``days`` to the term: to the end (or to now, if it passed); before the first
    activation, to ``duration_days``."""
    if lic.expires_at is None:
        assert lic.duration_days is not None
        lic.duration_days = min(lic.duration_days + days, MAX_DAYS * 10)
        return
    lic.expires_at = max(lic.expires_at, now) + timedelta(days=days)


def _get(session: Session, license_id: str, *, lock: bool = False) -> License:
    query = select(License).where(License.id == license_id)
    if lock:
        query = query.with_for_update(of=License).execution_options(populate_existing=True)
    lic = session.scalars(query).one_or_none()
    if lic is None:
        raise not_found("license")
    return lic


def extend_license(session: Session, license_id: str, *, days: int | None = None,
                   until: datetime | None = None, actor: str = "admin") -> License:
    """The vendor extends a timed license; commits.

    Args:
        license_id: the license.
        days: add this many days (1-3650) to the current end, or to now when
            the license already ended; before the first activation of an
            "N days after" license, to N.
        until: or move the end to this aware time (later than the current end).

    Raises:
        ServiceError: 404 ``not_found``; 400 ``invalid_request`` (neither or
        both of ``days`` / ``until``, out of range, earlier than the current
        end); 409 ``conflict`` (a perpetual or revoked license).
    """
    if (days is None) == (until is None):
        raise invalid("Give either days or until.")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise invalid(f"days must be 1 to {MAX_DAYS}.")
    if until is not None and until.tzinfo is None:
        raise invalid("until needs a time zone (UTC).")
    lic = _get(session, license_id, lock=True)
    if lic.status == "revoked":
        raise conflict("A revoked license cannot be extended.")
    if _is_perpetual(lic):
        raise conflict("This license is perpetual: it has no end to extend.")
    now = utcnow()
    if days is not None:
        _add_days(lic, days, now)
    else:
        assert until is not None
        if lic.expires_at is not None and until <= lic.expires_at:
            raise invalid("until must be later than the license's current end.")
        lic.expires_at = until
        lic.duration_days = None if lic.first_activated_at is None else lic.duration_days
    lic.updated_at = now
    audit(session, actor, "license.extend", at=now, product_id=lic.product_id,
          license_id=lic.id, detail={"days": days} if days is not None else {"until": True})
    session.commit()
    return lic


def make_perpetual(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """Convert a license to perpetual; commits.

    The end and the "N days after" term are dropped, a subscription stops
    being one (a cancelled subscription is resumed), and a trial or
    evaluation becomes a ``full`` license: the end user bought it.

    Raises:
        ServiceError: 404 ``not_found``; 409 ``conflict`` (revoked, or a test
        code: those stay short-lived).
    """
    lic = _get(session, license_id, lock=True)
    if lic.status == "revoked":
        raise conflict("A revoked license cannot be changed; issue a new one.")
    if lic.kind == "test":
        raise conflict("Test codes stay short-lived; issue a license instead.")
    now = utcnow()
    lic.expires_at = None
    lic.duration_days = None
    lic.kind = "full"
    if lic.cancelled_at is not None and lic.status == "suspended":
        lic.status = "active"
    lic.cancelled_at = None
    lic.subscription = False
    lic.updated_at = now
    audit(session, actor, "license.perpetual", at=now, product_id=lic.product_id,
          license_id=lic.id)
    session.commit()
    return lic


def cancel_subscription(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """Cancel a subscription: the license is suspended (``cancelled_at`` set); commits.

    Each app learns it at its next refresh (within the product's refresh
    interval, protection ``mandatory``) and stops when its token ends, after
    the warning period. Cancelling twice changes nothing.

    Raises:
        ServiceError: 404 ``not_found``; 409 ``conflict`` (not a subscription,
        or revoked).
    """
    lic = _get(session, license_id, lock=True)
    if not lic.subscription:
        raise conflict("This license is not a subscription.")
    if lic.status == "revoked":
        raise conflict("A revoked license cannot be changed.")
    if lic.cancelled_at is None:
        now = utcnow()
        lic.status = "suspended"
        lic.cancelled_at = now
        lic.updated_at = now
        audit(session, actor, "license.cancel", at=now, product_id=lic.product_id,
              license_id=lic.id)
        session.commit()
    return lic


# --------------------------------------------------------------------------- renewal codes


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
        lic = _get(session, license_id)
        if product_id is not None and product_id != lic.product_id:
            raise invalid("The license belongs to another product.")
        product_id = lic.product_id
    if product_id is None:
        raise invalid("Give the product or the license.")
    if session.get(Product, product_id) is None:
        raise not_found("product")
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


def get_renewal_code(session: Session, code_id: str) -> RenewalCode:
    """One renewal code; raises 404 ``not_found``."""
    row = session.get(RenewalCode, code_id)
    if row is None:
        raise not_found("renewal code")
    return row


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
    return ServiceError(404, "unknown_renewal_code",
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
    from software_dna.server.service.activations import authenticate, refuse_with_receipt
    from software_dna.server.service.tokens import issue_for

    settings = ctx.settings
    if client_address:
        ratelimit.hit(session, "addr:" + ctx.vault.address_key(client_address),
                      limit=settings.rate_limit_address_attempts,
                      window=settings.rate_limit_window)
    activation = authenticate(session, ctx, activation_id, secret)
    license_id = activation.license_id
    ratelimit.hit(session, "renew:" + license_id, limit=settings.rate_limit_attempts,
                  window=settings.rate_limit_window)
    now = utcnow()
    if activation.deactivated_at is not None:
        raise refuse_with_receipt(session, ctx, activation, (
            410, "activation_removed",
            "This activation was removed. Activate again with your license key."),
            nonce=nonce, now=now)
    lic = _get(session, license_id, lock=True)
    refusal = subscription_refusal(lic)
    if refusal is None and lic.status == "revoked":
        refusal = 403, "license_revoked", "This license was revoked by the vendor."
    if refusal is None and lic.status == "suspended":
        refusal = 403, "license_suspended", (
            "This license is suspended by the vendor. Contact the vendor to resume it.")
    if refusal is not None:
        raise refuse_with_receipt(session, ctx, activation, refusal, nonce=nonce, now=now)
    row = _find_code(session, ctx, code)
    if row is None or row.product_id != lic.product_id:
        audit(session, "sdk", "renewal_code.unknown", at=now, product_id=lic.product_id,
              license_id=lic.id, activation_id=activation.id)
        session.commit()
        raise _unknown_code()
    if row.redeemed_at is not None and row.redeemed_license_id != lic.id:
        raise ServiceError(409, "renewal_code_used", "This renewal code was already used.")
    if row.license_id is not None and row.license_id != lic.id:
        raise ServiceError(409, "renewal_not_applicable",
                           "This renewal code is for another license of this product.")
    if row.redeemed_at is None:
        if _is_perpetual(lic):
            raise ServiceError(409, "renewal_not_applicable",
                               "This license is perpetual: it needs no renewal.")
        _add_days(lic, row.days, now)
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
