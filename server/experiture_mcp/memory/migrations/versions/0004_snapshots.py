"""Snapshots: what each status, metrics or summary answer showed about a campaign's latest run, per tenant."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the snapshots table and its index by tenant, campaign and time."""
    op.create_table(
        "experiture_snapshots",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("campaign_id", sa.String(36), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_checked", sa.DateTime(timezone=True), nullable=False),
        sa.Column("execution_id", sa.String(64)),
        sa.Column("state", sa.String(32)),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        *(
            sa.Column(name, sa.BigInteger)
            for name in ("scheduled", "hydrated", "composed", "injected", "sent", "failed")
        ),
    )
    op.create_index("experiture_snapshots_campaign", "experiture_snapshots", ["tenant", "campaign_id", "fetched_at"])


def downgrade() -> None:
    """Remove them again."""
    op.drop_index("experiture_snapshots_campaign", "experiture_snapshots")
    op.drop_table("experiture_snapshots")
