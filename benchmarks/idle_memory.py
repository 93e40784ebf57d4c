"""Idle memory, ours next to the SDK floor: resident memory, then what each imports and allocates before the first call.

Run from the repository root: `uv run --frozen python -m benchmarks.idle_memory [--runs N] [--write]` (about a minute);
it prints markdown, and `--write` puts it in its section of benchmarks/RESULTS.md (benchmarks.run keeps that section).
Both servers are started over stdio as benchmarks.run starts them and answer `initialize`; then:

- resident memory (VmRSS) 0.3 s later, the median of N runs each, alternating;
- the modules loaded by then (sys.modules), grouped by top-level package: what ours loads that the floor does not;
- a tracemalloc snapshot taken then (the server is started under tracemalloc), the live allocations grouped by the
  package of the allocating file (module code objects count under the import machinery, which loads them);
- a waterfall: in a fresh interpreter, the resident memory each step adds in the order `experiture-mcp` loads it —
  the floor's imports, then ours module by module, reading the settings, building the server (median of 3).

Resident memory grows in whole pages and allocator arenas, so a small module can show 0 KiB and the next one the
arena it opened; the waterfall's steps add up to the real total.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.results import write_section
from benchmarks.rpc import StdioSession, base_env
from benchmarks.run import MEMORY_SECTION
from experiture_mcp.sandbox import DEMO_TOKEN

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
FLOOR_SCRIPT = str(ROOT / "benchmarks" / "floor_server.py")
BASE_URL = "http://127.0.0.1:9/public/v1"  # never called: both servers stay idle
ACCESS_KEY = "bench-access-key"
# The harness runs a server under tracemalloc; once MEMORY_TRIGGER exists, a thread writes the snapshot and the sorted
# sys.modules (a thread, not a signal: the main thread may sleep in the event loop while a reader thread gets it).
HARNESS = """
import json, os, runpy, sys, threading, time, tracemalloc
tracemalloc.start()
def dump():
    while not os.path.exists(os.environ["MEMORY_TRIGGER"]):
        time.sleep(0.05)
    sizes = {s.traceback[0].filename: s.size for s in tracemalloc.take_snapshot().statistics("filename")}
    with open(os.environ["MEMORY_MODULES"] + ".part", "w") as out:
        json.dump({"modules": sorted(sys.modules), "sizes": sizes}, out)
    os.replace(os.environ["MEMORY_MODULES"] + ".part", os.environ["MEMORY_MODULES"])
threading.Thread(target=dump, daemon=True).start()
which = sys.argv.pop(1)
if which == "ours":
    from experiture_mcp.cli import main
    sys.argv = ["experiture-mcp"]
    sys.exit(main())
runpy.run_path(sys.argv[1], run_name="__main__")
"""
# The waterfall: resident memory and modules each step adds, in a fresh interpreter, in the order the server loads
# them: first what the floor imports, then ours module by module, then reading the settings and building the server.
WATERFALL = """
import importlib, json, os, sys
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
steps = []
def step(name, do):
    before, count = rss(), len(sys.modules)
    result = do()
    steps.append((name, rss() - before, len(sys.modules) - count))
    return result
for name in ("httpx2", "mcp.server", "mcp.server.mcpserver", "mcp.server.stdio"):
    step("floor: " + name, lambda: importlib.import_module(name))
for name in sys.argv[1:]:
    step(name, lambda: importlib.import_module(name))
