"""Memory: the one interface the server uses to remember and find campaigns, per tenant, whatever the backend.

It opens the store on first use (never before the server answered `initialize`), queues writes so that a tool
answer never waits for the disk, and turns every database fault into MemoryUnavailable with a fix: the campaign
tools keep working without it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import anyio

from experiture_mcp.config import Settings
from experiture_mcp.history.progress import Observation
from experiture_mcp.history.snapshots import HISTORY_CAP, Digest, Snapshot, merge, record
from experiture_mcp.memory.entry import Entry

if TYPE_CHECKING:
    from experiture_mcp.memory.catalog import Index, Match
    from experiture_mcp.memory.store import Store

__all__ = [
    "APP_NAME",
    "HOW_REMEMBERED",
    "RETRY_OPEN_SECONDS",
    "Found",
    "Memory",
    "MemoryUnavailable",
    "Seed",
    "default_data_dir",
]

log = logging.getLogger(__name__)

APP_NAME = "experiture-mcp"
RETRY_OPEN_SECONDS = 10.0  # after a failed open, memory features answer the same error until then
FLUSH_SECONDS = 15.0  # longest wait for queued entries to be written when the server stops
REWRITE_SECONDS = 60.0  # an unchanged entry's "last seen" is refreshed at most this often
_MAX_CACHED = 256  # tenants whose key and index this process keeps
_MAX_WRITTEN = 20_000  # entries whose last write is remembered, to skip rewriting unchanged ones
_MAX_TIMELINES = 2_000  # campaigns whose recent snapshots this process keeps, so that an answer needs no read
_TIMELINE_LENGTH = 32  # recent snapshots kept per campaign in this process (change, rate, stall)
HOW_REMEMBERED = (
    "Campaigns are remembered once they have been looked up by id or link (get_status, get_summary, get_metrics, "
    "get_overview or a campaign resource), or imported from a list with `experiture-mcp campaigns import FILE`. "
    "Ask the user for the campaign's id or a link to it from the Experiture app, then look it up once."
)
Clock = Callable[[], datetime]
Tenancy = Callable[[], str | None]  # the calling request's own tenant (OAuth: its grant's), or None: the token's
Caller = tuple[str, str | None]  # the caller's API token, and its own tenant when it has one
Seed = Callable[[str], Awaitable[list[Entry]]]
HistorySeed = Callable[[str], list[tuple[str, Observation]]]


class MemoryUnavailable(Exception):
    """Memory cannot answer; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Found:
    """The answer of a search: the best candidates and whether the best ones are a near-tie."""

    matches: list[Match]
    total: int  # candidates that matched at all, beyond `matches` too
    remembered: int  # every campaign remembered for this tenant
    ambiguous: bool


def default_data_dir() -> Path:
    """The platform's per-user data directory for this application (e.g. ~/.local/share/experiture-mcp)."""
    import platformdirs

    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _import_store() -> None:
    import importlib

    for module in ("alembic.command", "alembic.config", "experiture_mcp.memory.store"):
        importlib.import_module(module)


def _merge(old: Entry, new: Entry) -> Entry:
    """`new`'s known facts over `old`'s."""
    known = {k: v for k, v in vars(new).items() if v is not None and k not in ("campaign_id", "source", "tags")}
    return replace(old, **known, tags=new.tags or old.tags)


