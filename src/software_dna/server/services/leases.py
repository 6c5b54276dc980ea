"""Floating (concurrent) licenses: leases taken, renewed (heartbeat) and returned.

A floating license lets any number of machines activate, but at most
``seats`` of them hold a *lease* at once.  A lease lasts the product's
``lease_duration`` seconds from its last renewal; the SDK's heartbeat (its
periodic check) renews it, :func:`take` at check-out, :func:`release` at
check-in.  A lease that is not renewed simply lapses: it stops counting, so
a crashed app does not hold a seat for ever.

Concurrency: every change to a license's leases first locks the license row
(``SELECT ... FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite),
so concurrent check-outs in any number of workers never hold more leases
than seats; the unique constraint on ``leases.activation_id`` keeps one
lease per activation.

Token terms (:func:`lease_terms`): a floating license's token carries
``seat_mode: "floating"`` and ``lease_expires_at`` (null when no lease is
held); its ``exp`` is capped at the lease's end and its ``refresh_by`` at
half the lease, so an app that checks regularly renews in time and an app
that is offline stops when the lease ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.orm import Session

from software_dna.server.models import Activation, Lease, License
from software_dna.server.services.common import audit, new_id
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = [
    "CULL_AFTER",
    "LeaseInfo",
    "cull_expired",
    "current_end",
    "earliest_end",
    "lease_terms",
    "leases_in_use",
    "list_leases",
    "lock_license",
    "on_validate",
    "release",
    "renew",
    "require_free",
    "take",
]

@dataclass(frozen=True)
class LeaseInfo:
    """A live lease as the vendor sees it (times aware UTC)."""

    activation_id: str
    fingerprint_id: str
    created_at: datetime
    renewed_at: datetime
    expires_at: datetime


def lock_license(session: Session, license_id: str) -> License:
    """The license row, locked for the rest of the transaction (see the module docstring)."""
    return session.scalars(
        select(License).where(License.id == license_id)
        .with_for_update(of=License).execution_options(populate_existing=True)
    ).one()


def _live(license_id: str, now: datetime) -> list[ColumnElement[bool]]:
    return [
        Lease.license_id == license_id,
        Lease.expires_at > now,
        Activation.deactivated_at.is_(None),
    ]


def leases_in_use(session: Session, license_id: str, now: datetime) -> int:
    """How many live leases the license has (lapsed ones and removed machines do not count)."""
    return int(session.scalar(
        select(func.count()).select_from(Lease)
        .join(Activation, Activation.id == Lease.activation_id)
        .where(*_live(license_id, now))
    ) or 0)


def earliest_end(session: Session, license_id: str, now: datetime) -> datetime | None:
    """When the first live lease of the license ends (None: no live lease)."""
    value: datetime | None = session.scalar(
        select(func.min(Lease.expires_at))
        .join(Activation, Activation.id == Lease.activation_id)
        .where(*_live(license_id, now))
    )
    return value


def list_leases(session: Session, license_id: str, now: datetime) -> list[LeaseInfo]:
    """The live leases of a license, earliest end first."""
    rows = session.execute(
        select(Lease, Activation.fingerprint_id)
        .join(Activation, Activation.id == Lease.activation_id)
        .where(*_live(license_id, now))
        .order_by(Lease.expires_at, Lease.id)
    ).all()
    return [LeaseInfo(activation_id=lease.activation_id, fingerprint_id=fp,
                      created_at=lease.created_at, renewed_at=lease.renewed_at,
                      expires_at=lease.expires_at) for lease, fp in rows]


def _no_seats(session: Session, lic: License, now: datetime) -> ServiceError:
    ends = earliest_end(session, lic.id, now)
    when = ends.strftime("%Y-%m-%d %H:%M:%S UTC") if ends is not None else "later"
    return ServiceError(
        Code.NO_SEATS_LEFT,
        f"Every floating seat of this license is in use ({lic.seats} of {lic.seats}). "
        f"The first one frees up at {when} unless it is renewed; try again then, or ask "
        "the vendor for more seats.",
        retry_after=max(1, int((ends - now).total_seconds() + 0.999)) if ends else None,
        retry_at=ends,
    )


def _own(session: Session, activation_id: str) -> Lease | None:
    return session.scalars(select(Lease).where(Lease.activation_id == activation_id)).first()


def require_free(session: Session, lic: License, now: datetime) -> None:
    """Raise 409 ``no_seats_left`` (with ``retry_at``) unless a lease is free.

    Call with the license row locked (:func:`lock_license`).
    """
    if leases_in_use(session, lic.id, now) >= lic.seats:
        raise _no_seats(session, lic, now)


def take(session: Session, lic: License, activation: Activation, now: datetime, *,
         actor: str = "sdk") -> Lease:
    """Check out (or renew) the activation's lease; does not commit.

    The license row must be locked (:func:`lock_license`).  A live lease of
    this activation is renewed; otherwise a new one is taken if fewer than
    ``seats`` leases are live.

    Raises:
        ServiceError: 409 ``no_seats_left`` with ``retry_at`` (the earliest
        end of a live lease) and ``retry_after``.
    """
    ends = now + timedelta(seconds=max(1, lic.product.lease_duration))
    lease = _own(session, activation.id)
    if lease is not None and lease.expires_at > now:
        lease.renewed_at = now
        lease.expires_at = ends
        return lease
    if leases_in_use(session, lic.id, now) >= lic.seats:
        audit(session, actor, "lease.no_seats", at=now, product_id=lic.product_id,
              license_id=lic.id, activation_id=activation.id)
        raise _no_seats(session, lic, now)
    if lease is None:
        lease = Lease(id=new_id("lse"), license_id=lic.id, activation_id=activation.id,
                      created_at=now, renewed_at=now, expires_at=ends)
        session.add(lease)
    else:  # a lapsed lease of this activation: taken again
        lease.created_at = now
        lease.renewed_at = now
        lease.expires_at = ends
    audit(session, actor, "lease.checkout", at=now, product_id=lic.product_id,
          license_id=lic.id, activation_id=activation.id)
    session.flush()
    return lease


def renew(session: Session, lic: License, activation: Activation, now: datetime) -> bool:
    """Renew the activation's lease if it is still live (the heartbeat); does not commit.

    A lapsed lease is *not* taken again here (its seat may be someone
    else's by now): that is :func:`take`'s job.  Returns True when renewed.
    """
    lock_license(session, lic.id)
    lease = _own(session, activation.id)
    if lease is None or lease.expires_at <= now:
        return False
    lease.renewed_at = now
    lease.expires_at = now + timedelta(seconds=max(1, lic.product.lease_duration))
    return True


def release(session: Session, activation: Activation, now: datetime, *,
            actor: str = "sdk") -> bool:
    """Return the activation's lease (check-in); does not commit. True if one was held."""
    deleted = session.execute(
        delete(Lease).where(Lease.activation_id == activation.id)
        .returning(Lease.expires_at)
    ).scalars().all()
    held = any(end > now for end in deleted)
    if held:
        audit(session, actor, "lease.checkin", at=now,
              product_id=activation.license.product_id, license_id=activation.license_id,
              activation_id=activation.id)
    return held


def current_end(session: Session, activation_id: str, now: datetime) -> datetime | None:
    """When the activation's live lease ends (None: it holds none)."""
    lease = _own(session, activation_id)
    return lease.expires_at if lease is not None and lease.expires_at > now else None


def on_validate(session: Session, lic: License, activation: Activation, action: str,
                now: datetime) -> None:
    """A validation's effect on a floating activation's lease; does not commit.

    ``action``: ``"take"`` (check-out: :func:`take`), ``"release"`` (check-in:
    :func:`release`) or ``"renew"`` (heartbeat: :func:`renew`).

    Raises:
        ServiceError: 409 ``no_seats_left`` (take).
    """
    if action == "take":
        take(session, lock_license(session, lic.id), activation, now)
    elif action == "release":
        release(session, activation, now)
    else:
        renew(session, lic, activation, now)


def lease_terms(session: Session, activation: Activation, *, now: datetime,
                refresh_by: datetime | None, expires: datetime | None,
                ) -> tuple[datetime | None, datetime | None, datetime | None]:
    """``(lease_expires_at, refresh_by, exp)`` of a floating activation's next token.

    ``lease_expires_at`` is the end of the activation's live lease (None: no
    lease held); ``exp`` is capped at it and ``refresh_by`` at half the lease,
    so the token never outlives the lease and the SDK renews in time.
    """
    lease = _own(session, activation.id)
    if lease is None or lease.expires_at <= now:
        return None, refresh_by, expires
    end = lease.expires_at
    half = now + (end - now) / 2
    half = half.replace(microsecond=0)
    refresh_by = half if refresh_by is None else min(refresh_by, half)
    expires = end if expires is None else min(expires, end)
    return end, refresh_by, expires


#: A lapsed lease row is kept this long (it may still be renewed by a late heartbeat
#: and shows in the lease list); :func:`cull_expired` deletes older ones.
CULL_AFTER = timedelta(days=1)


def cull_expired(session: Session, now: datetime) -> int:
    """Delete the leases that lapsed more than :data:`CULL_AFTER` ago (a scheduled job). Commits.

    A lapsed lease no longer counts against the seats; deleting it only keeps
    the table small.  Each license's row is locked first (as :func:`take`
    does), so a check-out reusing the row never races the delete.  Returns
    the number deleted.
    """
    cutoff = now - CULL_AFTER
    license_ids = list(session.scalars(
        select(Lease.license_id).where(Lease.expires_at < cutoff).distinct()))
    deleted = 0
    for license_id in license_ids:
        lock_license(session, license_id)
        result = session.execute(
            delete(Lease).where(Lease.license_id == license_id, Lease.expires_at < cutoff)
            .execution_options(synchronize_session=False))
        deleted += int(getattr(result, "rowcount", 0) or 0)
        session.commit()
    return deleted
