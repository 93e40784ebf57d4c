"""A wait_for_run cancelled through another process: how soon the call ends, and what watching for it costs.

Run from the repository root: `uv run --frozen python -m benchmarks.shared_cancels [--rounds 20]` (about a
minute). Writes its section of RESULTS.md. Real `experiture-mcp --transport http` processes against the demo API
with its clock stopped (the running push never finishes): one process alone, one with `--workers 2` sharing its
SQLite file, and two replicas sharing one throwaway PostgreSQL (started from Debian's binaries as the test suite
does). Each round starts a wait on one process over a kept-alive connection to it, then posts the caller's
`notifications/cancelled` (2025-11-25) over a connection to the same process ("local") or to another one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from tests._postgres import Cluster, find_bin

from benchmarks.http_throughput import wait_healthy
from benchmarks.results import write_section
from benchmarks.rpc import base_env, cpu_seconds, free_port, hosted_server
from benchmarks.upstream import Upstream
from experiture_mcp.hosted import WORKER_HEADER
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

ROOT = Path(__file__).resolve().parent.parent
KEY = "bench-cancels-key-0123456789abcdef"
HEADERS = {
    "Authorization": f"Bearer {KEY}",
    "Accept": "application/json, text/event-stream",
    "Content-Type": "application/json",
    "MCP-Protocol-Version": "2025-11-25",
}
TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
FROZEN = datetime(2026, 11, 28, 15, 0, 30, tzinfo=UTC)  # the demo push is running then, and stays so
WAIT_SECONDS = 10.0  # an uncancelled wait, for the cost of watching


@dataclass
class Setup:
    """Server processes and the round-trip figures measured on them."""

    label: str
    urls: list[str]  # where to connect: one URL (workers share it) or one per replica
    posted: list[float] = field(default_factory=list[float])  # seconds of the cancel POST (202)
    ended: list[float] = field(default_factory=list[float])  # from the 202 to the end of the call's answer
    watch_cpu: float = 0.0  # CPU seconds of the holding process over one uncancelled WAIT_SECONDS wait
    idle_cpu: float = 0.0  # the same process over as long a time doing nothing


def _call(request_id: int, timeout: float) -> dict[str, object]:
    arguments = {"campaign_id": TOKYO, "timeout_seconds": timeout}
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "wait_for_run", "arguments": arguments},
    }


def _cancel(request_id: int) -> dict[str, object]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}


@asynccontextmanager
async def pinned(
    url: str, *, want: str | None = None, avoid: str | None = None
) -> AsyncGenerator[tuple[httpx2.AsyncClient, str]]:
    """A client on one kept-alive connection and the pid of the worker behind it: `want`, or any but `avoid` (which
    worker takes a new connection is up to the kernel)."""
    for _ in range(500):
        http = httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=1))
        try:
            worker = (await http.get(url + "/healthz")).headers[WORKER_HEADER]
            if worker != avoid and want in (None, worker):
                yield http, worker
                return
        finally:
            await http.aclose()
    raise RuntimeError(f"no connection to the wanted worker of {url} in 500 tries")


async def one_round(setup: Setup, request_id: int, local: bool) -> None:
    """A wait on the first process; its cancel through the same one (local) or another; the figures."""
    holder_url = setup.urls[0]
    other_url = holder_url if local or len(setup.urls) == 1 else setup.urls[1]
    async with pinned(holder_url) as (holding, holder):
        request = holding.stream("POST", holder_url + "/mcp", json=_call(request_id, 30), headers=HEADERS)
        async with request as answer:  # its headers: the call is under way
            await asyncio.sleep(0.3)
            async with pinned(other_url, want=holder if local else None, avoid=None if local else holder) as (
                canceller,
                _,
            ):
                started = time.perf_counter()
                posted = await canceller.post(other_url + "/mcp", json=_cancel(request_id), headers=HEADERS)
                answered = time.perf_counter()
            if posted.status_code != 202:
                raise RuntimeError(f"the cancel was answered {posted.status_code}")
            async for _ in answer.aiter_bytes():
                pass
            ended = time.perf_counter()
    if ended - answered > 5:
        raise RuntimeError(f"{setup.label}: the cancelled call ran on for {ended - answered:.1f} s")
    setup.posted.append(answered - started)
    setup.ended.append(ended - answered)


async def watching_cost(setup: Setup) -> None:
    """CPU of the holding process over an uncancelled wait, and over as long doing nothing."""
    async with pinned(setup.urls[0]) as (holding, holder):
        pid = int(holder)
        before = cpu_seconds(pid)
        await asyncio.sleep(WAIT_SECONDS)
        setup.idle_cpu = cpu_seconds(pid) - before
        before = cpu_seconds(pid)
        answer = await holding.post(setup.urls[0] + "/mcp", json=_call(99, WAIT_SECONDS), headers=HEADERS)
        setup.watch_cpu = cpu_seconds(pid) - before
        if answer.status_code != 200 or b'"timeout"' not in answer.content:
            raise RuntimeError(f"the uncancelled wait answered {answer.status_code}: {answer.text[:200]}")


def server(
    env: dict[str, str], port: int, log: Path, workers: int = 1
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """A hosted server with access keys; stopping it lets a wait under way end (the deadline plus a few seconds)."""
    args = ["--port", str(port), *(["--workers", str(workers)] if workers > 1 else [])]
    return hosted_server(args, env, log, stop_seconds=40)


async def measure(stack: ExitStack, logs: Path, cluster: Cluster, rounds: int) -> list[tuple[Setup, Setup]]:
    api = stack.enter_context(Upstream(frozen_at=FROZEN))
    common = base_env(
        EXPERITURE_MCP_ACCESS_KEYS=KEY,
        EXPERITURE_API_TOKEN=DEMO_TOKEN,
        EXPERITURE_BASE_URL=api.base_url,
        EXPERITURE_WAIT_POLL_SECONDS="1",
        EXPERITURE_DATA_DIR=str(logs / "data"),
    )
    database_url = cluster.start()
    stack.callback(cluster.stop)
    alone_port, workers_port, pg_ports = free_port(), free_port(), [free_port(), free_port()]
    processes = [
        (stack.enter_context(server(common, alone_port, logs / "alone.log")), alone_port),
        (stack.enter_context(server(common, workers_port, logs / "workers.log", workers=2)), workers_port),
    ]
    pg_env = {**common, "EXPERITURE_DATABASE_URL": database_url}
    for i, port in enumerate(pg_ports):
        processes.append((stack.enter_context(server(pg_env, port, logs / f"replica-{i}.log")), port))
    for process, port in processes:
        await wait_healthy(f"http://127.0.0.1:{port}", process)

    def url(port: int) -> str:
        return f"http://127.0.0.1:{port}"

    pairs = [
        (Setup("one process, SQLite", [url(alone_port)]), None),
        (Setup("2 workers, one SQLite file", [url(workers_port)]), Setup("", [url(workers_port)] * 2)),
        (Setup("2 replicas, PostgreSQL", [url(p) for p in pg_ports]), Setup("", [url(p) for p in pg_ports])),
    ]
    measured: list[tuple[Setup, Setup]] = []
    request_id = 0
    for local, across in pairs:
        for _ in range(3):  # warm: first calls open the memory, import what they need, on every process
            request_id += 1
            await one_round(local, request_id, local=True)
            if across is not None:
                request_id += 1
                await one_round(across, request_id, local=False)
        for setup in (local, across):
            if setup is not None:
                setup.posted.clear()
                setup.ended.clear()
        for _ in range(rounds):
            request_id += 1
            await one_round(local, request_id, local=True)
            if across is not None:
                request_id += 1
                await one_round(across, request_id, local=False)
        await watching_cost(local)
        measured.append((local, across or Setup("", [])))
    return measured


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    return f"{statistics.median(values) * 1000:.1f} / {max(values) * 1000:.0f}"


def report(measured: list[tuple[Setup, Setup]], rounds: int, seconds: float, load: float) -> str:
    lines = [
        "## Cancelling a wait through another process (`benchmarks/shared_cancels.py`)",
        "",
        f"{rounds} rounds per setup; {seconds:.0f} s in all; load average before the run "
        f"{load:.2f}. Each round: `wait_for_run` (30 s timeout, one status check a second) on one process, then",
        "the caller's `notifications/cancelled` POST through the same process (local) or another one, over a",
        "connection kept alive to that process. Times in ms, p50 / max. CPU: the holding process's CPU over a",
        f"{WAIT_SECONDS:.0f} s wait that nobody cancels, next to {WAIT_SECONDS:.0f} s of it doing nothing.",
        "",
        "| Setup | Cancel POST, local | Call ended after it, local | Cancel POST, other process "
        "| Call ended after it, other process | CPU, 10 s wait / 10 s idle |",
        "|---|---|---|---|---|---|",
    ]
    for local, across in measured:
        lines.append(
            f"| {local.label} | {_ms(local.posted)} | {_ms(local.ended)} | {_ms(across.posted)} | "
            f"{_ms(across.ended)} | {local.watch_cpu * 1000:.0f} ms / {local.idle_cpu * 1000:.0f} ms |"
        )
    lines += [
        "",
        "A process alone, or a cancel that reaches the process holding the call, cancels it in memory at once. One",
        "that reaches another process is left in the shared database, and the holder finds it at its next look",
        "(every 0.25 s). The looks run only while calls are held: one read per look for all of them (on SQLite",
        "through a plain sqlite3 connection, on PostgreSQL through the pool).",
    ]
    return "\n".join(lines) + "\n"


async def run(args: argparse.Namespace) -> str:
    bindir = find_bin()
    if bindir is None:
        raise SystemExit(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/ensure-postgres"
        )
    begun, load = time.perf_counter(), os.getloadavg()[0]
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        try:
            measured = await measure(stack, logs, Cluster(bindir), args.rounds)
        except Exception:
            for log in sorted(logs.glob("*.log")):
                sys.stderr.write(f"--- {log.name}, last lines:\n" + "".join(log.read_text().splitlines(True)[-30:]))
            raise
    return report(measured, args.rounds, time.perf_counter() - begun, load)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=20, help="cancels per setup and kind (default 20)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    section = asyncio.run(run(args))
    write_section("shared-cancels", section, args.output)
    print(section)  # stdout-ok: a benchmark's report


if __name__ == "__main__":
    main()
