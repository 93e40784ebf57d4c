"""wait_for_run over a real stdio subprocess and over hosted streamable HTTP, in both protocol eras."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from _waiting import Accelerated, Progress, demo, structured, wait
from conftest import NOW, Instrumented, ServedApp, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.hosted import MCP_PATH, build_app
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

TOKYO = DEMO_CAMPAIGNS["tokyo-push"]


@pytest.mark.anyio
async def test_over_stdio_it_reports_progress_times_out_and_stops_polling_when_cancelled(
    era: str, tmp_path: Path
) -> None:
    with demo(frozen_clock) as (api, url):
        params = StdioServerParameters(
            command=sys.executable,
            args=["-m", "experiture_mcp"],
            env={
                "EXPERITURE_API_TOKEN": DEMO_TOKEN,
                "EXPERITURE_BASE_URL": url,
                "EXPERITURE_WAIT_POLL_SECONDS": "0.2",
                "EXPERITURE_DATA_DIR": os.environ["EXPERITURE_DATA_DIR"],
            },
        )
        with (tmp_path / "stderr.txt").open("w") as stderr:
            async with Client(stdio_client(params, errlog=stderr), mode=era) as client:  # type: ignore[arg-type]
                progress: list[Progress] = []
                result = await wait(client, TOKYO, timeout=1, seen=progress)
                finished = api.requests
                with anyio.move_on_after(0.7):
                    await wait(client, TOKYO, timeout=30)
                await anyio.sleep(0.2)  # a poll that began as the cancel went out may still arrive
                cancelled = api.requests
                await anyio.sleep(0.8)
                later = api.requests

    data = structured(result)
    assert data["outcome"] == "timeout" and data["checks"] == finished == 6
    assert text_of(result).startswith("Still running after waiting 1s (6 checks)")
    assert progress == [(30000.0, 50000.0, "sent 29,876 · failed 124 of 50,000 scheduled")]  # the counts never moved
    assert cancelled - finished >= 3 and later == cancelled  # it polled, then stopped with the cancel


@asynccontextmanager
async def over_http(settings: Settings, clock: Any, era: str) -> AsyncGenerator[Client]:
    """A real SDK client of the hosted app (stateless streamable HTTP) on loopback."""
    with ServedApp(build_app(settings, clock=clock), lifespan="on") as served:
        async with (
            httpx2.AsyncClient() as http,
            Client(streamable_http_client(served.url + MCP_PATH, http_client=http), mode=era) as client,  # type: ignore[arg-type]
        ):
            yield client


@contextmanager
def upstream(clock: Any) -> Generator[tuple[Instrumented, Settings]]:
    with demo(clock) as (api, url):
        yield api, Settings(api_token=SecretStr(DEMO_TOKEN), base_url=url, wait_poll_seconds=0.1)


@pytest.mark.anyio
async def test_over_http_it_returns_on_completion_and_at_its_timeout(era: str) -> None:
    clock = Accelerated(NOW + timedelta(seconds=440), speed=60)  # the run ends 38 s (0.6 s real) later
    with upstream(clock) as (_, settings):
        async with over_http(settings, clock, era) as client:
            clock.restart()
            progress: list[Progress] = []
            completed = await wait(client, TOKYO, timeout=10, seen=progress)
    with upstream(frozen_clock) as (api, settings):
        async with over_http(settings, frozen_clock, era) as client:
            started = time.monotonic()
            timed_out = await wait(client, TOKYO, timeout=0.5)
            took = time.monotonic() - started
            not_running = await wait(client, DEMO_CAMPAIGNS["spring-dm"])

    assert structured(completed)["outcome"] == "completed"
    assert progress and progress[-1][0] > progress[0][0]  # on the call's own event stream (test_wait_http.py)
    assert text_of(completed).startswith("The run completed while waiting")
    assert structured(timed_out)["outcome"] == "timeout" and structured(timed_out)["checks"] == 6
    assert 0.5 <= took < 2 and api.requests == 7
    assert text_of(not_running).startswith("Not waiting: the latest run already completed")


def test_the_command_line_calls_it_and_a_finished_campaign_answers_at_once() -> None:
    command = Path(sys.executable).parent / "experiture-mcp"
    started = time.monotonic()
    done = subprocess.run(
        [str(command), "call", "wait_for_run", DEMO_CAMPAIGNS["spring-dm"], "--demo"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "EXPERITURE_DATA_DIR": os.environ["EXPERITURE_DATA_DIR"]},
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Not waiting: the latest run already completed; there is nothing to wait for.\n")
    assert time.monotonic() - started < 30  # not the 45 s default wait
