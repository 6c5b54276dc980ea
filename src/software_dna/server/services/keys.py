"""Signing keys: generate, rotate, retire, export.

Each product has at most one ``active`` key (it signs every new token and
receipt), any number of ``trusted`` keys (no longer signing, still listed in
the exported public keys so that tokens they signed keep verifying) and
``retired`` keys (no longer exported: tokens they signed stop verifying in
app builds that drop them).  The secret halves are stored encrypted under
the master key and never leave the server.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.models import SigningKey
from software_dna.server.services import ledger
from software_dna.server.services.common import Context, audit, precise_now, utcnow
from software_dna.server.services.errors import ServiceError, conflict
from software_dna.server.services.lookups import get_product, get_signing_key
from software_dna.wire.codes import Code
from software_dna.wire.paseto import SecretKey

__all__ = [
    "active_signing_key",
    "generate_key",
    "list_keys",
    "public_keys",
    "retire_key",
    "rotate_key",
]


def _new_key(session: Session, ctx: Context, product_id: str, status: str) -> SigningKey:
    secret = SecretKey.generate()
    kid = secret.public_key.pid
    row = SigningKey(
        kid=kid,
        product_id=product_id,
        public_key=secret.public_key.to_paserk(),
        secret_ciphertext=ctx.vault.seal_signing_key(kid, secret),
        status=status,
        created_at=precise_now(),
        retired_at=None,
    )
    session.add(row)
    return row


def _active(session: Session, product_id: str) -> SigningKey | None:
    return session.scalars(
        select(SigningKey).where(
            SigningKey.product_id == product_id, SigningKey.status == "active"
        )
    ).one_or_none()


def generate_key(
    session: Session, ctx: Context, product_id: str, *, actor: str = "admin"
) -> SigningKey:
    """Generate a signing key for the product and commit.

    The product's first key becomes ``active``; later ones are added as
    ``trusted`` (publish them in the app first, then :func:`rotate_key` to one).

    Raises:
        ServiceError: 404 ``not_found`` (no such product).
    """
    get_product(session, product_id)
    status = "trusted" if _active(session, product_id) is not None else "active"
    row = _new_key(session, ctx, product_id, status)
    audit(session, actor, "key.generate", product_id=product_id, kid=row.kid,
          detail={"status": status})
    session.commit()
    return row


def rotate_key(
    session: Session, ctx: Context, product_id: str, *, kid: str | None = None,
    actor: str = "admin",
) -> SigningKey:
    """Make a new key (or the ``trusted`` key ``kid``) active; the old active key stays trusted.

    Commits.  Returns the new active key.

    Raises:
        ServiceError: 404 ``not_found`` (product or kid), 409 ``conflict`` (``kid``
        is retired or already active).
    """
    get_product(session, product_id)
    old = _active(session, product_id)
    new: SigningKey | None = None
    if kid is not None:
        new = get_signing_key(session, product_id, kid)
        if new.status != "trusted":
            raise conflict(f"The key is {new.status}; only a trusted key can become active.")
    if old is not None:
        old.status = "trusted"
        session.flush()  # free the one-active-key slot before taking it
    if new is None:
        new = _new_key(session, ctx, product_id, "active")
    else:
        new.status = "active"
    audit(session, actor, "key.rotate", product_id=product_id, kid=new.kid,
          detail={"previous": old.kid if old is not None else None})
    session.commit()
    return new


def retire_key(
    session: Session, ctx: Context, product_id: str, kid: str, *, actor: str = "admin"
) -> SigningKey:
    """Stop trusting a key: it is no longer exported and never signs again. Commits.

    The active key cannot be retired (rotate first).

    Raises:
        ServiceError: 404 ``not_found``, 409 ``conflict`` (the key is active).
    """
    row = get_signing_key(session, product_id, kid)
    if row.status == "active":
        raise conflict("The active key cannot be retired: rotate to a new key first.")
    if row.status != "retired":
        row.status = "retired"
        row.retired_at = utcnow()
        ledger.record(session, ledger.KEY_RETIRE, kid, at=row.retired_at,
                      detail={"product": product_id})
        audit(session, actor, "key.retire", product_id=product_id, kid=kid)
        session.commit()
    ctx.vault.forget_signing_key(kid)
    return row


def list_keys(session: Session, product_id: str) -> list[SigningKey]:
    """Every key of the product (oldest first), retired ones included.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    get_product(session, product_id)
    return list(
        session.scalars(
            select(SigningKey)
            .where(SigningKey.product_id == product_id)
            .order_by(SigningKey.created_at, SigningKey.kid)
        )
    )


def public_keys(session: Session, product_id: str) -> list[str]:
    """The PASERK ``k4.public`` strings the app must trust: active first, then trusted.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    keys = [k for k in list_keys(session, product_id) if k.status != "retired"]
    keys.sort(key=lambda k: k.status != "active")
    return [k.public_key for k in keys]


def active_signing_key(session: Session, ctx: Context, product_id: str) -> SecretKey:
    """The decrypted active key of the product (cached per process).

    Raises:
        ServiceError: 503 ``no_signing_key`` when the vendor has not generated one.
    """
    # Every token and receipt comes through here: read only the active kid, and the
    # sealed key only when this process has not decrypted that key yet.
    kid = session.scalars(
        select(SigningKey.kid).where(
            SigningKey.product_id == product_id, SigningKey.status == "active"
        )
    ).one_or_none()
    if kid is None:
        raise ServiceError(Code.NO_SIGNING_KEY,
                           "This product has no signing key yet: the vendor must generate one.")
    cached = ctx.vault.cached_signing_key(kid)
    if cached is not None:
        return cached
    sealed = session.scalars(
        select(SigningKey.secret_ciphertext).where(SigningKey.kid == kid)
    ).one()
    return ctx.vault.signing_key(kid, sealed)
