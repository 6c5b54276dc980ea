"""Machine bindings: where the server keeps the component sets it compares.

Invariants (each has a test in tests/server/test_identity_advisory.py):

- "Same machine?" is decided only by :func:`software_dna.wire.identity.compare`
  (algorithm 2) or :func:`~software_dna.wire.identity.compare_legacy`
  (algorithm 1, existing activations only) between a set this module
  stored and the set the client sent.  Nothing the client chose (an id,
  a key) decides it; the activation's ``fingerprint_id`` is an opaque
  server id (``fp_<random>``) handed out in tokens and never compared.
- Component sets are stored sealed (AES-256-GCM, ``Vault.seal_components``,
  associated data = binding id + product id) in ``machine_bindings``; the
  look-up index ``binding_index`` holds HMACs of ``product \\0 name \\0
  hash`` of the identifying components only.  A database copy without the
  master key holds no component hash.
- Every set an activation was ever bound to is kept (its history), so a
  trial machine that re-bound is still recognised and an erased machine
  coming back is known.
- A re-bind happens only when the current set and the sent one are the same
  machine; it is bounded by the product's ``rebind_limit`` per
  ``rebind_period`` seconds; returning to a set bound in the last
  :data:`KNOWN_SET_MEMORY` is not a new re-bind; a migration from
  algorithm 1 (``previous`` matched by ``compare_legacy``) is not counted.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from software_dna.server.models import (
    Activation,
    AuditEntry,
    BindingIndex,
    License,
    MachineBinding,
)
from software_dna.server.services import sharing
from software_dna.server.services.common import Context, audit, new_id
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.messages import FingerprintData
from software_dna.wire import identity
from software_dna.wire.codes import Code

__all__ = [
    "KNOWN_SET_MEMORY",
    "MACHINE_ID_RETURN_ACTION",
    "Bound",
    "bind",
    "bound_sets",
    "candidate_activations",
    "clamp_tolerance",
    "current",
    "decode_components",
    "invalid_fingerprint",
    "machine_id_change_allowed",
    "machine_id_only",
    "migrate",
    "new_fingerprint_id",
    "parse_fingerprint",
    "rebind",
    "rebinds_in_period",
    "require_available",
    "require_exact_machine",
    "require_current_algorithm",
    "same_as",
    "touch",
]

#: Returning to a set the activation was bound to this recently is not a new re-bind.
KNOWN_SET_MEMORY = timedelta(days=90)
#: The audit action of a counted re-bind (the count reads the audit log).
REBIND_ACTION = "activation.rebind"
#: A re-bind where only the machine id changed on unchanged hardware (not counted).
MACHINE_ID_REBIND_ACTION = "activation.rebind_machine_id"
#: Machine-id-only re-binds allowed per period for each counted one of ``rebind_limit``
#: (3 -> 60 per 30 days: two boots a day); past that they are counted as any other.
MACHINE_ID_REBINDS_PER_COUNTED = 20
#: The audit action of a return (deactivate, then activate again) where only the machine
#: id changed on unchanged hardware (not counted by the lock-out; see services/seats.py).
MACHINE_ID_RETURN_ACTION = "activation.return_machine_id"


@dataclass(frozen=True)
class Bound:
    """One stored binding, opened.

    Attributes:
        binding_id: ``machine_bindings.id``.
        algorithm: 1 (0.1 SDKs: name -> HMAC) or 2 (:mod:`~software_dna.wire.identity`).
        components: the set in normal form (algorithm 2: ``parse_components``
            output; algorithm 1: name -> hash).
        bound_at, last_seen_at: aware UTC.
    """

    binding_id: str
    algorithm: int
    components: Mapping[str, Any]
    bound_at: datetime
    last_seen_at: datetime


def invalid_fingerprint(message: str) -> ServiceError:
    """400 ``invalid_fingerprint`` with ``message`` (which never echoes a value sent)."""
    return ServiceError(Code.INVALID_FINGERPRINT, message)


def new_fingerprint_id() -> str:
    """A fresh opaque fingerprint id (``fp_`` + 22 random base64url characters)."""
    return "fp_" + secrets.token_urlsafe(16)


def clamp_tolerance(tolerance: int) -> int:
    """A product's tolerance as used in comparisons: 0..``identity.MAX_TOLERANCE``."""
    return max(0, min(int(tolerance), identity.MAX_TOLERANCE))


