"""Ours next to the SDK floor, in one run: start-up, memory, latency, throughput, tokens. Writes RESULTS.md.

Run from the repository root: `uv run --frozen python -m benchmarks.run` (about three minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
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
from benchmarks.rpc import HttpSession, StdioSession, base_env, cpu_seconds, free_port
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
OURS_LABEL, FLOOR_LABEL = "experiture-mcp", "SDK floor"
RENDERED_LABEL = "SDK floor + our model and text"  # floor_server.py with FLOOR_RENDER=1
MEMORY_SECTION = "## Idle memory breakdown"  # the heading of benchmarks/idle_memory.py --write's section
# Sections of RESULTS.md that other benchmarks write (wait_polls.py by hand, the memory, history, http_streaming,
# revocation and shared_cancels ones themselves).
KEPT_SECTIONS = (
    "## wait_for_run",
    "<!-- memory:start -->",
    "<!-- idle-memory:start -->",
    "<!-- history:start -->",
    "<!-- http-streaming:start -->",
    "<!-- revocation:start -->",
    "<!-- shared-cancels:start -->",
)

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
    startup: dict[str, list[float]] = field(default_factory=dict[str, list[float]])  # phase -> seconds per run
    own_work: dict[str, float] = field(default_factory=dict[str, float])  # step -> seconds per get_status call
    serve_cpu: dict[str, dict[str, list[float]]] = field(default_factory=dict[str, dict[str, list[float]]])
    http_note: str = ""
    listing: Json = field(default_factory=dict[str, Any])
    floor_listing: Json = field(default_factory=dict[str, Any])
    texts: list[tuple[str, str, int, int, FactCheck, bool]] = field(
        default_factory=list[tuple[str, str, int, int, FactCheck, bool]]
    )


def servers(api: Upstream) -> tuple[Server, Server]:
    ours = Server(
        OURS_LABEL,
        [OURS],
        base_env(
            EXPERITURE_API_TOKEN=DEMO_TOKEN, EXPERITURE_BASE_URL=api.base_url, EXPERITURE_MCP_ACCESS_KEYS=ACCESS_KEY
        ),
        lambda port: [OURS, "--transport", "http", "--host", "127.0.0.1", "--port", str(port)],
    )
    floor = Server(
        FLOOR_LABEL,
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
    calls: dict[str, Call], cpu: dict[str, Callable[[], float]], count: int, out: Results
) -> None:
    """Sequential calls interleaved one by one, the order rotating, so every contender sees the same noise."""
    names = list(calls)
    for name in names:
        for _ in range(30):
            await calls[name]()
    used = {name: read() for name, read in cpu.items()}
    for i in range(count):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            started = time.perf_counter()
            await calls[name]()
            out.latency.setdefault(name, []).append(time.perf_counter() - started)
    for name, read in cpu.items():
        out.cpu[name] = read() - used[name]  # the servers idle between their own calls, so this is theirs
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
    transport: str,
    calls: dict[str, Call],
    cpu: dict[str, Callable[[], float]],
    api: Upstream,
    rounds: int,
    seconds: float,
    out: Results,
) -> None:
    labels = list(calls)
    for level in LEVELS:
        for label in labels:  # warm up: fill the upstream pool at this level
            await throughput(calls[label], level, 0.3)
        for r in range(rounds):
            for label in labels[r % 2 :] + labels[: r % 2]:
                before, used = api.connections, cpu[label]()
                rate, done = await throughput(calls[label], level, seconds)
                opened = api.connections - before
                spent = out.serve_cpu.setdefault(transport, {}).setdefault(label, [0.0, 0.0])
                spent[0] += cpu[label]() - used
                spent[1] += done
                out.rate.setdefault(transport, {}).setdefault(label, {}).setdefault(level, []).append(rate)
                total = out.conns.setdefault(transport, {}).setdefault(label, {}).get(level, (0, 0))
                out.conns[transport][label][level] = (total[0] + opened, total[1] + done)
        _progress(f"{transport} throughput at {level} in flight done")


# Run in a fresh interpreter: where the start-up time of each server goes, phase by phase.
_STARTUP_PROBE = """
import json, sys, time
phases = {}
t = time.perf_counter()
import mcp.server, httpx2
phases["import mcp.server and httpx2 (the SDK; both servers pay this)"] = time.perf_counter() - t
if sys.argv[1] == "floor":
    t = time.perf_counter()
    sys.path.insert(0, "benchmarks")
    import floor_server
    phases["floor: define the server and its one tool"] = time.perf_counter() - t
