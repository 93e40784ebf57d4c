"""Campaign history: what recording a snapshot costs a tool call, get_status with history on and off, get_history.

Run from the repository root: `uv run --frozen python -m benchmarks.history`. Writes its section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.results import write_section
from benchmarks.upstream import Upstream
from experiture_mcp.history.progress import Observation
from experiture_mcp.models import Counts
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- history:start -->", "<!-- history:end -->"
T0 = datetime(2026, 11, 1, tzinfo=UTC)
TOKYO = DEMO_CAMPAIGNS["tokyo-push"]


def _p50(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


def _observation(n: int, minute: int, run: int = 0) -> Observation:
    counts = Counts(scheduled=50_000, hydrated=50_000, composed=n * 10, injected=n * 10, sent=n * 9, failed=n)
    at = T0 + timedelta(minutes=minute)
    return Observation(at, "running", f"run-{run}", at, None, counts)


async def record_cost(data_dir: Path, calls: int) -> dict[str, float]:
    """p50 of what a get_status answer does for history on its path: read the store's newest snapshot (SQLite: at
    once), merge it with the cached timeline, queue the write."""
    from pydantic import SecretStr

    from experiture_mcp.config import Settings
    from experiture_mcp.history.checks import check
    from experiture_mcp.memory import Memory

    settings = Settings(api_token=SecretStr(DEMO_TOKEN), data_dir=data_dir, base_url="http://127.0.0.1:9")
    memory = Memory(settings, lambda: T0 + timedelta(days=1))
    on_path: list[float] = []
    async with memory.running():
        for n in range(calls):
            observation = _observation(n, n)
            started = time.perf_counter()
            stored = await memory.stored(DEMO_TOKEN, TOKYO)  # the newest snapshot any process stored
            await check(memory, DEMO_TOKEN, TOKYO, observation, "Asia/Tokyo", observation.fetched_at, stored)
            memory.note(DEMO_TOKEN, [], [(TOKYO, observation)])
            on_path.append(time.perf_counter() - started)
            if n % 50 == 0:
                await asyncio.sleep(0)  # let the writer run now and then, as between real calls
    return {"on_path": _p50(on_path)}


async def status_on_off(base_url: str, data_dir: Path, calls: int) -> dict[str, float]:
    """get_status p50 through an in-memory MCP client, history (memory) on and off, interleaved."""
    from mcp import Client
    from pydantic import SecretStr

    from experiture_mcp.config import Settings
    from experiture_mcp.server import build_server

    ids = list(DEMO_CAMPAIGNS.values())[:6]
    latency: dict[str, list[float]] = {"on": [], "off": []}
    on = Settings(api_token=SecretStr(DEMO_TOKEN), base_url=base_url, data_dir=data_dir)
    off = on.model_copy(update={"memory": False})
    async with Client(build_server(on)) as with_history, Client(build_server(off)) as without:
        clients = {"on": with_history, "off": without}
        for client in clients.values():
            for cid in ids:
                await client.call_tool("get_status", {"campaign_id": cid})
        for n in range(calls):
            for mode, client in clients.items():
                started = time.perf_counter()
                result = await client.call_tool("get_status", {"campaign_id": ids[n % len(ids)]})
                latency[mode].append(time.perf_counter() - started)
                assert not result.is_error
    return {"on": _p50(latency["on"]), "off": _p50(latency["off"])}


async def history_over(data_dir: Path, snapshots: int, calls: int) -> dict[str, float]:
    """get_history inside the server (what the tool does: read, group, render) over a campaign with `snapshots`
    snapshots, SQLite."""
    from pydantic import SecretStr

    from experiture_mcp.config import Settings
    from experiture_mcp.history.runs import RECENT, history_from, render_history
    from experiture_mcp.memory import Memory

    settings = Settings(api_token=SecretStr(DEMO_TOKEN), data_dir=data_dir, base_url="http://127.0.0.1:9")
    now = T0 + timedelta(days=1)
    memory = Memory(settings, lambda: now)
    seen = [(TOKYO, _observation(n % 50, n, run=n // 50)) for n in range(snapshots)]  # 50 a run: 20 runs
    memory.note(DEMO_TOKEN, [], seen)
    await memory.flush()
    timings: list[float] = []
    size = 0
    for _ in range(calls):
        started = time.perf_counter()
        history = history_from(TOKYO, await memory.digest(DEMO_TOKEN, TOKYO, 20, RECENT))
        text = render_history(history, now)
        timings.append(time.perf_counter() - started)
        size = len(text.encode())
        assert history.snapshots == snapshots and len(history.runs) == 20
    await memory.aclose()
    return {"p50": _p50(timings), "bytes": float(size)}


def report(
    cost: dict[str, float], status: dict[str, float], history: dict[str, float], args: argparse.Namespace
) -> str:
    ratio = status["on"] / status["off"]
    return "\n".join(
        [
            START,
            "## Campaign history (`benchmarks/history.py`)",
            "",
            "| What | Target | Measured |",
            "|---|---|---|",
            "| Recording a snapshot, on the call's path (the store's newest snapshot merged with the cached timeline, "
            "+ queueing; the write is off the path) "
            f"| ≤ 0.3 ms p50 | {cost['on_path']:.3f} ms p50 over {args.calls} calls |",
            f"| `get_status` p50, history on vs off (in-memory MCP client, loopback API, interleaved) | ≤ 1.10× "
            f"| {status['on']:.2f} ms vs {status['off']:.2f} ms = {ratio:.2f}× over {args.calls} calls each |",
            f"| `get_history` over {args.snapshots:,} snapshots (20 runs), inside the server, SQLite | ≤ 10 ms p50 "
            f"| {history['p50']:.2f} ms p50 over {args.history_calls} calls; text {history['bytes']:.0f} bytes |",
            END,
        ]
    )


async def run(args: argparse.Namespace) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        cost = await record_cost(Path(tmp, "cost"), args.calls)
        print(f"record: {cost}", file=sys.stderr)
        with Upstream() as api:
            status = await status_on_off(api.base_url, Path(tmp, "status"), args.calls)
        print(f"get_status: {status}", file=sys.stderr)
        history = await history_over(Path(tmp, "history"), args.snapshots, args.history_calls)
        print(f"get_history: {history}", file=sys.stderr)
    return report(cost, status, history, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=600, help="calls per measurement")
    parser.add_argument("--snapshots", type=int, default=1000, help="snapshots of the get_history campaign")
    parser.add_argument("--history-calls", type=int, default=100, help="get_history reads")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    section = asyncio.run(run(args))
    write_section("history", section, args.output)
    print(section)  # stdout-ok: a benchmark's report


if __name__ == "__main__":
    main()
