"""TEMPORARY (sharing helper's branch only): secret rotation and sharing columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02

The server helper's migration 0005 creates exactly these columns (and more);
the lead keeps that one and drops this file when merging.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("activations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("secret_generation", sa.Integer(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("secret_grace", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("shared_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("shared_reason", sa.String(length=32), nullable=True))
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sharing_policy", sa.String(length=16), nullable=False,
                                      server_default="flag"))


def downgrade() -> None:
    """Revert this revision."""
    # Plain columns: dropped in place (recreating the tables trips the foreign keys).
    with op.batch_alter_table("products", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("sharing_policy")
    with op.batch_alter_table("activations", schema=None, recreate="never") as batch_op:
        for name in ("shared_reason", "shared_at", "secret_grace", "secret_generation"):
            batch_op.drop_column(name)
