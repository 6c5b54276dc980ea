"""portal: the end user's license portal (sessions, sign-in links, logos, release limits, labels)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03

- ``portal_sessions``: browsers signed in to the portal (keyed hashes of the
  cookie's token), each for one license, with how they got in.
- ``portal_links``: single-use sign-in links (keyed hashes), bound to the
  browser that asked and to the address they were mailed to.
- ``product_logos``: the product's logo, served by the server itself.
- ``products.portal_release_limit`` / ``portal_release_period``: machines a
  license holder may free in the portal per license per period.
- ``activations.label_ciphertext``: the computer's name the app may set with
  the end user's consent (encrypted; erased with the end user).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("end_user_id", sa.String(length=40), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE",
                                name=op.f("fk_portal_sessions_product_id_products")),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.id"], ondelete="CASCADE",
                                name=op.f("fk_portal_sessions_license_id_licenses")),
        sa.ForeignKeyConstraint(["end_user_id"], ["end_users.id"], ondelete="CASCADE",
                                name=op.f("fk_portal_sessions_end_user_id_end_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_sessions_license_id"), ["license_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_portal_sessions_end_user_id"), ["end_user_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_portal_sessions_expires_at"), ["expires_at"],
                              unique=False)
    op.create_table(
        "portal_links",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("browser_hash", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("license_id", sa.String(length=40), nullable=False),
        sa.Column("end_user_id", sa.String(length=40), nullable=False),
        sa.Column("email_index", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE",
                                name=op.f("fk_portal_links_product_id_products")),
        sa.ForeignKeyConstraint(["license_id"], ["licenses.id"], ondelete="CASCADE",
                                name=op.f("fk_portal_links_license_id_licenses")),
        sa.ForeignKeyConstraint(["end_user_id"], ["end_users.id"], ondelete="CASCADE",
                                name=op.f("fk_portal_links_end_user_id_end_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_links_token_hash")),
    )
    with op.batch_alter_table("portal_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_links_license_id"), ["license_id"],
                              unique=False)
        batch_op.create_index(batch_op.f("ix_portal_links_end_user_id"), ["end_user_id"],
                              unique=False)
    op.create_table(
        "product_logos",
        sa.Column("product_id", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=32), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], ondelete="CASCADE",
                                name=op.f("fk_product_logos_product_id_products")),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_product_logos")),
    )
    op.add_column("products", sa.Column("portal_release_limit", sa.Integer(), nullable=True,
                                        server_default="3"))
    op.add_column("products", sa.Column("portal_release_period", sa.Integer(), nullable=False,
                                        server_default="2592000"))
    op.add_column("activations", sa.Column("label_ciphertext", sa.LargeBinary(),
                                           nullable=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("activations", schema=None) as batch_op:
        batch_op.drop_column("label_ciphertext")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("portal_release_period")
        batch_op.drop_column("portal_release_limit")
    op.drop_table("product_logos")
    with op.batch_alter_table("portal_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_links_end_user_id"))
        batch_op.drop_index(batch_op.f("ix_portal_links_license_id"))
    op.drop_table("portal_links")
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_portal_sessions_end_user_id"))
        batch_op.drop_index(batch_op.f("ix_portal_sessions_license_id"))
    op.drop_table("portal_sessions")
