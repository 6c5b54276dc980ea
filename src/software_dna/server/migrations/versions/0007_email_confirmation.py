"""email confirmation: end users' confirmed addresses and single-use confirmation links

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02

- ``end_users.email_confirmed_at``: when the end user confirmed the address
  now on file (NULL: not confirmed).  Every address stored before this
  revision stays unconfirmed: nothing proved its owner asked for it, so no
  password reset code goes there until its owner confirms it.
- ``email_confirmations``: the links mailed to confirm an address, as a
  keyed hash of their token (never the token), the look-up hash of the
  address they confirm, expiry and use.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Plain ADD COLUMN (nullable, no default): existing rows read NULL, unconfirmed.
    op.add_column("end_users", sa.Column("email_confirmed_at", sa.DateTime(), nullable=True))
    op.create_table(
        "email_confirmations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("end_user_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["end_user_id"], ["end_users.id"],
                                name=op.f("fk_email_confirmations_end_user_id_end_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_confirmations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_email_confirmations_token_hash")),
    )
    op.create_index(op.f("ix_email_confirmations_end_user_id"), "email_confirmations",
                    ["end_user_id"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index(op.f("ix_email_confirmations_end_user_id"), table_name="email_confirmations")
    op.drop_table("email_confirmations")
    with op.batch_alter_table("end_users", schema=None) as batch_op:
        batch_op.drop_column("email_confirmed_at")