def require_available(fingerprint: FingerprintData, tolerance: int) -> None:
    """Refuse an algorithm-2 set with more unavailable components than ``tolerance``.

    Such a machine could never match itself (every ``null`` counts as a
    difference), so it is refused before anything is stored.

    Raises:
        ServiceError: 400 ``invalid_fingerprint`` naming the unavailable components.
    """
    if fingerprint.algorithm != identity.ALGORITHM:
        return
    missing = identity.unavailable(fingerprint.components)
    if len(missing) > tolerance:
        names = ", ".join(sorted(missing))
        raise invalid_fingerprint(
            f"This computer cannot read these fingerprint components: {names}; this product "
            f"allows {tolerance} unavailable. Run the app with the rights to read them (or "
            "restore the machine id / network card), or ask the vendor.")


def require_exact_machine(fingerprint: FingerprintData, what: str) -> None:
    """Refuse, before anything is taken, a set that could never match itself exactly.

    Trials and air-gapped activations are bound to the machine exactly
    (tolerance 0: nothing would later catch a copy), and a component the
    machine cannot read counts as a difference even against itself. Allowing
    for it instead would let a client that *claims* a part unreadable spend
    that allowance on another machine (a padded MAC list), so such a machine
    is told plainly that it needs the online way.

    Args:
        fingerprint: the set sent.
        what: what is asked for, for the message (``"a trial"``, ...).

    Raises:
        ServiceError: 400 ``invalid_fingerprint`` naming the unreadable components.
    """
    if fingerprint.algorithm != identity.ALGORITHM:
        return
    missing = identity.unavailable(fingerprint.components)
    if missing:
        names = ", ".join(sorted(missing))
        raise invalid_fingerprint(
            f"This computer cannot read these fingerprint components: {names}. {what} needs "
            "every one of them (it is bound to this computer exactly); activate online with "
            "the license key instead, or restore the machine id / network card.")


def require_current_algorithm(fingerprint: FingerprintData) -> None:
    """Refuse a fingerprint of another algorithm than 2 (activate, trial, air-gapped).

    Raises:
        ServiceError: 400 ``invalid_fingerprint``.
    """
    if fingerprint.algorithm != identity.ALGORITHM:
        raise invalid_fingerprint(
            f"New activations need fingerprint algorithm {identity.ALGORITHM}: update the "
            "app's licensing SDK.")


def parse_fingerprint(algorithm: int, components: object,
                      previous: object | None = None) -> FingerprintData:
    """Validate a fingerprint from a request body (algorithm 2, or 1 for old SDKs).

    Which algorithm a request may use is the service's decision
    (:func:`require_current_algorithm`); here only the shape is checked.

    Args:
        algorithm: the ``algorithm`` sent.
        components: the decoded JSON ``components``.
        previous: the decoded JSON ``previous.components`` (algorithm 1), or None.

    Raises:
        ServiceError: 400 ``invalid_fingerprint`` (an unknown algorithm, or a
            set :func:`identity.parse_components` /
            :func:`identity.parse_legacy_components` refuses; the message
            names the rule, never a value sent).
    """
    try:
        if algorithm == identity.ALGORITHM:
            parsed: Mapping[str, Any] = identity.parse_components(components)
        elif algorithm == identity.LEGACY_ALGORITHM:
            if previous is not None:
                raise identity.InvalidFingerprint(
                    "'previous' goes with an algorithm 2 fingerprint.")
            parsed = identity.parse_legacy_components(components)
        else:
            raise identity.InvalidFingerprint(
                f"Unknown fingerprint algorithm: this server knows {identity.ALGORITHM} "
                f"(and {identity.LEGACY_ALGORITHM} for existing activations).")
        old = None if previous is None else identity.parse_legacy_components(previous)
    except identity.InvalidFingerprint as exc:
        raise invalid_fingerprint(str(exc)) from None
    return FingerprintData(algorithm=algorithm, components=parsed, previous=old)