else:
    t = time.perf_counter()
    from experiture_mcp.cli import main
    from experiture_mcp.config import Settings
    settings = Settings()
    phases["ours: import the CLI and read the settings"] = time.perf_counter() - t
    t = time.perf_counter()
    from experiture_mcp.server import build_server
    phases["ours: import client, models, render and the tool modules"] = time.perf_counter() - t
    t = time.perf_counter()
    build_server(settings)
    phases["ours: build_server (tool, resource and prompt registration, schemas)"] = time.perf_counter() - t
print(json.dumps(phases))
"""


def measure_startup_phases(pair: tuple[Server, Server], runs: int, out: Results) -> None:
    """Each phase of start-up timed inside a fresh interpreter, alternating servers."""
    contenders = ((pair[0], "ours"), (pair[1], "floor"))
    for i in range(runs):
        for server, which in contenders if i % 2 == 0 else contenders[::-1]:
            done = subprocess.run(
                [sys.executable, "-c", _STARTUP_PROBE, which],
                env=server.env,
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
                timeout=120,
            )
            for phase, seconds in json.loads(done.stdout).items():
                out.startup.setdefault(phase, []).append(seconds)
    _progress("start-up phases done")


def measure_own_work(body: bytes, out: Results, repeat: int = 2000) -> None:
    """Our own per-call steps for get_status, in process: parse and validate, render, structured content, redact."""
    from experiture_mcp.logs import redact
    from experiture_mcp.models import CampaignStatus, dump
    from experiture_mcp.render import render_status

    model = CampaignStatus.model_validate(json.loads(body)["data"])
    now = datetime.now(UTC)
    text = render_status(model, now)
    steps: dict[str, Callable[[], object]] = {
        "parse the body and validate CampaignStatus": lambda: CampaignStatus.model_validate(json.loads(body)["data"]),
        "render the text (render_status)": lambda: render_status(model, now),
        "dump the structured content": lambda: dump(model),
        "redact the text": lambda: redact(text),
    }
    for step, work in steps.items():
        started = time.perf_counter()
        for _ in range(repeat):
            work()
        out.own_work[step] = (time.perf_counter() - started) / repeat


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


def _http_mode_available() -> bool:
    done = subprocess.run([OURS, "--help"], capture_output=True, text=True, check=False, timeout=60)
    return "--transport" in done.stdout


async def _serve_http(server: Server, log: Path) -> tuple[asyncio.subprocess.Process, str]:
    assert server.http_argv is not None
    port = free_port()
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
    cpu: dict[str, Callable[[], float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for server in contenders:
                proc, url = await _serve_http(server, Path(tmp) / f"{len(procs)}.log")
                procs.append(proc)
                session = HttpSession(url, ACCESS_KEY if server is pair[0] else None)
                sessions.append(session)
                calls[server.label] = _tool_call(session)
                cpu[server.label] = lambda pid=proc.pid: cpu_seconds(pid)
                await calls[server.label]()
            await measure_throughput("HTTP", calls, cpu, api, rounds, seconds, out)
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
        measure_startup_phases(pair, max(3, args.cold_runs // 3), out)
        ours, floor = (StdioSession(s.argv, s.env) for s in pair)
        rendered = StdioSession(pair[1].argv, {**pair[1].env, "FLOOR_RENDER": "1"})
        async with httpx2.AsyncClient(
            base_url=api.base_url + "/", headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
        ) as http:
            try:
                for session in (ours, floor, rendered):
                    await session.start()
                stdio = {pair[0].label: _tool_call(ours), pair[1].label: _tool_call(floor)}
                cpu = {pair[0].label: ours.cpu_seconds, pair[1].label: floor.cpu_seconds}
                await measure_latency(
                    {**stdio, RENDERED_LABEL: _tool_call(rendered), "direct httpx2 GET": _direct_get(http)},
                    {**cpu, RENDERED_LABEL: rendered.cpu_seconds},
                    args.calls,
                    out,
                )
                await rendered.close()
                await measure_throughput("stdio", stdio, cpu, api, args.rounds, args.seconds, out)
                await measure_tokens(ours, floor, http, out)
                measure_own_work((await http.get(f"campaigns/{CAMPAIGN}/status")).content, out)
            finally:
                for session in (ours, floor, rendered):
                    await session.close()
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


CORE_TOOLS = tuple(ENDPOINTS)  # the three tools the 3 KB budget was set for


def report(out: Results, args: argparse.Namespace) -> str:
    """The whole run as Markdown: targets first, then each measurement."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    lines = [
        "# Benchmarks: experiture-mcp next to the SDK floor",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit {commit.stdout.strip() or '?'} on "
        f"{platform.machine()} with {_cpus()} CPUs, Python {platform.python_version()}, mcp {version('mcp')}. "
        "Command: `uv run --frozen python -m benchmarks.run`.",
        "",
        "The SDK floor (`benchmarks/floor_server.py`) is a minimal `MCPServer` with one tool that makes one GET with "
        "a shared `httpx2` client and returns the body. Both servers call the demo API served by uvicorn on "
        "127.0.0.1 in its own process. Contenders alternate within each measurement so machine noise falls on both; "
        "on a busy machine absolute times swing, the ratios much less.",
        "",
        *_targets(out),
        *_start_and_memory(out),
        *_latency(out),
        *_throughput(out, args),
        *_tokens(out),
    ]
    return "\n".join(lines)


