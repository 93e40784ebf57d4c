"""wait_for_run over hosted streamable HTTP: progress on the call's own stream, and cancellation, in both eras."""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from pydantic import SecretStr

from _waiting import Accelerated, Progress, demo, structured, wait
from conftest import NOW, Instrumented, ServedApp, free_port, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.hosted import MCP_PATH, STREAMING_TOOLS, build_app
from experiture_mcp.inflight import Registry, caller_identity
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from test_oauth_flow import Hosted as OAuthHosted
from test_oauth_flow import signed_in

TOKYO = DEMO_CAMPAIGNS["tokyo-push"]  # the demo's running push: 29,876 sent of 50,000 at NOW, done 8 min later
KEY_A, KEY_B = ("wait-key-" + secrets.token_urlsafe(24) for _ in range(2))
LEGACY, MODERN = "2025-11-25", "2026-07-28"


@contextmanager
def hosted(clock: Any, **settings: Any) -> Generator[tuple[Instrumented, str]]:
    """The hosted app (access keys A and B) on loopback before the demo API; the API (counting) and /mcp's URL."""
    with demo(clock) as (api, url):
        config = Settings(
            api_token=SecretStr(DEMO_TOKEN),
            base_url=url,
            wait_poll_seconds=0.1,
            mcp_access_keys=(SecretStr(KEY_A), SecretStr(KEY_B)),
            **settings,
        )
        with ServedApp(build_app(config, clock=clock), lifespan="on") as served:
            yield api, served.url + MCP_PATH


@asynccontextmanager
async def client(url: str, era: str, key: str = KEY_A) -> AsyncGenerator[Client]:
    """The SDK's real client over streamable HTTP."""
    async with (
        httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}) as http,
        Client(streamable_http_client(url, http_client=http), mode=era) as connected,  # type: ignore[arg-type]
    ):
        yield connected


def legacy_headers(key: str, tenant: str | None = None) -> dict[str, str]:
    headers = {
        "Authorization": f"Bearer {key}",
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": LEGACY,
    }
    return headers if tenant is None else {**headers, "X-Experiture-Token": tenant}


def call(request_id: int, name: str, arguments: dict[str, Any], progress: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if progress is not None:
        params["_meta"] = {"progressToken": progress}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def cancelled(request_id: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}


def events(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in text.splitlines() if line.startswith("data:") and line[5:].strip()]


@pytest.mark.anyio
async def test_progress_arrives_on_the_calls_stream_while_it_waits(era: str) -> None:
    clock = Accelerated(NOW, speed=30)  # counts move every check; the run ends 8 min (16 s real) later
    with hosted(clock) as (_, url):
        async with client(url, era) as connected:
            clock.restart()
            arrived: list[float] = []
            seen: list[Progress] = []

            async def record(progress: float, total: float | None, message: str | None) -> None:
                arrived.append(time.monotonic())
                seen.append((progress, total, message))

            result = await connected.call_tool(
                "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": 1}, progress_callback=record
            )
            returned = time.monotonic()

    assert structured(result)["outcome"] == "timeout"
    assert len(seen) >= 4  # one per check whose counts moved
    assert [p for p, _, _ in seen] == sorted({p for p, _, _ in seen})  # increasing, never repeated
    assert all(total == 50000.0 for _, total, _ in seen)
    first, _, message = seen[0]  # the run as it stood when the wait began: how far on depends on the machine
    done = re.fullmatch(r"sent ([\d,]+) · failed ([\d,]+) of 50,000 scheduled", message or "")
    assert done is not None, message
    sent, failed = (int(n.replace(",", "")) for n in done.groups())
    assert sent >= 29876 and sent + failed == first < 50000  # progress counts every message dealt with
    assert any(m is not None and "at this rate done around" in m for _, _, m in seen)  # the ETA, once known
    assert returned - arrived[0] > 0.5  # the first arrived while waiting, not with the answer


