"""Ours next to the SDK floor, in one run: start-up, memory, latency, throughput, tokens. Writes RESULTS.md.

Run from the repository root: `uv run --frozen python -m benchmarks.run` (about three minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx2

from benchmarks.facts import FactCheck, approx_tokens, check_facts
from benchmarks.rpc import HttpSession, StdioSession, base_env
from benchmarks.upstream import Upstream
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
OURS = str(BIN / "experiture-mcp")  # the venv's console script, as an MCP host starts it (not `uv run`)
FLOOR = [sys.executable, str(ROOT / "benchmarks" / "floor_server.py")]
CAMPAIGN = DEMO_CAMPAIGNS["spring-dm"]
ACCESS_KEY = "bench-access-key"
LEVELS = (1, 10, 50)
ENDPOINTS = {"get_summary": "summary", "get_status": "status", "get_metrics": "metrics"}

Call = Callable[[], Awaitable[Any]]
Json = dict[str, Any]


@dataclass
class Server:
    """How to start one MCP server over stdio and over HTTP."""

    label: str
    argv: list[str]
    env: dict[str, str]
    http_argv: Callable[[int], list[str]] | None = None


@dataclass
class Results:
    """Every figure of one run."""

    cold: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    rss: dict[str, list[int]] = field(default_factory=dict[str, list[int]])
    latency: dict[str, list[float]] = field(default_factory=dict[str, list[float]])
    cpu: dict[str, float] = field(default_factory=dict[str, float])  # server CPU seconds over the timed calls
    # transport -> server -> level -> calls/s of each round; and upstream connections opened, calls made
    rate: dict[str, dict[str, dict[int, list[float]]]] = field(
        default_factory=dict[str, dict[str, dict[int, list[float]]]]
    )
    conns: dict[str, dict[str, dict[int, tuple[int, int]]]] = field(
        default_factory=dict[str, dict[str, dict[int, tuple[int, int]]]]
    )
    http_note: str = ""
    listing: Json = field(default_factory=dict[str, Any])
    floor_listing: Json = field(default_factory=dict[str, Any])
    texts: list[tuple[str, str, int, int, FactCheck, bool]] = field(
        default_factory=list[tuple[str, str, int, int, FactCheck, bool]]
    )


def servers(api: Upstream) -> tuple[Server, Server]:
    ours = Server(
        "experiture-mcp",
        [OURS],
        base_env(
            EXPERITURE_API_TOKEN=DEMO_TOKEN, EXPERITURE_BASE_URL=api.base_url, EXPERITURE_MCP_ACCESS_KEYS=ACCESS_KEY
        ),
        lambda port: [OURS, "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
    )
    floor = Server(
        "SDK floor",
        FLOOR,
        base_env(FLOOR_TOKEN=DEMO_TOKEN, FLOOR_BASE_URL=api.base_url),
        lambda port: [*FLOOR, "--http", str(port)],
    )
    return ours, floor


def _alternate(i: int, pair: tuple[Server, Server]) -> tuple[Server, Server]:
    return pair if i % 2 == 0 else (pair[1], pair[0])


async def measure_cold_start(pair: tuple[Server, Server], runs: int, out: Results) -> None:
    """Spawn until the initialize response, then the resident memory once idle; run 0 only warms caches."""
    for i in range(runs + 1):
        for server in _alternate(i, pair):
            session = StdioSession(server.argv, server.env)
            elapsed = await session.start()
            await asyncio.sleep(0.3)
            rss = session.rss_kib()
            await session.close()
            if i:
                out.cold.setdefault(server.label, []).append(elapsed)
                out.rss.setdefault(server.label, []).append(rss)
        _progress(f"cold start {i}/{runs}")


def _tool_call(session: StdioSession | HttpSession, name: str = "get_status") -> Call:
    async def call() -> Json:
        result = await session.call_tool(name, {"campaign_id": CAMPAIGN})
        if result.get("isError"):
            raise RuntimeError(f"{name} failed: {result['content'][0]['text']}")
        return result

    return call


def _direct_get(http: httpx2.AsyncClient) -> Call:
    async def call() -> bytes:
        response = await http.get(f"campaigns/{CAMPAIGN}/status")
        response.raise_for_status()
        return response.content

    return call


async def measure_latency(
    calls: dict[str, Call], cpu: dict[str, Callable[[], float]], rounds: int, per_round: int, out: Results
) -> None:
    """Sequential calls in rounds, the order rotating each round, so every contender sees the same noise."""
    names = list(calls)
    for name in names:
        for _ in range(30):
            await calls[name]()
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples = out.latency.setdefault(name, [])
            call = calls[name]
            used = cpu[name]() if name in cpu else 0.0
            for _ in range(per_round):
                started = time.perf_counter()
                await call()
                samples.append(time.perf_counter() - started)
            if name in cpu:
                out.cpu[name] = out.cpu.get(name, 0.0) + cpu[name]() - used
    _progress("latency done")


async def throughput(call: Call, inflight: int, seconds: float) -> tuple[float, int]:
    """Calls per second with `inflight` callers each waiting for its answer before the next call."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def caller() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await call()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(inflight)))
    return done / (time.perf_counter() - started), done


