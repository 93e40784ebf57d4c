"""Store: the remembered campaigns in SQLite or PostgreSQL through SQLAlchemy Core (async), one code path for both.

Every write is one transaction, so a failed write or a killed process leaves what was stored before intact.
Nothing here knows about MCP or tokens: tenants arrive as keyed hashes (service.py makes them).
"""

from __future__ import annotations

import logging
import secrets as random
import sqlite3
import zlib
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    DateTime,
    Integer,
    Row,
    String,
    bindparam,
    case,
    delete,
    event,
    func,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import ColumnElement

from experiture_mcp.history.progress import COUNT_NAMES, Observation
from experiture_mcp.history.snapshots import Digest, Snapshot, assemble, plan, same
from experiture_mcp.memory.entry import Entry, Source
from experiture_mcp.memory.schema import campaigns, cancels, secrets, snapshots, tenants
from experiture_mcp.models import Counts

__all__ = ["BUSY_TIMEOUT_MS", "Store", "async_url"]

_SQLITE_BIND = DateTime(timezone=True).dialect_impl(sqlite.dialect()).bind_processor(sqlite.dialect())


def _sqlite_time(value: datetime) -> str:
    """A time as SQLAlchemy writes it to SQLite, so that text comparisons with the stored ones hold."""
    assert _SQLITE_BIND is not None
    return str(_SQLITE_BIND(value))


CANCELS_KEPT = timedelta(minutes=2)  # a posted cancel is for a call in flight now: older ones are deleted
BUSY_TIMEOUT_MS = 3000  # how long a SQLite writer waits for another process's transaction before "locked"
_SECRET_NAME = "tenant-hmac"
_MIGRATION_LOCK = zlib.crc32(b"experiture-mcp migrations")  # PostgreSQL advisory lock key
_MIGRATIONS = Path(__file__).parent / "migrations"
_UPDATED = ("name", "channel", "campaign_type", "authoring_status", "state", "send_at", "timezone")


def async_url(url: str) -> str:
    """The SQLAlchemy async URL for a postgresql:// or sqlite:// URL (asyncpg and aiosqlite drivers)."""
    for plain, driver in (("postgresql://", "postgresql+asyncpg://"), ("postgres://", "postgresql+asyncpg://")):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


def _aware(value: datetime | str | None) -> datetime | None:
    # SQLite gives back naive datetimes (or, read as text, ISO strings); every time stored is UTC.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _entry(row: Row[Any]) -> Entry:
    tags: str = row.tags or ""
    source: Source = row.source if row.source in ("lookup", "import", "demo") else "lookup"
    return Entry(
        row.campaign_id,
        name=row.name,
        channel=row.channel,
        campaign_type=row.campaign_type,
        authoring_status=row.authoring_status,
        state=row.state,
        send_at=_aware(row.send_at),
        timezone=row.timezone,
        source=source,
        tags=tuple(t for t in tags.split(",") if t),
        first_seen=_aware(row.first_seen),
        last_seen=_aware(row.last_seen),
    )


_SNAPSHOT_COLUMNS = ("fetched_at", "last_checked", "state", "execution_id", "started_at", "completed_at", *COUNT_NAMES)


def _snapshot(row: Sequence[Any], seen: dict[tuple[Any, ...], Counts] | None = None) -> Snapshot:
    """A snapshot from a row of _SNAPSHOT_COLUMNS, by position (a thousand of them make one get_history); `seen`
    shares equal counts between rows (a run checked after it ended repeats them)."""
    fetched, checked, state, execution_id, started, completed, *numbers = row
    counts: Counts | None = None
    if numbers[4] is not None:
        key = tuple(numbers)
        counts = seen.get(key) if seen is not None else None
        if counts is None:
            counts = Counts(**dict(zip(COUNT_NAMES, numbers, strict=True)))
            if seen is not None:
                seen[key] = counts
    fetched, checked = _aware(fetched), _aware(checked)
    assert fetched is not None and checked is not None
    observation = Observation(fetched, state, execution_id, _aware(started), _aware(completed), counts)
    return Snapshot(observation, checked)


