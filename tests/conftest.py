"""Shared fixtures: the demo API on real loopback HTTP, a frozen clock, and in-memory MCP clients in both eras."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest
import uvicorn
from mcp import Client
from mcp.types import CallToolResult, TextContent
from pydantic import SecretStr
from starlette.types import ASGIApp, Receive, Scope, Send

from _scripted_api import ScriptedAPI
from experiture_mcp.config import Settings
from experiture_mcp.memory.service import default_data_dir
from experiture_mcp.sandbox import DEMO_TOKEN, create_app
from experiture_mcp.server import build_server

# Every snapshot is taken at this instant; the demo data is laid out relative to it.
NOW = datetime(2026, 11, 28, 15, 0, 30, tzinfo=UTC)
ERAS = ["legacy", "auto"]  # 2025-11-25 (initialize) and 2026-07-28 (server/discover)


def frozen_clock() -> datetime:
    return NOW


def text_of(result: CallToolResult) -> str:
    """The one text block of a tool result: what the model reads."""
    (block,) = result.content
    assert isinstance(block, TextContent)
    return block.text


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def healthy(url: str, seconds: float = 90) -> None:
    """Until a server process started apart (its own interpreter, imports and database) answers /healthz."""
    import httpx2

    with anyio.fail_after(seconds):
        async with httpx2.AsyncClient() as http:
            while True:
                try:
                    if (await http.get(url + "/healthz")).status_code == 200:
                        return
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.1)


class ServedApp:
    """An ASGI app served by a real uvicorn on 127.0.0.1 in a background thread."""

    def __init__(
        self, app: Any, lifespan: Literal["on", "off"] = "off", port: int | None = None, **options: Any
    ) -> None:
        self.port = port or free_port()
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan=lifespan, **options
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServedApp:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Instrumented:
    """An ASGI app behind a delay (longer for paths containing `slow_path`), counting requests and concurrency."""

    def __init__(self, app: ASGIApp, delay: float = 0.0, slow_path: str = "", slow_delay: float = 0.0) -> None:
        self.app, self.delay, self.slow_path, self.slow_delay = app, delay, slow_path, slow_delay
        self.in_flight = self.most_in_flight = self.requests = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.requests += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            slow = bool(self.slow_path) and self.slow_path in scope["path"]
            await anyio.sleep(self.slow_delay if slow else self.delay)
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


@pytest.fixture(scope="session")
def demo_api() -> Iterator[str]:
    """Base URL of the demo API served on loopback with the frozen clock."""
    with ServedApp(create_app(clock=frozen_clock)) as served:
        yield served.url + "/public/v1"


@pytest.fixture(scope="module")
def scripted_server() -> Iterator[tuple[ScriptedAPI, str]]:
    """A ScriptedAPI served on loopback for the module, and its base URL."""
    api = ScriptedAPI()
    with ServedApp(api.app) as served:
        yield api, served.url + "/v1"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """In CI (CI set) a skipped test is a failure: a missing database, browser or client must not pass silently."""
    report = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every real part must be present: {reason}"
    return report


@pytest.fixture(scope="session", autouse=True)
def _session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:  # pyright: ignore[reportUnusedFunction]
    """Servers built by module- and session-scoped fixtures remember campaigns here, never in the developer's dir."""
    before = os.environ.get("EXPERITURE_DATA_DIR")
    os.environ["EXPERITURE_DATA_DIR"] = str(tmp_path_factory.mktemp("data"))
    users = _files_in(default_data_dir())
    yield
    if before is None:
        os.environ.pop("EXPERITURE_DATA_DIR", None)
    else:
        os.environ["EXPERITURE_DATA_DIR"] = before
    # A server started with a curated environment (an npm client, the Inspector) falls back to the user's folder.
    if os.environ.get("CI") and _files_in(default_data_dir()) != users:
        pytest.fail(f"a test wrote to the user's data directory {default_data_dir()}: pass EXPERITURE_DATA_DIR on")


def _files_in(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} if folder.is_dir() else {}


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # pyright: ignore[reportUnusedFunction]
    """Settings read EXPERITURE_* variables: a developer's own must not leak into any test.

    Each test remembers campaigns in its own data directory, never in the developer's.
    """
    for name in [n for n in os.environ if n.startswith("EXPERITURE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("EXPERITURE_DATA_DIR", str(tmp_path / "data"))


@pytest.fixture(autouse=True)
def _root_logger() -> Iterator[None]:  # pyright: ignore[reportUnusedFunction]
    """A CLI test's `main()` adds our handler and sets the root level: the next test gets neither.

    Only our handler is removed: pytest adds and removes its own capturing handlers around each test phase.
    """
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    yield
    for handler in [h for h in root.handlers if getattr(h, "_experiture", False) and h not in before]:
        root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(demo_api: str) -> Settings:
    return Settings(api_token=SecretStr(DEMO_TOKEN), base_url=demo_api)


@pytest.fixture(params=ERAS)
def era(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def connect(settings: Settings, era: str) -> Client:
    """An in-memory MCP client of a fresh server built from `settings`, speaking the given protocol era."""
    return Client(build_server(settings, clock=frozen_clock), mode=era)  # type: ignore[arg-type]


@pytest.fixture
async def client(settings: Settings, era: str) -> AsyncIterator[Client]:
    """An in-memory MCP client of a fresh server pointed at the loopback demo API, in each protocol era."""
    async with connect(settings, era) as c:
        yield c


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The superuser URL of a throwaway PostgreSQL cluster the suite starts on 127.0.0.1 (stopped at the end)."""
    from _postgres import Cluster, find_bin

    bindir = find_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb): run scripts/ensure-postgres")
    cluster = Cluster(bindir)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


_databases = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database in the throwaway cluster, for one test."""
    import subprocess
    from urllib.parse import urlsplit

    name = f"experiture_{next(_databases)}"
    url = urlsplit(postgres_server)
    subprocess.run(
        ["createdb", "-h", str(url.hostname), "-p", str(url.port), "-U", "postgres", name],
        check=True,
        capture_output=True,
        env={**os.environ, "PATH": f"{_postgres_bin()}:{os.environ.get('PATH', '')}"},
        timeout=60,
    )
    return postgres_server.rsplit("/", 1)[0] + "/" + name


def _postgres_bin() -> str:
    from _postgres import find_bin

    return str(find_bin())


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh memory database of each backend: a SQLite file in a temporary directory, or a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'memory.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))