# --------------------------------------------------------------------------- storage


def _encode(components: Mapping[str, Any]) -> bytes:
    return json.dumps(identity.to_json(components), sort_keys=True,
                      separators=(",", ":")).encode("utf-8")


def _decode(algorithm: int, plaintext: bytes) -> dict[str, Any]:
    raw = json.loads(plaintext)
    if algorithm == identity.ALGORITHM:
        return identity.parse_components(raw)
    return identity.parse_legacy_components(raw)


def decode_components(ctx: Context, binding_id: str, product_id: str, algorithm: int,
                      ciphertext: bytes) -> dict[str, Any]:
    """A stored binding's set in normal form.

    Raises:
        DecryptionError: another master key, or a ciphertext moved to another row.
        ValueError: the plaintext is no component set (a damaged row).
    """
    plaintext = ctx.vault.open_components(ciphertext, binding_id=binding_id,
                                          product_id=product_id)
    return _decode(algorithm, plaintext)


def _open(ctx: Context, row: MachineBinding) -> Bound:
    return Bound(binding_id=row.id, algorithm=row.algorithm,
                 components=decode_components(ctx, row.id, row.product_id, row.algorithm,
                                              row.components_ciphertext),
                 bound_at=row.bound_at, last_seen_at=row.last_seen_at)


def bind(session: Session, ctx: Context, activation: Activation, product_id: str, *,
         algorithm: int, components: Mapping[str, Any], now: datetime,
         binding_id: str | None = None) -> MachineBinding:
    """Store a new binding of ``activation`` and make it current; does not commit.

    Algorithm-2 sets are indexed (:func:`identity.index_terms`); algorithm-1
    sets are kept only to validate and migrate existing activations.
    ``binding_id``: the new binding's id, for an activation created with it
    already set (no UPDATE after its INSERT); None: a new one.
    """
    binding_id = new_id("bnd") if binding_id is None else binding_id
    row = MachineBinding(
        id=binding_id, product_id=product_id, activation_id=activation.id,
        algorithm=algorithm,
        components_ciphertext=ctx.vault.seal_components(
            _encode(components), binding_id=binding_id, product_id=product_id),
        bound_at=now, last_seen_at=now)
    session.add(row)
    session.flush()  # the index rows reference it (no ORM relationship orders them)
    if algorithm == identity.ALGORITHM:
        terms = {ctx.vault.binding_term(product_id, name, value)
                 for name, value in identity.index_terms(components)}
        session.add_all(BindingIndex(binding_id=binding_id, term=term) for term in terms)
    activation.binding_id = binding_id
    return row


def current(session: Session, ctx: Context, activation: Activation) -> Bound | None:
    """The activation's current binding, opened (None: never bound, which 0005 rules out)."""
    if activation.binding_id is None:
        return None
    row = session.get(MachineBinding, activation.binding_id)
    return None if row is None else _open(ctx, row)


def bound_sets(session: Session, ctx: Context, activation_ids: Iterable[str], *,
               since: datetime | None = None) -> list[tuple[str, Bound]]:
    """``(activation id, binding)`` for every set these activations were bound to.

    Args:
        activation_ids: the activations.
        since: only bindings seen at or after this time (None: all).
    """
    ids = list(activation_ids)
    if not ids:
        return []
    query = select(MachineBinding).where(MachineBinding.activation_id.in_(ids))
    if since is not None:
        query = query.where(MachineBinding.last_seen_at >= since)
    rows = session.scalars(query.order_by(MachineBinding.bound_at, MachineBinding.id))
    return [(row.activation_id, _open(ctx, row)) for row in rows]


