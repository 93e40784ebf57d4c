"""OAuth tenancy: each grant names its tenant; a lineage (one client, one Experiture token) keeps it across grants."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the grants' tenant (each existing grant becomes its own tenant) and the lineages table."""
    op.add_column("experiture_oauth_grants", sa.Column("tenant", sa.String(32)))
    op.execute("UPDATE experiture_oauth_grants SET tenant = grant_id")
    op.create_table(
        "experiture_oauth_lineages",
        sa.Column("lineage", sa.String(64), primary_key=True),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("tenant", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_granted_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("experiture_oauth_lineages_client", "experiture_oauth_lineages", ["client_id"])


def downgrade() -> None:
    """Remove them again."""
    op.drop_index("experiture_oauth_lineages_client", "experiture_oauth_lineages")
    op.drop_table("experiture_oauth_lineages")
    with op.batch_alter_table("experiture_oauth_grants") as batch:
        batch.drop_column("tenant")
