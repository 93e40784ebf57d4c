"""First schema: remembered campaigns per tenant, tenant versions, the tenancy secret."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the three tables."""
    op.create_table(
        "experiture_campaigns",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("campaign_id", sa.String(36), primary_key=True),
        sa.Column("name", sa.Text),
        sa.Column("channel", sa.String(32)),
        sa.Column("campaign_type", sa.String(32)),
        sa.Column("authoring_status", sa.String(32)),
        sa.Column("state", sa.String(32)),
        sa.Column("send_at", sa.DateTime(timezone=True)),
        sa.Column("timezone", sa.String(64)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "experiture_tenants",
        sa.Column("tenant", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_table(
        "experiture_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    """Drop the three tables."""
    op.drop_table("experiture_secrets")
    op.drop_table("experiture_tenants")
    op.drop_table("experiture_campaigns")