def candidate_activations(session: Session, ctx: Context, product_id: str,
                          components: Mapping[str, Any]) -> set[str]:
    """Activations of the product with a binding sharing an identifying component.

    Every match needs an equal identifying component, so every activation
    that can be the same machine is among these (a superset: the caller
    still compares).
    """
    terms = {ctx.vault.binding_term(product_id, name, value)
             for name, value in identity.index_terms(components)}
    if not terms:
        return set()
    return set(session.scalars(
        select(MachineBinding.activation_id).distinct()
        .join(BindingIndex, BindingIndex.binding_id == MachineBinding.id)
        .where(BindingIndex.term.in_(sorted(terms)),
               MachineBinding.product_id == product_id)))


#: Steps of drift followed from the set sent (each step: another activation's history).
LINK_DEPTH = 3
#: Most activations one look-up follows (a public route must not walk the whole table).
LINK_LIMIT = 200


def linked_activations(session: Session, ctx: Context, product_id: str,
                       components: Mapping[str, Any], tolerance: int) -> set[str]:
    """Activations of the product that were ever this machine, following drift.

    An activation's bindings history is one machine drifting (a re-bind is
    only ever to the same machine), so a machine that drifted on a *paid*
    activation is still linked to the trial it started before: the set sent
    matches some set of activation X, any set of X's history matches some
    set of activation Y, and so on, up to :data:`LINK_DEPTH` steps and
    :data:`LINK_LIMIT` activations. Algorithm-2 sets only.
    """
    found: set[str] = set()
    frontier: list[Mapping[str, Any]] = [components]
    for _ in range(LINK_DEPTH):
        matched: set[str] = set()
        for wanted in frontier:
            candidates = candidate_activations(session, ctx, product_id, wanted) - found
            for activation_id, bound in bound_sets(session, ctx, sorted(candidates)[:LINK_LIMIT]):
                if bound.algorithm == identity.ALGORITHM and identity.compare(
                        bound.components, wanted, tolerance).same:
                    matched.add(activation_id)
        new = matched - found
        found |= new
        if not new or len(found) >= LINK_LIMIT:
            break
        frontier = [bound.components for _, bound in bound_sets(session, ctx, sorted(new))
                    if bound.algorithm == identity.ALGORITHM]
    return found


def same_as(stored: Bound | None, fingerprint: FingerprintData, tolerance: int, *,
            anchors: frozenset[str] = identity.IDENTIFYING) -> identity.Comparison | None:
    """The comparison of a stored set with the one sent; None when they cannot be compared
    or are not the same machine.

    Sets of two algorithms never match (algorithm 1 hashes are HMACs, 2 are
    scrypt hashes of other inputs); algorithm 1 pairs go through
    :func:`identity.compare_legacy`. ``anchors``: as for :func:`identity.compare`.
    """
    if stored is None or stored.algorithm != fingerprint.algorithm:
        return None
    if stored.algorithm == identity.ALGORITHM:
        result = identity.compare(stored.components, fingerprint.components, tolerance,
                                  anchors=anchors)
        return result if result.same else None
    legacy = identity.compare_legacy(stored.components, fingerprint.components, tolerance)
    if not legacy:
        return None
    differing = frozenset(name for name in set(stored.components) | set(fingerprint.components)
                          if stored.components.get(name) != fingerprint.components.get(name))
    return identity.Comparison(same=True, differing=differing, conflicting=differing,
                               identifying_equal=True)


# --------------------------------------------------------------------------- re-binding


def _machine_id_only(bound: Bound | None, fingerprint: FingerprintData,
                     differing: Iterable[str]) -> bool:
    """Only the machine id changed, from one readable value to another: every other
    component equal, the MAC set exactly."""
    if bound is None or bound.algorithm != identity.ALGORITHM or \
            fingerprint.algorithm != identity.ALGORITHM or set(differing) != {"machine_id"}:
        return False
    before, after = bound.components, fingerprint.components
    return (before.get("machine_id") is not None and after.get("machine_id") is not None
            and before.get("mac") is not None and before.get("mac") == after.get("mac"))


