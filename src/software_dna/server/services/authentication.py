"""Authenticating an end user's request: an activation id and its secret.

Activation secrets are derived, not stored: ``secret = "sas_" +
b64url(HMAC(master-derived key, activation id))``; the database keeps only
its SHA-256, compared in constant time.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.models import Activation
from software_dna.server.services.common import Context
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["authenticate", "authenticate_live", "authentication_failed", "unauthorized"]

# A well-formed hash that no secret has: compared against when the activation is unknown,
# so that unknown and wrong answers take the same time.
_DUMMY_HASH = "0" * 64


def unauthorized() -> ServiceError:
    """401 ``unauthorized``: one answer for an unknown activation, a missing or wrong secret."""
    return ServiceError(Code.UNAUTHORIZED, "Missing or wrong activation secret.")


def authenticate(session: Session, ctx: Context, activation_id: str, secret: str | None,
                 *, lock: bool = False) -> Activation:
    """The activation ``activation_id`` if ``secret`` is its secret (constant-time check).

    ``lock``: the row is then locked (``FOR UPDATE``) for the rest of the
    transaction -- only after the secret checked out, so a request with a
    wrong secret never holds a lock on someone's activation.

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown activation, missing or wrong
        secret: the same answer for all three).
    """
    query = select(Activation).where(Activation.id == activation_id)
    activation = session.scalars(query).one_or_none()
    if authentication_failed(ctx, activation.secret_hash if activation is not None else None,
                             secret):
        raise unauthorized()
    assert activation is not None
    if lock:
        locked = session.scalars(
            query.with_for_update(of=Activation).execution_options(populate_existing=True)
        ).one_or_none()
        if locked is None:  # removed meanwhile
            raise unauthorized()
        activation = locked
    return activation


def authentication_failed(ctx: Context, stored_hash: str | None, secret: str | None) -> bool:
    """True unless ``secret`` matches ``stored_hash`` (None: no such activation).

    The comparison is constant-time and is made whether or not the activation
    exists, so an unknown activation, a missing secret and a wrong one take
    the same time and get the same answer.
    """
    expected = stored_hash if stored_hash is not None else _DUMMY_HASH
    given = ctx.vault.secret_hash(secret or "")
    return not ctx.vault.same(given, expected) or stored_hash is None or not secret


def authenticate_live(session: Session, ctx: Context, activation_id: str,
                      secret: str | None) -> Activation:
    """:func:`authenticate`, then refuse a deactivated activation (410 ``activation_removed``)."""
    activation = authenticate(session, ctx, activation_id, secret)
    if activation.deactivated_at is not None:
        raise ServiceError(Code.ACTIVATION_REMOVED, "This activation was removed.")
    return activation