def _text_totals(out: Results) -> tuple[int, int, int, int, int, int]:
    ok = [t for t in out.texts if not t[5]]
    checked = sum(t[4].checked for t in out.texts)
    missing = sum(len(t[4].missing) for t in out.texts)
    cut = sum(len(t[4].cut) for t in out.texts)
    return sum(t[2] for t in ok), sum(t[3] for t in ok), sum(t[4].fact_bytes for t in ok), checked, missing, cut


def _targets(out: Results) -> list[str]:
    ours, floor = OURS_LABEL, FLOOR_LABEL
    cold_o, cold_f = statistics.median(out.cold[ours]), statistics.median(out.cold[floor])
    fast_o, fast_f = min(out.cold[ours]), min(out.cold[floor])
    rss_o, rss_f = statistics.median(out.rss[ours]), statistics.median(out.rss[floor])
    p50_o, p50_f = statistics.median(out.latency[ours]), statistics.median(out.latency[floor])
    views = _model_view(out.listing)
    core = _size([v for v in views if v["name"] in CORE_TOOLS])
    raw, text, _, checked, missing, cut = _text_totals(out)
    share = text / raw if raw else 0.0
    rows = [
        "## Targets",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        f"| cold start | ≤ 1.05× floor | median {_ms(cold_o)} vs {_ms(cold_f)} = {_ratio(cold_o, cold_f)}; fastest "
        f"{_ms(fast_o)} vs {_ms(fast_f)} = {_ratio(fast_o, fast_f)} | {_met(cold_o <= 1.05 * cold_f)} |",
        f"| idle memory | ≤ 1.05× floor | {rss_o / 1024:.1f} vs {rss_f / 1024:.1f} MiB = {_ratio(rss_o, rss_f)} "
        f"| {_met(rss_o <= 1.05 * rss_f)} |",
        f"| per-call p50, get_status over stdio | ≤ 1.15× floor tool | {_ms(p50_o)} vs {_ms(p50_f)} = "
        f"{_ratio(p50_o, p50_f)} | {_met(p50_o <= 1.15 * p50_f)} |",
    ]
    for transport, by_server in out.rate.items():
        if ours not in by_server:
            rows.append(
                f"| throughput at 50 in flight, {transport} | ≥ 0.9× floor | not measured: {out.http_note} | — |"
            )
            continue
        r_o, r_f = statistics.median(by_server[ours][50]), statistics.median(by_server[floor][50])
        rows.append(
            f"| throughput at 50 in flight, {transport} | ≥ 0.9× floor | {r_o:.0f} vs {r_f:.0f} calls/s = "
            f"{_ratio(r_o, r_f)} | {_met(r_o >= 0.9 * r_f)} |"
        )
    kept = f"facts kept {checked - missing - cut}/{checked}" + (f", {cut} long names cut on purpose" if cut else "")
    rows += [
        f"| text results ({len([t for t in out.texts if not t[5]])} successful calls) | ≤ 60 % of raw JSON, every fact "
        f"kept | {share:.0%} of the raw JSON; {kept} | {_met(share <= 0.6 and missing == 0)} |",
        f"| (a) tools/list as the model sees it | ≤ 3 KB | {', '.join(CORE_TOOLS)}: {core:,} bytes; all {len(views)} "
        f"tools: {_size(views):,} bytes | {_met(core <= 3072)} for the three, {_met(_size(views) <= 3072)} for all |",
        "",
    ]
    return rows


