"""license kinds, trials, evaluations, test codes, timed licenses and renewal (issue 7)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Apply this revision (nothing yet: reserved so that work on it can go on in parallel)."""


def downgrade() -> None:
    """Revert this revision."""