@pytest.mark.anyio
async def test_cancelling_the_call_stops_the_polling_promptly(era: str) -> None:
    with hosted(frozen_clock) as (api, url):
        async with client(url, era) as connected:
            with anyio.move_on_after(0.7):
                await wait(connected, TOKYO, timeout=30)
            await anyio.sleep(0.2)  # a poll that began as the cancel went out may still arrive
            after_cancel = api.requests
            await anyio.sleep(0.8)
            later = api.requests
            # The server still answers, on the same client, with the same memory.
            again = await wait(connected, TOKYO, timeout=0.2)

    assert after_cancel >= 4  # it polled
    assert later == after_cancel  # and stopped with the cancel, not 30 s later
    assert structured(again)["outcome"] == "timeout"


@pytest.mark.anyio
async def test_a_read_timeout_cancels_the_call_too(era: str) -> None:
    with hosted(frozen_clock) as (api, url):
        async with client(url, era) as connected:
            with pytest.raises(Exception, match=r"[Tt]imed out|[Tt]imeout"):
                await connected.call_tool(
                    "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": 30}, read_timeout_seconds=0.6
                )
            await anyio.sleep(0.2)
            after_cancel = api.requests
            await anyio.sleep(0.8)
            assert api.requests == after_cancel >= 4


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("stranger_key", "stranger_tenant"),
    [(KEY_B, None), (KEY_A, "another-tenants-token")],
    ids=["another access key", "the same key, another tenant"],
)
async def test_one_callers_cancel_cannot_cancel_anothers_call(stranger_key: str, stranger_tenant: str | None) -> None:
    # 2025-11-25 clients cancel with a POST of their own; request ids are small numbers, so they collide.
    with hosted(frozen_clock) as (api, url):
        async with httpx2.AsyncClient(timeout=10) as http:
            own = legacy_headers(KEY_A)
            answer: list[httpx2.Response] = []
            refused = mine = None
            still_polling, cancelled_at = 0, 0.0
            started = time.monotonic()

            async def waiting(timeout: float) -> None:
                body = call(1, "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": timeout})
                answer.append(await http.post(url, json=body, headers=own))

            async def polling() -> None:
                # The call is in flight once the server has polled twice (a loaded machine may take a while).
                at = api.requests
                with anyio.fail_after(5):
                    while api.requests < at + 2:
                        await anyio.sleep(0.02)

            async with anyio.create_task_group() as tg:
                tg.start_soon(waiting, 1.5)
                await polling()
                refused = await http.post(url, json=cancelled(1), headers=legacy_headers(stranger_key, stranger_tenant))
                before = api.requests
                await anyio.sleep(0.5)
                still_polling = api.requests - before
            took = time.monotonic() - started

            # The caller's own cancel does stop its call, at once.
            async with anyio.create_task_group() as tg:
                answer.clear()
                tg.start_soon(waiting, 5)  # long, so that an uncancelled call cannot pass for a cancelled one
                await polling()
                mine = await http.post(url, json=cancelled(1), headers=own)
                cancelled_at = time.monotonic()
            ended = time.monotonic() - cancelled_at
            await anyio.sleep(0.2)
            after_cancel = api.requests
            await anyio.sleep(0.5)
            later = api.requests

    assert refused is not None and mine is not None
    assert refused.status_code == mine.status_code == 202
    assert still_polling >= 2 and took >= 1.3  # the stranger's cancel changed nothing: it waited its 1.5 s
    assert ended < 2 and later == after_cancel  # the caller's own: the answer came and the polling stopped
    assert events(answer[0].text)[-1]["result"]["isError"] is True