def machine_id_only(stored: Bound | None, fingerprint: FingerprintData) -> bool:
    """True when the set sent is ``stored`` with only the machine id changed.

    Both sets algorithm 2, every component equal but ``machine_id``, the MAC
    set exactly equal, and both machine ids readable (an id that became
    unreadable is not a regenerated one).
    """
    if stored is None or stored.algorithm != identity.ALGORITHM \
            or fingerprint.algorithm != identity.ALGORITHM:
        return False
    before, after = stored.components, fingerprint.components
    differing = {name for name in set(before) | set(after) if before.get(name) != after.get(name)}
    return _machine_id_only(stored, fingerprint, differing)


def machine_id_change_allowed(session: Session, lic: License, now: datetime) -> bool:
    """May one more machine-id-only return on license ``lic`` go uncounted?

    The bound of machine-id-only re-binds, taken over the whole license:
    fewer than ``MACHINE_ID_REBINDS_PER_COUNTED x max(rebind_limit, 1) x
    seats`` machine-id-only re-binds *and* returns of all its activations in
    the last ``rebind_period`` seconds (the audit log, which the server
    writes).  A return starts a new activation with a re-bind budget of its
    own, so the license-wide count is what keeps returns from renewing that
    budget: two machines taking turns get at most twice the re-bind bound
    per seat before every turn counts.  ``rebind_limit`` None (re-binds not
    bounded): always True, as machine-id re-binds already are.
    """
    product = lic.product
    if product.rebind_limit is None:
        return True
    used = int(session.scalar(
        select(func.count()).select_from(AuditEntry).where(
            AuditEntry.license_id == lic.id,
            AuditEntry.action.in_((MACHINE_ID_REBIND_ACTION, MACHINE_ID_RETURN_ACTION)),
            AuditEntry.at > now - timedelta(seconds=product.rebind_period))) or 0)
    return used < MACHINE_ID_REBINDS_PER_COUNTED * max(product.rebind_limit, 1) * max(lic.seats, 1)


def _count(session: Session, activation: Activation, action: str, period: int,
           now: datetime) -> int:
    return int(session.scalar(
        select(func.count()).select_from(AuditEntry).where(
            AuditEntry.license_id == activation.license_id,
            AuditEntry.activation_id == activation.id,
            AuditEntry.action == action,
            AuditEntry.at > now - timedelta(seconds=period))) or 0)


def rebinds_in_period(session: Session, activation: Activation, period: int,
                      now: datetime) -> int:
    """Counted re-binds of ``activation`` in the last ``period`` seconds."""
    return _count(session, activation, REBIND_ACTION, period, now)


def _known(session: Session, ctx: Context, activation: Activation,
           components: Mapping[str, Any], now: datetime) -> MachineBinding | None:
    """A binding of ``activation`` seen in the last 90 days holding exactly ``components``."""
    for _, bound in bound_sets(session, ctx, [activation.id], since=now - KNOWN_SET_MEMORY):
        if bound.algorithm == identity.ALGORITHM and dict(bound.components) == dict(components):
            return session.get(MachineBinding, bound.binding_id)
    return None


