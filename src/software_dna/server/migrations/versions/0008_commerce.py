"""commerce: the outbox, scheduled jobs, outbound webhooks, mail templates, store connectors

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03

- ``outbox`` / ``outbox_attempts``: everything that leaves the server
  (webhook calls, e-mails), written with the change that causes it, and
  its delivery log; ``scheduled_jobs``: periodic work run once per due time.
- ``webhook_endpoints``: the vendor's receivers and their (encrypted) secrets.
- ``email_templates`` / ``mail_opt_outs``: the vendor's mails per product and
  the one-click unsubscribes (keyed hashes of addresses, never addresses).
- ``store_connectors`` / ``store_mappings`` / ``store_orders`` /
  ``store_events``: payment providers, what each price gives, the license
  each order issued and the provider events already applied.
- ``licenses.payment_failed_at``; ``products.payment_grace_days`` (14),
  ``reminder_days`` ([7, 3, 1]) and ``branding`` ({}).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "email_templates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_templates")),
        sa.UniqueConstraint("product_id", "name", name=op.f("uq_email_templates_product_id")),
    )
    op.create_table(
        "mail_opt_outs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_opt_outs")),
        sa.UniqueConstraint("license_id", "email_index", name=op.f("uq_mail_opt_outs_license_id")),
    )
    with op.batch_alter_table("mail_opt_outs", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mail_opt_outs_license_id"), ["license_id"], unique=False
        )

    op.create_table(
        "outbox",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("endpoint_id", sa.String(length=40), nullable=True),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("license_id", sa.String(length=40), nullable=True),
        sa.Column("end_user_id", sa.String(length=40), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("personal", sa.Boolean(), nullable=False),
        sa.Column("recipient_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("dedup_key", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("claim", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("dedup_key", name=op.f("uq_outbox_dedup_key")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_end_user_id"), ["end_user_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_endpoint_id"), ["endpoint_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_outbox_license_id"), ["license_id"], unique=False)

    op.create_table(
        "scheduled_jobs",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("next_run_at", sa.DateTime(), nullable=False),
        sa.Column("last_run_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduled_jobs")),
    )
    op.create_table(
        "store_connectors",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("provider", sa.String(length=16), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("refund_action", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_connectors")),
        sa.UniqueConstraint("provider", "mode", name=op.f("uq_store_connectors_provider")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=True),
        sa.Column("personal_data", sa.Boolean(), nullable=False),
        sa.Column("secret_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_endpoints_product_id"), ["product_id"], unique=False
        )

    op.create_table(
        "outbox_attempts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["outbox.id"],
            name=op.f("fk_outbox_attempts_item_id_outbox"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_attempts")),
    )
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_attempts_item_id"), ["item_id"], unique=False)

    op.create_table(
        "store_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", sa.DateTime(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["store_connectors.id"],
            name=op.f("fk_store_events_connector_id_store_connectors"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_events")),
        sa.UniqueConstraint("connector_id", "event_id", name=op.f("uq_store_events_connector_id")),
    )
    op.create_table(
        "store_mappings",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(length=40), nullable=False),
        sa.Column("price_ref", sa.String(length=200), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("seats", sa.Integer(), nullable=False),
        sa.Column("features", sa.JSON(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("subscription", sa.Boolean(), nullable=False),
        sa.Column("seat_mode", sa.String(length=16), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["store_connectors.id"],
            name=op.f("fk_store_mappings_connector_id_store_connectors"),
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["products.id"], name=op.f("fk_store_mappings_product_id_products")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_mappings")),
        sa.UniqueConstraint(
            "connector_id", "price_ref", name=op.f("uq_store_mappings_connector_id")
        ),
    )
    with op.batch_alter_table("store_mappings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_store_mappings_connector_id"), ["connector_id"], unique=False
        )

    op.create_table(
        "store_orders",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("connector_id", sa.String(length=40), nullable=False),
        sa.Column("order_ref", sa.String(length=200), nullable=False),
        sa.Column("subscription_ref", sa.String(length=200), nullable=True),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("last_event_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["connector_id"],
            ["store_connectors.id"],
            name=op.f("fk_store_orders_connector_id_store_connectors"),
        ),
        sa.ForeignKeyConstraint(
            ["license_id"], ["licenses.id"], name=op.f("fk_store_orders_license_id_licenses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_store_orders")),
        sa.UniqueConstraint("connector_id", "order_ref", name=op.f("uq_store_orders_connector_id")),
    )
    with op.batch_alter_table("store_orders", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_store_orders_license_id"), ["license_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_store_orders_subscription_ref"), ["subscription_ref"], unique=False
        )

    # Plain ADD COLUMN (nullable, or with a constant default): no table rebuild.
    op.add_column("licenses", sa.Column("payment_failed_at", sa.DateTime(), nullable=True))
    op.add_column("licenses", sa.Column("buyer_id", sa.String(length=40), nullable=True))
    op.create_index(op.f("ix_licenses_buyer_id"), "licenses", ["buyer_id"], unique=False)
    op.add_column("products", sa.Column("payment_grace_days", sa.Integer(), nullable=False,
                                        server_default="14"))
    op.add_column("products", sa.Column("reminder_days", sa.JSON(), nullable=False,
                                        server_default="[7, 3, 1]"))
    op.add_column("products", sa.Column("branding", sa.JSON(), nullable=False,
                                        server_default="{}"))

def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("store_orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_orders_subscription_ref"))
        batch_op.drop_index(batch_op.f("ix_store_orders_license_id"))

    op.drop_table("store_orders")
    with op.batch_alter_table("store_mappings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_store_mappings_connector_id"))

    op.drop_table("store_mappings")
    op.drop_table("store_events")
    with op.batch_alter_table("outbox_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_attempts_item_id"))

    op.drop_table("outbox_attempts")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_product_id"))

    op.drop_table("webhook_endpoints")
    op.drop_table("store_connectors")
    op.drop_table("scheduled_jobs")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_license_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_endpoint_id"))
        batch_op.drop_index(batch_op.f("ix_outbox_end_user_id"))
        batch_op.drop_index("ix_outbox_due")

    op.drop_table("outbox")
    with op.batch_alter_table("mail_opt_outs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mail_opt_outs_license_id"))

    op.drop_table("mail_opt_outs")
    op.drop_table("email_templates")

    # Last: rebuilding these tables (SQLite batch mode) needs the tables that
    # reference them gone first.
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("branding")
        batch_op.drop_column("reminder_days")
        batch_op.drop_column("payment_grace_days")

    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licenses_buyer_id"))
        batch_op.drop_column("buyer_id")
        batch_op.drop_column("payment_failed_at")
