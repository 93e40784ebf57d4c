"""Hosted mode throughput: tool calls per second at 1, 10 and 50 concurrent clients over streamable HTTP on loopback.

Run from the repository root: `uv run --frozen python -m benchmarks.http_throughput [--workers 2] [--seconds 5]`.
The server runs as `experiture-mcp --transport http` in its own process(es), the demo API in another, and the
clients in this one; all share the machine's cores, so the figures are a floor, not a capacity plan.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx2

from benchmarks.rpc import HttpSession, RpcError, base_env, cpu_seconds, free_port
from benchmarks.upstream import Upstream
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

CAMPAIGNS = [DEMO_CAMPAIGNS[name] for name in ("spring-dm", "summer-email", "flash-sms", "tokyo-push")]


@dataclass
class Round:
    """What one concurrency level measured."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list[float])
    errors: int = 0
    server_cpu: float = 0.0  # seconds of CPU the server's processes used during the round

    @property
    def cpu_ms_per_call(self) -> float:
        return self.server_cpu / len(self.latencies) * 1000 if self.latencies else 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=100)[int(p) - 1] * 1000


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx2.AsyncClient() as http:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError("the server exited during start-up")
            try:
                if (await http.get(url + "/healthz")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("the server did not become healthy in 30 s")


async def _client(session: HttpSession, index: int, stop: float, result: Round) -> None:
    n = index
    while time.perf_counter() < stop:
        n += 1
        started = time.perf_counter()
        try:
            answer = await session.call_tool("get_status", {"campaign_id": CAMPAIGNS[n % len(CAMPAIGNS)]})
        except (RpcError, httpx2.HTTPError):
            result.errors += 1
            continue
        if answer.get("isError"):
            result.errors += 1
            continue
        result.latencies.append(time.perf_counter() - started)


def _tree_cpu_seconds(pid: int) -> float:
    """CPU used so far by a process and its children (uvicorn's workers)."""
    with open(f"/proc/{pid}/task/{pid}/children") as children:
        pids = [pid, *(int(child) for child in children.read().split())]
    return sum(cpu_seconds(p) for p in pids)


async def call_round(url: str, key: str, clients: int, seconds: float, server_pid: int) -> Round:
    sessions = [HttpSession(url, access_key=key) for _ in range(clients)]
    try:
        await asyncio.gather(*(s.call_tool("get_status", {"campaign_id": CAMPAIGNS[0]}) for s in sessions))  # warm
        result = Round(clients)
        cpu = _tree_cpu_seconds(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(_client(s, i, started + seconds, result) for i, s in enumerate(sessions)))
        result.seconds = time.perf_counter() - started
        result.server_cpu = _tree_cpu_seconds(server_pid) - cpu
        return result
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def measure(workers: int, seconds: float, levels: list[int], **env_extra: str) -> list[Round]:
    """Start the demo API and the hosted server (`env_extra`: more settings), then one timed round per level."""
    key = secrets.token_urlsafe(32)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with Upstream() as api:
        env = base_env(EXPERITURE_API_TOKEN=DEMO_TOKEN, EXPERITURE_MCP_ACCESS_KEYS=key, **env_extra)
        argv = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--port", str(port)]
        argv += ["--workers", str(workers), "--base-url", api.base_url]
        process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await wait_healthy(url, process)
            return [await call_round(url + "/mcp", key, clients, seconds, process.pid) for clients in levels]
        finally:
            process.terminate()
            process.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (default 1)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed round (default 5)")
    parser.add_argument("--clients", default="1,10,50", help="comma-separated concurrency levels (default 1,10,50)")
    args = parser.parse_args()
    levels = [int(n) for n in args.clients.split(",")]
    rounds = asyncio.run(measure(args.workers, args.seconds, levels))
    print(f"experiture-mcp --transport http --workers {args.workers}: get_status against the demo API on loopback")
    print(f"(load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print("| clients | calls | calls/s | p50 ms | p95 ms | p99 ms | server CPU ms/call | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rounds:
        print(
            f"| {r.clients} | {len(r.latencies)} | {r.rate:.0f} | {r.percentile(50):.1f} | "
            f"{r.percentile(95):.1f} | {r.percentile(99):.1f} | {r.cpu_ms_per_call:.2f} | {r.errors} |"
        )


if __name__ == "__main__":
    main()