def _snapshot_row(tenant: str, campaign_id: str, o: Observation) -> dict[str, Any]:
    counts = {name: (getattr(o.counts, name) if o.counts is not None else None) for name in COUNT_NAMES}
    return {
        "tenant": tenant,
        "campaign_id": campaign_id,
        "fetched_at": o.fetched_at,
        "last_checked": o.fetched_at,
        "execution_id": o.execution_id,
        "state": o.state,
        "started_at": o.started_at,
        "completed_at": o.completed_at,
        **counts,
    }


def _flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return case((condition, 1), else_=0)  # an int on both backends, no result processing


# get_history's reads, built once: what grouping needs of every snapshot, then the few rows the answer shows.
_NARROW = (
    select(
        snapshots.c.id,
        snapshots.c.execution_id,
        snapshots.c.state,
        _flag(snapshots.c.started_at.is_not(None)),
        _flag(snapshots.c.completed_at.is_not(None)),
        _flag(snapshots.c.sent.is_not(None)),
        _flag(snapshots.c.last_checked >= bindparam("keep_after", type_=DateTime(timezone=True))),
    )
    .where((snapshots.c.tenant == bindparam("tenant")) & (snapshots.c.campaign_id == bindparam("campaign_id")))
    .order_by(snapshots.c.fetched_at.desc(), snapshots.c.id.desc())
    .limit(bindparam("cap", type_=Integer))
)
_FULL = select(snapshots.c.id, *(snapshots.c[n] for n in _SNAPSHOT_COLUMNS)).where(
    snapshots.c.id.in_(bindparam("ids", expanding=True))
)


