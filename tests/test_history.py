"""Change since the last check, progress and ETA through the real MCP client in both eras, against the demo API and
a scripted API on loopback, over the real store, with a clock the test moves."""

from __future__ import annotations

import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncGenerator, Callable, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jsonschema
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from _scripted_api import ScriptedAPI, ok
from _snapshot import assert_snapshot
from conftest import NOW, ServedApp, free_port, healthy, text_of
from experiture_mcp.cli import DEMO_BASE_URL
from experiture_mcp.config import Settings
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, create_app
from experiture_mcp.server import build_server

TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
SCRIPTED = "21111111-2222-4333-8444-555555555555"


class Clock:
    """A clock the test moves, shared by the demo API and the server."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def to(self, seconds: float) -> None:
        self.at = NOW + timedelta(seconds=seconds)


@contextmanager
def demo(clock: Clock) -> Generator[str]:
    with ServedApp(create_app(clock=clock)) as served:
        yield served.url + "/public/v1"


def client_of(base_url: str, era: str, clock: Callable[[], datetime], **options: Any) -> Client:
    settings = Settings(api_token=SecretStr(options.pop("token", DEMO_TOKEN)), base_url=base_url, **options)
    return Client(build_server(settings, clock=clock), mode=era)  # type: ignore[arg-type]


@asynccontextmanager
async def two_on_one_store(
    base_url: str, era: str, clock: Callable[[], datetime], database_url: str
) -> AsyncGenerator[tuple[Client, Client]]:
    """Two servers sharing one memory database, as two worker or replica processes do, each with its own client."""
    store = SecretStr(database_url)
    async with (
        client_of(base_url, era, clock, database_url=store) as a,
        client_of(base_url, era, clock, database_url=store) as b,
    ):
        yield a, b


async def call(client: Client, tool: str, campaign_id: str) -> tuple[str, dict[str, Any]]:
    result = await client.call_tool(tool, {"campaign_id": campaign_id})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return text_of(result), result.structured_content


def added(text: str) -> list[str]:
    """The lines history added after the rendered answer."""
    return [
        line
        for line in text.splitlines()
        if line.startswith(("Changed ", "No change ", "New run ", "Rate: ", "Only one check", "Warning: no count"))
    ]


@pytest.mark.anyio
async def test_the_demo_push_shows_each_kind_of_change_its_rate_and_eta_then_a_new_run(
    era: str, database_url: str
) -> None:
    clock = Clock(NOW)
    with demo(clock) as url:
        async with client_of(url, era, clock, database_url=SecretStr(database_url)) as client:
            first, first_data = await call(client, "get_status", TOKYO)
            clock.to(300)
            moved, moved_data = await call(client, "get_status", TOKYO)
            same, same_data = await call(client, "get_status", TOKYO)
            clock.to(360)
            metrics, metrics_data = await call(client, "get_metrics", TOKYO)
            clock.to(600)  # the run completed at 478 s
            done, done_data = await call(client, "get_status", TOKYO)
            clock.to(1800 + 120)  # the next half hour's run
            new, new_data = await call(client, "get_status", TOKYO)

    assert_snapshot(
        "history/tokyo-checks", "\n\n".join("\n".join(added(t)) for t in (first, moved, same, metrics, done, new))
    )
    assert "sinceLastCheck" not in first_data and first_data["progress"] == {"text": added(first)[0]}

    change = moved_data["sinceLastCheck"]
    assert change["newRun"] is False and change["moved"]["sent"] > 0 and change["seconds"] == 300
    progress = moved_data["progress"]
    assert progress["remaining"] > 0 and progress["ratePerMinute"] > 0 and progress["etaAt"].endswith("Z")
    assert progress["basedOn"] == "From two checks 5 min apart, as observed by this server."
    assert datetime.fromisoformat(progress["etaAt"]) > clock.at - timedelta(seconds=1800 + 120 - 300)

    assert same_data["sinceLastCheck"]["moved"] == {} and added(same)[0].startswith("No change since the last check")
    assert metrics_data["sinceLastCheck"]["moved"]["sent"] > 0 and "progress" not in metrics_data
    assert done_data["sinceLastCheck"]["state"] == "completed" and "progress" not in done_data
    assert new_data["sinceLastCheck"]["newRun"] is True
    assert new_data["sinceLastCheck"]["executionId"] != new_data["sinceLastCheck"]["previousExecutionId"]


_TOKYO_STATUS: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _tokyo_status(demo_api: str) -> None:  # pyright: ignore[reportUnusedFunction]
    """The demo push's status answer at NOW, which the scripted API's answers are made from."""
    if not _TOKYO_STATUS:
        headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
        _TOKYO_STATUS.update(httpx2.get(f"{demo_api}/campaigns/{TOKYO}/status", headers=headers).json()["data"])


def status_of(sent: int, failed: int, state: str = "running", run: str = "e1") -> dict[str, Any]:
    data = copy.deepcopy(_TOKYO_STATUS)
    data["campaignId"] = SCRIPTED
    data["execution"]["state"] = state
    last = data["execution"]["lastExecution"]
    last["executionId"] = f"00000000-0000-4000-8000-00000000000{run[-1]}"
    last["status"] = state
    last["counts"] |= {"sent": sent, "failed": failed}
    return data


@pytest.mark.anyio
async def test_a_run_whose_counts_do_not_move_for_minutes_gets_the_stalled_warning(
    era: str, scripted_server: tuple[ScriptedAPI, str]
) -> None:
    api, url = scripted_server
    api.reset()
    api.script(SCRIPTED, ok(status_of(20_000, 80)))
    clock = Clock(NOW)
    async with client_of(url, era, clock) as client:
        await call(client, "get_status", SCRIPTED)
        clock.to(60)
        quiet, quiet_data = await call(client, "get_status", SCRIPTED)
        clock.to(240)
        stalled, stalled_data = await call(client, "get_status", SCRIPTED)
        api.script(SCRIPTED, ok(status_of(20_100, 90)))
        clock.to(300)
        resumed, _ = await call(client, "get_status", SCRIPTED)

    assert "Nothing was sent or failed between them" in quiet and "stalled" not in quiet
    assert "ratePerMinute" in quiet_data["progress"] and "etaAt" not in quiet_data["progress"]
    assert added(stalled)[1] == (
        "Warning: no count moved in the 4 min between two checks of this running execution: the run may be stalled."
    )
    assert "etaAt" not in stalled_data["progress"]
    assert added(resumed)[0] == (
        "Changed since the last check 60s ago: sent +100, failed +10; failure rate 0.4% → 0.45%."
    )
    assert "stalled" not in resumed


@pytest.mark.anyio
async def test_with_two_server_processes_on_one_store_a_change_is_measured_from_the_newest_check_of_either(
    era: str, scripted_server: tuple[ScriptedAPI, str], database_url: str
) -> None:
    api, url = scripted_server
    api.reset()
    clock = Clock(NOW)
    steps: list[tuple[str, int, int]] = [
        ("a", 0, 100),
        ("b", 60, 150),
        ("a", 180, 175),
        ("b", 240, 175),
        ("a", 300, 175),
    ]
    lines: list[str] = []
    async with two_on_one_store(url, era, clock, database_url) as (a, b):
        for name, seconds, sent in steps:
            api.script(SCRIPTED, ok(status_of(sent, 0)))
            clock.to(seconds)
            client = a if name == "a" else b
            text, data = await call(client, "get_status", SCRIPTED)
            lines.append(f"{name}: {added(text)[0]}")
            await history(client, SCRIPTED)  # its write is flushed before the other one checks
            if seconds == 180:
                assert data["sinceLastCheck"]["moved"] == {"sent": 25} and data["sinceLastCheck"]["seconds"] == 120

    assert lines[1:] == [
        "b: Changed since the last check 60s ago: sent +50.",
        "a: Changed since the last check 2m00s ago: sent +25.",  # b's check, not a's own
        "b: No change since the last check 60s ago.",  # a's check after b's own
        "a: No change since the last check 60s ago.",  # b's unchanged check moved the last one
    ]


@pytest.mark.anyio
async def test_an_overview_row_measures_its_change_from_another_processs_newer_check(
    era: str, scripted_server: tuple[ScriptedAPI, str], database_url: str
) -> None:
    api, url = scripted_server
    api.reset()
    clock = Clock(NOW)
    async with two_on_one_store(url, era, clock, database_url) as (a, b):
        api.script(SCRIPTED, ok(status_of(100, 0)))
        await a.call_tool("get_overview", {"campaign_ids": [SCRIPTED]})
        await history(a, SCRIPTED)  # a's write is flushed
        api.script(SCRIPTED, ok(status_of(150, 0)))
        clock.to(60)
        await call(b, "get_status", SCRIPTED)
        await history(b, SCRIPTED)
        api.script(SCRIPTED, ok(status_of(175, 0)))
        clock.to(180)
        result = await a.call_tool("get_overview", {"campaign_ids": [SCRIPTED]})

    assert result.structured_content is not None, text_of(result)
    [row] = result.structured_content["rows"]
    assert row["sinceLastCheck"] == "Changed since the last check 2m00s ago: sent +25."  # b's check, not a's own


@pytest.mark.anyio
async def test_state_changes_and_new_runs_from_a_scripted_api(
    era: str, scripted_server: tuple[ScriptedAPI, str]
) -> None:
    api, url = scripted_server
    api.reset()
    clock = Clock(NOW)
    lines: list[str] = []
    async with client_of(url, era, clock) as client:
        for seconds, reply in (
            (0, status_of(0, 0, "pending_or_overdue")),
            (60, status_of(10, 0)),
            (120, status_of(500, 5, "failed")),
            (180, status_of(0, 0, "running", "e2")),
        ):
            api.script(SCRIPTED, ok(reply))
            clock.to(seconds)
            text, _ = await call(client, "get_status", SCRIPTED)
            lines.append(added(text)[0] if added(text) else "")
    assert_snapshot("history/scripted-changes", "\n".join(lines))


@pytest.mark.anyio
async def test_history_is_kept_per_tenant_for_its_days_and_not_at_all_with_memory_off(
    era: str, scripted_server: tuple[ScriptedAPI, str], tmp_path: Path
) -> None:
    api, url = scripted_server
    api.reset()
    api.script(SCRIPTED, ok(status_of(100, 0)))
    clock = Clock(NOW)
    data_dir = tmp_path / "shared"
    async with client_of(url, era, clock, token="tenant-a", data_dir=data_dir) as client:
        await call(client, "get_status", SCRIPTED)
    clock.to(60)
    async with client_of(url, era, clock, token="tenant-b", data_dir=data_dir) as client:
        other, _ = await call(client, "get_status", SCRIPTED)
    async with client_of(url, era, clock, token="tenant-a", data_dir=data_dir) as client:
        mine, _ = await call(client, "get_status", SCRIPTED)
    clock.to(3 * 86400)
    async with client_of(url, era, clock, token="tenant-a", data_dir=data_dir, history_days=2) as client:
        expired, _ = await call(client, "get_status", SCRIPTED)
    async with client_of(url, era, clock, token="tenant-a", data_dir=tmp_path / "off", memory=False) as client:
        await call(client, "get_status", SCRIPTED)
        clock.to(3 * 86400 + 60)
        off, off_data = await call(client, "get_status", SCRIPTED)

    assert added(other)[0].startswith("Only one check")  # tenant b never saw tenant a's check
    assert added(mine)[0] == "No change since the last check 60s ago."
    assert added(expired)[0].startswith("Only one check")  # older than EXPERITURE_HISTORY_DAYS: forgotten
    assert added(off) == [] and "progress" not in off_data and "sinceLastCheck" not in off_data
    assert not (tmp_path / "off").exists()


async def history(client: Client, campaign_id: str, **more: Any) -> tuple[str, dict[str, Any]]:
    result = await client.call_tool("get_history", {"campaign_id": campaign_id, **more})
    assert result.structured_content is not None or result.is_error
    return text_of(result), result.structured_content or {}


@pytest.mark.anyio
async def test_get_history_lists_the_runs_seen_newest_first_each_against_the_one_before(era: str) -> None:
    clock = Clock(NOW)
    with demo(clock) as url:
        async with client_of(url, era, clock) as client:
            empty, _ = await history(client, TOKYO)
            for run in range(24):  # a run every half hour: checked while running and once after it completed
                for seconds in (120, 400, 900):
                    clock.to(run * 1800 + seconds)
                    await call(client, "get_status", TOKYO)
            clock.to(24 * 1800 + 300)
            await call(client, "get_status", TOKYO)
            await call(client, "get_metrics", TOKYO)
            text, data = await history(client, f"https://app.experiture.com/campaigns/{TOKYO}")
            short, short_data = await history(client, TOKYO.upper(), limit=3)
            schema = next(t.output_schema for t in (await client.list_tools()).tools if t.name == "get_history")

    assert empty.startswith(f"No history of campaign {TOKYO}: this server has not observed it yet")
    assert (
        len(data["runs"]) == 20 and data["moreRuns"] == 5 and data["snapshots"] == 24 * 3 + 1
    )  # the metrics answer said nothing new
    newest, before = data["runs"][0], data["runs"][1]
    assert newest["state"] == "running" and newest["completedAt"] is None
    assert before["state"] == "completed" and before["durationSeconds"] == 1225.08
    assert before["executionId"] != newest["executionId"]
    assert [r["startedAt"] for r in data["runs"]] == sorted((r["startedAt"] for r in data["runs"]), reverse=True)
    assert len(text.encode()) <= 2600, len(text.encode())
    assert "only what it saw; runs it never saw are missing" in text
    assert len(short_data["runs"]) == 3 and short_data["moreRuns"] == 22
    assert_snapshot("history/get-history-limit-3", short)
    assert schema is not None
    jsonschema.Draft202012Validator(schema).validate(data)  # pyright: ignore[reportUnknownMemberType]


@pytest.mark.anyio
async def test_get_history_refuses_a_bad_id_and_says_so_with_memory_off(
    era: str, scripted_server: tuple[ScriptedAPI, str], tmp_path: Path
) -> None:
    _, url = scripted_server
    async with client_of(url, era, Clock(NOW)) as client:
        bad = await client.call_tool("get_history", {"campaign_id": "spring mailing"})
    async with client_of(url, era, Clock(NOW), memory=False) as client:
        off = await client.call_tool("get_history", {"campaign_id": TOKYO})
    assert bad.is_error and "spring mailing" in text_of(bad)
    assert off.is_error and "Memory of campaigns is off" in text_of(off)


@pytest.mark.anyio
async def test_get_overview_rows_show_the_change_since_the_last_check_and_flag_a_stalled_run(
    era: str, scripted_server: tuple[ScriptedAPI, str]
) -> None:
    api, url = scripted_server
    api.reset()
    api.script(SCRIPTED, ok(status_of(20_000, 80)))
    clock = Clock(NOW)
    ids = json.dumps([SCRIPTED])
    async with client_of(url, era, clock) as client:
        first = await client.call_tool("get_overview", {"campaign_ids": ids})
        clock.to(60)
        api.script(SCRIPTED, ok(status_of(20_300, 81)))
        moved = await client.call_tool("get_overview", {"campaign_ids": ids})
        clock.to(400)
        stalled = await client.call_tool("get_overview", {"campaign_ids": ids})
        clock.to(460)
        after_wait = await client.call_tool("wait_for_run", {"campaign_id": SCRIPTED, "timeout_seconds": 0})

    def row(result: CallToolResult) -> dict[str, Any]:
        assert result.structured_content is not None, text_of(result)
        found: dict[str, Any] = result.structured_content["rows"][0]
        return found

    assert row(first)["sinceLastCheck"] is None and "since the last check" not in text_of(first)
    assert row(moved)["sinceLastCheck"] == "Changed since the last check 60s ago: sent +300, failed +1."
    assert "· Changed since the last check 60s ago: sent +300, failed +1" in text_of(moved)
    assert row(stalled)["sinceLastCheck"] == "No change since the last check 5m40s ago."
    assert "⚠ no count moved between checks minutes apart: the run may be stalled" in text_of(stalled)
    assert not after_wait.is_error
    async with client_of(url, era, clock) as client:  # the wait's check was recorded too
        text, data = await history(client, SCRIPTED)
    assert data["recent"][0]["lastChecked"] == "2026-11-28T15:08:10Z", text


@pytest.mark.anyio
async def test_the_demo_has_seen_its_push_run_eight_times_before_so_history_and_the_rate_show_at_once(
    era: str,
) -> None:
    clock = Clock(NOW)
    settings = Settings(demo=True, base_url=DEMO_BASE_URL, api_token=SecretStr(DEMO_TOKEN))
    server = build_server(settings, transport=httpx2.ASGITransport(app=create_app(clock=clock)), clock=clock)
    async with Client(server, mode=era) as client:  # type: ignore[arg-type]
        status, data = await call(client, "get_status", TOKYO)
        text, runs = await history(client, TOKYO)

    assert_snapshot("history/demo-status-lines", "\n".join(added(status)))
    assert data["progress"]["basedOn"] == "From two checks 3 min apart, as observed by this server."
    assert len(runs["runs"]) == 9 and runs["runs"][0]["state"] == "running"
    assert_snapshot("history/demo-get-history", text)


async def _check_over_http(url: str, key: str, database: Path) -> tuple[str, dict[str, Any]]:
    """get_status of the demo's Spring mailing through a new hosted session: the worker that answered it and the
    structured content, once that worker has written the check (its last_checked moved in the shared file)."""
    from mcp.client.streamable_http import streamable_http_client

    from experiture_mcp.hosted import MCP_PATH, WORKER_HEADER

    def written() -> str | None:
        if not database.exists():
            return None
        with sqlite3.connect(database) as db:
            return db.execute("SELECT max(last_checked) FROM experiture_snapshots").fetchone()[0]

    before, workers = written(), list[str]()

    async def note(response: httpx2.Response) -> None:
        if b"tools/call" in response.request.content:
            workers.append(response.headers.get(WORKER_HEADER, "?"))

    headers = {"Authorization": f"Bearer {key}", "X-Experiture-Token": DEMO_TOKEN}
    async with (
        httpx2.AsyncClient(headers=headers, event_hooks={"response": [note]}, timeout=30) as http,  # a cold worker
        Client(streamable_http_client(url + MCP_PATH, http_client=http), mode="legacy") as client,  # type: ignore[arg-type]
    ):
        _, data = await call(client, "get_status", DEMO_CAMPAIGNS["spring-dm"])
    while written() == before:  # the worker's writer runs right after its answer
        await anyio.sleep(0.02)
    return workers[0], data


@pytest.mark.anyio
async def test_with_two_hosted_workers_each_change_is_measured_from_the_check_just_before_on_either(
    demo_api: str, tmp_path: Path
) -> None:
    port, key = free_port(), "test-key-history-two-workers"
    env = {**os.environ, "EXPERITURE_MCP_ACCESS_KEYS": key, "EXPERITURE_DATA_DIR": str(tmp_path / "shared")}
    command = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--workers", "2", "--port", str(port)]
    process = subprocess.Popen([*command, "--base-url", demo_api], env=env, stdout=subprocess.DEVNULL)
    url, database = f"http://127.0.0.1:{port}", tmp_path / "shared" / "memory.sqlite3"
    checks: list[tuple[str, dict[str, Any]]] = []
    try:
        await healthy(url)
        with anyio.fail_after(90):
            # Until one worker checked, then the other, then the first again (which worker takes a new connection is
            # up to the kernel).
            workers: list[str] = []
            while not any(x == z != y for x, y, z in zip(workers, workers[1:], workers[2:], strict=False)):
                checks.append(await _check_over_http(url, key, database))
                workers.append(checks[-1][0])
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)

    assert "sinceLastCheck" not in checks[0][1]
    since = [data["sinceLastCheck"]["since"] for _, data in checks[1:]]
    assert since == sorted(set(since)), since  # each from the check just before it, whichever worker made that one
    assert all(data["sinceLastCheck"]["text"].startswith("No change since") for _, data in checks[1:])
