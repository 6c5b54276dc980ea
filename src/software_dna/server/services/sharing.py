"""Secret rotation and sharing detection: one activation used on two computers.

Rotation.  An activation's secret has a generation (``Activation.secret_generation``,
the one handed out last) and rotates at every validation, so a copy of an
installation (its store copied to another computer, or a virtual machine
cloned) holds a secret that falls behind as soon as either side validates:

- the current generation ``c``: accepted; grace := ``c``; generation := ``c + 1``;
- the grace generation (the client holds it when the answer carrying the
  current one was lost): accepted; generation += 1; grace unchanged;
- any other, older, generation: the secret was copied -> the validation
  :func:`flag` s the activation and answers 410 ``activation_moved`` (:data:`MOVED`).

A re-activation on the same machine (reuse) hands out a new generation and
clears the grace one (:func:`reissue`): the old installation's secret becomes
old. An idempotent replay (a retry after a lost answer) does the same.
Generation 0 is the secret format of activations made before rotation.

Sharing detection flags an activation (``shared_at``, ``shared_reason`` =
:data:`COPIED_SECRET` or :data:`ALTERNATING_MACHINES`), audits
``activation.shared`` and applies the product's ``sharing_policy``:
``flag`` (only the mark) or ``suspend`` (the activation is deactivated with
``deactivated_by = "sharing"``; its next validation is 410 ``activation_removed``).

This module imports neither ``services.tokens`` nor ``services.bindings``: the
re-binding code (which ``tokens`` imports) calls :func:`note_binding_change`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from software_dna.server.domain.refusals import Refusal
from software_dna.server.domain.sharing import (
    ALTERNATING_MACHINES,
    COPIED_SECRET,
    DEACTIVATED_BY_SHARING,
    FLAG,
    SHARING_POLICIES,
    SUSPEND,
)
from software_dna.server.models import Activation
from software_dna.server.services.authentication import MOVED_MESSAGE
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.wire.codes import Code
from software_dna.wire.identity import HARDWARE_IDS, ComponentSet, conflicts, same_machine

__all__ = [
    "ALTERNATING_MACHINES",
    "COPIED_SECRET",
    "DEACTIVATED_BY_SHARING",
    "FLAG",
    "MOVED",
    "SHARING_POLICIES",
    "SUSPEND",
    "current_secret",
    "flag",
    "note_binding_change",
    "reissue",
    "rotate",
]

#: The signed 410 a validation presenting an outdated secret gets (after :func:`flag`).
MOVED = Refusal(Code.ACTIVATION_MOVED, MOVED_MESSAGE)


def _set_secret(ctx: Context, activation: Activation, generation: int) -> str:
    activation.secret_generation = generation
    secret = ctx.vault.activation_secret(activation.id, generation)
    activation.secret_hash = ctx.vault.secret_hash(secret)
    return secret


def current_secret(ctx: Context, activation: Activation) -> str:
    """The secret of the activation's current generation (an idempotent replay's answer)."""
    return ctx.vault.activation_secret(activation.id, activation.secret_generation)


def rotate(ctx: Context, activation: Activation, presented: int) -> str:
    """A validation presented the accepted generation ``presented``: the next secret. No commit.

    ``presented`` is the current generation (or above it: a database restored
    from an older backup): it becomes the grace generation. Otherwise it is
    the grace generation, which stays. Call with the row locked.

    Returns:
        The new secret (its generation is the new ``secret_generation``).
    """
    current = activation.secret_generation
    if presented >= current:
        activation.secret_grace = presented
    return _set_secret(ctx, activation, max(current, presented) + 1)


def reissue(ctx: Context, activation: Activation) -> str:
    """A re-activation on the same machine (reuse): a new generation, no grace. No commit.

    The installation that held the activation before gets no answer of this
    request, so every secret it holds is now outdated.
    """
    activation.secret_grace = None
    return _set_secret(ctx, activation, activation.secret_generation + 1)


def flag(session: Session, activation: Activation, reason: str, *, now: datetime,
         actor: str = "sdk") -> bool:
    """Mark ``activation`` as shared for ``reason`` and apply the product's policy. No commit.

    The first flag's time and reason stay (``shared_at``, ``shared_reason``);
    every detection is audited (``activation.shared``, ids and the reason only).

    Returns:
        True when the ``suspend`` policy deactivated the activation now.
    """
    if activation.shared_at is None:
        activation.shared_at = now
        activation.shared_reason = reason
    policy = activation.license.product.sharing_policy
    suspended = policy == SUSPEND and activation.deactivated_at is None
    if suspended:
        activation.deactivated_at = now
        activation.deactivated_by = DEACTIVATED_BY_SHARING
    audit(session, actor, "activation.shared", at=now,
          product_id=activation.license.product_id, license_id=activation.license_id,
          activation_id=activation.id,
          detail={"reason": reason, "policy": policy, "deactivated": suspended})
    return suspended


def _hardware_id_comes_and_goes(a: ComponentSet, b: ComponentSet) -> bool:
    """A machine id (or SMBIOS UUID) readable on one side only: for taking turns, as good
    as a conflict (a clone whose id is unreadable alternating with the original)."""
    return any((a.get(name) is None) != (b.get(name) is None)
               for name in HARDWARE_IDS if name in a or name in b)


def note_binding_change(session: Session, activation: Activation, old_set: ComponentSet,
                        new_set: ComponentSet, earlier_sets: Iterable[ComponentSet]) -> bool:
    """The activation is re-bound from ``old_set`` to ``new_set``: flag A -> B -> A. No commit.

    Called by the re-binding code with the sets the activation was bound to
    before ``old_set`` (``earlier_sets``, any order). Two machines taking
    turns with one activation make its bound set alternate: the new set
    conflicts with the one it replaces (:func:`identity.conflicts`: a
    component present on both sides differs) and is the same machine as one
    bound before that. A set that only drifted (no conflict with the one it
    replaces) or a first move is not flagged.

    Returns:
        True when the activation was flagged (``alternating_machines``).
    """
    if not conflicts(old_set, new_set) and not _hardware_id_comes_and_goes(old_set, new_set):
        return False
    tolerance = activation.license.product.fingerprint_tolerance
    if not any(same_machine(new_set, earlier, tolerance) for earlier in earlier_sets):
        return False
    flag(session, activation, ALTERNATING_MACHINES, now=utcnow())
    return True
