"""Tags from imported lists, and an index for "most recently seen first"."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the tags column and the recency index."""
    with op.batch_alter_table("experiture_campaigns") as batch:
        batch.add_column(sa.Column("tags", sa.Text, nullable=False, server_default=""))
    op.create_index("experiture_campaigns_recent", "experiture_campaigns", ["tenant", "last_seen"])


def downgrade() -> None:
    """Remove them again."""
    op.drop_index("experiture_campaigns_recent", "experiture_campaigns")
    with op.batch_alter_table("experiture_campaigns") as batch:
        batch.drop_column("tags")