@pytest.mark.anyio
async def test_ordinary_calls_still_answer_json_and_waits_stream() -> None:
    with hosted(frozen_clock) as (_, url):
        async with httpx2.AsyncClient(timeout=10) as http:
            headers = legacy_headers(KEY_A)
            status = await http.post(url, json=call(1, "get_status", {"campaign_id": TOKYO}), headers=headers)
            listed = await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)
            waited = await http.post(
                url, json=call(3, "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": 0.3}), headers=headers
            )
            progress = await http.post(
                url, json=call(4, "wait_for_run", {"campaign_id": TOKYO, "timeout_seconds": 0.3}, "p"), headers=headers
            )
            tracked = await http.post(url, json=call(5, "get_status", {"campaign_id": TOKYO}, "q"), headers=headers)
            wrong = await http.post(
                url, content=b'{"jsonrpc": "2.0", "id": 6, "method": "tools/call", ', headers=headers
            )
            envelope: dict[str, Any] = {
                "io.modelcontextprotocol/protocolVersion": MODERN,
                "io.modelcontextprotocol/clientCapabilities": {},
            }
            body = call(7, "get_status", {"campaign_id": TOKYO})
            body["params"]["_meta"] = envelope
            routing = {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/call", "Mcp-Name": "get_status"}
            modern = await http.post(url, json=body, headers={**headers, **routing})

    assert status.headers["content-type"] == listed.headers["content-type"] == "application/json"
    assert modern.headers["content-type"] == "application/json"  # 2026-07-28: as before
    assert modern.json()["result"]["structuredContent"]["execution"]["state"] == "running"
    assert status.json()["result"]["structuredContent"]["execution"]["state"] == "running"
    assert tracked.headers["content-type"] == "application/json"  # get_status never reports progress: no stream
    for streamed in (waited, progress):
        assert streamed.headers["content-type"].startswith("text/event-stream")
    assert events(waited.text)[-1]["result"]["structuredContent"]["outcome"] == "timeout"
    notes = [e for e in events(progress.text) if e.get("method") == "notifications/progress"]
    assert notes and notes[0]["params"]["progressToken"] == "p" and notes[0]["params"]["total"] == 50000
    assert tracked.json()["id"] == 5
    assert wrong.status_code == 400 and wrong.json()["error"]["code"] == -32700  # the SDK's parse error, as before


@pytest.mark.anyio
async def test_under_oauth_progress_arrives_and_a_cancel_stops_the_polling(era: str, tmp_path: Path) -> None:
    port = free_port()
    clock = Accelerated(NOW, speed=30)
    with demo(clock) as (api, url):
        settings = Settings(
            base_url=url,
            wait_poll_seconds=0.1,
            mcp_auth="oauth",
            mcp_public_url=f"http://127.0.0.1:{port}",
            mcp_secret_key=SecretStr("server-secret-" + secrets.token_urlsafe(32)),
            data_dir=tmp_path,
        )
        with ServedApp(build_app(settings, clock=clock), lifespan="on", port=port) as served:
            async with signed_in(OAuthHosted(served.url), era, [DEMO_TOKEN]) as session:
                clock.restart()
                seen: list[Progress] = []
                result = await wait(session.client, TOKYO, timeout=0.8, seen=seen)
                with anyio.move_on_after(0.7):
                    await wait(session.client, TOKYO, timeout=30)
                await anyio.sleep(0.2)
                after_cancel = api.requests
                await anyio.sleep(0.8)
                later = api.requests

    assert structured(result)["outcome"] == "timeout" and len(seen) >= 3
    assert later == after_cancel


@pytest.mark.anyio
async def test_every_tool_that_reports_progress_streams_over_hosted_http(client: Client) -> None:
    # In memory every notification arrives; a tool that reports progress but is not in STREAMING_TOOLS would lose it
    # over hosted HTTP, where only those tools' calls are answered with an event stream.
    arguments = {"campaign_ids": TOKYO} | {"query": "tokyo"} | {"campaign_id": TOKYO, "timeout_seconds": 0.3}
    reporting: set[str] = set()
    for tool in (await client.list_tools()).tools:
        schema = tool.input_schema["properties"]

        async def record(progress: float, total: float | None, message: str | None, name: str = tool.name) -> None:
            reporting.add(name)

        given = {k: v for k, v in arguments.items() if k in schema}
        result = await client.call_tool(tool.name, given, progress_callback=record)
        assert not result.is_error, (tool.name, text_of(result))
    assert reporting == STREAMING_TOOLS


@pytest.mark.anyio
async def test_a_reused_request_id_belongs_to_the_newest_call_even_while_the_older_exchange_is_ending() -> None:
    calls = Registry()
    caller = caller_identity(b"key", None)
    with calls.holding(caller, 1) as older:
        with calls.holding(caller, 1) as newer:  # the client is done with the older call, its exchange not yet
            assert calls.cancel(caller, 1)
            assert newer.scope.cancel_called and not older.scope.cancel_called
        assert not calls.cancel(caller, 1) and len(calls) == 0  # the older call's end leaves nothing behind
    assert older.scope.cancel_called  # its exchange ended: whatever the SDK still runs for it stops
    assert not calls.cancel(caller_identity(b"other", None), 1)
