"""Snapshots in the real store (SQLite files and the suite's PostgreSQL): change-only rows, retention, cap, forget."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from experiture_mcp.history.progress import Observation
from experiture_mcp.history.snapshots import Snapshot, digest, expand, merge
from experiture_mcp.memory.entry import Entry
from experiture_mcp.memory.store import Store
from experiture_mcp.models import Counts

T0 = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
FAR = T0 - timedelta(days=3650)
TOKYO = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def counts(sent: int, failed: int = 0) -> Counts:
    return Counts(scheduled=10_000, hydrated=10_000, composed=10_000, injected=10_000, sent=sent, failed=failed)


def running(at: datetime, sent: int, run: str = "run-1") -> Observation:
    return Observation(at, "running", run, T0 - timedelta(hours=1), None, counts(sent))


@pytest.mark.anyio
async def test_an_unchanged_answer_only_moves_last_checked_and_a_change_adds_a_snapshot(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        for minute in range(60):  # polled every minute for an hour, nothing moving
            await store.record("a", [(TOKYO, running(T0 + timedelta(minutes=minute), 100))], keep_after=FAR, cap=50)
        await store.record("a", [(TOKYO.upper(), running(T0 + timedelta(minutes=61), 400))], keep_after=FAR, cap=50)
        metrics_only = Observation(T0 + timedelta(minutes=62), None, None, None, None, counts(400))
        await store.record("a", [(TOKYO, metrics_only)], keep_after=FAR, cap=50)  # says nothing new

        newest, first = await store.snapshots("a", TOKYO)
        assert (first.observation.fetched_at, first.last_checked) == (T0, T0 + timedelta(minutes=59))
        assert first.observation == running(T0, 100)
        assert newest.observation.counts == counts(400)
        assert newest.last_checked == T0 + timedelta(minutes=62)
        assert [o.fetched_at for o in expand([newest, first])] == [
            T0,
            T0 + timedelta(minutes=59),
            T0 + timedelta(minutes=61),
            T0 + timedelta(minutes=62),
        ]
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_history_is_per_tenant_kept_for_its_days_capped_and_forgotten(database_url: str) -> None:
    store = await Store.open(database_url)
    try:
        await store.record("b", [(TOKYO, running(T0, 1))], keep_after=FAR, cap=50)
        old = [(TOKYO, running(T0 - timedelta(days=100, minutes=-i), i)) for i in range(3)]
        await store.record("a", old, keep_after=FAR, cap=50)
        assert len(await store.snapshots("a", TOKYO)) == 3
        # A new snapshot 100 days later: those last checked before the retention are removed.
        await store.record("a", [(TOKYO, running(T0, 500))], keep_after=T0 - timedelta(days=90), cap=50)
        assert [s.observation.counts for s in await store.snapshots("a", TOKYO)] == [counts(500)]

        await store.record(
            "a", [(TOKYO, running(T0 + timedelta(minutes=i), 500 + i)) for i in range(1, 30)], keep_after=FAR, cap=10
        )
        kept = await store.snapshots("a", TOKYO)
        assert [s.observation.counts.sent for s in kept if s.observation.counts] == list(range(529, 519, -1))
        assert [s.observation.counts for s in await store.snapshots("b", TOKYO)] == [counts(1)]

        await store.remember("a", [Entry(TOKYO, name="Tokyo")], T0)
        assert await store.forget("a", [TOKYO.upper()]) == 1
        assert await store.snapshots("a", TOKYO) == []
        assert len(await store.snapshots("b", TOKYO)) == 1  # another tenant's history is not touched
        await store.record("a", [(TOKYO, running(T0, 1))], keep_after=FAR, cap=10)
        await store.forget("a", None)
        assert await store.snapshots("a", TOKYO) == []
    finally:
        await store.aclose()


WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    import anyio
    from experiture_mcp.history.progress import Observation
    from experiture_mcp.memory.store import Store
    from experiture_mcp.models import Counts

    async def main(url: str) -> None:
        store = await Store.open(url)
        t0 = datetime(2026, 11, 28, tzinfo=UTC)
        for batch in range(100_000):
            items = []
            for i in range(20):
                n = batch * 20 + i
                c = Counts(scheduled=10**9, hydrated=0, composed=0, injected=0, sent=n, failed=0)
                seen = Observation(t0 + timedelta(seconds=n), "running", "r", None, None, c)
                items.append((f"{i:08x}-0000-4000-8000-000000000000", seen))
            await store.record("shared", items, keep_after=t0 - timedelta(days=1), cap=10**6)
            print(batch, flush=True)

    anyio.run(main, sys.argv[1])
    """
)


@pytest.mark.anyio
async def test_a_writer_killed_mid_write_loses_no_snapshot_already_stored(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'memory.sqlite3'}"
    store = await Store.open(url)
    await store.record(
        "kept", [(TOKYO, running(T0 + timedelta(minutes=i), i)) for i in range(50)], keep_after=FAR, cap=99
    )
    await store.aclose()

    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    with writer.stdout:
        committed = [writer.stdout.readline() for _ in range(5)]
        assert committed[-1].strip() == "4"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=30)

    with sqlite3.connect(tmp_path / "memory.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        per_campaign = {
            n
            for (n,) in db.execute(
                "SELECT count(*) FROM experiture_snapshots WHERE tenant = 'shared' GROUP BY campaign_id"
            )
        }
    assert len(per_campaign) == 1 and min(per_campaign) >= 5  # every reported batch, each all in or all out
    store = await Store.open(url)
    try:
        assert len(await store.snapshots("kept", TOKYO)) == 50
    finally:
        await store.aclose()