def _start_and_memory(out: Results) -> list[str]:
    rows = [
        f"## 1–2. Cold start and idle memory ({len(out.cold[OURS_LABEL])} runs each, alternating)",
        "",
        "Spawn over stdio until the `initialize` response arrives; resident memory (VmRSS) 0.3 s after it.",
        "",
        "| server | start median | start range | idle RSS median | RSS range |",
        "|---|---|---|---|---|",
    ]
    for label in (OURS_LABEL, FLOOR_LABEL):
        c, m = out.cold[label], out.rss[label]
        rows.append(
            f"| {label} | {_ms(statistics.median(c))} | {_ms(min(c))} – {_ms(max(c))} | "
            f"{statistics.median(m) / 1024:.1f} MiB | {min(m) / 1024:.1f} – {max(m) / 1024:.1f} MiB |"
        )
    rows += [
        "",
        f"Where start-up goes: each phase timed in a fresh interpreter ({len(list(out.startup.values())[-1])} runs "
        "of each server, median). Interpreter start and the stdio handshake come on top, the same for both.",
        "",
        "| phase | median |",
        "|---|---|",
        *(f"| {phase} | {_ms(statistics.median(times))} |" for phase, times in out.startup.items()),
    ]
    return [*rows, ""]


def _latency(out: Results) -> list[str]:
    floor = statistics.median(out.latency[FLOOR_LABEL])
    rows = [
        f"## 3. Per-call latency ({len(out.latency[OURS_LABEL])} sequential calls each, warm, interleaved one by one)",
        "",
        "get_status of one campaign over stdio; the server's own CPU time per call is read from /proc. "
        f"*{RENDERED_LABEL}* is the floor's one GET returning what ours returns (validated model as structured "
        "content, our text): the gap from it to ours is our client around the GET (retries, deadline, "
        "concurrency cap, capped body read) and the tool's bookkeeping.",
        "",
        "| what | p50 | p99 | p50 vs floor tool | server CPU per call |",
        "|---|---|---|---|---|",
    ]
    for label, samples in out.latency.items():
        p50 = statistics.median(samples)
        cpu = _ms(out.cpu[label] / len(samples)) if label in out.cpu else "—"
        rows.append(f"| {label} | {_ms(p50)} | {_ms(_pct(samples, 0.99))} | {_ratio(p50, floor)} | {cpu} |")
    rows += [
        "",
        "Our own steps of one get_status call after the GET, timed in process (the same steps run in "
        f"*{RENDERED_LABEL}*):",
        "",
        "| step | per call |",
        "|---|---|",
        *(f"| {step} | {seconds * 1e6:.0f} µs |" for step, seconds in out.own_work.items()),
    ]
    return [*rows, ""]


def _throughput(out: Results, args: argparse.Namespace) -> list[str]:
    rows = [
        f"## 4. Throughput ({args.rounds} rounds of {args.seconds:g} s per cell, alternating; median calls/s)",
        "",
        "Callers each wait for their answer before the next call. Upstream connections: TCP connections the demo "
        "API accepted during the timed rounds (pools were warmed first), next to the calls made.",
        "",
    ]
    if out.http_note:
        rows += [out.http_note, ""]
    rows += [
        "| transport | server | "
        + " | ".join(f"{n} in flight" for n in LEVELS)
        + " | server CPU per call | upstream connections opened |",
        "|---|---|" + "---|" * len(LEVELS) + "---|---|",
    ]
    for transport, by_server in out.rate.items():
        for label, by_level in by_server.items():
            cells = " | ".join(f"{statistics.median(by_level[n]):.0f}" for n in LEVELS)
            conns = out.conns[transport][label]
            opened = ", ".join(f"{conns[n][0]} for {conns[n][1]:,} calls" for n in LEVELS)
            spent, done = out.serve_cpu[transport][label]
            rows.append(f"| {transport} | {label} | {cells} | {_ms(spent / done)} | {opened} |")
    return [*rows, ""]


