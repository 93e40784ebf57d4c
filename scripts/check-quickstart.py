#!/usr/bin/env python3
"""Runs the README's two quick-start lines verbatim as a newcomer would: Debian's system Python, no uv, an empty HOME.

Usage: python3 scripts/check-quickstart.py   (from .ci/run; about 1-2 minutes, most of it uv installing the packages)

The lines come from the first ```sh block of the README's "Quick start", so they cannot drift from what is checked.
Each runs under /bin/sh in a fresh copy of this tree with PATH=/usr/bin:/bin (so `python3` is the system one, which
PEP 668 marks externally managed, and no uv is found), a throwaway HOME and nothing else of this environment but TLS
and proxy settings. The line that serves the demo gets an MCP `initialize` on stdin and must answer it and exit 0 when
stdin closes; the test line runs the subset in QUICKSTART_TESTS through pytest's own PYTEST_ADDOPTS (the line itself
is unchanged). Then each way scripts/uv.py can install uv that this Python supports is tried in an empty folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = "/usr/bin/python3"
PATH = "/usr/bin:/bin"
PASS_ON = (
    *("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "https_proxy", "http_proxy"),
    *("no_proxy", "PIP_INDEX_URL", "PIP_CERT", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_NATIVE_TLS", "CI", "LANG"),
)
# A quick subset: the stdio server as a subprocess, the settings, the tools in both protocol eras.
TESTS = os.environ.get("QUICKSTART_TESTS", "tests/test_stdio.py tests/test_config.py tests/test_tools.py")
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "quickstart", "version": "1"},
    },
}
started = time.monotonic()


def step(text: str) -> None:
    sys.stderr.write(f"== [{time.monotonic() - started:4.0f}s] {text}\n")
    sys.stderr.flush()


def fail(text: str, done: subprocess.CompletedProcess[str] | None = None) -> None:
    if done is not None:
        sys.stderr.write(f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}\n")
    sys.stderr.write(f"check-quickstart: FAILED: {text}\n")
    sys.exit(1)


def quickstart_lines() -> tuple[str, str]:
    """The serve line and the test line of the README's Quick start, without their comments."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"^```sh\n(.*?)^```", section, flags=re.DOTALL | re.MULTILINE)
    if block is None:
        fail("README's Quick start has no ```sh block")
    assert block is not None
    lines = [re.sub(r"\s+#\s.*$", "", line).strip() for line in block.group(1).splitlines()]
    lines = [line for line in lines if line]
    serve = [line for line in lines if "--demo" in line]
    test = [line for line in lines if "pytest" in line]
    if len(lines) != 2 or len(serve) != 1 or len(test) != 1:
        fail(f"README's Quick start should hold two lines, one with --demo and one with pytest: {lines}")
    return serve[0], test[0]


