"""The OAuth tables, as migrations 0003 and 0005 make them; only hashes of tokens, codes and transactions are stored."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, LargeBinary, MetaData, String, Table, Text

__all__ = ["clients", "failures", "grants", "lineages", "metadata", "revocations", "tokens", "transactions"]

metadata = MetaData()

clients = Table(
    "experiture_oauth_clients",
    metadata,
    Column("client_id", String(512), primary_key=True),
    Column("kind", String(8), nullable=False),  # dcr, cimd or static
    Column("metadata", Text, nullable=False),  # the client's registered metadata, JSON
    Column("secret_hash", String(64)),  # SHA-256 of the client secret, for clients that have one
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=False),
)

grants = Table(
    "experiture_oauth_grants",
    metadata,
    Column("grant_id", String(32), primary_key=True),
    Column("client_id", String(512), nullable=False),
    Column("redirect_uri", Text, nullable=False),
    Column("resource", Text, nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated, as granted to the client
    Column("upstream_scopes", Text, nullable=False),  # what the Experiture token was found to allow
    Column("fingerprint", String(16), nullable=False),  # short hash of the Experiture token, for operators
    Column("key_id", String(16), nullable=False),  # which server secret sealed it
    Column("ciphertext", LargeBinary, nullable=False),  # the Experiture token, AES-256-GCM; emptied on revocation
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),  # the grant's maximum age: consent again after
    Column("revoked_at", DateTime(timezone=True)),
    Column("tenant", String(32)),  # whose campaign memory the grant's calls use (0005; set on every grant)
    Index("experiture_oauth_grants_client", "client_id"),
)

lineages = Table(
    "experiture_oauth_lineages",
    metadata,
    Column("lineage", String(64), primary_key=True),  # keyed hash of a client id and an Experiture token
    Column("client_id", String(512), nullable=False),
    Column("tenant", String(32), nullable=False),  # the tenant every grant of this lineage continues
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_granted_at", DateTime(timezone=True), nullable=False),
    Index("experiture_oauth_lineages_client", "client_id"),
)

tokens = Table(
    "experiture_oauth_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("grant_id", String(32), nullable=False),
    Column("kind", String(8), nullable=False),  # code, access or refresh
    Column("wrapped_key", LargeBinary, nullable=False),  # the grant's data key, wrapped for this token
    Column("details", Text, nullable=False, server_default="{}"),  # a code's PKCE challenge and redirect URI, JSON
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),  # codes and refresh tokens: a second use revokes the grant
    Index("experiture_oauth_tokens_grant", "grant_id"),
    Index("experiture_oauth_tokens_expiry", "expires_at"),
)

transactions = Table(
    "experiture_oauth_transactions",
    metadata,
    Column("txn_hash", String(64), primary_key=True),
    Column("params", Text, nullable=False),  # the validated authorization request, JSON
    Column("csrf_hash", String(64), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

failures = Table(
    "experiture_oauth_failures",
    metadata,
    Column("source", String(64), primary_key=True),  # keyed hash of the client address
    Column("window_start", DateTime(timezone=True), nullable=False),
    Column("count", Integer, nullable=False),
)

revocations = Table(
    "experiture_oauth_revocations",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),  # processes watch its maximum to drop caches
    Column("grant_id", String(32), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