def random_timeline(rng: random.Random, n: int) -> list[Observation]:
    """Observations of one campaign, oldest first: runs, gaps, answers without an execution id or without counts."""
    seen: list[Observation] = []
    at = T0 - timedelta(days=10)
    for _ in range(n):
        at += timedelta(seconds=rng.choice([0, 1, 30, 600, 86_400]))
        execution_id = rng.choice([None, None, "r1", "r2", "r3", "r4"])
        state = rng.choice([None, "running", "completed", "failed", "scheduled", "not_scheduled", ""])
        started = rng.choice([None, at - timedelta(minutes=rng.randrange(1, 90))])
        completed = rng.choice([None, None, at])
        seen.append(
            Observation(at, state, execution_id, started, completed, rng.choice([None, counts(rng.randrange(9))]))
        )
    return seen


@pytest.mark.anyio
async def test_the_stores_digest_equals_grouping_every_snapshot_in_python(database_url: str) -> None:
    rng = random.Random(11)
    store = await Store.open(database_url)
    try:
        for case in range(40):
            campaign_id = f"{case:08x}-0000-4000-8000-000000000000"
            for observation in random_timeline(rng, rng.randrange(0, 60)):
                await store.record("a", [(campaign_id, observation)], keep_after=FAR, cap=10**6)
            await store.record("b", [(campaign_id, running(T0, 1))], keep_after=FAR, cap=10**6)  # not a's
            keep_after = rng.choice([FAR, T0 - timedelta(days=rng.randrange(1, 10))])
            cap, limit, recent = rng.choice([2000, 25]), rng.choice([1, 2, 20]), rng.choice([1, 8])
            newest = await store.snapshots("a", campaign_id.upper(), cap)
            expected = digest([s for s in newest if s.last_checked >= keep_after], limit, recent)
            got = await store.digest(
                "a", campaign_id.upper(), keep_after=keep_after, cap=cap, limit=limit, recent=recent
            )
            assert got == expected, case
            assert got.snapshots == 0 or got.runs or got.recent == []
    finally:
        await store.aclose()


def test_merging_another_process_checks_keeps_each_snapshot_once_last_checked_at_the_latest() -> None:
    def at(minutes: int) -> datetime:
        return T0 + timedelta(minutes=minutes)

    old, new = Snapshot(running(at(0), 100), at(2)), Snapshot(running(at(5), 400), at(5))
    mine = [new, old]  # newest first; `new` perhaps not written yet
    assert (
        merge(mine, [new]) is mine
        and merge(mine, []) is mine
        and merge(mine, [Snapshot(old.observation, at(1))]) is mine
    )
    assert merge(mine, [Snapshot(new.observation, at(9))]) == [Snapshot(new.observation, at(9)), old]
    assert merge([old], [new]) == [new, old]  # another process saw a change after this one's last check
    assert merge(mine, [Snapshot(old.observation, at(4))]) == [new, Snapshot(old.observation, at(4))]
    again = Snapshot(running(at(7), 400), at(8))  # first seen by another process too: one snapshot, seen until 8
    assert merge(mine, [again]) == [Snapshot(new.observation, at(8)), old]
    assert merge([], [new, old]) == [new, old]


@pytest.mark.anyio
async def test_a_tenant_forgotten_for_good_is_never_written_again_even_by_writers_racing_the_forgetting(
    database_url: str,
) -> None:
    stores = [await Store.open(database_url) for _ in range(3)]  # three processes' pools, one database
    forgetting, *writers = stores
    try:
        await forgetting.remember("kept", [Entry(TOKYO, name="Tokyo")], T0)
        await forgetting.remember("gone", [Entry(TOKYO, name="Tokyo")], T0)
        written = 0

        async def keep_writing(store: Store, until: anyio.Event) -> None:
            nonlocal written
            while not until.is_set():
                written += 1
                at = T0 + timedelta(seconds=written)
                await store.remember("gone", [Entry(TOKYO, name="Tokyo")], at)
                await store.record("gone", [(TOKYO, running(at, written))], keep_after=FAR, cap=50)

        done = anyio.Event()
        async with anyio.create_task_group() as tg:
            for store in writers:
                tg.start_soon(keep_writing, store, done)
            while written < 20:
                await anyio.sleep(0.01)
            assert await forgetting.forget("gone", None, for_good=T0) == 1
            at_forgetting = written
            while written < at_forgetting + 20:  # writes keep coming after it: none of them lands
                await anyio.sleep(0.01)
            done.set()

        assert await forgetting.entries("gone") == [] and await forgetting.snapshots("gone", TOKYO) == []
        assert [e.name for e in await forgetting.entries("kept")] == ["Tokyo"]  # nobody else's memory
        await forgetting.forget("kept", None)  # a token's memory, forgotten as `campaigns forget` does: not for good
        await forgetting.remember("kept", [Entry(TOKYO, name="Tokyo again")], T0)
        assert [e.name for e in await forgetting.entries("kept")] == ["Tokyo again"]
        with pytest.raises(ValueError, match="only a whole tenant"):
            await forgetting.forget("kept", [TOKYO], for_good=T0)
    finally:
        for store in stores:
            await store.aclose()