class Memory:
    """Remembered campaigns of every tenant that calls this server; a tenant is a keyed hash of its API token, or
    the tenant `tenancy` names for the calling request (OAuth mode: its grant's, see oauth/grants.py)."""

    def __init__(
        self, settings: Settings, clock: Clock, seed: Seed | None = None, tenancy: Tenancy | None = None
    ) -> None:
        self.enabled = settings.memory
        self._tenancy = tenancy
        self._settings = settings
        self._clock = clock
        self.seed = seed  # fills an empty tenant on first use (the demo's own campaigns)
        self._store: Store | None = None
        self._failed: tuple[float, MemoryUnavailable] | None = None
        self._open_lock: anyio.Lock | None = None
        self._flush_lock: anyio.Lock | None = None
        self._warned: set[str] = set()
        self._keys: dict[str, str] = {}
        self._indexes: dict[str, tuple[int, Index]] = {}
        self._seeded: set[str] = set()
        self._pending: dict[tuple[Caller, str], Entry] = {}
        self._written: dict[tuple[Caller, str], tuple[Entry, float]] = {}
        self._wake: anyio.Event | None = None
        self._observed: list[tuple[Caller, str, Observation]] = []
        self._timelines: dict[tuple[Caller, str], list[Snapshot]] = {}
        self.history_seed: HistorySeed | None = None  # past checks of the demo's campaigns, for a tenant without any
        self._history_seeded: set[str] = set()

    # Where the data is.

    @property
    def url(self) -> str:
        """The database URL (sqlite+aiosqlite:///… by default)."""
        if self._settings.database_url is not None:
            return self._settings.database_url.get_secret_value()
        return f"sqlite:///{self.path}"

    @property
    def path(self) -> Path | None:
        """The SQLite file, or None when EXPERITURE_DATABASE_URL points elsewhere."""
        if self._settings.database_url is not None:
            return None
        directory = self._settings.data_dir or default_data_dir()
        return directory / ("demo.sqlite3" if self._settings.demo else "memory.sqlite3")

    @property
    def where(self) -> str:
        """Where the data is, for people: the file, or the database URL without its password."""
        if self.path is not None:
            return str(self.path)
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "the database of EXPERITURE_DATABASE_URL"

    # Lifecycle.

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        """Write queued entries in the background while the server runs; flush and close at the end."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._writer)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            # Also when the server is cancelled on its way out: what was seen is still written.
            with anyio.move_on_after(FLUSH_SECONDS, shield=True):
                await self.flush()
            with anyio.CancelScope(shield=True):
                await self.aclose()

    async def aclose(self) -> None:
        """Close the store, if it was opened."""
        store, self._store = self._store, None
        if store is not None:
            await store.aclose()

    async def _writer(self) -> None:
        while True:
            self._wake = anyio.Event()
            await self._wake.wait()
            # Shielded: a write under way when the server stops finishes, rather than losing its batch.
            with anyio.move_on_after(FLUSH_SECONDS, shield=True):
                await self.flush()

    def note(
        self,
        token: str | None,
        entries: Iterable[Entry | None],
        observations: Iterable[tuple[str, Observation]] = (),
    ) -> None:
        """Queue what an answer showed about campaigns (and their latest runs); written soon after, off its path."""
        if not self.enabled or token is None:
            return
        caller = self._caller(token)
        for campaign_id, observation in observations:
            key = (caller, campaign_id.lower())
            self._observed.append((caller, key[1], observation))
            timeline = self._timelines.get(key)
            if timeline is not None:  # else it is read from the store, after this is written, when next needed
                self._timelines[key] = record(timeline, observation)[:_TIMELINE_LENGTH]
        now = time.monotonic()
        for entry in entries:
            if entry is None:
                continue
            key = (caller, entry.campaign_id.lower())
            pending = self._pending.get(key)
            merged = _merge(pending, entry) if pending is not None else entry
            last = self._written.get(key)
            if (
                pending is None
                and last is not None
                and now - last[1] < REWRITE_SECONDS
                and _merge(last[0], entry) == last[0]
            ):
                continue  # nothing new, and seen recently: not worth a write
            self._pending[key] = merged
        if (self._pending or self._observed) and self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        """Write every queued entry now (a fault is logged and the entries are dropped)."""
        if self._flush_lock is None:
            self._flush_lock = anyio.Lock()
        async with self._flush_lock:  # a reader waits for a write under way, so it sees that write
            await self._flush()

    async def _flush(self) -> None:
        while self._pending or self._observed:
            await self._flush_observed()
            batch, self._pending = self._pending, {}
            by_caller: dict[Caller, list[Entry]] = {}
            for (caller, _), entry in batch.items():
                by_caller.setdefault(caller, []).append(entry)
            stored: set[Caller] = set()
            for caller, entries in by_caller.items():
                try:
                    await self._remember(caller, entries)
                    stored.add(caller)
                except MemoryUnavailable as exc:
                    log.info("memory: %d entries not stored: %s", len(entries), exc)
            now = time.monotonic()
            for key, entry in batch.items():
                if key[0] in stored:
                    self._written[key] = (entry, now)
            while len(self._written) > _MAX_WRITTEN:
                del self._written[next(iter(self._written))]

    async def _flush_observed(self) -> None:
        observed, self._observed = self._observed, []
        by_caller: dict[Caller, list[tuple[str, Observation]]] = {}
        for caller, campaign_id, observation in observed:
            by_caller.setdefault(caller, []).append((campaign_id, observation))
        keep_after = self._clock() - timedelta(days=self._settings.history_days)
        for caller, items in by_caller.items():
            try:
                store, tenant = await self._tenant(caller)
                await store.record(tenant, items, keep_after=keep_after, cap=HISTORY_CAP)
            except MemoryUnavailable as exc:
                log.info("memory: %d snapshots not stored: %s", len(items), exc)
            except Exception as exc:
                log.info("memory: %d snapshots not stored: %s", len(items), self._fault(exc))

    # The store, opened on first use.

    def _unavailable(self, kind: str, text: str, exc: BaseException | None = None) -> MemoryUnavailable:
        if kind not in self._warned:  # one warning per kind of fault, not one per call
            self._warned.add(kind)
            log.warning("memory of campaigns unavailable: %s", text, exc_info=exc)
        return MemoryUnavailable(text)

    def _check(self, token: str | None) -> str:
        if not self.enabled:
            raise MemoryUnavailable(
                "Memory of campaigns is off (EXPERITURE_MEMORY=off or --no-memory), so no campaign names are "
                "remembered. To turn it on, remove that setting and restart the server; campaigns are then remembered "
                "as they are looked up by id."
            )
        if token is None:
            raise MemoryUnavailable(
                "No Experiture API token is configured, so there is no account to remember campaigns for. "
                "Set EXPERITURE_API_TOKEN (over hosted HTTP: send X-Experiture-Token)."
            )
        return token

    async def store(self) -> Store:
        """The store, opened on first use (for what shares the memory's database); raises MemoryUnavailable."""
        return await self._open()

    async def _open(self) -> Store:
        if self._store is not None:
            return self._store
        if self._open_lock is None:
            self._open_lock = anyio.Lock()
        async with self._open_lock:
            if self._store is not None:
                return self._store
            if self._failed is not None and time.monotonic() - self._failed[0] < RETRY_OPEN_SECONDS:
                raise self._failed[1]
            try:
                # Importing SQLAlchemy and Alembic takes a second or more: in a thread, so that the event loop
                # keeps answering other calls meanwhile.
                await anyio.to_thread.run_sync(_import_store)
                from experiture_mcp.memory.store import Store

                if self.path is not None:
                    self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._store = await Store.open(self.url)
            except Exception as exc:
                fault = self._fault(exc)
                self._failed = (time.monotonic(), fault)
                raise fault from None
            self._failed = None
            log.info("memory of campaigns: %s", self.where)
            return self._store

    def _caller(self, token: str | None) -> Caller:
        """Who calls: the token, and the request's own tenant when the server knows one (read while in the request)."""
        return self._check(token), self._tenancy() if self._tenancy is not None else None

    async def _tenant(self, caller: Caller) -> tuple[Store, str]:
        token, own = caller
        store = await self._open()
        if own is not None:
            return store, own  # already a random id of no one's token (OAuth grants)
        key = self._keys.get(token)
        if key is None:
            configured = self._settings.memory_secret
            try:
                secret = configured.get_secret_value().encode() if configured is not None else await store.secret()
            except Exception as exc:
                raise self._fault(exc) from None
            key = hmac.new(secret, token.encode(), hashlib.sha256).hexdigest()[:32]
            if len(self._keys) >= _MAX_CACHED:
                del self._keys[next(iter(self._keys))]
            self._keys[token] = key
        return store, key

    def _fault(self, exc: BaseException) -> MemoryUnavailable:
        if isinstance(exc, MemoryUnavailable):
            return exc
        message = f"{exc} {getattr(exc, 'orig', '')}".lower()
        where = self.where
        if self.path is None:
            if isinstance(exc, OSError | TimeoutError) or any(
                w in message
                for w in ("connect", "refused", "timeout", "could not", "closed", "password", "does not exist")
            ):
                return self._unavailable(
                    "postgres",
                    f"the PostgreSQL database at {where} cannot be reached ({type(exc).__name__}). Check "
                    "EXPERITURE_DATABASE_URL and that the server is running and accepts this user; campaign lookups "
                    "by id keep working meanwhile.",
                )
            return self._unavailable(
                "postgres-error",
                f"the PostgreSQL database at {where} failed ({type(exc).__name__}); see the server log. "
                "Campaign lookups by id keep working meanwhile.",
                exc,
            )
        if "locked" in message or "busy" in message:
            return self._unavailable(
                "locked",
                f"the memory file {where} is locked by another program. Close whatever holds it (e.g. an sqlite3 "
                "shell) and try again; campaign lookups by id keep working meanwhile.",
            )
        if "full" in message or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            return self._unavailable(
                "full",
                f"the disk holding the memory file {where} is full. Free some space there (or set EXPERITURE_DATA_DIR "
                "to a directory with room) and try again; campaign lookups by id keep working meanwhile.",
            )
        if any(w in message for w in ("not a database", "malformed", "corrupt")):
            return self._unavailable(
                "corrupt",
                f"the memory file {where} is damaged. Move it aside or delete it (it holds only remembered campaign "
                "names and states, re-learned as campaigns are looked up) and try again.",
            )
        if isinstance(exc, OSError) or any(
            w in message for w in ("unable to open", "readonly", "read-only", "permission", "disk i/o")
        ):
            return self._unavailable(
                "unreadable",
                f"the memory file {where} cannot be read or written. Give this user read and write access to it and "
                "its directory, or set EXPERITURE_DATA_DIR (--data-dir) to a directory it can write; campaign "
                "lookups by id keep working meanwhile.",
            )
        return self._unavailable(
            "other",
            f"the memory file {where} failed ({type(exc).__name__}); see the server log. Campaign lookups by id keep "
            "working meanwhile.",
            exc,
        )

    # What the tools use.

    async def remember(self, token: str | None, entries: list[Entry]) -> None:
        """Store entries now (imports; tool answers go through note)."""
        await self._remember(self._caller(token), entries)

    async def _remember(self, caller: Caller, entries: list[Entry]) -> None:
        store, tenant = await self._tenant(caller)
        try:
            await store.remember(tenant, entries, self._clock())
        except Exception as exc:
            raise self._fault(exc) from None

    async def _index(self, token: str | None) -> Index:
        caller = self._caller(token)
        await self.flush()
        store, tenant = await self._tenant(caller)
        from experiture_mcp.memory.catalog import Index

        try:
            if self.seed is not None and tenant not in self._seeded:
                # Once per process and tenant, whatever was written before (a lookup may come before any read).
                self._seeded.add(tenant)
                await store.remember(tenant, await self.seed(caller[0]), self._clock())
            version = await store.version(tenant)
            cached = self._indexes.get(tenant)
            if cached is not None and cached[0] == version:
                return cached[1]
            index = Index(await store.entries(tenant))
        except MemoryUnavailable:
            raise
        except Exception as exc:
            raise self._fault(exc) from None
        if len(self._indexes) >= _MAX_CACHED:
            del self._indexes[next(iter(self._indexes))]
        self._indexes[tenant] = (version, index)
        return index

    async def find(
        self, token: str | None, query: str, *, limit: int, channel: str | None = None, state: str | None = None
    ) -> Found:
        """This tenant's campaigns whose names best match `query`."""
        from experiture_mcp.memory.catalog import is_ambiguous

        index = await self._index(token)
        matches, total = index.rank(query, limit=limit, channel=channel, state=state)
        return Found(matches, total, len(index.entries), is_ambiguous(matches))

    async def entries(self, token: str | None) -> list[Entry]:
        """This tenant's campaigns, most recently seen first."""
        return (await self._index(token)).entries

    async def timeline(
        self, token: str | None, campaign_id: str, stored: Sequence[Snapshot] | None = None
    ) -> list[Snapshot]:
        """A campaign's recent snapshots, newest first, from this process when it has them (no read then), merged
        with `stored` (from Memory.stored: other processes' checks) when given."""
        key = (self._caller(token), campaign_id.lower())
        cached = self._timelines.get(key)
        if cached is not None and stored is not None:
            merged = merge(cached, stored)
            if merged is not cached:
                self._timelines[key] = merged = merged[:_TIMELINE_LENGTH]
            return merged
        if cached is not None:
            return cached
        snapshots = list(stored) if stored is not None else await self.history(token, campaign_id, _TIMELINE_LENGTH)
        if len(self._timelines) >= _MAX_TIMELINES:
            del self._timelines[next(iter(self._timelines))]
        self._timelines[key] = snapshots
        return snapshots

    def stored_read(self, token: str, campaign_id: str) -> Literal["at once", "meanwhile", "later"]:
        """How to read Memory.stored for this call: at once (microseconds: a SQLite file, and this process has the
        campaign's timeline, so only the newest snapshot is read), meanwhile (beside the upstream request), or
        later (the store is not open yet: Memory.timeline opens it after a successful answer)."""
        if self._store is None:
            return "later"
        cached = (self._caller(token), campaign_id.lower()) in self._timelines
        return "at once" if cached and self._settings.database_url is None else "meanwhile"

    async def stored(self, token: str | None, campaign_id: str) -> list[Snapshot] | None:
        """What Memory.timeline needs from the store, read while the upstream request is under way: the newest
        snapshot (another process may have checked since), or all recent ones when this process has none; None
        when memory cannot answer (then Memory.timeline reads, and reports the fault)."""
        if not self.enabled or token is None:
            return None
        try:
            caller = self._caller(token)
            if (caller, campaign_id.lower()) not in self._timelines:
                return await self.history(token, campaign_id, _TIMELINE_LENGTH)
            store, tenant = await self._tenant(caller)
            newest = await store.newest(tenant, campaign_id)
        except Exception as exc:
            log.debug("memory: newest snapshot of %s not read: %s", campaign_id[:80], self._fault(exc))
            return None
        keep_after = self._clock() - timedelta(days=self._settings.history_days)
        return [newest] if newest is not None and newest.last_checked >= keep_after else []

    async def history(self, token: str | None, campaign_id: str, limit: int | None = None) -> list[Snapshot]:
        """A campaign's stored snapshots, newest first (what was queued is written first)."""
        caller = self._caller(token)
        await self.flush()
        store, tenant = await self._tenant(caller)
        try:
            await self._seed_once(store, tenant, caller)
            snapshots = await store.snapshots(tenant, campaign_id, limit)
        except Exception as exc:
            raise self._fault(exc) from None
        keep_after = self._clock() - timedelta(days=self._settings.history_days)
        return [s for s in snapshots if s.last_checked >= keep_after]  # older ones go at the next write

    async def digest(self, token: str | None, campaign_id: str, limit: int, recent: int) -> Digest:
        """The runs of a campaign's stored snapshots, newest first, and the newest run's latest snapshots."""
        caller = self._caller(token)
        await self.flush()
        store, tenant = await self._tenant(caller)
        keep_after = self._clock() - timedelta(days=self._settings.history_days)
        try:
            await self._seed_once(store, tenant, caller)
            return await store.digest(
                tenant, campaign_id, keep_after=keep_after, cap=HISTORY_CAP, limit=limit, recent=recent
            )
        except Exception as exc:
            raise self._fault(exc) from None

    async def _seed_once(self, store: Store, tenant: str, caller: Caller) -> None:
        if self.history_seed is not None and tenant not in self._history_seeded:
            self._history_seeded.add(tenant)
            await self._seed_history(store, tenant, self.history_seed(caller[0]))

    async def _seed_history(self, store: Store, tenant: str, seen: list[tuple[str, Observation]]) -> None:
        keep_after = self._clock() - timedelta(days=self._settings.history_days)
        for campaign_id in dict.fromkeys(cid for cid, _ in seen):
            if not await store.snapshots(tenant, campaign_id, 1):  # only where nothing was recorded yet
                items = [(cid, o) for cid, o in seen if cid == campaign_id]
                await store.record(tenant, items, keep_after=keep_after, cap=HISTORY_CAP)

    async def forget(self, token: str | None, campaign_ids: list[str] | None) -> int:
        """Remove some (or, with None, all) of this tenant's entries and their history; how many were removed."""
        caller = self._caller(token)
        store, tenant = await self._tenant(caller)
        self._pending = {k: v for k, v in self._pending.items() if k[0] != caller}
        self._observed = [o for o in self._observed if o[0] != caller]
        self._timelines.clear()
        self._written.clear()
        try:
            return await store.forget(tenant, campaign_ids)
        except Exception as exc:
            raise self._fault(exc) from None
