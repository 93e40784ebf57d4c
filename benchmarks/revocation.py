"""Revocation across server processes: how long `POST /revoke` takes, and when the other processes refuse the token.

Run from the repository root: `uv run --frozen python -m benchmarks.revocation [--revocations 50]` (about a
minute). Writes its section of RESULTS.md. Real `experiture-mcp --transport http --auth oauth` processes on their own
ports against the demo API: two, then three, sharing one throwaway PostgreSQL (started from Debian's binaries as the
test suite does), and two sharing one SQLite file (as the workers of one host do). Each revocation: sign in on A,
one request on every other process so it has the token cached, `POST /revoke` on A, then at once one request on each
other process, repeated every 2 ms until it is refused (401).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Generator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx2
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tests._postgres import Cluster, find_bin

from benchmarks.http_throughput import wait_healthy
from benchmarks.oauth_client import register, sign_in
from benchmarks.results import write_section
from benchmarks.rpc import base_env, cpu_seconds, free_port, hosted_server
from benchmarks.upstream import Upstream
from experiture_mcp.memory.store import async_url
from experiture_mcp.oauth.listener import APPLICATION_NAME

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- revocation:start -->", "<!-- revocation:end -->"
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-11-25"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}  # authenticated like any MCP request, no upstream call
POLL_SECONDS = 0.002
GIVE_UP_SECONDS = 3.0
IDLE_SECONDS = 10.0


@dataclass
class Replica:
    """One server process on its own port."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path


@dataclass
class Setup:
    """Processes sharing one store, and what their revocations measured."""

    label: str
    replicas: list[Replica]
    client_id: str = ""
    revoke: list[float] = field(default_factory=list[float])  # seconds of each POST /revoke on A
    next_refused: int = 0  # first requests right after A's answer that were refused, over every other process
    next_sent: int = 0
    until_refused: list[float] = field(default_factory=list[float])  # A's answer to each other process's refusal
    gave_up: int = 0

    @property
    def public(self) -> str:
        return self.replicas[0].url


async def accepted(http: httpx2.AsyncClient, replica: Replica, access: str) -> bool:
    """Whether one MCP request with this token is served (200) or refused (401); anything else is a failure."""
    answer = await http.post(
        replica.url + "/mcp", json=PING, headers={**MCP_HEADERS, "Authorization": f"Bearer {access}"}
    )
    if answer.status_code not in (200, 401):
        raise RuntimeError(f"{replica.name} answered {answer.status_code}: {answer.text[:200]}")
    return answer.status_code == 200


async def _until_refused(
    http: httpx2.AsyncClient, replica: Replica, access: str, answered: float
) -> tuple[bool, float]:
    """Whether the first request was refused, and the seconds from A's answer to the refusing answer (inf: never)."""
    first = True
    while time.perf_counter() - answered < GIVE_UP_SECONDS:
        if not await accepted(http, replica, access):
            return first, time.perf_counter() - answered
        first = False
        await asyncio.sleep(POLL_SECONDS)
    return False, float("inf")


async def revoke_once(http: httpx2.AsyncClient, setup: Setup) -> None:
    """Sign in on A, warm every other process's cache, revoke on A, then watch the others refuse."""
    a, others = setup.replicas[0], setup.replicas[1:]
    access, refresh = await sign_in(http, a.url, setup.client_id)
    for replica in others:
        if not await accepted(http, replica, access):
            raise RuntimeError(f"{replica.name} refused a fresh token")
    started = time.perf_counter()
    answer = await http.post(a.url + "/revoke", data={"token": refresh, "client_id": setup.client_id})
    answered = time.perf_counter()
    if answer.status_code != 200:
        raise RuntimeError(f"/revoke answered {answer.status_code}: {answer.text[:200]}")
    setup.revoke.append(answered - started)
    for first, until in await asyncio.gather(*(_until_refused(http, r, access, answered) for r in others)):
        setup.next_sent += 1
        setup.next_refused += first
        if until == float("inf"):
            setup.gave_up += 1
        else:
            setup.until_refused.append(until)


@contextmanager
def replica(name: str, public: str, port: int, env: dict[str, str], logs: Path) -> Generator[Replica]:
    """A server process in OAuth mode on its own port."""
    log = logs / f"{name}-{port}.log"
    args, env = ["--auth", "oauth", "--port", str(port)], {**env, "EXPERITURE_MCP_PUBLIC_URL": public}
    with hosted_server(args, env, log) as process:
        yield Replica(name, f"http://127.0.0.1:{port}", process, log)


