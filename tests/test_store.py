"""The store against real databases: SQLite files and a PostgreSQL cluster the suite starts, through one interface."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from experiture_mcp.memory.entry import Entry
from experiture_mcp.memory.store import Store

T0 = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
SPRING = "4130bada-9264-465f-bc0c-a26bebcfcc81"
FALL = "a4c05d9e-7b32-4f61-b8d4-63e9c1a05f27"


def uid(n: int) -> str:
    return f"{n:08x}-0000-4000-8000-000000000000"


@pytest.mark.anyio
async def test_entries_are_kept_per_tenant_and_known_facts_survive_a_thinner_answer(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await store.remember("a", [Entry(SPRING, name="Spring", channel="direct_mail", state="scheduled")], T0)
        await store.remember("b", [Entry(SPRING, name="Someone else's")], T0)
        later = T0 + timedelta(hours=1)
        await store.remember("a", [Entry(SPRING.upper(), state="completed")], later)  # e.g. a metrics answer

        (entry,) = await store.entries("a")
        assert (entry.campaign_id, entry.name, entry.channel, entry.state) == (
            SPRING,
            "Spring",
            "direct_mail",
            "completed",
        )
        assert (entry.first_seen, entry.last_seen) == (T0, later)
        assert [e.name for e in await store.entries("b")] == ["Someone else's"]
        assert await store.entries("nobody") == []
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_entries_come_newest_first_and_forget_removes_only_the_given_tenants(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await store.remember("a", [Entry(uid(i), name=f"c{i}") for i in range(3)], T0)
        await store.remember("a", [Entry(uid(1))], T0 + timedelta(minutes=5))
        await store.remember("b", [Entry(uid(1), name="b's")], T0)
        v1 = await store.version("a")

        assert (await store.entries("a"))[0].campaign_id == uid(1)
        assert await store.forget("a", [uid(1), uid(9)]) == 1
        assert await store.version("a") > v1
        assert sorted(e.campaign_id for e in await store.entries("a")) == [uid(0), uid(2)]
        assert await store.forget("a", None) == 2
        assert await store.count("a") == 0
        assert await store.count("b") == 1
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_the_secret_is_created_once_and_shared_by_every_opener(database_url: str) -> None:
    first, second = await Store.open(database_url), await Store.open(database_url)
    try:
        secret = await first.secret()
        assert len(secret) == 32
        assert await second.secret() == secret
    finally:
        await first.aclose()
        await second.aclose()


@pytest.mark.anyio
async def test_a_first_version_database_is_upgraded_at_open_without_losing_anything(database_url: str) -> None:
    # Build the database exactly as the first release left it: schema 0001, with rows in it.
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import create_async_engine

    from experiture_mcp.memory import store as store_module

    engine = create_async_engine(store_module.async_url(database_url))

    def to_first_version(conn: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")

    async with engine.begin() as conn:
        await conn.run_sync(to_first_version)
        await conn.execute(
            text(
                "INSERT INTO experiture_campaigns (tenant, campaign_id, name, channel, state, source, first_seen, "
                "last_seen) VALUES ('t', :id, 'Spring Re-engagement', 'direct_mail', 'completed', 'lookup', :t, :t)"
            ),
            {"id": SPRING, "t": T0},
        )
        await conn.execute(text("INSERT INTO experiture_tenants (tenant, version) VALUES ('t', 1)"))
        await conn.execute(
            text("INSERT INTO experiture_secrets (name, value) VALUES ('tenant-hmac', :v)"), {"v": "ab" * 32}
        )
    await engine.dispose()

    store = await Store.open(database_url)  # upgrades to the latest schema
    try:
        (entry,) = await store.entries("t")
        assert (entry.name, entry.channel, entry.state, entry.tags, entry.first_seen) == (
            "Spring Re-engagement",
            "direct_mail",
            "completed",
            (),
            T0,
        )
        assert await store.secret() == bytes.fromhex("ab" * 32)
        await store.remember("t", [Entry(FALL, name="Fall", tags=("q4", "print"))], T0)
        assert {e.campaign_id: e.tags for e in await store.entries("t")} == {SPRING: (), FALL: ("q4", "print")}
    finally:
        await store.aclose()


WRITER = textwrap.dedent(
    """
    import sys, anyio
    from datetime import UTC, datetime
    from experiture_mcp.memory.entry import Entry
    from experiture_mcp.memory.store import Store

    async def main(url, worker, batches):
        store = await Store.open(url)
        for b in range(batches):
            ids = [f"{worker:04x}{b:04x}-0000-4000-8000-{i:012x}" for i in range(20)]
            await store.remember("shared", [Entry(c, name=f"w{worker} b{b}") for c in ids], datetime.now(UTC))
            print(b, flush=True)
        await store.aclose()

    anyio.run(main, sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    """
)


def _writer(url: str, worker: int, batches: int, *, report: bool = False) -> subprocess.Popen[str]:
    out = subprocess.PIPE if report else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-c", WRITER, url, str(worker), str(batches)], stdout=out, text=True)


@pytest.mark.anyio
async def test_several_processes_write_at_once_and_nothing_is_lost(database_url: str) -> None:
    writers = [_writer(database_url, w, 15) for w in range(3)]
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    store = await Store.open(database_url)
    try:
        assert await store.count("shared") == 3 * 15 * 20
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_a_writer_killed_mid_write_loses_nothing_already_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'memory.sqlite3'}"
    store = await Store.open(url)
    await store.remember("kept", [Entry(uid(i), name=f"kept {i}") for i in range(200)], T0)
    await store.aclose()

    writer = _writer(url, 1, 100_000, report=True)
    assert writer.stdout is not None
    with writer.stdout:
        committed = [writer.stdout.readline() for _ in range(5)]  # five batches are in, more are under way
        assert committed[-1].strip() == "4"
        time.sleep(0.05)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)

    with sqlite3.connect(tmp_path / "memory.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    store = await Store.open(url)
    try:
        assert await store.count("kept") == 200
        assert await store.count("shared") >= 5 * 20  # every batch it reported committed
        assert await store.count("shared") % 20 == 0  # a batch is all in or all out
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_the_cancels_after_a_mark_are_those_posted_since_and_old_ones_go(database_url: str) -> None:
    store = await Store.open(database_url)

    async def since(mark: int) -> list[tuple[str, str]]:
        return [(caller, request) for _, caller, request in await store.cancels_after(mark)]

    try:
        assert await store.cancel_mark() == 0 and await since(0) == []
        await store.post_cancel("caller", "1", T0)  # an earlier call's cancel, with the same id
        mark = await store.cancel_mark()
        assert await since(mark) == []
        await store.post_cancel("stranger", "1", T0)
        await store.post_cancel("caller", "2", T0)
        assert await since(mark) == [("stranger", "1"), ("caller", "2")]  # oldest first
        assert await since(0) == [("caller", "1"), ("stranger", "1"), ("caller", "2")]

        await store.post_cancel("caller", "1", T0 + timedelta(minutes=3))  # the older ones are deleted meanwhile
        assert await since(0) == [("caller", "2"), ("caller", "1")]  # but the newest of them stays, whatever its age
        newest = await store.cancel_mark()
        assert newest > mark
        # Even when every older row is gone, the next cancel is numbered after the mark (SQLite reuses row ids).
        await store.post_cancel("caller", "3", T0 + timedelta(minutes=10))
        assert await since(newest) == [("caller", "3")] and await store.cancel_mark() > newest
    finally:
        await store.aclose()
