"""Seats: machine and user seats, roll-over, floating leases at activation, the lock-out.

What a seat is depends on the license's ``seat_mode``:

- ``machine`` (default): a seat is a computer.  An activation of the same
  license from the same machine (its bound set and the set sent are the
  same machine by ``identity.compare``) reuses its seat.
- ``user``: a seat is a person.  Each activation is its own seat with its
  own (optional) email and registration details, erasable one by one; two
  OS accounts on one computer are two seats (the SDK sends a random
  ``installation_id`` per account and product), and the same account
  reinstalling reuses its seat.
- ``floating``: any number of machines may activate; at most ``seats`` of
  them hold a lease at once (:mod:`.leases`).  Activating also checks a
  lease out.

Roll-over (machine and user seats, ``licenses.rollover``): when every seat
is taken, the seat seen least recently (``last_seen_at``) is deactivated
(``deactivated_by = "rollover"``) and the new activation takes it; the moved
activation's next validation answers 410 ``activation_moved``.

Re-activation lock-out: every new activation is recorded in a ledger
(:class:`~software_dna.server.models.ActivationEvent`, with the keyed
hash of the client network).  In any window of the product's
``reactivation_period`` seconds a license may take ``seats +
reactivation_limit`` new activations (each seat once, plus that many
re-activations), and one client network ``address_activation_limit`` new
activations of the product.  Past either: 429 ``activation_locked`` with the
time the lock lifts (the oldest counted activation leaving the window).
The vendor sees and lifts it, with every other limit, through
:mod:`.lockouts` (CLI: ``software-dna lockouts show`` / ``reset``).

Not new activations, never counted and never locked out: idempotent
replays, same-machine reuse of a live activation, and a machine *coming
back* (:func:`returning_machine`): it released its own activation of the
license (the end user deactivated it, online) and no other machine has
activated the license since, so a developer deactivating and activating
their own computer in a loop takes nothing from anyone.  Seats cannot be
rotated that way: once another machine activated the license, a return
counts; "same machine" is the server's comparison of the bound set with
the set sent, anchored on the firmware/OS ids (a MAC list padded with the
other machine's addresses does not make a match); user seats also need the
same installation; a machine id regenerated at boot on an exactly equal MAC
set is a return within a license-wide bound; air-gapped activations always
count (the server never sees their machine again).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select, update
from sqlalchemy.orm import Session

from software_dna.server.domain.seats import (
    FLOATING,
    LEASE_DURATION_RANGE,
    LIMIT_RANGE,
    REACTIVATION_PERIOD_RANGE,
    seat_options_problem,
)
from software_dna.server.models import (
    Activation,
    ActivationEvent,
    License,
    Product,
)
from software_dna.server.services import bindings
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.errors import ServiceError, invalid
from software_dna.server.services.leases import leases_in_use, require_free, take
from software_dna.server.services.messages import FingerprintData
from software_dna.wire.codes import Code
from software_dna.wire.identity import HARDWARE_IDS, Comparison

__all__ = [
    "LockoutStatus",
    "Return",
    "after_activation",
    "SeatPolicy",
    "apply_seat_policy",
    "check_seat_options",
    "erase_user_seats",
    "find_reusable",
    "lockout_status",
    "make_room",
    "new_seat_erased",
    "address_lockout_status",
    "forget_activations",
    "returning_machine",
    "seats_used",
]

#: One new activation in this many prunes the product's lock-out ledger.
PRUNE_ONE_IN = 50

def check_seat_options(seat_mode: str, rollover: bool) -> None:
    """Raise 400 ``invalid_request`` for an unknown seat mode or roll-over of floating seats."""
    problem = seat_options_problem(seat_mode, rollover)
    if problem is not None:
        raise invalid(problem)


class SeatPolicy(TypedDict, total=False):
    """A product's seat policy; a key that is absent stays as it is.

    - ``lease_duration``: seconds a floating lease lasts from its last renewal
      (5 to 86400; a minute or more is sensible); None: unchanged.
    - ``reactivation_limit``: re-activations per license per period on top of
      its seats (0 to 100000); None: no lock-out.
    - ``reactivation_period``: the lock-out window in seconds (1 hour to 366
      days); None: unchanged.
    - ``address_activation_limit``: new activations per client address per
      period (0 to 100000); None: no lock-out by address.
    """

    lease_duration: int | None
    reactivation_limit: int | None
    reactivation_period: int | None
    address_activation_limit: int | None


def apply_seat_policy(product: Product, policy: SeatPolicy) -> list[str]:
    """Validate and set a product's seat policy; returns the names changed. Does not commit.

    Args:
        product: the product row.
        policy: the values to set (:class:`SeatPolicy`).

    Raises:
        ServiceError: 400 ``invalid_request`` (a value out of range).
    """
    changed: list[str] = []
    for name, value, (low, high) in (
        ("lease_duration", policy.get("lease_duration"), LEASE_DURATION_RANGE),
        ("reactivation_limit", policy.get("reactivation_limit"), LIMIT_RANGE),
        ("reactivation_period", policy.get("reactivation_period"), REACTIVATION_PERIOD_RANGE),
        ("address_activation_limit", policy.get("address_activation_limit"), LIMIT_RANGE),
    ):
        if name not in policy:
            continue
        if value is None and name in ("lease_duration", "reactivation_period"):
            continue
        if value is not None and not low <= value <= high:
            raise invalid(f"{name} must be {low} to {high}.")
        setattr(product, name, value)
        changed.append(name)
    return changed


def seats_used(session: Session, lic: License, now: datetime | None = None) -> int:
    """Seats in use: live activations (machine / user seats) or live leases (floating)."""
    if lic.seat_mode == FLOATING:
        return leases_in_use(session, lic.id, now or utcnow())
    return int(session.scalar(
        select(func.count()).select_from(Activation)
        .where(Activation.license_id == lic.id, Activation.deactivated_at.is_(None))
    ) or 0)


def find_reusable(session: Session, ctx: Context, lic: License, fingerprint: FingerprintData,
                  installation_id: str | None, *,
                  candidates: set[str] | None = None) -> tuple[Activation, Comparison] | None:
    """The live activation this machine (and, for user seats, this OS account) already
    holds, with the comparison of its bound set and the set sent.

    Only ``identity.compare`` between the current binding and the set sent
    decides; the newest matching activation wins. ``candidates``: what
    :func:`bindings.candidate_activations` answered for the set sent (None:
    asked here); only those activations are read.
    """
    if candidates is None:
        candidates = bindings.candidate_activations(session, ctx, lic.product_id,
                                                    fingerprint.components)
    if not candidates:
        return None
    query = select(Activation).where(
        Activation.license_id == lic.id,
        Activation.deactivated_at.is_(None),
        Activation.id.in_(sorted(candidates)),
    )
    if lic.seat_mode == "user":
        query = query.where(Activation.installation_id.is_(None) if installation_id is None
                            else Activation.installation_id == installation_id)
    tolerance = bindings.clamp_tolerance(lic.product.fingerprint_tolerance)
    for activation in sorted(session.scalars(query), key=lambda a: (a.created_at, a.id),
                             reverse=True):
        comparison = bindings.same_as(bindings.current(session, ctx, activation), fingerprint,
                                      tolerance)
        if comparison is not None:
            return activation, comparison
    return None


@dataclass(frozen=True)
class Return:
    """A machine coming back to the seat it released (:func:`returning_machine`).

    Attributes:
        released_id: the activation it released (the newest that matched).
        machine_id_only: it matched only by the machine-id-only rule; a free
            return of this kind is audited ``activation.return_machine_id``
            by :func:`make_room`, which is what the bound counts.
    """

    released_id: str
    machine_id_only: bool


def returning_machine(session: Session, ctx: Context, lic: License,
                      fingerprint: FingerprintData, installation_id: str | None, *,
                      offline: bool, candidates: set[str] | None = None) -> Return | None:
    """A :class:`Return` when this machine is coming back to the seat it released
    itself; None otherwise.

    The machine released an online activation of the license
    (``deactivated_by = "end_user"``) whose bound set is the same machine as
    the set sent -- ``identity.compare`` with the product's tolerance,
    anchored on :data:`~software_dna.wire.identity.HARDWARE_IDS` (a MAC list
    padded with another machine's addresses anchors nothing) -- and every
    activation of the license created since that release is the same machine.
    User seats (a seat is a person): the same *installation* too -- the
    released activation and every one since hold the installation id sent,
    so two OS accounts on one computer handing a seat back and forth count
    each turn (the installation id is the client's, but a client sending
    another account's id is that account: it reuses its seat, it takes
    none).

    A machine id regenerated at boot (WSL, read-only images): a released set
    that differs from the one sent only by a readable machine id, with the
    MAC set exactly equal (:func:`bindings.machine_id_only`), is the same
    machine too, within the license-wide bound of machine-id-only changes
    (:func:`bindings.machine_id_change_allowed`); past the bound it counts.
    So is a return where a part present on both sides changed (a new network
    card -- or a clone sharing the machine id with its own card, which the
    server cannot tell apart): free only within that same bound.

    Everything compared is what the server holds; the set sent only has to
    be the same machine by the server's rule.  Air-gapped requests are never
    returning: their machine is never seen again.  ``candidates``: as for
    :func:`find_reusable`.
    """
    if offline:
        return None
    user_seats = lic.seat_mode == "user"
    query = select(Activation).where(Activation.license_id == lic.id,
                                     Activation.deactivated_at.is_not(None),
                                     Activation.deactivated_by == "end_user",
                                     Activation.offline.is_(False))
    if user_seats:
        query = query.where(Activation.installation_id.is_(None) if installation_id is None
                            else Activation.installation_id == installation_id)
    if candidates is None:
        candidates = bindings.candidate_activations(session, ctx, lic.product_id,
                                                    fingerprint.components)
    if not candidates:
        return None
    tolerance = bindings.clamp_tolerance(lic.product.fingerprint_tolerance)

    def match(activation: Activation) -> bool | None:
        """True: the released machine as it was; False: the same machine by the
        bounded rules; None: another machine."""
        if activation.id not in candidates:
            return None
        stored = bindings.current(session, ctx, activation)
        result = bindings.same_as(stored, fingerprint, tolerance, anchors=HARDWARE_IDS)
        if result is not None:
            # A part present on both sides with another value may be honest drift (a
            # new network card) or a clone sharing the machine id with its own card:
            # the server cannot tell, so such returns share the machine-id bound.
            return not result.conflicting
        return False if bindings.machine_id_only(stored, fingerprint) else None

    def own(activation: Activation) -> bool:
        return not user_seats or activation.installation_id == installation_id

    matched = [(a, match(a)) for a in session.scalars(
        query.where(Activation.id.in_(sorted(candidates))))]
    released = [(a, exact) for a, exact in matched if exact is not None]
    if not released:
        return None
    last, exact = max(released, key=lambda r: (r[0].deactivated_at or r[0].created_at, r[0].id))
    since = session.scalars(select(Activation).where(
        Activation.license_id == lic.id, Activation.id != last.id,
        # the same second counts as after: seconds are the ledger's resolution
        Activation.created_at >= last.deactivated_at))
    if not all(own(a) and match(a) is not None for a in since):
        return None
    if not exact and not bindings.machine_id_change_allowed(session, lic, utcnow()):
        return None
    return Return(released_id=last.id, machine_id_only=not exact)


def new_seat_erased(session: Session, lic: License) -> bool:
    """True when a new activation of a user-seat license must start erased (limited).

    Once any seat of the license was erased, every *new* seat starts limited
    until the vendor restores the license: the server cannot tell the erased
    person coming back on a drifted or hand-made machine from a newcomer, and
    an erasure must never be undone by deactivating and activating again.
    The seats that were live and not erased keep their mode and their data.
    """
    if lic.seat_mode != "user":
        return False
    return session.scalar(select(Activation.id).where(
        Activation.license_id == lic.id, Activation.erased.is_(True)).limit(1)) is not None


# --------------------------------------------------------------------------- lock-out


def _times(session: Session, *conditions: ColumnElement[bool]) -> list[datetime]:
    return list(session.scalars(
        select(ActivationEvent.at).where(*conditions).order_by(ActivationEvent.at)
    ))


def _lifts(times: list[datetime], allowed: int, period: timedelta) -> datetime | None:
    """When the window holds fewer than ``allowed`` events again (None: not locked)."""
    if len(times) < allowed:
        return None
    return times[len(times) - allowed] + period


@dataclass(frozen=True)
class LockoutStatus:
    """A license's re-activation lock-out (times aware UTC, period in seconds)."""

    license_id: str
    activations_in_period: int
    allowed: int | None
    period: int
    locked_until: datetime | None


def lockout_status(session: Session, lic: License, now: datetime | None = None) -> LockoutStatus:
    """How many new activations the license had in its window, and until when it is locked."""
    now = now or utcnow()
    product = lic.product
    period = timedelta(seconds=product.reactivation_period)
    times = _times(session, ActivationEvent.license_id == lic.id,
                   ActivationEvent.at > now - period)
    allowed = (lic.seats + product.reactivation_limit
               if product.reactivation_limit is not None else None)
    return LockoutStatus(
        license_id=lic.id, activations_in_period=len(times), allowed=allowed,
        period=product.reactivation_period,
        locked_until=_lifts(times, allowed, period) if allowed is not None else None,
    )


def _locked(until: datetime, now: datetime, message: str) -> ServiceError:
    when = until.strftime("%Y-%m-%d %H:%M:%S UTC")
    return ServiceError(Code.ACTIVATION_LOCKED, f"{message} It lifts at {when}, or sooner "
                        "if the vendor resets it.",
                        retry_after=max(1, int((until - now).total_seconds() + 0.999)),
                        retry_at=until)


def _check_lockout(session: Session, lic: License, product: Product, *,
                   address_hash: str | None, now: datetime) -> None:
    period = timedelta(seconds=product.reactivation_period)
    if product.reactivation_limit is not None:
        times = _times(session, ActivationEvent.license_id == lic.id,
                       ActivationEvent.at > now - period)
        until = _lifts(times, lic.seats + product.reactivation_limit, period)
        if until is not None:
            raise _locked(until, now, "This license was activated on new computers too "
                          "often; activation is locked.")
    if product.address_activation_limit is not None and address_hash is not None:
        times = _times(session, ActivationEvent.product_id == product.id,
                       ActivationEvent.address_hash == address_hash,
                       ActivationEvent.at > now - period)
        until = _lifts(times, product.address_activation_limit, period)
        if until is not None:
            raise _locked(until, now, "Too many activations came from this network address; "
                          "activation from it is locked.")


def _count(result: object) -> int:
    return int(cast("CursorResult[Any]", result).rowcount or 0)


def address_lockout_status(session: Session, product: Product, address_hash: str,
                           now: datetime | None = None) -> LockoutStatus:
    """The per-network lock-out of ``product``: new activations from the network whose
    keyed hash is ``address_hash`` (``Vault.address_key``) in the period."""
    now = now or utcnow()
    period = timedelta(seconds=product.reactivation_period)
    times = _times(session, ActivationEvent.product_id == product.id,
                   ActivationEvent.address_hash == address_hash,
                   ActivationEvent.at > now - period)
    allowed = product.address_activation_limit
    return LockoutStatus(
        license_id="", activations_in_period=len(times), allowed=allowed,
        period=product.reactivation_period,
        locked_until=_lifts(times, allowed, period) if allowed is not None else None,
    )


def forget_activations(session: Session, *, license_id: str | None = None,
                       address_hash: str | None = None) -> int:
    """Forget the recorded new activations of a license or of a client network (every
    product); returns how many. Does not commit (``services.lockouts`` resets)."""
    condition = (ActivationEvent.license_id == license_id if license_id is not None
                 else ActivationEvent.address_hash == address_hash)
    if license_id is None and address_hash is None:
        return 0
    return _count(session.execute(delete(ActivationEvent).where(condition)))


# --------------------------------------------------------------------------- activation hooks


def make_room(session: Session, lic: License, *, address_hash: str | None,
              now: datetime, returning: Return | None = None) -> bool:
    """Before a new activation of the (locked) license: a free seat, then the lock-out.

    ``returning`` (:func:`returning_machine`): the machine is coming back to
    the seat it released, which is not a new activation, so the lock-out does
    not apply -- unless no seat is free and it would roll another machine
    over.  Returns whether the activation counts toward the lock-out.  A
    machine-id-only return that does not count is audited
    ``activation.return_machine_id`` here (committed with the activation),
    so refused attempts never use up the bound.

    Machine and user seats: when all are taken, roll over (if the license
    has it) or refuse.  Floating: a lease must be free (the activation takes
    it in :func:`after_activation`).  The seats come first, so that a full
    license without roll-over says so rather than "locked until ...", after
    which it would still be full.  A refusal is audited and committed.

    Raises:
        ServiceError: 429 ``activation_locked``; 409 ``no_seats_left`` (with
        ``retry_at`` for floating seats).
    """
    product = lic.product
    in_use = 0
    try:
        if lic.seat_mode == FLOATING:
            require_free(session, lic, now)
        else:
            in_use = seats_used(session, lic, now)
            if in_use >= lic.seats and not lic.rollover:
                raise ServiceError(
                    Code.NO_SEATS_LEFT,
                    "Every seat of this license is in use. Deactivate the license on one "
                    "of the computers that use it, or ask the vendor for more seats.",
                )
        counted = returning is None or (lic.seat_mode != FLOATING and in_use >= lic.seats)
        if counted:
            _check_lockout(session, lic, product, address_hash=address_hash, now=now)
    except ServiceError as exc:
        locked = exc.code is Code.ACTIVATION_LOCKED
        action = "activation.locked" if locked else "activation.no_seats"
        audit(session, "sdk", action, at=now, product_id=product.id, license_id=lic.id)
        session.commit()
        raise
    if returning is not None and returning.machine_id_only and not counted:
        audit(session, "sdk", bindings.MACHINE_ID_RETURN_ACTION, at=now, product_id=product.id,
              license_id=lic.id, activation_id=returning.released_id,
              detail={"differing": ["machine_id"]})
    if lic.seat_mode == FLOATING or in_use < lic.seats:
        return counted
    victims = session.scalars(
        select(Activation).where(Activation.license_id == lic.id,
                                 Activation.deactivated_at.is_(None),
                                 # An air-gapped machine would never learn it lost its
                                 # seat: only its deactivation receipt frees it.
                                 Activation.offline.is_(False))
        .order_by(Activation.last_seen_at, Activation.created_at, Activation.id)
        .limit(in_use - lic.seats + 1)
    ).all()
    if len(victims) < in_use - lic.seats + 1:
        audit(session, "sdk", "activation.no_seats", at=now, product_id=product.id,
              license_id=lic.id)
        session.commit()
        raise ServiceError(
            Code.NO_SEATS_LEFT,
            "Every seat of this license is in use, some by air-gapped computers that do not "
            "roll over. Deactivate it on one of them, or ask the vendor for more seats.",
        )
    for victim in victims:
        victim.deactivated_at = now
        victim.deactivated_by = "rollover"
        audit(session, "sdk", "activation.rollover", at=now, product_id=product.id,
              license_id=lic.id, activation_id=victim.id)
    return counted


def after_activation(session: Session, lic: License, activation: Activation, *,
                     created: bool, address_hash: str | None, now: datetime) -> None:
    """After an activation (new or reused) of the locked license; does not commit.

    ``created``: a new activation that counts (not a reuse, not a returning
    machine: what :func:`make_room` returned).  Records it in the lock-out
    ledger (pruning the product's entries older than its period) and, for a
    floating license, checks a lease out for it.

    Raises:
        ServiceError: 409 ``no_seats_left`` (floating, reused activation, no lease free).
    """
    if created:
        session.add(ActivationEvent(product_id=lic.product_id, license_id=lic.id,
                                    address_hash=address_hash, at=now))
    # Every read of the ledger is bounded by the period: pruning is housekeeping, done
    # now and then so that concurrent activations of a product rarely delete the same rows.
    if created and secrets.randbelow(PRUNE_ONE_IN) == 0:
        cutoff = now - timedelta(seconds=lic.product.reactivation_period)
        session.execute(delete(ActivationEvent).where(  # indexed on `at`: cheap
            ActivationEvent.product_id == lic.product_id, ActivationEvent.at <= cutoff))
    if lic.seat_mode == FLOATING:
        take(session, lic, activation, now)


def erase_user_seats(session: Session, license_ids: set[str], *, end_user_id: str | None,
                     activation_id: str | None) -> set[str]:
    """Per-seat erasure on user-seat licenses; returns the licenses it handled. Does not commit.

    On a ``user`` license each seat's personal data is its own: only the
    activations of ``end_user_id`` (and ``activation_id``, the one asking)
    are marked erased (their tokens become ``limited``); the license, its
    shared activation password and its other seats are left as they are.
    """
    handled = set(session.scalars(
        select(License.id).where(License.id.in_(license_ids), License.seat_mode == "user")
    ))
    if not handled:
        return handled
    who = []
    if end_user_id is not None:
        who.append(Activation.end_user_id == end_user_id)
    if activation_id is not None:
        who.append(Activation.id == activation_id)
    if who:
        session.execute(update(Activation).where(Activation.license_id.in_(handled),
                                                 or_(*who)).values(erased=True,
                                                                   label_ciphertext=None))
    return handled
