"""Authenticating an end user's request: an activation id and its secret.

Activation secrets are derived, not stored, and rotate at every validation
(:mod:`.sharing`): the secret of generation ``n`` is
:meth:`~software_dna.server.crypto.Vault.activation_secret` ``(id, n)``, and
says which generation it claims. A secret is genuine when it equals the
re-derived secret of the generation it claims (constant-time). The database
keeps the generation handed out last (``secret_generation``), the one the
client may still hold (``secret_grace``) and the SHA-256 of the current secret.

Which genuine generations a request may use: the current one, the grace one,
or one above the current (only the server can derive it: the database was
restored from a backup older than the secret). Any other -- older -- genuine
secret was copied from an installation that has validated since: validation
flags it (:func:`software_dna.server.services.sharing.flag`); the
other routes answer 410 ``activation_moved`` without changing anything.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.models import Activation
from software_dna.server.services.common import Context
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = [
    "MOVED_MESSAGE",
    "authenticate",
    "authenticate_generation",
    "authenticate_live",
    "generation_failed",
    "is_outdated",
    "unauthorized",
]

# An id no activation has: its secrets are derived (and compared against) when the
# activation is unknown, so that unknown and wrong answers take the same time.
_DUMMY_ID = "act_\0unknown"

#: The message of 410 ``activation_moved`` for a secret older than the ones accepted.
MOVED_MESSAGE = (
    "This activation was used on another computer since this one last checked the "
    "license (a copy of this installation). Activate again with your license key to "
    "use it here."
)


def unauthorized() -> ServiceError:
    """401 ``unauthorized``: one answer for an unknown activation, a missing or wrong secret."""
    return ServiceError(Code.UNAUTHORIZED, "Missing or wrong activation secret.")


def generation_failed(ctx: Context, activation_id: str | None, secret: str | None) -> int | None:
    """The generation of ``activation_id``'s secrets that ``secret`` is, or None.

    None: unknown activation (``activation_id`` None), missing, malformed or
    wrong secret. The derivation and the constant-time comparison are made in
    every case, so the four take the same time.
    """
    given = secret or ""
    claimed = ctx.vault.secret_generation(given)
    expected = ctx.vault.activation_secret(activation_id or _DUMMY_ID, claimed or 0)
    equal = ctx.vault.same(ctx.vault.secret_hash(given), ctx.vault.secret_hash(expected))
    if not equal or activation_id is None or claimed is None or not secret:
        return None
    return claimed


def is_outdated(generation: int, current: int, grace: int | None) -> bool:
    """True when a genuine secret of ``generation`` is older than every one accepted.

    Accepted: ``current``, ``grace`` (None: none) and anything above ``current``
    (see the module docstring).
    """
    return generation < current and generation != grace


def authenticate_generation(session: Session, ctx: Context, activation_id: str,
                            secret: str | None, *, lock: bool = False) -> tuple[Activation, int]:
    """The activation ``activation_id`` and the generation ``secret`` is, outdated or not.

    ``lock``: the row is then locked (``FOR UPDATE``) for the rest of the
    transaction -- only after the secret checked out, so a request with a
    wrong secret never holds a lock on someone's activation. The caller
    decides what an outdated generation means (:func:`is_outdated`).

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown activation, missing or
        wrong secret: the same answer for all three).
    """
    query = select(Activation).where(Activation.id == activation_id)
    activation = session.scalars(query).one_or_none()
    generation = generation_failed(ctx, activation.id if activation is not None else None,
                                   secret)
    if generation is None:
        raise unauthorized()
    assert activation is not None
    if lock:
        locked = session.scalars(
            query.with_for_update(of=Activation).execution_options(populate_existing=True)
        ).one_or_none()
        if locked is None:  # removed meanwhile
            raise unauthorized()
        activation = locked
    return activation, generation


def authenticate(session: Session, ctx: Context, activation_id: str, secret: str | None,
                 *, lock: bool = False) -> Activation:
    """The activation ``activation_id`` if ``secret`` is a secret it accepts (constant-time).

    ``lock``: as :func:`authenticate_generation`.

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown activation, missing or
        wrong secret: the same answer for all three); 410 ``activation_moved``
        (a genuine secret older than the accepted ones: nothing is changed
        here, the next validation flags it).
    """
    activation, generation = authenticate_generation(session, ctx, activation_id, secret,
                                                     lock=lock)
    if is_outdated(generation, activation.secret_generation, activation.secret_grace):
        raise ServiceError(Code.ACTIVATION_MOVED, MOVED_MESSAGE)
    return activation


def authenticate_live(session: Session, ctx: Context, activation_id: str,
                      secret: str | None) -> Activation:
    """:func:`authenticate`, then refuse a deactivated activation (410 ``activation_removed``)."""
    activation = authenticate(session, ctx, activation_id, secret)
    if activation.deactivated_at is not None:
        raise ServiceError(Code.ACTIVATION_REMOVED, "This activation was removed.")
    return activation
