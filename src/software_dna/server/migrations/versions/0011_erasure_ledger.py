"""erasure ledger: the erasures and revocations a restore re-applies (ids only)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04

- ``erasure_ledger``: one row per erasure of personal data or revocation
  (kind, object id, time, the other ids needed to do it again), also appended
  to a file outside the database so that it survives restoring an older backup.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "erasure_ledger",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_ledger")),
    )
    with op.batch_alter_table("erasure_ledger", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_erasure_ledger_at"), ["at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("erasure_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_erasure_ledger_at"))
    op.drop_table("erasure_ledger")
