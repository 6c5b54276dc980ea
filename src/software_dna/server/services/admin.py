"""Admin API keys and the audit log."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.models import AdminApiKey, AuditEntry
from software_dna.server.services.common import Context, audit, new_id, utcnow

__all__ = [
    "check_admin_key",
    "create_admin_key",
    "has_admin_key",
    "list_audit",
    "revoke_admin_keys",
]


def create_admin_key(session: Session, ctx: Context, *, actor: str = "cli") -> str:
    """Create an admin API key and commit; returns it (shown once, only its hash is kept)."""
    key = "sdna_admin_" + secrets.token_urlsafe(32)
    row = AdminApiKey(id=new_id("adk"), key_hash=ctx.vault.admin_key_hash(key),
                      created_at=utcnow(), revoked_at=None)
    session.add(row)
    audit(session, actor, "admin_key.create", detail={"id": row.id})
    session.commit()
    return key


def has_admin_key(session: Session) -> bool:
    """True when at least one admin API key is usable."""
    return session.scalars(
        select(AdminApiKey.id).where(AdminApiKey.revoked_at.is_(None)).limit(1)
    ).first() is not None


def check_admin_key(session: Session, ctx: Context, key: str | None) -> bool:
    """True when ``key`` is a usable admin API key.

    The look-up is by keyed hash (HMAC under a master-derived key), so no
    comparison on the key itself happens, and timing reveals nothing useful.
    """
    if not key or len(key) > 200:
        return False
    digest = ctx.vault.admin_key_hash(key)
    row = session.scalars(select(AdminApiKey).where(AdminApiKey.key_hash == digest)).first()
    return row is not None and row.revoked_at is None and ctx.vault.same(row.key_hash, digest)


def revoke_admin_keys(session: Session, *, actor: str = "cli") -> int:
    """Revoke every admin API key (before creating a new one); commits; returns how many."""
    now = utcnow()
    rows = list(session.scalars(select(AdminApiKey).where(AdminApiKey.revoked_at.is_(None))))
    for row in rows:
        row.revoked_at = now
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
