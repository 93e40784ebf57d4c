"""The tables, as the latest migration leaves them (migrations/versions/ is how a database gets there)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, Index, Integer, MetaData, String, Table, Text

__all__ = ["VERSION_TABLE", "campaigns", "metadata", "secrets", "snapshots", "tenants"]

VERSION_TABLE = "experiture_schema_version"  # not alembic_version: a shared PostgreSQL database may hold others
metadata = MetaData()

campaigns = Table(
    "experiture_campaigns",
    metadata,
    Column("tenant", String(64), primary_key=True),  # keyed hash of the API token, never the token
    Column("campaign_id", String(36), primary_key=True),
    Column("name", Text),
    Column("channel", String(32)),
    Column("campaign_type", String(32)),
    Column("authoring_status", String(32)),
    Column("state", String(32)),
    Column("send_at", DateTime(timezone=True)),
    Column("timezone", String(64)),
    Column("source", String(16), nullable=False),
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("tags", Text, nullable=False, server_default=""),  # added by 0002; comma-separated
    Index("experiture_campaigns_recent", "tenant", "last_seen"),
)

tenants = Table(
    "experiture_tenants",
    metadata,
    Column("tenant", String(64), primary_key=True),
    Column("version", Integer, nullable=False),  # bumped by every write, so a process knows its cache is stale
    Column("forgotten_at", DateTime(timezone=True)),  # added by 0006: forgotten for good, never written again
)

secrets = Table(
    "experiture_secrets",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", String(128), nullable=False),
)

snapshots = Table(  # added by 0003: one row per change seen; an unchanged answer only moves last_checked
    "experiture_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("tenant", String(64), nullable=False),
    Column("campaign_id", String(36), nullable=False),
    Column("fetched_at", DateTime(timezone=True), nullable=False),  # first seen like this
    Column("last_checked", DateTime(timezone=True), nullable=False),  # last seen like this
    Column("execution_id", String(64)),
    Column("state", String(32)),
    Column("started_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    *(Column(name, BigInteger) for name in ("scheduled", "hydrated", "composed", "injected", "sent", "failed")),
    Index("experiture_snapshots_campaign", "tenant", "campaign_id", "fetched_at"),
)

cancels = Table(  # added by 0007: a cancel posted on one worker or replica for a call another one holds
    "experiture_cancels",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("caller", String(64), nullable=False),  # a SHA-256 digest of the caller's credentials, never them
    Column("request", String(128), nullable=False),  # the JSON-RPC request id, as JSON text
    Column("at", DateTime(timezone=True), nullable=False),
    Index("experiture_cancels_call", "caller", "request"),
)
