"""wait_for_run's upstream requests per poll interval (counted at the demo API), and the cost of the ETA arithmetic.

Run: uv run --frozen python benchmarks/wait_polls.py [--quick]   (about 70 s; --quick skips the 45 s default wait)
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx2
from mcp import Client
from pydantic import SecretStr
from starlette.responses import Response

from experiture_mcp.config import Settings
from experiture_mcp.history.progress import (
    Observation,
    compare,
    describe_change,
    describe_progress,
    estimate,
    progress_line,
    since_last_check,
)
from experiture_mcp.models import Counts
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, create_app
from experiture_mcp.server import build_server

NOW = datetime(2026, 11, 28, 15, 0, 30, tzinfo=UTC)
TOKYO = DEMO_CAMPAIGNS["tokyo-push"]


class Counted:
    """The demo API behind `latency` s per answer, noting when each request arrived."""

    def __init__(self, app: Any, latency: float, unavailable: bool) -> None:
        self.app, self.latency, self.unavailable, self.arrivals = app, latency, unavailable, list[float]()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.arrivals.append(anyio.current_time())
            await anyio.sleep(self.latency)
            if self.unavailable and len(self.arrivals) > 1:  # after the first answer, only 503s
                return await Response(status_code=503)(scope, receive, send)
        await self.app(scope, receive, send)


async def one_wait(interval: float, timeout: float, latency: float, unavailable: bool = False) -> dict[str, float]:
    """One wait_for_run on the running demo push (frozen: it never finishes), counting upstream requests."""
    api = Counted(create_app(clock=lambda: NOW), latency, unavailable)
    settings = Settings(
        api_token=SecretStr(DEMO_TOKEN),
        base_url="https://demo.experiture.invalid/public/v1",
        wait_poll_seconds=interval,
    )
    server = build_server(settings, transport=httpx2.ASGITransport(app=api), clock=lambda: NOW)
    async with Client(server) as client:
        started = time.perf_counter()
        result = await client.call_tool("wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": timeout})
        took = time.perf_counter() - started
    assert result.structured_content is not None and result.structured_content["outcome"] == "timeout"
    gaps = [b - a for a, b in zip(api.arrivals, api.arrivals[1:], strict=False)]
    return {
        "interval": interval,
        "timeout": timeout,
        "latency_ms": latency * 1000,
        "requests": len(api.arrivals),
        "checks": result.structured_content["checks"],
        "failed": result.structured_content["failedChecks"],
        "bound": math.floor(timeout / interval) + 1,
        "min_gap": min(gaps) if gaps else math.inf,
        "took": took,
    }


def per_call_us(fn: Callable[[], object], runs: int = 20000) -> float:
    """Median microseconds per call over 5 batches."""
    batches: list[float] = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(runs // 5):
            fn()
        batches.append((time.perf_counter() - started) / (runs // 5) * 1e6)
    return statistics.median(batches)


def arithmetic() -> dict[str, float]:
    """Cost of the pure progress functions on observations shaped like the demo push's."""

    def obs(seconds: float, sent: int) -> Observation:
        counts = Counts(scheduled=50000, hydrated=50000, composed=sent + 1250, injected=sent, sent=sent, failed=0)
        return Observation(NOW + timedelta(seconds=seconds), "running", "run-1", NOW, None, counts)

    before, after = obs(-300, 17000), obs(0, 29876)
    many = [obs(-i * 5.0, 29876 - i * 20) for i in range(1000)]
    p = estimate(before, after, NOW)
    assert p is not None
    return {
        "compare + describe_change": per_call_us(
            lambda: describe_change(compare(before, after), before, after, since_last_check(before, NOW))
        ),
        "estimate": per_call_us(lambda: estimate(before, after, NOW)),
        "estimate + describe_progress": per_call_us(
            lambda: describe_progress(estimate(before, after, NOW) or p, "Asia/Tokyo", NOW)
        ),
        "progress_line, 2 observations": per_call_us(lambda: progress_line([before, after], "Asia/Tokyo", NOW)),
        "progress_line, 1,000 observations": per_call_us(lambda: progress_line(many, "Asia/Tokyo", NOW), 500),
    }


async def main(quick: bool) -> None:
    plans = [(0.5, 5.0, 0.0), (1.0, 10.0, 0.05), (1.0, 10.0, 0.4)]
    if not quick:
        plans.append((5.0, 45.0, 0.05))  # the defaults
    print("wait_for_run on a run that does not finish (it waits its whole timeout):")  # stdout-ok: a benchmark report
    columns = "poll interval | timeout | upstream latency | checks | upstream requests | bound ⌊timeout/interval⌋+1"
    print(f"| {columns} | shortest gap between requests | wall time |")  # stdout-ok
    print("|---|---|---|---|---|---|---|---|")  # stdout-ok
    for interval, timeout, latency in plans:
        r = await one_wait(interval, timeout, latency)
        print(  # stdout-ok
            f"| {r['interval']:g} s | {r['timeout']:g} s | {r['latency_ms']:g} ms | {r['checks']:g} | "
            f"{r['requests']:g} | {r['bound']:g} | {r['min_gap']:.3f} s | {r['took']:.2f} s |"
        )
        # A few ms of scheduling jitter aside, never two requests within one poll interval.
        assert r["requests"] <= r["bound"] and r["min_gap"] > interval - 0.01, r
    r = await one_wait(1.0, 10.0, 0.0, unavailable=True)
    print(  # stdout-ok
        f"\nEvery check after the first answered 503 (1 s interval, 10 s timeout, default retries): {r['checks']:g} "
        f"check, {r['failed']:g} failed checks, {r['requests']:g} upstream requests (the client's retries with "
        f"backoff inside each check), shortest gap {r['min_gap']:.3f} s; the wait returned its last status after "
        f"{r['took']:.2f} s, not an error."
    )
    print("\nProgress arithmetic and text (pure functions, median µs per call):")  # stdout-ok
    print("| function | µs |\n|---|---|")  # stdout-ok
    for name, us in arithmetic().items():
        print(f"| {name} | {us:.1f} |")  # stdout-ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="skip the 45 s wait with the default settings")
    anyio.run(main, parser.parse_args().quick)
