#!/usr/bin/env python3
"""Runs uv, installing a private copy of it first if this machine has none.

Usage: python3 scripts/uv.py ARGS...   (as `uv ARGS...`; `--which` prints the uv it would run, installing it if needed)

uv is looked for on PATH, then as a package of this Python (`python3 -m uv`), then in this script's cache folder
(~/.cache/experiture-mcp/uv on Linux). Failing all three, uv is installed into that folder once, from PyPI, through a
virtual environment used only for that: with the venv's own pip when Python has ensurepip (python.org, Homebrew,
Fedora, Debian/Ubuntu with python3-venv), else with the system pip aimed at the venv (`pip --python`, Debian/Ubuntu
with python3-pip only), else by fetching uv's wheel from the package index with the standard library (a bare Debian or
Ubuntu Python). It never installs into the system Python and never needs root, so it works where `pip install` is
refused (PEP 668: "externally-managed-environment"). Standard library only; runs on Python 3.8+ so that it can bring
up uv, and uv a Python 3.11+, on a machine whose own Python is older.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The oldest uv that reads this project's uv.lock; a newer one is used when pip picks it.
REQUIREMENT = "uv>=0.8"
EXE = ".exe" if os.name == "nt" else ""
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


def say(text: str) -> None:
    """Progress on stderr: stdout may be an MCP connection (`uv.py run experiture-mcp`)."""
    sys.stderr.write(f"scripts/uv.py: {text}\n")
    sys.stderr.flush()


def cache_dir() -> Path:
    """Where the private uv lives (EXPERITURE_UV_DIR overrides)."""
    if os.environ.get("EXPERITURE_UV_DIR"):
        return Path(os.environ["EXPERITURE_UV_DIR"])
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "experiture-mcp" / "uv"


def package_uv() -> str | None:
    """The uv binary of this Python's `uv` package (what `python3 -m uv` runs), if installed."""
    # This file is named uv.py: keep its own folder off the path so that `import uv` finds the package.
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
    try:
        import uv  # type: ignore[import-not-found]

        return str(uv.find_uv_bin())  # type: ignore[attr-defined]
    except (ImportError, FileNotFoundError, AttributeError):
        return None


def find_uv() -> str | None:
    """uv on PATH, else this Python's uv package, else the private copy."""
    if os.environ.get("EXPERITURE_UV_BOOTSTRAP"):  # a forced install method: look only at the private copy
        private = cache_dir() / "bin" / f"uv{EXE}"
        return str(private) if private.is_file() else None
    for found in (shutil.which("uv"), package_uv(), str(cache_dir() / "bin" / f"uv{EXE}")):
        if found and Path(found).is_file() and os.access(found, os.X_OK):
            return found
    return None


