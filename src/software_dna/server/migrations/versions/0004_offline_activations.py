"""air-gapped activations: ``activations.offline``

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

An activation made from an air-gapped activation request
(``POST /v1/offline/activations``, ``software-dna offline respond``) gets
tokens of protection ``offline`` whatever the product's level.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("activations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offline", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("activations", schema=None) as batch_op:
        batch_op.drop_column("offline")
