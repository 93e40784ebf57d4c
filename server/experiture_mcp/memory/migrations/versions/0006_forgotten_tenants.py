"""Tenants forgotten for good (an OAuth grant's memory an operator deleted): nothing is written for them again."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the tenants' forgotten_at mark."""
    with op.batch_alter_table("experiture_tenants") as batch:
        batch.add_column(sa.Column("forgotten_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    """Remove it again."""
    with op.batch_alter_table("experiture_tenants") as batch:
        batch.drop_column("forgotten_at")
