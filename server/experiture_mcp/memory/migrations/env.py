"""Alembic environment: runs on the connection Store.open hands over, inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from experiture_mcp.memory.schema import VERSION_TABLE

connection: Connection = context.config.attributes["connection"]
context.configure(connection=connection, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