class Store:
    """The database of remembered campaigns; open with Store.open, close with aclose."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sqlite = engine.dialect.name == "sqlite"
        self._insert = sqlite.insert if self._sqlite else postgresql.insert
        database = engine.url.database if self._sqlite else None
        self._reader = _NewestReader(database) if database and database != ":memory:" else None

    @classmethod
    async def open(cls, url: str) -> Store:
        """Connect, create or upgrade the schema (Alembic, under a lock so several processes may start at once)."""
        url = async_url(url)
        if url.startswith("sqlite"):
            logging.getLogger("aiosqlite").setLevel(logging.INFO)  # at DEBUG it logs every call, from its threads
            engine = create_async_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000})
            _sqlite_transactions(engine)
        else:
            engine = create_async_engine(url, pool_size=5, max_overflow=5, pool_pre_ping=True)
        store = cls(engine)
        try:
            async with _Transaction(engine, immediate=True, lock=not store._sqlite) as conn:
                await conn.run_sync(_upgrade)
        except BaseException:
            await engine.dispose()
            raise
        return store

    async def aclose(self) -> None:
        """Close every connection."""
        if self._reader is not None:
            self._reader.close()
        await self._engine.dispose()

    @property
    def dialect_insert(self) -> Any:
        """The dialect's insert (for on_conflict_do_*), for other tables in the same database."""
        return self._insert

    def begin(self, *, write: bool) -> _Transaction:
        """One transaction on this database (write: SQLite's write lock from the start), for other tables in it."""
        return _Transaction(self._engine, immediate=write, lock=False)

    def _write(self) -> _Transaction:
        return _Transaction(self._engine, immediate=True, lock=False)

    def _read(self) -> _Transaction:
        return _Transaction(self._engine, immediate=False, lock=False)

    async def secret(self) -> bytes:
        """The tenancy secret kept in the database, created on first use (the same for every process)."""
        async with self._write() as conn:
            stmt = self._insert(secrets).values(name=_SECRET_NAME, value=random.token_hex(32))
            await conn.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
            value = (await conn.execute(select(secrets.c.value).where(secrets.c.name == _SECRET_NAME))).scalar_one()
        return bytes.fromhex(value)

    async def remember(self, tenant: str, entries: Sequence[Entry], now: datetime) -> None:
        """Add or update entries: known facts are kept when an answer does not repeat them."""
        if not entries:
            return
        rows = [
            {
                "tenant": tenant,
                "campaign_id": e.campaign_id.lower(),
                **{name: getattr(e, name) for name in _UPDATED},
                "source": e.source,
                "tags": ",".join(e.tags),
                "first_seen": now,
                "last_seen": now,
            }
            for e in {e.campaign_id.lower(): e for e in entries}.values()
        ]
        stmt = self._insert(campaigns)
        update: dict[str, Any] = {name: func.coalesce(stmt.excluded[name], campaigns.c[name]) for name in _UPDATED}
        update["last_seen"] = stmt.excluded.last_seen
        update["tags"] = func.coalesce(func.nullif(stmt.excluded.tags, ""), campaigns.c.tags)
        upsert = stmt.on_conflict_do_update(index_elements=["tenant", "campaign_id"], set_=update)
        async with self._write() as conn:
            if not await self._writable(conn, tenant):
                return
            await conn.execute(upsert, rows)
            await self._bump(conn, tenant)

    async def _writable(self, conn: AsyncConnection, tenant: str) -> bool:
        """Lock the tenant's row until this transaction ends; False when the tenant was forgotten for good.

        With the lock, a write and a `forget(..., for_good=True)` at the same moment come one after the other, on
        PostgreSQL too: the write either sees the mark and writes nothing, or commits before the forgetting starts,
        which then deletes it."""
        stmt = self._insert(tenants).values(tenant=tenant, version=0)
        await conn.execute(stmt.on_conflict_do_nothing(index_elements=["tenant"]))
        mark = select(tenants.c.forgotten_at).where(tenants.c.tenant == tenant).with_for_update()
        return (await conn.execute(mark)).scalar() is None

    async def _bump(self, conn: AsyncConnection, tenant: str) -> None:
        stmt = self._insert(tenants).values(tenant=tenant, version=1)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["tenant"], set_={"version": tenants.c.version + 1})
        )

    async def version(self, tenant: str) -> int:
        """A number that changes whenever the tenant's entries change (0: none stored yet)."""
        async with self._read() as conn:
            value = (await conn.execute(select(tenants.c.version).where(tenants.c.tenant == tenant))).scalar()
        return int(value or 0)

    async def entries(self, tenant: str, limit: int | None = None) -> list[Entry]:
        """The tenant's entries, most recently seen first."""
        query = (
            select(campaigns)
            .where(campaigns.c.tenant == tenant)
            .order_by(campaigns.c.last_seen.desc(), campaigns.c.campaign_id)
            .limit(limit)
        )
        async with self._read() as conn:
            return [_entry(row) for row in await conn.execute(query)]

    async def count(self, tenant: str) -> int:
        """How many campaigns the tenant has remembered."""
        query = select(func.count()).select_from(campaigns).where(campaigns.c.tenant == tenant)
        async with self._read() as conn:
            return int((await conn.execute(query)).scalar_one())

    async def counts(self, tenants: Iterable[str]) -> dict[str, int]:
        """How many campaigns each of these tenants has remembered, in one query."""
        wanted = list(dict.fromkeys(tenants))
        query = (
            select(campaigns.c.tenant, func.count()).where(campaigns.c.tenant.in_(wanted)).group_by(campaigns.c.tenant)
        )
        async with self._read() as conn:
            found = {str(tenant): int(n) for tenant, n in await conn.execute(query)}
        return {tenant: found.get(tenant, 0) for tenant in wanted}

    async def forget(self, tenant: str, campaign_ids: Iterable[str] | None, *, for_good: datetime | None = None) -> int:
        """Remove the given entries and their history (None: all of the tenant's); how many entries were removed.

        `for_good` (all of them only) also marks the tenant forgotten at that time: nothing is written for it again,
        not even by a call that was answered as it was forgotten (a grant's tenant is never used again)."""
        stmt = delete(campaigns).where(campaigns.c.tenant == tenant)
        history = delete(snapshots).where(snapshots.c.tenant == tenant)
        if campaign_ids is not None:
            if for_good is not None:
                raise ValueError("only a whole tenant is forgotten for good")
            ids = [c.lower() for c in campaign_ids]
            stmt = stmt.where(campaigns.c.campaign_id.in_(ids))
            history = history.where(snapshots.c.campaign_id.in_(ids))
        async with self._write() as conn:
            if for_good is not None:  # first, so that a write under way either commits before this or sees the mark
                mark = self._insert(tenants).values(tenant=tenant, version=1, forgotten_at=for_good)
                await conn.execute(
                    mark.on_conflict_do_update(index_elements=["tenant"], set_={"forgotten_at": for_good})
                )
            removed = (await conn.execute(stmt)).rowcount
            await conn.execute(history)
            await self._bump(conn, tenant)
        return int(removed)

    async def record(
        self, tenant: str, observed: Sequence[tuple[str, Observation]], *, keep_after: datetime, cap: int
    ) -> None:
        """Add observations of campaigns in one transaction: a new snapshot only when something changed, else only
        the latest one's last_checked moves. Snapshots last checked before `keep_after`, and beyond `cap` per
        campaign, are removed."""
        if not observed:
            return
        async with self._write() as conn:
            if not await self._writable(conn, tenant):
                return
            for campaign_id in dict.fromkeys(cid.lower() for cid, _ in observed):
                mine = (snapshots.c.tenant == tenant) & (snapshots.c.campaign_id == campaign_id)
                latest_query = (
                    select(snapshots.c.id, *(snapshots.c[n] for n in _SNAPSHOT_COLUMNS))
                    .where(mine)
                    .order_by(snapshots.c.fetched_at.desc())
                    .limit(1)
                )
                row = (await conn.execute(latest_query)).first()
                latest = _snapshot(row[1:]) if row is not None else None
                added = False
                for cid, o in observed:
                    if cid.lower() != campaign_id:
                        continue
                    if row is not None and latest is not None and same(latest.observation, o):
                        checked = max(latest.last_checked, o.fetched_at)
                        await conn.execute(
                            update(snapshots).where(snapshots.c.id == row.id).values(last_checked=checked)
                        )
                        latest = Snapshot(latest.observation, checked)
                        continue
                    await conn.execute(snapshots.insert().values(**_snapshot_row(tenant, campaign_id, o)))
                    row = (await conn.execute(latest_query)).first()
                    latest = _snapshot(row[1:]) if row is not None else None
                    added = True
                if added:
                    await conn.execute(delete(snapshots).where(mine & (snapshots.c.last_checked < keep_after)))
                    oldest_kept = (
                        select(snapshots.c.fetched_at)
                        .where(mine)
                        .order_by(snapshots.c.fetched_at.desc())
                        .offset(cap - 1)
                        .limit(1)
                    )
                    threshold = (await conn.execute(oldest_kept)).scalar()
                    if threshold is not None:
                        await conn.execute(delete(snapshots).where(mine & (snapshots.c.fetched_at < threshold)))

    # Cancels posted for calls that another process may hold (hosted HTTP with several workers or replicas).

    async def post_cancel(self, caller: str, request: str, now: datetime) -> None:
        """Leave a cancel of the caller's call with this request id for whichever process holds it."""
        async with self._write() as conn:
            newest = select(func.max(cancels.c.seq)).scalar_subquery()
            # The newest row stays, so that SQLite never numbers a new one at or below a mark already taken.
            await conn.execute(delete(cancels).where(cancels.c.at < now - CANCELS_KEPT, cancels.c.seq < newest))
            await conn.execute(cancels.insert().values(caller=caller, request=request, at=now))

    async def cancel_mark(self) -> int:
        """A number that grows with every posted cancel: a call watches for those after the mark of its start."""
        if (plain := self._plain(f"SELECT max(seq) FROM {cancels.name}", ())) is not None:
            return int(plain[0][0] or 0)
        async with self._read() as conn:
            return int((await conn.execute(select(func.max(cancels.c.seq)))).scalar() or 0)

    async def cancels_after(self, mark: int) -> list[tuple[int, str, str]]:
        """The cancels posted after the mark, oldest first: (number, caller, request id). Read four times a second
        while calls wait, so on SQLite directly, as `newest`."""
        plain = self._plain(f"SELECT seq, caller, request FROM {cancels.name} WHERE seq > ? ORDER BY seq", (mark,))
        if plain is None:
            query = select(cancels.c.seq, cancels.c.caller, cancels.c.request).where(cancels.c.seq > mark)
            async with self._read() as conn:
                plain = [tuple(r) for r in await conn.execute(query.order_by(cancels.c.seq))]
        return [(int(seq), str(caller), str(request)) for seq, caller, request in plain]

    def _plain(self, query: str, parameters: tuple[Any, ...]) -> list[Any] | None:
        """Rows read through the plain SQLite connection, or None: not SQLite, or a lock (then read as usual)."""
        if self._reader is None:
            return None
        try:
            return self._reader.rows(query, parameters)
        except sqlite3.OperationalError:
            return None

    async def newest(self, tenant: str, campaign_id: str) -> Snapshot | None:
        """A campaign's newest snapshot, read on every status answer. On SQLite directly: one indexed row of a local
        file takes microseconds, less than a hop to a thread (and aiosqlite makes several per query)."""
        if self._reader is None:
            newest = await self.snapshots(tenant, campaign_id, 1)
            return newest[0] if newest else None
        rows = self._reader.read(tenant, campaign_id.lower())
        return _snapshot(rows[0]) if rows else None

    async def snapshots(self, tenant: str, campaign_id: str, limit: int | None = None) -> list[Snapshot]:
        """A campaign's snapshots, newest first."""
        columns = [snapshots.c[n] for n in _SNAPSHOT_COLUMNS]
        if self._sqlite:  # its times as text, parsed by datetime.fromisoformat: several times faster than SQLAlchemy's
            columns = [type_coerce(c, String) if isinstance(c.type, DateTime) else c for c in columns]
        query = (
            select(*columns)
            .where((snapshots.c.tenant == tenant) & (snapshots.c.campaign_id == campaign_id.lower()))
            .order_by(snapshots.c.fetched_at.desc(), snapshots.c.id.desc())
            .limit(limit)
        )
        async with self._read() as conn:
            rows = (await conn.execute(query)).all()
        seen: dict[tuple[Any, ...], Counts] = {}
        return [_snapshot(row, seen) for row in rows]

    async def digest(
        self, tenant: str, campaign_id: str, *, keep_after: datetime, cap: int, limit: int, recent: int
    ) -> Digest:
        """history.snapshots.digest of the campaign's newest `cap` snapshots last checked from `keep_after` on:
        grouped from a narrow read of every row, then only the rows the answer shows are read in full."""
        if self._reader is not None:
            try:
                return self._reader.digest(tenant, campaign_id.lower(), _sqlite_time(keep_after), cap, limit, recent)
            except sqlite3.OperationalError:
                pass  # a lock, or a file that cannot be read right now: read as usual, waiting if need be
        values = {"tenant": tenant, "campaign_id": campaign_id.lower(), "keep_after": keep_after, "cap": cap}
        async with self._read() as conn:
            rows = [row for row in reversed((await conn.execute(_NARROW, values)).all()) if row[6]]
            p = plan([(e, st, a == 1, b == 1, c == 1) for _, e, st, a, b, c, _ in rows], limit, recent)
            ids = {rows[i][0]: i for i in p.needed}
            needed: Sequence[Row[Any]] = (await conn.execute(_FULL, {"ids": list(ids)})).all() if ids else []
        return assemble(p, {ids[row[0]]: _snapshot(row[1:]) for row in needed})