async def listeners(database_url: str) -> int:
    """How many revocation listeners are connected to the database right now."""
    engine = create_async_engine(async_url(database_url))
    try:
        async with engine.connect() as conn:
            query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"
            return int((await conn.execute(text(query), {"name": APPLICATION_NAME})).scalar() or 0)
    finally:
        await engine.dispose()


async def wait_listeners(database_url: str, count: int) -> None:
    for _ in range(200):
        if await listeners(database_url) >= count:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"fewer than {count} revocation listeners connected after 10 s")


def _postgres_pids(cluster: Cluster) -> list[int]:
    """The cluster's postmaster and its children (backends, checkpointer, ...)."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry.name))
    return pids


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with suppress(OSError):  # a backend that ended meanwhile
            total += cpu_seconds(pid)
    return total


@dataclass
class Idle:
    """CPU seconds used over IDLE_SECONDS with no requests, per process kind."""

    seconds: float
    postgres_replica: list[float]
    sqlite_replica: list[float]
    postgres_server: float
    listeners: int


async def measure_idle(pg: Setup, lite: Setup, cluster: Cluster, database_url: str) -> Idle:
    pg_pids = [r.process.pid for r in pg.replicas]
    lite_pids = [r.process.pid for r in lite.replicas]
    server_pids = _postgres_pids(cluster)
    before = [cpu_seconds(p) for p in pg_pids + lite_pids], _cpu(server_pids)
    started = time.perf_counter()
    await asyncio.sleep(IDLE_SECONDS)
    after = [cpu_seconds(p) for p in pg_pids + lite_pids], _cpu(server_pids)
    elapsed = time.perf_counter() - started
    used = [b - a for a, b in zip(before[0], after[0], strict=True)]
    return Idle(
        elapsed, used[: len(pg_pids)], used[len(pg_pids) :], after[1] - before[1], await listeners(database_url)
    )


def _load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


async def run(args: argparse.Namespace) -> str:
    bindir = find_bin()
    if bindir is None:
        raise SystemExit(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/ensure-postgres"
        )
    with ExitStack() as stack:
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        try:
            return await measure(stack, logs, Cluster(bindir), args.revocations)
        except Exception:
            for log in sorted(logs.glob("*.log")):
                sys.stderr.write(f"--- {log.name}, last lines:\n" + "".join(log.read_text().splitlines(True)[-30:]))
            raise


async def measure(stack: ExitStack, logs: Path, cluster: Cluster, revocations: int) -> str:
    """Start everything (stopped by the stack), measure idle, then the revocations; the report."""
    load_before = _load()
    begun = time.perf_counter()
    api = stack.enter_context(Upstream())
    database_url = cluster.start()
    stack.callback(cluster.stop)
    common = base_env(
        EXPERITURE_MCP_SECRET_KEY=secrets.token_urlsafe(48),
        EXPERITURE_BASE_URL=api.base_url,
        EXPERITURE_LOG_LEVEL="INFO",
    )
    pg_env = {**common, "EXPERITURE_DATABASE_URL": database_url}
    (logs / "data").mkdir()
    lite_env = {**common, "EXPERITURE_DATA_DIR": str(logs / "data")}
    ports = [free_port() for _ in range(5)]
    pg_public, lite_public = f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[3]}"
    pg = Setup(
        "PostgreSQL", [stack.enter_context(replica(n, pg_public, ports[i], pg_env, logs)) for i, n in enumerate("AB")]
    )
    lite = Setup(
        "SQLite, one file",
        [stack.enter_context(replica(n, lite_public, ports[3 + i], lite_env, logs)) for i, n in enumerate("AB")],
    )
    for r in pg.replicas + lite.replicas:
        await wait_healthy(r.url, r.process)
    await wait_listeners(database_url, 2)
    sys.stderr.write(f"  started in {time.perf_counter() - begun:.1f} s\n")
    idle = await measure_idle(pg, lite, cluster, database_url)
    sys.stderr.write("  idle measured\n")
    async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
        for setup in (pg, lite):
            setup.client_id = await register(http, setup.public)
        for i in range(revocations):  # interleaved, so the machine's noise falls on both
            for setup in (pg, lite) if i % 2 == 0 else (lite, pg):
                await revoke_once(http, setup)
        sys.stderr.write("  two processes measured\n")
        c = stack.enter_context(replica("C", pg_public, ports[2], pg_env, logs))
        three = Setup("PostgreSQL", [*pg.replicas, c], client_id=pg.client_id)
        await wait_healthy(c.url, c.process)
        await wait_listeners(database_url, 3)
        for _ in range(revocations):
            await revoke_once(http, three)
    unacknowledged = sum(r.log.read_text().count("not acknowledged") for r in three.replicas)
    return report([pg, three, lite], idle, unacknowledged, (load_before, _load()), time.perf_counter() - begun)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def report(setups: list[Setup], idle: Idle, unacknowledged: int, load: tuple[str, str], took: float) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    rows = [
        START,
        "## Revocation across replicas (`python -m benchmarks.revocation`)",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit.stdout.strip() or '?'} on "
        f"{len(os.sched_getaffinity(0))} shared cores, in {took:.0f} s.",
        f"`uptime` before: `{load[0]}`; after: `{load[1]}`.",
        "Real `experiture-mcp --transport http --auth oauth` processes on their own ports, the demo API in another",
        "process, one loopback HTTP client. Each revocation: sign in on A, one request on every other process (its",
        "cache now holds the token), `POST /revoke` on A, then at once an MCP request (`ping`) with the access token",
        f"on every other process, repeated every {POLL_SECONDS * 1000:g} ms until refused (401; with three processes,",
        "B and C at the same time). SQLite: two processes with one data directory, as the `--workers` of one host",
        "share the file. PostgreSQL and SQLite revocations alternate one by one; the three-process rows follow.",
        "",
        "| store | processes | revocations | `POST /revoke` p50 / p90 / max ms | first request right after, refused "
        "| A's answer → refusal, p50 / max ms |",
        "|---|---:|---:|---|---|---|",
    ]
    for s in setups:
        others = ", ".join(r.name for r in s.replicas[1:])
        gave_up = f"; {s.gave_up} never refused within {GIVE_UP_SECONDS:g} s" if s.gave_up else ""
        until = f"{_ms(statistics.median(s.until_refused))} / {_ms(max(s.until_refused))}" if s.until_refused else "—"
        rows.append(
            f"| {s.label} | {len(s.replicas)} | {len(s.revoke)} | {_ms(_pct(s.revoke, 0.5))} / "
            f"{_ms(_pct(s.revoke, 0.9))} / {_ms(max(s.revoke))} | {s.next_refused} of {s.next_sent} (on {others}) "
            f"| {until}{gave_up} |"
        )
    per_10s = 10 / idle.seconds
    rows += [
        "",
        f"PostgreSQL: {unacknowledged} revocations logged as not acknowledged within 1 s by every process (the",
        "bounded wait of the revoking side). There the refusal time is one request's own round trip: the first",
        "request is the refused one. SQLite has no notification: a process notices another's revocation at its next",
        "revocation-mark check (at most one per 0.25 s, made on a request), so the first request may still be served.",
        "",
        f"Cost while idle ({idle.seconds:.0f} s with no requests, before the revocations; CPU per 10 s):",
        "",
        "| what | CPU ms per 10 s |",
        "|---|---:|",
        *(
            f"| server process {r.name}, PostgreSQL (its listener connected) | {used * per_10s * 1000:.0f} |"
            for r, used in zip(setups[0].replicas, idle.postgres_replica, strict=True)
        ),
        *(
            f"| server process {r.name}, SQLite | {used * per_10s * 1000:.0f} |"
            for r, used in zip(setups[2].replicas, idle.sqlite_replica, strict=True)
        ),
        f"| the PostgreSQL server, all its processes ({idle.listeners} listener connections open) | "
        f"{idle.postgres_server * per_10s * 1000:.0f} |",
        "",
        _idle_verdict(idle),
        "/proc counts CPU in 10 ms ticks. An idle listener is one open connection per process and a `SELECT 1`",
        "every 30 s; nothing is polled while no requests arrive (the revocation-mark check runs on requests only).",
        END,
    ]
    return "\n".join(rows)


def _idle_verdict(idle: Idle) -> str:
    extra = max(idle.postgres_replica) - max(idle.sqlite_replica)
    if round(extra * os.sysconf("SC_CLK_TCK")) <= 1:  # one clock tick
        return "Listening costs nothing measurable while idle: a PostgreSQL process uses what a SQLite one does."
    return f"A listening PostgreSQL process used {extra * 1000:.0f} ms more CPU than a SQLite one over the idle time."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--revocations", type=int, default=50, help="revocations per setup (default 50)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    args = parser.parse_args()
    section = asyncio.run(run(args))
    write_section("revocation", section, args.output)
    print(section)  # stdout-ok: a benchmark's report


if __name__ == "__main__":
    main()
