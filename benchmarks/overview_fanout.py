"""get_overview against the demo API with a simulated per-request latency: wall time and text size for N campaigns.

Run: uv run --frozen python benchmarks/overview_fanout.py [--latency-ms 50] [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import anyio
import httpx2
from mcp import Client
from mcp.types import TextContent
from pydantic import SecretStr

from experiture_mcp.config import Settings
from experiture_mcp.overview import OVERVIEW_CONCURRENCY
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, create_app
from experiture_mcp.server import build_server

NOW = datetime(2026, 11, 28, 15, 0, 30, tzinfo=UTC)


def delayed(app: Any, seconds: float) -> Any:
    """The ASGI app with `seconds` of latency before each HTTP answer."""

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await anyio.sleep(seconds)
        await app(scope, receive, send)

    return wrapper


def text(result: Any) -> str:
    return "".join(b.text for b in result.content if isinstance(b, TextContent))


async def measure(n: int, latency: float, runs: int) -> dict[str, float]:
    ids = list(DEMO_CAMPAIGNS.values())
    ids = (ids + [str(uuid.UUID(int=i + 1)) for i in range(n)])[:n]
    transport = httpx2.ASGITransport(app=delayed(create_app(clock=lambda: NOW), latency))
    settings = Settings(api_token=SecretStr(DEMO_TOKEN), base_url="https://demo.experiture.invalid/public/v1")
    times: list[float] = []
    async with Client(build_server(settings, transport=transport, clock=lambda: NOW)) as client:
        overview = await client.call_tool("get_overview", {"campaign_ids": ids})  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            await client.call_tool("get_overview", {"campaign_ids": ids})
            times.append(time.perf_counter() - start)
        statuses = [text(await client.call_tool("get_status", {"campaign_id": cid})) for cid in ids]
    return {
        "median_s": statistics.median(times),
        "sequential_floor_s": 2 * n * latency,
        "overview_chars": len(text(overview)),
        "status_chars": sum(len(t) for t in statuses),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--latency-ms", type=float, default=50.0, help="simulated latency of each API request")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    latency = args.latency_ms / 1000
    print(f"get_overview: {args.latency_ms:g} ms per request, {OVERVIEW_CONCURRENCY} in flight, median of {args.runs}")
    print(f"{'campaigns':>9}  {'wall':>8}  {'sequential':>10}  {'overview text':>13}  {'get_status texts':>16}")
    for n in (1, 12, 50):
        r = anyio.run(measure, n, latency, args.runs)
        print(
            f"{n:>9}  {r['median_s'] * 1000:>6.0f}ms  {r['sequential_floor_s'] * 1000:>8.0f}ms  "
            f"{r['overview_chars']:>7} chars  {r['status_chars']:>10} chars"
        )


if __name__ == "__main__":
    main()
