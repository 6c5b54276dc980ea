"""panel: staff accounts and sessions, scoped admin keys, license references, usage counts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03

- ``staff`` / ``staff_sessions``: the control panel's accounts (role,
  scrypt password hash, sealed TOTP secret) and signed-in browsers (keyed
  hashes of the cookie's token).
- ``admin_api_keys.role`` / ``name``: scoped keys; existing keys are owners.
- ``audit_log.actor_id``: the staff member or admin key behind an entry.
- ``licenses.customer_ref`` / ``order_ref`` / ``notes``: the vendor's own
  references (not personal data), searchable.
- ``activations.app_version``: the app's version as the SDK reports it.
- ``usage_counts``: validations and activations per product, day and
  outcome, for the dashboard.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "staff",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("totp_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("totp_confirmed_at", sa.DateTime(), nullable=True),
        sa.Column("totp_last_step", sa.Integer(), nullable=True),
        sa.Column("must_change_password", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff")),
        sa.UniqueConstraint("email", name=op.f("uq_staff_email")),
    )
    op.create_table(
        "staff_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("staff_id", sa.String(length=40), nullable=False),
        sa.Column("second_factor_due", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["staff_id"], ["staff.id"], ondelete="CASCADE",
                                name=op.f("fk_staff_sessions_staff_id_staff")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
    )
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_sessions_staff_id"), ["staff_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_staff_sessions_expires_at"), ["expires_at"],
                              unique=False)
    op.create_table(
        "usage_counts",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", "product_id", "event", "outcome",
                                name=op.f("pk_usage_counts")),
    )
    op.add_column("admin_api_keys", sa.Column("role", sa.String(length=16), nullable=False,
                                              server_default="owner"))
    op.add_column("admin_api_keys", sa.Column("name", sa.String(length=100), nullable=False,
                                              server_default=""))
    op.add_column("audit_log", sa.Column("actor_id", sa.String(length=40), nullable=True))
    op.create_index(op.f("ix_audit_log_actor_id"), "audit_log", ["actor_id"], unique=False)
    op.add_column("licenses", sa.Column("customer_ref", sa.String(length=100), nullable=True))
    op.add_column("licenses", sa.Column("order_ref", sa.String(length=100), nullable=True))
    op.add_column("licenses", sa.Column("notes", sa.String(length=2000), nullable=True))
    op.create_index(op.f("ix_licenses_customer_ref"), "licenses", ["customer_ref"],
                    unique=False)
    op.create_index(op.f("ix_licenses_order_ref"), "licenses", ["order_ref"], unique=False)
    op.add_column("activations", sa.Column("app_version", sa.String(length=32), nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("usage_counts")
    with op.batch_alter_table("staff_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_staff_sessions_staff_id"))
    op.drop_table("staff_sessions")
    op.drop_table("staff")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_actor_id"))
        batch_op.drop_column("actor_id")
    with op.batch_alter_table("admin_api_keys", schema=None) as batch_op:
        batch_op.drop_column("name")
        batch_op.drop_column("role")
    # Last: rebuilding these tables (SQLite batch mode) needs the tables that
    # reference them gone first.
    with op.batch_alter_table("activations", schema=None) as batch_op:
        batch_op.drop_column("app_version")
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licenses_order_ref"))
        batch_op.drop_index(batch_op.f("ix_licenses_customer_ref"))
        batch_op.drop_column("notes")
        batch_op.drop_column("order_ref")
        batch_op.drop_column("customer_ref")
