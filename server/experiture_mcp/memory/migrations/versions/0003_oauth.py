"""OAuth sign-in: clients, grants (the Experiture token sealed), token hashes, consent transactions, failures."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the six OAuth tables."""
    op.create_table(
        "experiture_oauth_clients",
        sa.Column("client_id", sa.String(512), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "experiture_oauth_grants",
        sa.Column("grant_id", sa.String(32), primary_key=True),
        sa.Column("client_id", sa.String(512), nullable=False),
        sa.Column("redirect_uri", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("upstream_scopes", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
    )
    op.create_index("experiture_oauth_grants_client", "experiture_oauth_grants", ["client_id"])
    op.create_table(
        "experiture_oauth_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("grant_id", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("details", sa.Text, nullable=False, server_default="{}"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
    )
    op.create_index("experiture_oauth_tokens_grant", "experiture_oauth_tokens", ["grant_id"])
    op.create_index("experiture_oauth_tokens_expiry", "experiture_oauth_tokens", ["expires_at"])
    op.create_table(
        "experiture_oauth_transactions",
        sa.Column("txn_hash", sa.String(64), primary_key=True),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "experiture_oauth_failures",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
    )
    op.create_table(
        "experiture_oauth_revocations",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("grant_id", sa.String(32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop them again."""
    for table in ("revocations", "failures", "transactions", "tokens", "grants", "clients"):
        op.drop_table(f"experiture_oauth_{table}")