class _NewestReader:
    """One plain sqlite3 connection, opened on first use, for the reads on a call's path: Store.newest, digest and
    the cancels'. It never waits (WAL: a reader does not wait for writers; and no busy timeout): a lock raises at
    once, and the caller does without or reads as usual."""

    _QUERY = (
        f"SELECT {', '.join(_SNAPSHOT_COLUMNS)} FROM {snapshots.name} WHERE tenant = ? AND campaign_id = ? "
        "ORDER BY fetched_at DESC, id DESC LIMIT 1"
    )

    def __init__(self, path: str) -> None:
        self._path = path
        self._db: sqlite3.Connection | None = None

    def read(self, tenant: str, campaign_id: str) -> list[Any]:
        return self.rows(self._QUERY, (tenant, campaign_id))

    # get_history's two reads (as _NARROW and _FULL), with times as text, which _snapshot parses.
    _DIGEST_NARROW = (
        "SELECT id, execution_id, state, started_at IS NOT NULL, completed_at IS NOT NULL, sent IS NOT NULL, "
        f"last_checked >= ? FROM {snapshots.name} WHERE tenant = ? AND campaign_id = ? "
        "ORDER BY fetched_at DESC, id DESC LIMIT ?"
    )
    _DIGEST_FULL = f"SELECT id, {', '.join(_SNAPSHOT_COLUMNS)} FROM {snapshots.name} WHERE id IN "

    def rows(self, query: str, parameters: tuple[Any, ...]) -> list[Any]:
        return self._connection().execute(query, parameters).fetchall()

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = sqlite3.connect(self._path, timeout=0, isolation_level=None)  # transactions: ours to open
            self._db.execute("PRAGMA query_only = ON")
        return self._db

    def digest(self, tenant: str, campaign_id: str, keep_after: str, cap: int, limit: int, recent: int) -> Digest:
        """Store.digest in one read transaction of this connection: microseconds per row, no hop to a thread."""
        db = self._connection()
        db.execute("BEGIN")
        try:
            narrow = db.execute(self._DIGEST_NARROW, (keep_after, tenant, campaign_id, cap)).fetchall()
            rows = [row for row in reversed(narrow) if row[6]]
            p = plan([(e, st, a == 1, b == 1, c == 1) for _, e, st, a, b, c, _ in rows], limit, recent)
            ids = {rows[i][0]: i for i in p.needed}
            full = f"{self._DIGEST_FULL}({', '.join('?' * len(ids))})"
            needed = db.execute(full, tuple(ids)).fetchall() if ids else []
        finally:
            db.execute("ROLLBACK")
        return assemble(p, {ids[row[0]]: _snapshot(row[1:]) for row in needed})

    def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