async def measure_throughput(
    transport: str, calls: dict[str, Call], api: Upstream, rounds: int, seconds: float, out: Results
) -> None:
    labels = list(calls)
    for level in LEVELS:
        for label in labels:  # warm up: fill the upstream pool at this level
            await throughput(calls[label], level, 0.3)
        for r in range(rounds):
            for label in labels[r % 2 :] + labels[: r % 2]:
                before = api.connections
                rate, done = await throughput(calls[label], level, seconds)
                opened = api.connections - before
                out.rate.setdefault(transport, {}).setdefault(label, {}).setdefault(level, []).append(rate)
                total = out.conns.setdefault(transport, {}).setdefault(label, {}).get(level, (0, 0))
                out.conns[transport][label][level] = (total[0] + opened, total[1] + done)
        _progress(f"{transport} throughput at {level} in flight done")


async def measure_tokens(ours: StdioSession, floor: StdioSession, http: httpx2.AsyncClient, out: Results) -> None:
    out.listing = await ours.request("tools/list")
    out.floor_listing = await floor.request("tools/list")
    for campaign, campaign_id in DEMO_CAMPAIGNS.items():
        for tool, endpoint in ENDPOINTS.items():
            raw = (await http.get(f"campaigns/{campaign_id}/{endpoint}")).content
            result = await ours.call_tool(tool, {"campaign_id": campaign_id})
            text = "\n".join(block["text"] for block in result["content"] if block["type"] == "text")
            facts = check_facts(json.loads(raw), text)
            out.texts.append((campaign, tool, len(raw), len(text.encode()), facts, bool(result.get("isError"))))
    _progress("tokens done")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _http_mode_available() -> bool:
    done = subprocess.run([OURS, "--help"], capture_output=True, text=True, check=False, timeout=60)
    return "--transport" in done.stdout


async def _serve_http(server: Server, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    assert server.http_argv is not None
    port = _free_port()
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *server.http_argv(port), env=server.env, stdout=asyncio.subprocess.DEVNULL, stderr=stderr
        )
    deadline = time.monotonic() + 30
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return proc, f"http://127.0.0.1:{port}/mcp"
        except OSError:
            if proc.returncode is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{server.label} did not serve HTTP: {log.read_text()[-2000:]}") from None
            await asyncio.sleep(0.05)


async def measure_http(pair: tuple[Server, Server], api: Upstream, rounds: int, seconds: float, out: Results) -> None:
    contenders = list(pair)
    if not _http_mode_available():
        out.http_note = "experiture-mcp has no --transport http yet: only the floor was measured over HTTP."
        contenders = [pair[1]]
    procs: list[asyncio.subprocess.Process] = []
    sessions: list[HttpSession] = []
    calls: dict[str, Call] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for server in contenders:
                proc, url = await _serve_http(server, Path(tmp) / f"{len(procs)}.log")
                procs.append(proc)
                session = HttpSession(url, ACCESS_KEY if server is pair[0] else None)
                sessions.append(session)
                calls[server.label] = _tool_call(session)
                await calls[server.label]()
            await measure_throughput("HTTP", calls, api, rounds, seconds, out)
        finally:
            for session in sessions:
                await session.close()
            for proc in procs:
                proc.terminate()
                await proc.wait()


