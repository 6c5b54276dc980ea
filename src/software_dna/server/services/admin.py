"""Admin API keys and the audit log."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.domain.roles import Role, role_names
from software_dna.server.models import AdminApiKey, AuditEntry
from software_dna.server.services import ledger
from software_dna.server.services.common import Context, audit, new_id, utcnow
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = [
    "admin_key_row",
    "check_admin_key",
    "create_admin_key",
    "has_admin_key",
    "issue_admin_key",
    "list_admin_keys",
    "list_audit",
    "revoke_admin_key",
    "revoke_admin_keys",
]


def create_admin_key(session: Session, ctx: Context, *, role: Role | str = Role.OWNER,
                     name: str = "", actor: str = "cli") -> str:
    """Create an admin API key for ``role`` and commit; returns it (shown once).

    Only its keyed hash is kept.  Other keys stay valid: each tool or person
    gets a key of its own, revoked on its own (:func:`revoke_admin_key`).

    Raises:
        ServiceError: 400 ``invalid_request`` for an unknown role or a name
            longer than 100 characters.
    """
    return issue_admin_key(session, ctx, role=role, name=name, actor=actor)[1]


def issue_admin_key(session: Session, ctx: Context, *, role: Role | str = Role.OWNER,
                    name: str = "", actor: str = "cli") -> tuple[AdminApiKey, str]:
    """Like :func:`create_admin_key`, answering ``(its row, the key)``: the key shown once.

    Raises:
        ServiceError: 400 ``invalid_request`` (role, name; ``details.field`` names it).
    """
    try:
        role = Role(role)
    except ValueError:
        raise ServiceError(Code.INVALID_REQUEST, f"Unknown role {role!r}; one of: "
                           + ", ".join(role_names()) + ".", details={"field": "role"}) from None
    name = name.strip()
    if len(name) > 100:
        raise ServiceError(Code.INVALID_REQUEST, "A key's name is at most 100 characters.",
                           details={"field": "name"})
    key = "sdna_admin_" + secrets.token_urlsafe(32)
    row = AdminApiKey(id=new_id("adk"), key_hash=ctx.vault.admin_key_hash(key),
                      role=role.value, name=name, created_at=utcnow(), revoked_at=None)
    session.add(row)
    audit(session, actor, "admin_key.create", detail={"id": row.id, "role": role.value})
    session.commit()
    return row, key


def list_admin_keys(session: Session, *, include_revoked: bool = False) -> list[AdminApiKey]:
    """The admin API keys (never the keys themselves), oldest first."""
    query = select(AdminApiKey).order_by(AdminApiKey.created_at, AdminApiKey.id)
    if not include_revoked:
        query = query.where(AdminApiKey.revoked_at.is_(None))
    return list(session.scalars(query))


def revoke_admin_key(session: Session, key_id: str, *, actor: str = "cli") -> AdminApiKey:
    """Revoke one admin API key; commits.  Revoking a revoked key changes nothing.

    Raises:
        ServiceError: 404 ``not_found`` for an unknown key id.
    """
    row = session.get(AdminApiKey, key_id)
    if row is None:
        raise ServiceError(Code.NOT_FOUND, "No such admin API key.")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        ledger.record(session, ledger.ADMIN_KEY_REVOKE, row.id, at=row.revoked_at)
        audit(session, actor, "admin_key.revoke", detail={"id": row.id})
        session.commit()
    return row


def has_admin_key(session: Session) -> bool:
    """True when at least one admin API key is usable."""
    return session.scalars(
        select(AdminApiKey.id).where(AdminApiKey.revoked_at.is_(None)).limit(1)
    ).first() is not None


def admin_key_row(session: Session, ctx: Context, key: str | None) -> AdminApiKey | None:
    """The usable admin API key row that ``key`` is, or None.

    The look-up is by keyed hash (HMAC under a master-derived key), so no
    comparison on the key itself happens, and timing reveals nothing useful.
    """
    if not key or len(key) > 200:
        return None
    digest = ctx.vault.admin_key_hash(key)
    row = session.scalars(select(AdminApiKey).where(AdminApiKey.key_hash == digest)).first()
    if row is None or row.revoked_at is not None or not ctx.vault.same(row.key_hash, digest):
        return None
    return row


def check_admin_key(session: Session, ctx: Context, key: str | None) -> bool:
    """True when ``key`` is a usable admin API key of any role."""
    return admin_key_row(session, ctx, key) is not None


def revoke_admin_keys(session: Session, *, actor: str = "cli") -> int:
    """Revoke every admin API key (before creating a new one); commits; returns how many."""
    now = utcnow()
    rows = list(session.scalars(select(AdminApiKey).where(AdminApiKey.revoked_at.is_(None))))
    for row in rows:
        row.revoked_at = now
        ledger.record(session, ledger.ADMIN_KEY_REVOKE, row.id, at=now)
    audit(session, actor, "admin_key.revoke_all", at=now, detail={"count": len(rows)})
    session.commit()
    return len(rows)


def list_audit(
    session: Session,
    *,
    limit: int = 100,
    before_id: int | None = None,
    product_id: str | None = None,
    license_id: str | None = None,
    since: datetime | None = None,
) -> list[AuditEntry]:
    """Audit entries, newest first (page with ``before_id`` = the last id seen)."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc())
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    if product_id is not None:
        query = query.where(AuditEntry.product_id == product_id)
    if license_id is not None:
        query = query.where(AuditEntry.license_id == license_id)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    return list(session.scalars(query.limit(max(1, min(limit, 1000)))))
