"""Hosted mode's answer formats side by side: get_status calls per second with JSON answers (the SDK's
`json_response=True`), with event streams for everything (`json_response=False`), and as served (`build_app`), in
both protocol eras.

Run from the repository root: `uv run --frozen python -m benchmarks.http_streaming [--seconds 3] [--rounds 3]
[--write]`. Each variant is its own uvicorn process (one worker, the same options as `experiture-mcp --transport
http`) before the same demo API; rounds alternate between the variants so load from other jobs hits them alike.
`--write` replaces the section between the http-streaming markers in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2

from benchmarks.http_throughput import CAMPAIGNS, Round
from benchmarks.results import write_section
from benchmarks.rpc import MODERN_VERSION, PROTOCOL_VERSION, HttpSession, RpcError, base_env, cpu_seconds, free_port
from benchmarks.upstream import Upstream
from experiture_mcp.sandbox import DEMO_TOKEN

VARIANTS = ("json", "sse", "served")
LABELS = {
    "json": "JSON answers (`json_response=True`)",
    "sse": "event streams (`json_response=False`)",
    "served": "as served (`build_app`)",
}
ERAS = {"2025-11-25": PROTOCOL_VERSION, "2026-07-28": MODERN_VERSION}
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
START, END = "<!-- http-streaming:start -->", "<!-- http-streaming:end -->"


def app(variant: str) -> Any:
    """The hosted app for `variant`, from the environment's settings (no access keys: loopback)."""
    from experiture_mcp.config import Settings
    from experiture_mcp.hosted import MCP_PATH, PostOnlyMiddleware, build_app, transport_security
    from experiture_mcp.server import build_server

    settings = Settings()
    if variant == "served":
        return build_app(settings)
    server = build_server(settings)
    starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=True,
        json_response=variant == "json",
        max_request_body_size=settings.mcp_max_body_bytes,
        transport_security=transport_security(settings),
        host=settings.mcp_host,
    )
    starlette.add_middleware(PostOnlyMiddleware, path=MCP_PATH)
    return starlette


def router_cost(calls: int = 20000) -> float:
    """Microseconds StreamingRouter adds to an ordinary call in process: reading, checking and replaying its body."""
    from experiture_mcp.hosted import MCP_PATH, StreamingRouter

    body = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "get_status", "arguments": {"campaign_id": CAMPAIGNS[0]}}}).encode()  # fmt: skip
    scope: dict[str, Any] = {"type": "http", "path": MCP_PATH, "method": "POST", "headers": []}

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        await receive()

    async def send(message: Any) -> None:
        pass

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def run(app: Any) -> float:
        started = time.perf_counter()
        for _ in range(calls):
            await app(scope, receive, send)
        return time.perf_counter() - started

    router = StreamingRouter(inner, streaming=inner, path=MCP_PATH, max_body=4 * 1024 * 1024)
    bare = min(asyncio.run(run(inner)) for _ in range(3))
    routed = min(asyncio.run(run(router)) for _ in range(3))
    return (routed - bare) / calls * 1e6


def serve(variant: str, port: int) -> None:
    import logging

    import uvicorn

    from experiture_mcp.hosted import NoDelayProtocol

    logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)
    uvicorn.run(
        app(variant), host="127.0.0.1", port=port, log_config=None, log_level="warning", access_log=False,
        http=NoDelayProtocol, timeout_keep_alive=75,
    )  # fmt: skip


async def _wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    session = HttpSession(url)
    try:
        for _ in range(300):
            if process.poll() is not None:
                raise RuntimeError("a server exited during start-up")
            try:
                await session.request("tools/list")
                return
            except httpx2.TransportError:
                await asyncio.sleep(0.1)
    finally:
        await session.close()
    raise RuntimeError("a server did not answer in 30 s")


async def _client(session: HttpSession, index: int, stop: float, result: Round, kinds: set[str]) -> None:
    loop = asyncio.get_running_loop()
    n = index
    while loop.time() < stop:
        n += 1
        started = loop.time()
        try:
            answer = await session.call_tool("get_status", {"campaign_id": CAMPAIGNS[n % len(CAMPAIGNS)]})
        except (RpcError, httpx2.HTTPError):
            result.errors += 1
            continue
        kinds.add(session.content_type)
        if answer.get("isError"):
            result.errors += 1
            continue
        result.latencies.append(loop.time() - started)


async def _round(url: str, version: str, clients: int, seconds: float, kinds: set[str], pid: int) -> Round:
    sessions = [HttpSession(url, version=version) for _ in range(clients)]
    try:
        await asyncio.gather(*(s.call_tool("get_status", {"campaign_id": CAMPAIGNS[0]}) for s in sessions))  # warm
        result = Round(clients)
        loop = asyncio.get_running_loop()
        cpu = cpu_seconds(pid)
        started = loop.time()
        await asyncio.gather(*(_client(s, i, started + seconds, result, kinds) for i, s in enumerate(sessions)))
        result.seconds = loop.time() - started
        result.server_cpu = cpu_seconds(pid) - cpu
        return result
    finally:
        await asyncio.gather(*(s.close() for s in sessions))


