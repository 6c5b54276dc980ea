"""seats: roll-over, user seats, floating leases, lock-out, password reset codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29

- ``products``: ``lease_duration`` (seconds a floating lease lasts),
  ``reactivation_limit`` / ``reactivation_period`` (re-activation lock-out
  per license), ``address_activation_limit`` (lock-out per client address);
- ``licenses``: ``seat_mode`` (machine / user / floating), ``rollover``;
- ``activations``: ``installation_id`` (random id of one OS account's
  installation: tells user seats on one computer apart);
- ``leases``: floating leases (one per activation at most);
- ``activation_events``: the lock-out ledger (new activations, pruned);
- ``password_reset_codes``: single-use, short-lived codes (keyed hashes only).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_duration", sa.Integer(), nullable=False,
                                      server_default="900"))
        batch_op.add_column(sa.Column("reactivation_limit", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("reactivation_period", sa.Integer(), nullable=False,
                                      server_default="2592000"))
        batch_op.add_column(sa.Column("address_activation_limit", sa.Integer(),
                                      nullable=True))

    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seat_mode", sa.String(length=16), nullable=False,
                                      server_default="machine"))
        batch_op.add_column(sa.Column("rollover", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))

    with op.batch_alter_table("activations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("installation_id", sa.String(length=64), nullable=True))

    op.create_table(
        "leases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("activation_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("renewed_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_leases_license_id_licenses")
        ),
        sa.ForeignKeyConstraint(
            ["activation_id"], ["activations.id"],
            name=op.f("fk_leases_activation_id_activations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leases")),
        sa.UniqueConstraint("activation_id", name=op.f("uq_leases_activation_id")),
    )
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leases_license_id"), ["license_id"], unique=False)

    op.create_table(
        "activation_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("address_hash", sa.String(length=64), nullable=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_activation_events")),
    )
    with op.batch_alter_table("activation_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activation_events_license_id"), ["license_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_activation_events_address_hash"),
                              ["address_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_activation_events_at"), ["at"], unique=False)

    op.create_table(
        "password_reset_codes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"],
            name=op.f("fk_password_reset_codes_license_id_licenses"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_password_reset_codes_code_hash")),
    )
    with op.batch_alter_table("password_reset_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_password_reset_codes_license_id"), ["license_id"],
                              unique=False)


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("password_reset_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_reset_codes_license_id"))
    op.drop_table("password_reset_codes")
    with op.batch_alter_table("activation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activation_events_at"))
        batch_op.drop_index(batch_op.f("ix_activation_events_address_hash"))
        batch_op.drop_index(batch_op.f("ix_activation_events_license_id"))
    op.drop_table("activation_events")
    with op.batch_alter_table("leases", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leases_license_id"))
    op.drop_table("leases")
    # Plain, unindexed columns: SQLite (3.35+) drops them in place; recreating the
    # tables would trip the foreign keys of the rows that reference them.
    with op.batch_alter_table("activations", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("installation_id")
    with op.batch_alter_table("licenses", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("rollover")
        batch_op.drop_column("seat_mode")
    with op.batch_alter_table("products", schema=None, recreate="never") as batch_op:
        batch_op.drop_column("address_activation_limit")
        batch_op.drop_column("reactivation_period")
        batch_op.drop_column("reactivation_limit")
        batch_op.drop_column("lease_duration")
