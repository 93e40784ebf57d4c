"""Cancellations posted on one worker or replica for a call that another one holds (hosted HTTP)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the cancels table, found by caller and request id."""
    op.create_table(
        "experiture_cancels",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("caller", sa.String(64), nullable=False),
        sa.Column("request", sa.String(128), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("experiture_cancels_call", "experiture_cancels", ["caller", "request"])


def downgrade() -> None:
    """Remove it again."""
    op.drop_index("experiture_cancels_call", "experiture_cancels")
    op.drop_table("experiture_cancels")
