"""seats: roll-over, user seats, floating leases, lock-out, password reset codes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision (nothing yet: reserved so that work on it can go on in parallel)."""


def downgrade() -> None:
    """Revert this revision."""