class _Transaction:
    """`async with`: one connection in one transaction, committed on success and rolled back on any error.

    `immediate` takes SQLite's write lock at the start; `lock` takes PostgreSQL's migration lock (schema upgrades).
    """

    def __init__(self, engine: AsyncEngine, *, immediate: bool, lock: bool) -> None:
        self._engine, self._immediate, self._lock = engine, immediate, lock
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> AsyncConnection:
        conn = await self._engine.connect()
        try:
            if self._immediate:
                conn = await conn.execution_options(experiture_immediate=True)
            await conn.begin()
            if self._lock:
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        except BaseException:
            await conn.close()
            raise
        self._conn = conn
        return conn

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        assert self._conn is not None
        try:
            if exc_type is None:
                await self._conn.commit()
            else:
                await self._conn.rollback()
        finally:
            await self._conn.close()


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """WAL, a busy timeout, and BEGIN IMMEDIATE for writes, so that writers of several processes queue up."""

    @event.listens_for(engine.sync_engine, "connect")
    def _connect(dbapi: Any, _: ConnectionPoolEntry) -> None:  # pyright: ignore[reportUnusedFunction]
        dbapi.isolation_level = None  # SQLAlchemy, not the driver, begins transactions
        cursor = dbapi.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")  # with WAL: durable across a killed process
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Connection) -> None:  # pyright: ignore[reportUnusedFunction]
        immediate = conn.get_execution_options().get("experiture_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _upgrade(conn: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines at every start are noise
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = conn
    command.upgrade(config, "head")
