"""Alembic migrations of the memory database, applied at start (Store.open)."""