def _tokens(out: Results) -> list[str]:
    views = _model_view(out.listing)
    full, floor_view = _size(out.listing), _size(_model_view(out.floor_listing))
    rows = [
        "## 5. Tokens (approximate tokens = characters / 4; no tokenizer is downloaded)",
        "",
        "| tools/list | bytes | ≈ tokens |",
        "|---|---|---|",
        *(f"| (a) {v['name']}: name, title, description, inputSchema | {_size(v):,} | {_approx(v)} |" for v in views),
        f"| (a) all {len(views)} tools as the model sees them | {_size(views):,} | {_approx(views)} |",
        f"| (b) whole tools/list result, output schemas included | {full:,} | {_approx(out.listing)} |",
        *(
            f"| (b) {tool['name']}: outputSchema alone | {_size(tool['outputSchema']):,} "
            f"| {_approx(tool['outputSchema'])} |"
            for tool in out.listing["tools"]
            if "outputSchema" in tool
        ),
        f"| SDK floor's one tool as the model sees it, for scale | {floor_view:,} | "
        f"{_approx(_model_view(out.floor_listing))} |",
        "",
        "(c) Each tool's text result (what the model reads) next to the raw API JSON for the same campaign "
        "(the body as the API sends it, which is also what the floor's tool returns). Facts: every leaf of the "
        "raw JSON (numbers, ids, enum values, names, times, flags; not nulls or empty lists) looked for in the text "
        "in a normalized form (17491 ↔ 17,491; 2026-05-01T09:00:00.000Z ↔ 2026-05-01 09:00 UTC; false ↔ not …). "
        "*Facts alone* is the shortest form of those leaves added up: what any text that keeps them all must carry.",
        "",
        "| campaign | tool | raw JSON bytes | text bytes | text/raw | ≈ text tokens | facts alone | facts kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for campaign, tool, raw, text, facts, error in out.texts:
        kind = " (error)" if error else ""
        kept = f"{facts.kept}/{facts.checked}" + (f" ({len(facts.cut)} cut)" if facts.cut else "")
        rows.append(
            f"| {campaign} | {tool}{kind} | {raw:,} | {text:,} | {text / raw:.0%} | {round(text / 4):,} "
            f"| {facts.fact_bytes:,} ({facts.fact_bytes / raw:.0%}) | {kept} |"
        )
    raw, text, fact_bytes, *_ = _text_totals(out)
    rows += [
        f"| **all successful** | | {raw:,} | {text:,} | {text / raw:.0%} | {round(text / 4):,} "
        f"| {fact_bytes:,} ({fact_bytes / raw:.0%}) | |",
        "",
    ]
    lost = [(c, t, m, "not found") for c, t, _, _, f, _ in out.texts for m in f.missing]
    lost += [(c, t, m, "cut on purpose") for c, t, _, _, f, _ in out.texts for m in f.cut]
    if lost:
        rows += ["Facts not found whole in the text:", ""]
        rows += [f"- {c} {t}, {why}: `{m}`" for c, t, m, why in lost]
    else:
        rows.append("Every fact of every raw JSON body was found in the matching text.")
    return [*rows, ""]


def _approx(value: Any) -> str:
    return f"{approx_tokens(json.dumps(value, separators=(',', ':'), ensure_ascii=False)):,}"


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold-runs", type=int, default=12, help="cold starts per server (default 12)")
    parser.add_argument("--calls", type=int, default=360, help="sequential calls per contender (default 360)")
    parser.add_argument("--rounds", type=int, default=5, help="throughput rounds per cell (default 5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per throughput round (default 1)")
    parser.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "RESULTS.md", help="report file")
    args = parser.parse_args()
    started = time.monotonic()
    results = asyncio.run(run(args))
    text = report(results, args)
    text += f"\nThe whole run took {time.monotonic() - started:.0f} s.\n"
    if args.output.exists():  # keep the sections other benchmarks write by hand or themselves, which this run does not
        previous = args.output.read_text()
        starts = [i for i in (previous.find(m) for m in KEPT_SECTIONS) if i >= 0]
        text += "\n" + previous[min(starts) :] if starts else ""
    args.output.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