async def measure(
    seconds: float, rounds: int, levels: list[int]
) -> tuple[dict[tuple[str, str, int], list[Round]], dict[tuple[str, str], set[str]]]:
    """Every (variant, era, clients) cell `rounds` times, alternating variants; and the content types each answered."""
    cells: dict[tuple[str, str, int], list[Round]] = {}
    kinds: dict[tuple[str, str], set[str]] = {}
    with Upstream() as api:
        env = base_env(EXPERITURE_API_TOKEN=DEMO_TOKEN, EXPERITURE_BASE_URL=api.base_url)
        ports = {v: free_port() for v in VARIANTS}
        argv = [sys.executable, "-m", "benchmarks.http_streaming", "--serve"]
        processes = {
            v: subprocess.Popen(
                [*argv, v, str(ports[v])], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for v in VARIANTS
        }
        try:
            for v in VARIANTS:
                await _wait_up(f"http://127.0.0.1:{ports[v]}/mcp", processes[v])
            for era, version in ERAS.items():
                for clients in levels:
                    for i in range(rounds):
                        order = VARIANTS if i % 2 == 0 else tuple(reversed(VARIANTS))
                        for v in order:
                            url = f"http://127.0.0.1:{ports[v]}/mcp"
                            seen = kinds.setdefault((v, era), set())
                            r = await _round(url, version, clients, seconds, seen, processes[v].pid)
                            cells.setdefault((v, era, clients), []).append(r)
        finally:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                process.wait(timeout=15)
    return cells, kinds


def report(
    cells: dict[tuple[str, str, int], list[Round]],
    kinds: dict[tuple[str, str], set[str]],
    args: argparse.Namespace,
    levels: list[int],
) -> str:
    def rate(v: str, era: str, clients: int) -> float:
        return statistics.median(r.rate for r in cells[v, era, clients])

    def p50(v: str, era: str, clients: int) -> float:
        return statistics.median(r.percentile(50) for r in cells[v, era, clients])

    def cpu(v: str, era: str, clients: int) -> float:
        return statistics.median(r.cpu_ms_per_call for r in cells[v, era, clients])

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        START,
        "## Hosted answer formats: JSON, event streams, as served (`python -m benchmarks.http_streaming`)",
        "",
        f"`get_status` over stateless streamable HTTP on loopback, one worker per variant, the same demo API; "
        f"{args.rounds} alternating rounds of {args.seconds:g} s per cell: median calls/s (p50 ms) [server CPU ms per "
        f"call, which other jobs on the machine disturb less than the rates]. Measured {when} "
        f"on {os.cpu_count()} shared cores (load average {os.getloadavg()[0]:.1f} at the end). Errors: "
        f"{sum(r.errors for rs in cells.values() for r in rs)}.",
        "",
        "| era | clients | " + " | ".join(LABELS[v] for v in VARIANTS) + " | SSE / JSON | served / JSON | CPU/call: "
        "SSE / JSON, served / JSON |",
        "|---|---:|" + "---:|" * (len(VARIANTS) + 3),
    ]
    for era in ERAS:
        for clients in levels:
            cols = [
                f"{rate(v, era, clients):.0f} ({p50(v, era, clients):.1f}) [{cpu(v, era, clients):.2f}]"
                for v in VARIANTS
            ]
            sse = rate("sse", era, clients) / rate("json", era, clients)
            served = rate("served", era, clients) / rate("json", era, clients)
            cpus = f"{cpu('sse', era, clients) / cpu('json', era, clients):.2f}, "
            cpus += f"{cpu('served', era, clients) / cpu('json', era, clients):.2f}"
            lines.append(f"| {era} | {clients} | " + " | ".join(cols) + f" | {sse:.2f} | {served:.2f} | {cpus} |")
    overhead = router_cost()
    kinds_text = "; ".join(
        f"{v} at {era}: {', '.join(sorted(kinds.get((v, era), set())))}" for v in VARIANTS for era in ERAS
    )
    lines += [
        "",
        f"StreamingRouter's own cost per ordinary call, in process (reading, checking and replaying the body): "
        f"{overhead:.1f} µs, against the server's 3–6 ms of CPU per call.",
        "",
        f"Content types of the answers: {kinds_text}.",
        END,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--serve", nargs=2, metavar=("VARIANT", "PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each timed round (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (default 3)")
    parser.add_argument("--clients", default="1,10,50", help="comma-separated concurrency levels (default 1,10,50)")
    parser.add_argument("--write", action="store_true", help="replace this section of benchmarks/RESULTS.md")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]))
        return
    levels = [int(n) for n in args.clients.split(",")]
    cells, kinds = asyncio.run(measure(args.seconds, args.rounds, levels))
    text = report(cells, kinds, args, levels)
    print(text)  # stdout-ok: the benchmark's report
    if args.write:
        write_section("http-streaming", text, RESULTS)


if __name__ == "__main__":
    main()
