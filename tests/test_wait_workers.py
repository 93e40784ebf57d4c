"""A wait_for_run cancelled through another worker or replica than the one that holds it (hosted HTTP, 2025-11-25).

Such a client cancels with a POST of its own, which a load balancer or the kernel may hand to any process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx2
import pytest
from pydantic import SecretStr

from conftest import Instrumented, ServedApp, free_port, frozen_clock, healthy
from experiture_mcp.config import Settings
from experiture_mcp.hosted import HEALTH_PATH, MCP_PATH, WORKER_HEADER, build_app
from experiture_mcp.inflight import WATCH_SECONDS, Board, InFlight, caller_identity
from experiture_mcp.memory import Memory
from experiture_mcp.sandbox import DEMO_TOKEN, create_app
from test_wait_http import KEY_A, KEY_B, TOKYO, call, cancelled, events, legacy_headers


@contextmanager
def two_processes(database_url: str) -> Generator[tuple[Instrumented, str, str]]:
    """Two hosted apps sharing one memory database, as workers (SQLite) or replicas (PostgreSQL) do, before the
    demo API (counting its requests); their /mcp URLs."""
    api = Instrumented(create_app(clock=frozen_clock))
    with ServedApp(api) as upstream:
        config = Settings(
            api_token=SecretStr(DEMO_TOKEN),
            base_url=upstream.url + "/public/v1",
            wait_poll_seconds=0.1,
            mcp_access_keys=(SecretStr(KEY_A), SecretStr(KEY_B)),
            database_url=SecretStr(database_url),
        )
        with (
            ServedApp(build_app(config, clock=frozen_clock, shared_cancels=True), lifespan="on") as a,
            ServedApp(build_app(config, clock=frozen_clock, shared_cancels=True), lifespan="on") as b,
        ):
            yield api, a.url + MCP_PATH, b.url + MCP_PATH


async def polled(api: Instrumented, times: int) -> None:
    """Until the server polled `times` more times: the call is in flight (a loaded machine may take a while)."""
    at = api.requests
    with anyio.fail_after(10):
        while api.requests < at + times:
            await anyio.sleep(0.02)


@pytest.mark.anyio
async def test_a_cancel_posted_to_another_process_stops_the_call_there_and_only_the_callers_own(
    database_url: str,
) -> None:
    with two_processes(database_url) as (api, holder, other):
        async with httpx2.AsyncClient(timeout=30) as http:
            answers: list[tuple[httpx2.Response, float]] = []
            stranger = own = None
            posted = 0.0

            async def waiting(request_id: int, timeout: float) -> None:
                body = call(request_id, "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": timeout})
                answers.append((await http.post(holder, json=body, headers=legacy_headers(KEY_A)), time.monotonic()))

            async with anyio.create_task_group() as tg:
                tg.start_soon(waiting, 1, 20)
                await polled(api, 2)
                stranger = await http.post(other, json=cancelled(1), headers=legacy_headers(KEY_B))
                await anyio.sleep(0.6)  # more than two of the holder's looks at the database
                await polled(api, 2)  # the stranger's cancel changed nothing: still polling
                own = await http.post(other, json=cancelled(1), headers=legacy_headers(KEY_A))
                posted = time.monotonic()
            took = time.monotonic() - posted  # until the holder answered the cancelled call
            [(cancelled_answer, _)] = answers
            await anyio.sleep(0.2)
            after_cancel = api.requests
            await anyio.sleep(0.5)
            later = api.requests

            # The next call with the same id is not taken for the cancelled one.
            answers.clear()
            started = time.monotonic()
            await waiting(1, 1.0)

    assert stranger is not None and own is not None
    assert stranger.status_code == own.status_code == 202
    assert took < 2  # within a few of the holder's looks at the database (every 0.25 s), not at the 20 s timeout
    assert events(cancelled_answer.text)[-1]["result"]["isError"] is True
    assert later == after_cancel  # and the polling stopped with it
    [(again, ended)] = answers
    assert ended - started >= 0.9  # it waited its whole second
    assert events(again.text)[-1]["result"]["structuredContent"]["outcome"] == "timeout"


@asynccontextmanager
async def pinned(url: str, avoid: str | None = None) -> AsyncGenerator[tuple[httpx2.AsyncClient, str]]:
    """A client on one kept-alive connection (one worker answers all its requests) and that worker's id; with
    `avoid`, a connection to any worker but that one (which worker takes a new connection is up to the kernel)."""
    for _ in range(200):
        http = httpx2.AsyncClient(timeout=30, limits=httpx2.Limits(max_connections=1))
        try:
            worker = (await http.get(url + HEALTH_PATH)).headers[WORKER_HEADER]
            if worker != avoid:
                yield http, worker
                return
        finally:
            await http.aclose()
    pytest.fail(f"every new connection went to worker {avoid}")


@pytest.mark.anyio
async def test_with_two_real_workers_a_cancel_that_lands_on_the_other_worker_stops_the_call(
    demo_api: str, tmp_path: Path
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "EXPERITURE_MCP_ACCESS_KEYS": KEY_A, "EXPERITURE_DATA_DIR": str(tmp_path)}
    env |= {"EXPERITURE_API_TOKEN": DEMO_TOKEN, "EXPERITURE_BASE_URL": demo_api, "EXPERITURE_WAIT_POLL_SECONDS": "0.1"}
    env |= {"EXPERITURE_LOG_LEVEL": "INFO"}
    command = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--workers", "2", "--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await healthy(url)
        body = call(3, "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": 30})
        async with (
            pinned(url) as (holding, holder),
            holding.stream("POST", url + MCP_PATH, json=body, headers=legacy_headers(KEY_A)) as answer,
        ):
            assert answer.headers[WORKER_HEADER] == holder  # the call is under way on its worker
            async with pinned(url, avoid=holder) as (canceller, elsewhere):
                await anyio.sleep(0.3)  # the holder is polling by now
                posted = await canceller.post(url + MCP_PATH, json=cancelled(3), headers=legacy_headers(KEY_A))
                cancelled_at = time.monotonic()
            text = "".join([chunk async for chunk in answer.aiter_text()])
            took = time.monotonic() - cancelled_at
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)

    assert posted.status_code == 202 and posted.headers[WORKER_HEADER] == elsewhere != holder
    assert took < 3, took  # the other worker left the cancel in the shared file; the holder saw it
    assert events(text)[-1]["result"]["isError"] is True
    assert b"posted to another process" in err  # the holder's own account of it


@pytest.mark.anyio
async def test_a_posted_cancel_reaches_only_the_callers_calls_held_before_it_was_posted(database_url: str) -> None:
    settings = Settings(database_url=SecretStr(database_url))
    here, elsewhere = (Board(Memory(settings, lambda: datetime.now(UTC))) for _ in range(2))  # two processes
    caller, stranger = caller_identity(b"key", None), caller_identity(b"other-key", None)
    assert caller is not None and stranger is not None
    older, newer, strangers, anonymous = InFlight(), InFlight(), InFlight(), InFlight()
    async with here.running(), elsewhere.running():
        async with (
            here.watching(caller, 1, older),
            here.watching(stranger, 1, strangers),
            here.watching(None, 1, anonymous),
        ):
            await elsewhere.post(caller, 1)
            # The id reused while the older call's exchange is still ending: the cancel came before it.
            async with here.watching(caller, 1, newer):
                with anyio.fail_after(5):
                    while not older.scope.cancel_called:
                        await anyio.sleep(0.05)
                await anyio.sleep(WATCH_SECONDS * 2)  # another look or two changes nothing
        await elsewhere.post(caller, 1)  # for no call held now: nothing to cancel, nothing breaks

    assert older.scope.cancel_called
    assert not newer.scope.cancel_called and not strangers.scope.cancel_called and not anonymous.scope.cancel_called
