"""air-gapped activation becomes an explicit opt-in

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02

- ``products.air_gapped`` (off by default): whether licenses of the product
  may be activated from an air-gapped activation request. Existing products
  whose protection is not ``mandatory`` get it on, so their air-gapped
  machines keep working; ``mandatory`` products (the vendor wanted every
  machine to reach the server) get it off.
- ``products.air_gapped_token_days`` (365) and ``products.air_gapped_perpetual``
  (off): an air-gapped token expires after that many days (a new request
  renews it) unless the vendor explicitly allows tokens without an end.
- ``licenses.air_gapped``: a per-license override (NULL: the product's setting).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision."""
    # Plain ADD COLUMN on both backends (no SQLite table rebuild, see 0005).
    op.add_column("products", sa.Column("air_gapped", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.add_column("products", sa.Column("air_gapped_token_days", sa.Integer(), nullable=False,
                                        server_default="365"))
    op.add_column("products", sa.Column("air_gapped_perpetual", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.add_column("licenses", sa.Column("air_gapped", sa.Boolean(), nullable=True))
    products = sa.table("products", sa.column("protection", sa.String()),
                        sa.column("air_gapped", sa.Boolean()))
    op.execute(products.update().where(products.c.protection != "mandatory")
               .values(air_gapped=True))


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("licenses", schema=None) as batch_op:
        batch_op.drop_column("air_gapped")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("air_gapped_perpetual")
        batch_op.drop_column("air_gapped_token_days")
        batch_op.drop_column("air_gapped")
