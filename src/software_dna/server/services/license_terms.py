"""A license's term: when it ends, and the vendor's changes to it (docs/licenses.md).

A license's term is one of:

- perpetual: ``expires_at`` and ``duration_days`` both None;
- a fixed end: ``expires_at`` set when issued (or later);
- N days after the first activation: ``duration_days`` set, ``expires_at``
  filled in by :func:`start_term` at the first activation (evaluations and
  test codes always work this way).

The vendor extends a license (:func:`extend_license`), makes it perpetual
(:func:`make_perpetual`) or cancels a subscription
(:func:`cancel_subscription`): the license is then suspended with
``cancelled_at`` set; validations answer 403 ``subscription_cancelled`` with
a receipt, and the app keeps working until its current token ends.
Resuming the license (``resume_license``) re-activates the subscription.
Days are added to the current end, or to now when the license already
ended, so a lapsed license that is renewed runs for the full time bought.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from software_dna.server.domain.terms import MAX_DAYS, later_by
from software_dna.server.models import License
from software_dna.server.services.common import audit, utcnow
from software_dna.server.services.errors import ServiceError, conflict, invalid
from software_dna.server.services.lookups import get_license
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code

__all__ = [
    "add_days",
    "cancel_subscription",
    "extend_license",
    "is_perpetual",
    "make_perpetual",
    "start_term",
]


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


def is_perpetual(lic: License) -> bool:
    """True for a license with no end and no "N days after" term."""
    return lic.expires_at is None and lic.duration_days is None


def add_days(lic: License, days: int, now: datetime) -> None:
    """Add ``days`` to the term: to the end (or to now, if it passed); before the first
    activation, to ``duration_days``."""
    if lic.expires_at is None:
        assert lic.duration_days is not None
        lic.duration_days = min(lic.duration_days + days, MAX_DAYS * 10)
        return
    lic.expires_at = later_by(max(lic.expires_at, now), days)


def extend_license(session: Session, license_id: str, *, days: int | None = None,
                   until: datetime | None = None, actor: str = "admin",
                   allow_past: bool = True) -> License:
    """The vendor extends a timed license; commits.

    Args:
        license_id: the license.
        days: add this many days (1-3650) to the current end, or to now when
            the license already ended; before the first activation of an
            "N days after" license, to N.
        until: or move the end to this aware time (later than the current end).
        allow_past: False refuses an ``until`` in the past (the vendor did not
            confirm it; see ``licenses.check_expiry``).

    Raises:
        ServiceError: 404 ``not_found``; 400 ``invalid_request`` (neither or
        both of ``days`` / ``until``, out of range, earlier than the current
        end); 409 ``conflict`` (a perpetual, revoked or test-code license).
    """
    if (days is None) == (until is None):
        raise invalid("Give either days or until.")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise invalid(f"days must be 1 to {MAX_DAYS}.")
    if until is not None and until.tzinfo is None:
        raise invalid("until needs a time zone (UTC).")
    if until is not None and not allow_past and until <= utcnow():
        raise ServiceError(Code.INVALID_REQUEST, f"until: the date is in the past "
                           f"({until.year:04d}-{until:%m-%d %H:%M} UTC). Confirm it "
                           "(allow_past) if that is what you mean.", details={"field": "until"})
    lic = get_license(session, license_id, lock=True)
    if lic.status == "revoked":
        raise conflict("A revoked license cannot be extended.")
    if is_perpetual(lic):
        raise conflict("This license is perpetual: it has no end to extend.")
    if lic.kind == Kind.TEST.value:
        raise conflict("Test codes stay short-lived; reset it or issue a license instead.")
    now = utcnow()
    if days is not None:
        add_days(lic, days, now)
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
    lic = get_license(session, license_id, lock=True)
    if lic.status == "revoked":
        raise conflict("A revoked license cannot be changed; issue a new one.")
    if lic.kind == Kind.TEST.value:
        raise conflict("Test codes stay short-lived; issue a license instead.")
    now = utcnow()
    lic.expires_at = None
    lic.duration_days = None
    lic.kind = Kind.FULL.value
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
    lic = get_license(session, license_id, lock=True)
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