async def run(args: argparse.Namespace) -> Results:
    out = Results()
    with Upstream() as api:
        pair = servers(api)
        await measure_cold_start(pair, args.cold_runs, out)
        ours, floor = (StdioSession(s.argv, s.env) for s in pair)
        async with httpx2.AsyncClient(
            base_url=api.base_url + "/", headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
        ) as http:
            try:
                await ours.start()
                await floor.start()
                stdio = {pair[0].label: _tool_call(ours), pair[1].label: _tool_call(floor)}
                rounds = max(1, args.calls // 30)
                cpu = {pair[0].label: ours.cpu_seconds, pair[1].label: floor.cpu_seconds}
                await measure_latency({**stdio, "direct httpx2 GET": _direct_get(http)}, cpu, rounds, 30, out)
                await measure_throughput("stdio", stdio, api, args.rounds, args.seconds, out)
                await measure_tokens(ours, floor, http, out)
            finally:
                await ours.close()
                await floor.close()
        await measure_http(pair, api, args.rounds, args.seconds, out)
    return out


def _progress(message: str) -> None:
    sys.stderr.write(f"  {message}\n")


# ---- report ----------------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def _ratio(ours: float, floor: float) -> str:
    return f"{ours / floor:.2f}×" if floor else "n/a"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _model_view(listing: Json) -> list[Json]:
    # What a host hands the model for each tool: name, title, description and input schema.
    keys = ("name", "title", "description", "inputSchema")
    return [{k: tool[k] for k in keys if k in tool} for tool in listing["tools"]]


def _size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def report(out: Results, args: argparse.Namespace) -> str:
    ours, floor = "experiture-mcp", "SDK floor"
    lines: list[str] = []
    add = lines.append
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    add("# Benchmarks: experiture-mcp next to the SDK floor")
    add("")
    add(
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit.stdout.strip() or '?'} on "
        f"{platform.machine()} with {_cpus()} CPUs, Python {platform.python_version()}, mcp {version('mcp')}. "
        "Command: `uv run --frozen python -m benchmarks.run`."
    )
    add("")
    add(
        "The SDK floor (`benchmarks/floor_server.py`) is a minimal `MCPServer` with one tool that makes one GET with "
        "a shared `httpx2` client and returns the body. Both servers call the demo API served by uvicorn on "
        "127.0.0.1 in its own process. Contenders alternate within each measurement so machine noise falls on both."
    )
    add("")

    cold_o, cold_f = statistics.median(out.cold[ours]), statistics.median(out.cold[floor])
    rss_o, rss_f = statistics.median(out.rss[ours]), statistics.median(out.rss[floor])
    p50 = {k: statistics.median(v) for k, v in out.latency.items()}
    views = _model_view(out.listing)
    view_bytes = _size(views)
    ok_texts = [t for t in out.texts if not t[5]]
    raw_total = sum(t[2] for t in ok_texts)
    text_total = sum(t[3] for t in ok_texts)
    facts_checked = sum(t[4].checked for t in out.texts)
    facts_missing = sum(len(t[4].missing) for t in out.texts)

    add("## Targets")
    add("")
    add("| target | goal | measured | |")
    add("|---|---|---|---|")
    add(
        f"| cold start | ≤ 1.05× floor | {_ms(cold_o)} vs {_ms(cold_f)} = {_ratio(cold_o, cold_f)} "
        f"| {_met(cold_o <= 1.05 * cold_f)} |"
    )
    add(
        f"| idle memory | ≤ 1.05× floor | {rss_o / 1024:.1f} vs {rss_f / 1024:.1f} MiB = {_ratio(rss_o, rss_f)} "
        f"| {_met(rss_o <= 1.05 * rss_f)} |"
    )
    add(
        f"| per-call p50, get_status over stdio | ≤ 1.15× floor tool | {_ms(p50[ours])} vs {_ms(p50[floor])} = "
        f"{_ratio(p50[ours], p50[floor])} | {_met(p50[ours] <= 1.15 * p50[floor])} |"
    )
    for transport, by_server in out.rate.items():
        if ours not in by_server:
            add(f"| throughput at 50 in flight, {transport} | ≥ 0.9× floor | not measured: {out.http_note} | — |")
            continue
        r_o, r_f = statistics.median(by_server[ours][50]), statistics.median(by_server[floor][50])
        add(
            f"| throughput at 50 in flight, {transport} | ≥ 0.9× floor | {r_o:.0f} vs {r_f:.0f} calls/s = "
            f"{_ratio(r_o, r_f)} | {_met(r_o >= 0.9 * r_f)} |"
        )
    share = text_total / raw_total if raw_total else 0
    add(
        f"| text results, {len(ok_texts)} successful calls | ≤ 60 % of raw JSON, every fact kept | {share:.0%} of the "
        f"raw JSON; facts kept {facts_checked - facts_missing}/{facts_checked} "
        f"| {_met(share <= 0.6 and facts_missing == 0)} |"
    )
    add(
        f"| (a) tools/list as the model sees it, {len(views)} tools | ≤ 3 KB | {view_bytes:,} bytes "
        f"≈ {approx_tokens(json.dumps(views, separators=(',', ':'), ensure_ascii=False)):,} tokens "
        f"| {_met(view_bytes <= 3072)} |"
    )
    add("")

    add(f"## 1–2. Cold start and idle memory ({len(out.cold[ours])} runs each, alternating)")
    add("")
    add("Spawn over stdio until the `initialize` response arrives; resident memory (VmRSS) 0.3 s after it.")
    add("")
    add("| server | start median | start range | idle RSS median | RSS range |")
    add("|---|---|---|---|---|")
    for label in (ours, floor):
        c, m = out.cold[label], out.rss[label]
        add(
            f"| {label} | {_ms(statistics.median(c))} | {_ms(min(c))} – {_ms(max(c))} | "
            f"{statistics.median(m) / 1024:.1f} MiB | {min(m) / 1024:.1f} – {max(m) / 1024:.1f} MiB |"
        )
    add("")

    add(f"## 3. Per-call latency ({len(out.latency[ours])} sequential calls each, warm, rounds alternating)")
    add("")
    add("| what | p50 | p99 | p50 vs floor tool | server CPU per call |")
    add("|---|---|---|---|---|")
    for label, samples in out.latency.items():
        cpu = _ms(out.cpu[label] / len(samples)) if label in out.cpu else "—"
        add(f"| {label} | {_ms(p50[label])} | {_ms(_pct(samples, 0.99))} | {_ratio(p50[label], p50[floor])} | {cpu} |")
    add("")

    add(f"## 4. Throughput ({args.rounds} rounds of {args.seconds:g} s per cell, alternating; median calls/s)")
    add("")
    if out.http_note:
        add(out.http_note)
        add("")
    add("| transport | server | " + " | ".join(f"{n} in flight" for n in LEVELS) + " | upstream connections opened |")
    add("|---|---|" + "---|" * len(LEVELS) + "---|")
    for transport, by_server in out.rate.items():
        for label, by_level in by_server.items():
            cells = [f"{statistics.median(by_level[n]):.0f}" for n in LEVELS]
            conns = out.conns[transport][label]
            opened = ", ".join(f"{conns[n][0]} for {conns[n][1]:,} calls" for n in LEVELS)
            add(f"| {transport} | {label} | " + " | ".join(cells) + f" | {opened} |")
    add("")

    add("## 5. Tokens (approximate tokens = characters / 4; no tokenizer is downloaded)")
    add("")
    full = _size(out.listing)
    add("| tools/list | bytes | ≈ tokens |")
    add("|---|---|---|")
    for view in views:
        text = json.dumps(view, separators=(",", ":"), ensure_ascii=False)
        add(
            f"| (a) {view['name']}: name, title, description, inputSchema | {_size(view):,} | {approx_tokens(text):,} |"
        )
    add(f"| (a) all {len(views)} tools as the model sees them | {view_bytes:,} | {round(view_bytes / 4):,} |")
    add(f"| (b) whole tools/list result, output schemas included | {full:,} | {round(full / 4):,} |")
    floor_view = _size(_model_view(out.floor_listing))
    add(f"| SDK floor's one tool as the model sees it, for scale | {floor_view:,} | {round(floor_view / 4):,} |")
    add("")
    add(
        "(c) Each tool's text result (what the model reads) next to the raw API JSON for the same campaign "
        "(the body as the API sends it, which is also what the floor's tool returns). Facts: every leaf of the "
        "raw JSON (numbers, ids, enum values, names, times, flags; not nulls or empty lists) found in the text in "
        "a normalized form (17491 ↔ 17,491; 2026-05-01T09:00:00.000Z ↔ 2026-05-01 09:00 UTC; false ↔ not …)."
    )
    add("")
    add("| campaign | tool | raw JSON bytes | text bytes | text/raw | ≈ text tokens | facts kept |")
    add("|---|---|---|---|---|---|---|")
    for campaign, tool, raw, text, facts, error in out.texts:
        kind = " (error)" if error else ""
        add(
            f"| {campaign} | {tool}{kind} | {raw:,} | {text:,} | {text / raw:.0%} | {round(text / 4):,} "
            f"| {facts.kept}/{facts.checked} |"
        )
    add(f"| **all successful** | | {raw_total:,} | {text_total:,} | {share:.0%} | {round(text_total / 4):,} | |")
    add("")
    missing = [(c, t, m) for c, t, _, _, f, _ in out.texts for m in f.missing]
    if missing:
        add("Facts not found in the text:")
        add("")
        add("\n".join(f"- {c} {t}: `{m}`" for c, t, m in missing))
    else:
        add("Every fact of every raw JSON body was found in the matching text.")
    add("")
    return "\n".join(lines)


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold-runs", type=int, default=12, help="cold starts per server (default 12)")
    parser.add_argument("--calls", type=int, default=360, help="sequential calls per contender (default 360)")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per cell (default 3)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per throughput round (default 1.5)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="report file")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args))
    text = report(results, args)
    text += f"\nThe whole run took {time.monotonic() - started:.0f} s.\n"
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