def has_module(python: str, module: str) -> bool:
    """Whether `python -m module` would run (checked in a child: a Debian python3 may lack ensurepip or pip)."""
    code = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    return subprocess.run([python, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0


def venv_python(venv: Path) -> str:
    return str(venv / ("Scripts" if os.name == "nt" else "bin") / f"python{EXE}")


def with_venv_pip(work: Path) -> Path:
    """Python has ensurepip: a venv with its own pip installs uv."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stdout=sys.stderr)
    subprocess.run(
        [venv_python(venv), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", REQUIREMENT],
        check=True,
        stdout=sys.stderr,
    )
    return venv / ("Scripts" if os.name == "nt" else "bin")


def with_system_pip(work: Path) -> Path:
    """No ensurepip (Debian without python3-venv), but a pip: the system pip installs into a pip-less venv."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, stdout=sys.stderr)
    # `pip --python` (pip 22.3+) runs pip for the venv's interpreter, so PEP 668 sees a venv, not the system Python.
    command = [sys.executable, "-m", "pip", "--python", venv_python(venv), "install", "--quiet", REQUIREMENT]
    subprocess.run([*command, "--disable-pip-version-check"], check=True, stdout=sys.stderr)
    return venv / ("Scripts" if os.name == "nt" else "bin")


def wheel_tag() -> tuple[str, str]:
    """The wheel platform family and architecture suffix this machine runs (e.g. manylinux, _x86_64.whl)."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64" if sys.platform.startswith("linux") else "arm64"}.get(
        machine, machine
    )
    if sys.platform.startswith("linux"):
        family = "musllinux" if platform.libc_ver()[0] != "glibc" else "manylinux"
        return family, f"_{machine}.whl"
    if sys.platform == "darwin":
        return "macosx", f"_{machine}.whl"
    return "win", {"x86_64": "win_amd64.whl", "arm64": "win_arm64.whl", "aarch64": "win_arm64.whl"}.get(
        machine, "win32.whl"
    )


def with_index_wheel(work: Path) -> Path:
    """Neither ensurepip nor pip: uv's wheel from the package index (PEP 691 JSON), checked against its sha256."""
    index = (os.environ.get("UV_DEFAULT_INDEX") or os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple").rstrip(
        "/"
    )
    request = urllib.request.Request(f"{index}/uv/", headers={"Accept": SIMPLE_JSON})
    with urllib.request.urlopen(request, timeout=60) as response:
        page = json.load(response)
    family, suffix = wheel_tag()

    def release(name: str) -> tuple[int, ...]:
        return tuple(int(p) if p.isdigit() else -1 for p in name.split("-")[1].split("."))

    wheels = [
        f
        for f in page["files"]
        if f["filename"].endswith(suffix)
        and f"-{family}" in f["filename"].replace(".", "-")
        and not f.get("yanked")
        and release(f["filename"]) >= (0, 8)
        and all(p.isdigit() for p in f["filename"].split("-")[1].split("."))  # no pre-releases
    ]
    if not wheels:
        raise RuntimeError(f"{index}/uv/ has no uv wheel for {family}*{suffix}")
    wheel = max(wheels, key=lambda f: release(f["filename"]))
    say(f"downloading {wheel['filename']}")
    with urllib.request.urlopen(urllib.parse.urljoin(f"{index}/uv/", wheel["url"]), timeout=300) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != wheel["hashes"]["sha256"]:
        raise RuntimeError(f"{wheel['filename']}: sha256 does not match the index's")
    (work / "uv.whl").write_bytes(data)
    scripts = work / "scripts"
    scripts.mkdir()
    with zipfile.ZipFile(work / "uv.whl") as archive:
        for name in archive.namelist():
            parts = name.split("/")
            if len(parts) == 3 and parts[0].endswith(".data") and parts[1] == "scripts" and parts[2]:
                target = scripts / parts[2]
                target.write_bytes(archive.read(name))
                target.chmod(0o755)
    return scripts


METHODS = {"venv": with_venv_pip, "pip": with_system_pip, "wheel": with_index_wheel}


def install_uv() -> str:
    """Installs uv into the cache folder (bin/uv and bin/uvx) and returns its path."""
    target = cache_dir()
    forced = os.environ.get("EXPERITURE_UV_BOOTSTRAP", "")
    if forced and forced not in METHODS:
        raise SystemExit(f"scripts/uv.py: EXPERITURE_UV_BOOTSTRAP={forced!r} is none of {', '.join(METHODS)}")
    if forced:
        methods = [forced]
    else:  # each that this Python can use, in order; a failure moves on (an old pip has no --python, for one)
        methods = [m for m, module in (("venv", "ensurepip"), ("pip", "pip")) if has_module(sys.executable, module)]
        methods.append("wheel")
    target.mkdir(parents=True, exist_ok=True)
    for i, method in enumerate(methods):
        say(f"no uv on PATH or in this Python; installing it into {target} (once; method: {method})")
        try:
            with tempfile.TemporaryDirectory(dir=target, prefix=".install-") as tmp:
                scripts = METHODS[method](Path(tmp))
                (target / "bin").mkdir(exist_ok=True)
                for name in (f"uv{EXE}", f"uvx{EXE}"):
                    staged = Path(tmp) / name
                    shutil.copy2(scripts / name, staged)
                    os.replace(staged, target / "bin" / name)  # atomic: a concurrent run sees the old file or the new
        except (OSError, subprocess.CalledProcessError, RuntimeError, ValueError, KeyError) as error:
            if i == len(methods) - 1:
                raise
            say(f"method {method} failed ({error}); trying the next")
            continue
        break
    uv = str(target / "bin" / f"uv{EXE}")
    version = subprocess.run([uv, "--version"], check=True, capture_output=True, text=True).stdout.strip()
    say(f"installed {version}")
    return uv


def main(argv: list[str]) -> int:
    try:
        uv = find_uv() or install_uv()
    except (OSError, subprocess.CalledProcessError, RuntimeError, ValueError, KeyError) as error:
        say(f"could not install uv: {error}")
        say("install it yourself (https://docs.astral.sh/uv/getting-started/installation/) and run this again")
        return 1
    if argv[:1] == ["--which"]:
        sys.stdout.write(uv + "\n")  # stdout-ok: the answer of --which
        return 0
    if os.name == "nt":  # no exec on Windows: run uv and pass on its exit code
        return subprocess.run([uv, *argv]).returncode
    os.execv(uv, [uv, *argv])  # uv takes over this process: stdin, stdout and signals go straight to it


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