def rebind(session: Session, ctx: Context, activation: Activation, fingerprint: FingerprintData,
           differing: Iterable[str], *, now: datetime, enforce_limit: bool = True) -> bool:
    """Bind ``activation`` to the set sent, which the caller found to be the same machine.

    Does not commit.  A set bound in the last 90 days becomes current again
    without counting; a new set is a re-bind, audited ``activation.rebind``
    with the names that differed (never values) and bounded by the product's
    ``rebind_limit`` per ``rebind_period``.

    Args:
        enforce_limit: False where going past the bound must not fail the
            request (a re-activation keeps its old binding instead).

    Returns:
        True when the current binding changed, False when the bound was
        reached and ``enforce_limit`` is False.

    Raises:
        ServiceError: 403 ``wrong_machine`` past the bound (``enforce_limit``).
    """
    lic = activation.license
    product = lic.product
    # Sharing detection (services/sharing.py, i12-share) hooks in here: with the
    # current set, the set sent and the earlier sets (bound_sets), before the change.
    touch(session, activation, now)  # the set left now was current until now (90-day memory)
    known = _known(session, ctx, activation, fingerprint.components, now)
    if known is not None:
        # Back to a set bound before: A -> B -> A between conflicting sets is two
        # machines taking turns (services/sharing.py flags it).
        left = current(session, ctx, activation)
        if left is not None and left.algorithm == identity.ALGORITHM:
            earlier = [bound.components for _, bound in bound_sets(
                session, ctx, [activation.id], since=now - KNOWN_SET_MEMORY)
                if bound.binding_id != left.binding_id
                and bound.algorithm == identity.ALGORITHM]
            sharing.note_binding_change(session, activation, left.components,
                                        fingerprint.components, earlier)
        known.last_seen_at = now
        activation.binding_id = known.id
        audit(session, "sdk", "activation.rebind_known", at=now, product_id=product.id,
              license_id=lic.id, activation_id=activation.id,
              detail={"differing": sorted(differing)})
        return True
    if _machine_id_only(current(session, ctx, activation), fingerprint, differing) and (
            product.rebind_limit is None
            or _count(session, activation, MACHINE_ID_REBIND_ACTION, product.rebind_period, now)
            < MACHINE_ID_REBINDS_PER_COUNTED * max(product.rebind_limit, 1)):
        # A machine id regenerated at boot (WSL, read-only images) on unchanged
        # hardware: audited, not counted. Moving the seat to other hardware still
        # needs a counted step (another MAC set), and two machines taking turns
        # are flagged by the sharing checks, not by this bound.
        bind(session, ctx, activation, product.id, algorithm=fingerprint.algorithm,
             components=fingerprint.components, now=now)
        audit(session, "sdk", MACHINE_ID_REBIND_ACTION, at=now, product_id=product.id,
              license_id=lic.id, activation_id=activation.id,
              detail={"differing": ["machine_id"]})
        return True
    if (product.rebind_limit is not None
            and rebinds_in_period(session, activation, product.rebind_period, now)
            >= product.rebind_limit):
        if not enforce_limit:
            return False
        audit(session, "sdk", "activation.rebind_refused", at=now, product_id=product.id,
              license_id=lic.id, activation_id=activation.id,
              detail={"differing": sorted(differing)})
        session.commit()
        raise ServiceError(
            Code.WRONG_MACHINE,
            "This computer changed too often to keep its activation. Ask the vendor's support "
            "to free this computer's seat, then activate again with your license key.")
    bind(session, ctx, activation, product.id, algorithm=fingerprint.algorithm,
         components=fingerprint.components, now=now)
    audit(session, "sdk", REBIND_ACTION, at=now, product_id=product.id, license_id=lic.id,
          activation_id=activation.id, detail={"differing": sorted(differing)})
    return True


def migrate(session: Session, ctx: Context, activation: Activation,
            fingerprint: FingerprintData, *, now: datetime) -> None:
    """Re-bind an algorithm-1 activation to the algorithm-2 set sent; does not commit.

    The caller checked ``fingerprint.previous`` against the stored v1 set
    (:func:`identity.compare_legacy`).  Not counted as a re-bind; the v1
    bindings (host-name hashes included) are deleted: no v2 set can match
    them, and a host name is no longer kept.
    """
    product_id = activation.license.product_id
    session.execute(delete(MachineBinding).where(
        MachineBinding.activation_id == activation.id,
        MachineBinding.algorithm == identity.LEGACY_ALGORITHM))
    bind(session, ctx, activation, product_id, algorithm=fingerprint.algorithm,
         components=fingerprint.components, now=now)
    audit(session, "sdk", "activation.migrate", at=now, product_id=product_id,
          license_id=activation.license_id, activation_id=activation.id,
          detail={"from_algorithm": identity.LEGACY_ALGORITHM,
                  "to_algorithm": identity.ALGORITHM})


def touch(session: Session, activation: Activation, now: datetime) -> None:
    """Mark the current binding seen now (keeps it in the 90-day memory); no commit."""
    if activation.binding_id is not None:
        row = session.get(MachineBinding, activation.binding_id)
        if row is not None:
            row.last_seen_at = now