from experiture_mcp.config import Settings
from experiture_mcp.server import build_server
settings = step("Settings()", Settings)
step("build_server(settings)", lambda: build_server(settings))
print(json.dumps(steps))
"""
# Our modules in the order `experiture-mcp` imports them (argparse and anyio come with the CLI).
OUR_MODULES = (
    "argparse",
    "anyio",
    "experiture_mcp.config",
    "experiture_mcp.cli",
    "experiture_mcp.errors",
    "experiture_mcp.models",
    "experiture_mcp.render",
    "experiture_mcp.logs",
    "experiture_mcp.results",
    "experiture_mcp.client",
    "experiture_mcp.doctor",
    "experiture_mcp.overview",
    "experiture_mcp.prompts",
    "experiture_mcp.reference",
    "experiture_mcp.server",
)
STDLIB = sysconfig.get_paths()["stdlib"]


def servers() -> dict[str, tuple[list[str], dict[str, str]]]:
    ours_env = base_env(EXPERITURE_API_TOKEN=DEMO_TOKEN, EXPERITURE_BASE_URL=BASE_URL)
    ours_env["EXPERITURE_MCP_ACCESS_KEYS"] = ACCESS_KEY
    floor_env = base_env(FLOOR_TOKEN=DEMO_TOKEN, FLOOR_BASE_URL=BASE_URL)
    return {
        "experiture-mcp": ([str(Path(sys.executable).parent / "experiture-mcp")], ours_env),
        "SDK floor": ([sys.executable, FLOOR_SCRIPT], floor_env),
    }


async def idle_rss(runs: int) -> dict[str, list[int]]:
    """VmRSS (KiB) 0.3 s after the initialize response; run 0 only warms caches."""
    out: dict[str, list[int]] = {}
    pairs = list(servers().items())
    for i in range(runs + 1):
        for label, (argv, env) in pairs if i % 2 == 0 else pairs[::-1]:
            session = StdioSession(argv, env)
            await session.start()
            await asyncio.sleep(0.3)
            rss = session.rss_kib()
            await session.close()
            if i:
                out.setdefault(label, []).append(rss)
    return out


def package_of(filename: str) -> str:
    """The top-level package (or stdlib module) a source file belongs to."""
    path = Path(filename)
    if "site-packages" in path.parts:
        name = path.parts[path.parts.index("site-packages") + 1]
        return name.removesuffix(".py")
    if "experiture_mcp" in path.parts:
        return "experiture_mcp"
    if "benchmarks" in path.parts:
        return "benchmarks (the floor's own script)"
    if filename.startswith(STDLIB):
        rest = Path(filename[len(STDLIB) :].lstrip("/")).parts
        return f"stdlib {rest[0].removesuffix('.py')}" if rest else "stdlib"
    return filename


async def snapshot(label: str, work: Path) -> tuple[Counter[str], list[str]]:
    """Bytes allocated per package and the modules loaded, at idle after initialize, under tracemalloc."""
    argv, env = servers()[label]
    which = "ours" if label == "experiture-mcp" else "floor"
    harness = [sys.executable, "-c", HARNESS, which, *argv[1:]]
    trigger = work / f"{which}.go"
    env = env | {"MEMORY_MODULES": str(work / f"{which}.json"), "MEMORY_TRIGGER": str(trigger)}
    session = StdioSession(harness, env)
    await session.start()
    await asyncio.sleep(0.3)
    trigger.touch()
    for _ in range(600):
        await asyncio.sleep(0.1)
        if (work / f"{which}.json").exists():  # written whole, then renamed into place
            break
    await session.close()
    dumped: dict[str, Any] = json.loads((work / f"{which}.json").read_text(encoding="utf-8"))
    sizes: Counter[str] = Counter()
    for filename, size in dumped["sizes"].items():
        sizes[package_of(filename)] += size
    modules: list[str] = dumped["modules"]
    return sizes, modules


def waterfall(runs: int = 3) -> list[tuple[str, int, int]]:
    """(step, KiB of resident memory it adds, modules it loads), the median of `runs` fresh interpreters."""
    results = [
        json.loads(
            subprocess.run(
                [sys.executable, "-c", WATERFALL, *OUR_MODULES], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(runs)
    ]
    return [
        (name, int(statistics.median(r[i][1] for r in results)), modules)
        for i, (name, _, modules) in enumerate(results[0])
    ]


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def top(module: str) -> str:
    return module.split(".")[0]


def report(
    rss: dict[str, list[int]], snaps: dict[str, tuple[Counter[str], list[str]]], steps: list[tuple[str, int, int]]
) -> str:
    ours, floor = rss["experiture-mcp"], rss["SDK floor"]
    o, f = statistics.median(ours), statistics.median(floor)
    lines = [
        f"Idle RSS (median of {len(ours)} runs each, 0.3 s after `initialize`): experiture-mcp {o / 1024:.1f} MiB "
        f"(range {min(ours) / 1024:.1f}–{max(ours) / 1024:.1f}), SDK floor {f / 1024:.1f} MiB "
        f"(range {min(floor) / 1024:.1f}–{max(floor) / 1024:.1f}): **{o / f:.3f}×**, {(o - f) / 1024:+.1f} MiB.",
        "",
    ]
    (ours_sizes, ours_modules), (floor_sizes, floor_modules) = snaps["experiture-mcp"], snaps["SDK floor"]
    extra = sorted(set(ours_modules) - set(floor_modules))
    by_package = Counter(top(m) for m in extra)
    lines += [
        f"Modules loaded at idle: ours {len(ours_modules)}, the floor {len(floor_modules)}; ours only: {len(extra)}, "
        "by top-level package: " + ", ".join(f"`{p}` {n}" for p, n in by_package.most_common()) + ".",
        "",
        "Python allocations live at idle (tracemalloc), by package of the allocating code, largest differences first:",
        "",
        "| package | ours KiB | floor KiB | difference KiB |",
        "|---|---:|---:|---:|",
    ]
    packages = set(ours_sizes) | set(floor_sizes)
    rows = sorted(packages, key=lambda p: abs(ours_sizes[p] - floor_sizes[p]), reverse=True)
    for package in rows[:15]:
        a, b = ours_sizes[package] / 1024, floor_sizes[package] / 1024
        lines.append(f"| {package} | {a:.0f} | {b:.0f} | {a - b:+.0f} |")
    total_o, total_f = sum(ours_sizes.values()) / 1024, sum(floor_sizes.values()) / 1024
    lines += [f"| **all** | **{total_o:.0f}** | **{total_f:.0f}** | **{total_o - total_f:+.0f}** |", ""]
    lines += [
        "Waterfall (a fresh interpreter; resident memory each step adds, median of 3 runs):",
        "",
        "| step | RSS KiB | modules loaded |",
        "|---|---:|---:|",
    ]
    lines += [f"| `{name}` | {kib} | {modules} |" for name, kib, modules in steps]
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7, help="idle RSS runs per server (default 7)")
    parser.add_argument("--json", action="store_true", help="also print the raw figures as JSON")
    parser.add_argument("--write", action="store_true", help=f"put the report in its section of {RESULTS.name}")
    parser.add_argument("--notes", default="", help="markdown added under the figures (what was cut, and why)")
    args = parser.parse_args()
    rss = await idle_rss(args.runs)
    with tempfile.TemporaryDirectory() as tmp:
        snaps = {label: await snapshot(label, Path(tmp)) for label in servers()}
    steps = waterfall()
    text = report(rss, snaps, steps)
    print(text)
    if args.write:
        when = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
        head = f"{MEMORY_SECTION} (`python -m benchmarks.idle_memory`, commit {commit()}, {when})"
        section = f"{head}\n\n{text}\n" + (f"\n{args.notes.strip()}\n" if args.notes else "")
        write_section("idle-memory", section, RESULTS)
    if args.json:
        modules = {label: loaded for label, (_, loaded) in snaps.items()}
        raw: dict[str, Any] = {"rss_kib": rss, "waterfall": steps, "modules": modules}
        print(json.dumps(raw, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    asyncio.run(main())
