"""license kinds, trials, evaluations, test codes, timed licenses and renewal

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

- ``products``: ``trial_days`` (null: no trial), ``test_code_limit``;
- ``licenses``: ``kind`` (full / trial / evaluation / test), ``duration_days``
  (expiry N days after the first activation), ``first_activated_at``,
  ``subscription``, ``cancelled_at``;
- ``trials`` and ``trial_components``: the machines that used a product's
  trial (component hashes only: per-product HMACs, never raw identifiers;
  every value a component was seen with);
- ``renewal_codes``: single-use codes that add days to a license.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision.

    Server defaults are plain strings ("5", "0"), not SQL expressions: SQLite
    then adds the columns in place (``ALTER TABLE ADD COLUMN``); an expression
    would make Alembic recreate the tables, which the foreign keys of existing
    rows forbid. PostgreSQL reads '0' as boolean false.
    """
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("trial_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("test_code_limit", sa.Integer(), nullable=False,
                                      server_default="5"))

    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), nullable=False,
                                      server_default="full"))
        batch_op.add_column(sa.Column("duration_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("first_activated_at", sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column("subscription", sa.Boolean(), nullable=False,
                                      server_default="0"))
        batch_op.add_column(sa.Column("cancelled_at", sa.DateTime(), nullable=True))

    op.create_table(
        "trials",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=True),
        sa.Column("fingerprint_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_trials_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_trials_license_id_licenses"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trials")),
    )
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trials_product_id"), ["product_id"], unique=False)

    op.create_table(
        "trial_components",
        sa.Column("trial_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["trial_id"], ["trials.id"], name=op.f("fk_trial_components_trial_id_trials"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("trial_id", "name", "value",
                                name=op.f("pk_trial_components")),
    )
    with op.batch_alter_table("trial_components", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trial_components_value"), ["value"], unique=False)

    op.create_table(
        "renewal_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=True),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("code_last4", sa.String(length=4), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("redeemed_at", sa.DateTime(), nullable=True),
        sa.Column("redeemed_license_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_renewal_codes_product_id_products")
        ),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_renewal_codes_license_id_licenses")
        ),
        sa.ForeignKeyConstraint(
            ["redeemed_license_id"], ["licenses.id"],
            name=op.f("fk_renewal_codes_redeemed_license_id_licenses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_renewal_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_renewal_codes_code_hash")),
    )
    with op.batch_alter_table("renewal_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_renewal_codes_product_id"), ["product_id"],
                              unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("renewal_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_renewal_codes_product_id"))
    op.drop_table("renewal_codes")
    with op.batch_alter_table("trial_components", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trial_components_value"))
    op.drop_table("trial_components")
    with op.batch_alter_table("trials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trials_product_id"))
    op.drop_table("trials")
    # Plain columns: SQLite (3.35+) drops them in place; recreating the tables would
    # trip the foreign keys of the rows that reference them.
    with op.batch_alter_table("licenses", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("cancelled_at")
        batch_op.drop_column("subscription")
        batch_op.drop_column("first_activated_at")
        batch_op.drop_column("duration_days")
        batch_op.drop_column("kind")
    with op.batch_alter_table("products", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("test_code_limit")
        batch_op.drop_column("trial_days")
