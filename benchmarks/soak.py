"""Soak: thousands of concurrent tool calls over one stdio session against an API that misbehaves on 10 % of requests.

Run: uv run --frozen python -m benchmarks.soak [--calls 2000] [--concurrency 50] [--fault-rate 0.1]
Prints the figures and writes them to benchmarks/SOAK.md.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import re
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests._fault_api import FaultAPI, drip, hang, huge, record_bodies, reply, reset_mid_body  # shared with the tests

from benchmarks.rpc import RpcError, StdioSession, base_env
from benchmarks.upstream import Upstream
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

OUT = Path(__file__).with_name("SOAK.md")
TOOLS = ("get_status", "get_summary", "get_metrics")
BUSY = {"success": False, "error": {"code": "JOURNEY_API.BUSY", "message": "Try later."}}
FAULTS = [
    ("503", reply(503, BUSY)),
    ("502 HTML page", reply(502, "<html><h1>Bad Gateway</h1></html>", "text/html")),
    ("504 empty", reply(504, b"")),
    ("429 Retry-After 1", reply(429, BUSY, Retry_After="1")),
    ("500", reply(500, BUSY)),
    ("reset mid-body", reset_mid_body()),
    ("no answer", hang()),
    ("dripped body", drip(0.05)),
    ("truncated JSON", reply(200, b'{"success": true, "data": {"campaignId": "41')),
    ("wrong shape", reply(200, {"success": True, "data": {"unexpected": True}})),
    ("success false", reply(200, BUSY)),
    ("HTML with 200", reply(200, "<html>maintenance</html>", "text/html")),
    ("2 MB chunked body", huge(2 * 1024 * 1024, chunked=True)),
]
# The first clause of an error text names its kind.
KINDS = [
    ("temporarily unavailable", r"temporarily unavailable"),
    ("unreadable answer", r"answer this server cannot read"),
    ("server error (500, not retried)", r"had a server error"),
    ("not found (an unknown id, on purpose)", r"no campaign with this id"),
    ("not a broadcast campaign (demo data)", r"not a broadcast campaign"),
    ("status inconsistent (demo data)", r"execution metadata is inconsistent"),
    ("refused id (not a UUID, on purpose)", r"refused campaign_id"),
    ("internal error", r"internal error"),
]


def _kind(result: dict[str, Any]) -> str:
    if not result.get("isError"):
        return "ok"
    text = " ".join(c.get("text", "") for c in result.get("content", []))
    return next((kind for kind, pattern in KINDS if re.search(pattern, text)), "other error")


def _work(i: int) -> tuple[str, dict[str, str]]:
    ids = list(DEMO_CAMPAIGNS.values())
    if i % 50 == 7:
        return "get_status", {"campaign_id": "not-a-uuid"}
    if i % 50 == 13:
        return "get_status", {"campaign_id": "00000000-0000-4000-8000-000000000000"}
    return TOOLS[i % 3], {"campaign_id": ids[(i // 3) % len(ids)]}


async def soak(calls: int, concurrency: int, fault_rate: float) -> dict[str, Any]:
    with Upstream() as sandbox:
        canned = record_bodies(sandbox.base_url, DEMO_TOKEN, DEMO_CAMPAIGNS.values())
    with FaultAPI(canned) as api:
        env = base_env(
            EXPERITURE_API_TOKEN=DEMO_TOKEN,
            EXPERITURE_BASE_URL=api.url,
            EXPERITURE_TIMEOUT_SECONDS="1",
            EXPERITURE_DEADLINE_SECONDS="6",
            EXPERITURE_RETRY_BACKOFF_SECONDS="0.1",
            EXPERITURE_LOG_LEVEL="WARNING",
        )
        session = StdioSession([sys.executable, "-m", "experiture_mcp"], env)
        await session.start()
        rss_start = session.rss_kib()
        for i in range(60):  # warm-up: imports, connection pool, caches
            await session.call_tool(*_work(i))
        rss_warm = session.rss_kib()
        api.chaos(fault_rate, FAULTS)
        api.requests.clear()

        latencies: list[float] = []
        rss_series: list[tuple[int, float]] = []
        kinds: Counter[str] = Counter()
        next_call = iter(range(calls))
        started = time.perf_counter()

        async def worker() -> None:
            for i in next_call:
                t0 = time.perf_counter()
                try:
                    result = await asyncio.wait_for(session.call_tool(*_work(i)), timeout=60)
                    kinds[_kind(result)] += 1
                except RpcError:
                    kinds["JSON-RPC error"] += 1
                except TimeoutError:
                    kinds["unanswered after 60 s"] += 1
                latencies.append(time.perf_counter() - t0)
                if len(latencies) % 500 == 0:
                    rss_series.append((len(latencies), session.rss_kib() / 1024))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        rss_end = session.rss_kib()
        alive = session.proc is not None and session.proc.returncode is None
        cpu = session.cpu_seconds()
        await session.close()
        upstream_requests = len(api.requests)
        injected = dict(api.faults)

    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "calls": len(latencies),
        "concurrency": concurrency,
        "fault_rate": fault_rate,
        "wall_s": wall,
        "calls_per_s": len(latencies) / wall,
        "p50_ms": quantiles[49] * 1000,
        "p90_ms": quantiles[89] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": max(latencies) * 1000,
        "rss_start_mib": rss_start / 1024,
        "rss_warm_mib": rss_warm / 1024,
        "rss_end_mib": rss_end / 1024,
        "rss_series": rss_series,
        "server_cpu_s": cpu,
        "alive": alive,
        "kinds": dict(kinds.most_common()),
        "upstream_requests": upstream_requests,
        "injected": dict(sorted(injected.items(), key=lambda kv: -kv[1])),
    }


def report(r: dict[str, Any]) -> str:
    answered = sum(r["kinds"].values()) - r["kinds"].get("unanswered after 60 s", 0)
    lines = [
        "# Soak: one stdio session under injected upstream faults",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.machine()} Python {platform.python_version()}"
        " (2 shared vCPUs, other work running).",
        f"Command: `uv run --frozen python -m benchmarks.soak --calls {r['calls']}`.",
        "",
        f"{r['calls']:,} `tools/call` requests, {r['concurrency']} in flight at once, over ONE stdio session to "
        f"`experiture-mcp`, against a raw-socket fake API (`tests/_fault_api.py`) that answered "
        f"{r['fault_rate']:.0%} of its {r['upstream_requests']:,} requests with a fault. Server settings: timeout 1 s, "
        "deadline 6 s, backoff 0.1 s, 4 attempts, 16 upstream requests at once.",
        "",
        "| Figure | Value |",
        "|---|---|",
        f"| calls answered | {answered:,} of {r['calls']:,} |",
        f"| server process alive at the end | {'yes' if r['alive'] else 'NO'} |",
        f"| internal errors (crashes inside a tool) | {r['kinds'].get('internal error', 0)} |",
        f"| wall time | {r['wall_s']:.1f} s ({r['calls_per_s']:.0f} calls/s) |",
        f"| latency p50 / p90 / p99 / max | {r['p50_ms']:.0f} / {r['p90_ms']:.0f} / {r['p99_ms']:.0f} / "
        f"{r['max_ms']:.0f} ms |",
        f"| RSS after initialize / after 60 warm-up calls / at the end | {r['rss_start_mib']:.1f} / "
        f"{r['rss_warm_mib']:.1f} / {r['rss_end_mib']:.1f} MiB |",
        f"| RSS every 500 calls | {' · '.join(f'{mib:.1f}' for _, mib in r['rss_series'])} MiB |",
        f"| server CPU | {r['server_cpu_s']:.1f} s |",
        "",
        f"With {r['concurrency']} calls in flight the latency is mostly queueing in the one session: "
        f"{r['concurrency']} / {r['calls_per_s']:.0f} calls/s ≈ {r['concurrency'] / r['calls_per_s'] * 1000:.0f} ms. "
        "Faulty requests cost their retry (the 1 s timeout for a silent or dripping API, 1 s for Retry-After).",
        "",
        "Answers by kind (2 % of calls use an invalid id, 2 % an unknown one, on purpose):",
        "",
        "| Kind | Calls |",
        "|---|---|",
        *(f"| {kind} | {n:,} |" for kind, n in r["kinds"].items()),
        "",
        "Faults injected:",
        "",
        "| Fault | Requests |",
        "|---|---|",
        *(f"| {name} | {n:,} |" for name, n in r["injected"].items()),
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--fault-rate", type=float, default=0.1)
    args = parser.parse_args()
    result = asyncio.run(soak(args.calls, args.concurrency, args.fault_rate))
    text = report(result)
    print(text)
    OUT.write_text(text)


if __name__ == "__main__":
    main()