def copy_tree(target: Path) -> None:
    """This tree's files (tracked and new, not ignored) copied to target, as a fresh clone would hold them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


def newcomer_env(home: Path) -> dict[str, str]:
    env = {name: os.environ[name] for name in PASS_ON if name in os.environ}
    return env | {"HOME": str(home), "PATH": PATH, "TMPDIR": str(home.parent / "tmp")}


def main() -> None:
    serve, test = quickstart_lines()
    if not Path(SYSTEM_PYTHON).is_file():
        fail(f"{SYSTEM_PYTHON} is missing: this check is for a machine with a system Python (apt-get install python3)")
    for name in ("uv", "uvx"):
        if shutil.which(name, path=PATH):
            fail(f"{name} is on {PATH} ({shutil.which(name, path=PATH)}): the check needs a machine without it there")
    probe = "import os, sys, sysconfig; print(sys.version.split()[0], os.path.isfile(sysconfig.get_path('stdlib')"
    probe += " + '/EXTERNALLY-MANAGED'))"
    version, managed = subprocess.run(
        [SYSTEM_PYTHON, "-c", probe], capture_output=True, text=True, check=True, env={"PATH": PATH}
    ).stdout.split()
    step(f"{SYSTEM_PYTHON} is Python {version}, externally managed (PEP 668): {managed == 'True'}")

    with tempfile.TemporaryDirectory(prefix="quickstart-") as tmp:
        work = Path(tmp)
        project, home = work / "experiture-mcp", work / "home"
        for folder in (project, home, work / "tmp"):
            folder.mkdir()
        copy_tree(project)
        env = newcomer_env(home)

        step(f"serve: {serve}   (stdin: initialize, then end of input)")
        done = subprocess.run(
            ["/bin/sh", "-c", serve],
            cwd=project,
            env=env,
            input=json.dumps(INITIALIZE) + "\n",
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            fail(f"the serve line exited {done.returncode}", done)
        replies = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
        if len(replies) != 1 or replies[0].get("id") != 1 or "result" not in replies[0]:
            fail("the serve line did not answer initialize with exactly one result on stdout", done)
        info = replies[0]["result"]["serverInfo"]
        step(f"initialize answered by {info['name']} {info['version']}; exited 0 at end of input")

        uv = home / ".cache" / "experiture-mcp" / "uv" / "bin" / "uv"
        if not uv.is_file():
            fail(f"the private uv is not at {uv}", done)
        venv_home = (project / ".venv" / "pyvenv.cfg").read_text(encoding="utf-8")
        if f"home = {Path(SYSTEM_PYTHON).parent}" not in venv_home:
            fail(f"the project's .venv is not built on {SYSTEM_PYTHON}:\n{venv_home}")
        step(f"uv came from scripts/uv.py ({uv.relative_to(work)}); .venv is built on {SYSTEM_PYTHON}")

        step(f"test: {test}   (PYTEST_ADDOPTS={TESTS!r})")
        done = subprocess.run(
            ["/bin/sh", "-c", test],
            cwd=project,
            env=env | {"PYTEST_ADDOPTS": TESTS},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        summary = (done.stdout.strip().splitlines() or [""])[-1]
        if done.returncode != 0 or " passed" not in summary:
            fail(f"the test line exited {done.returncode}", done)
        step(f"test line: {summary.strip('= ')}")

        untouched = subprocess.run(
            [SYSTEM_PYTHON, "-c", "import uv"], env={"PATH": PATH, "HOME": str(home)}, capture_output=True, check=False
        )
        if untouched.returncode == 0:
            fail(f"uv is importable by {SYSTEM_PYTHON}: something installed it into the system or user site")

        check_methods(work, env)
    step("check-quickstart: the README's quick-start lines pass")


def check_methods(work: Path, env: dict[str, str]) -> None:
    """Every way of installing uv that the system Python supports gives a working uv in an empty folder."""
    has = {
        module: subprocess.run(
            [
                SYSTEM_PYTHON,
                "-c",
                f"import importlib.util, sys; sys.exit(importlib.util.find_spec('{module}') is None)",
            ],
            env=env,
            check=False,
        ).returncode
        == 0
        for module in ("ensurepip", "pip")
    }
    methods = [m for m, ok in (("venv", has["ensurepip"]), ("pip", has["pip"]), ("wheel", True)) if ok]
    for method in methods:
        folder = work / f"uv-{method}"
        done = subprocess.run(
            [SYSTEM_PYTHON, str(ROOT / "scripts" / "uv.py"), "--version"],
            env=env | {"EXPERITURE_UV_DIR": str(folder), "EXPERITURE_UV_BOOTSTRAP": method},
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not done.stdout.startswith("uv ") or not (folder / "bin" / "uvx").is_file():
            fail(f"scripts/uv.py could not install uv by method {method}", done)
        step(f"scripts/uv.py installs uv by method {method}: {done.stdout.strip()}")
    skipped = {"venv", "pip", "wheel"} - set(methods)
    if skipped:
        step(f"not tried here ({SYSTEM_PYTHON} lacks what they need): {', '.join(sorted(skipped))}")


if __name__ == "__main__":
    main()
