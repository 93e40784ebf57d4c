"""wait_for_run through the real MCP client, in both eras, against the demo API and scripted APIs on loopback."""

from __future__ import annotations

import copy
import json
import math
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client
from pydantic import SecretStr
from starlette.responses import JSONResponse, Response

from _scripted_api import ScriptedAPI, ok
from _snapshot import assert_snapshot
from _waiting import Accelerated, Progress, demo, structured, wait
from conftest import NOW, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.history.wait import MAX_WAIT_SECONDS, clamp_timeout
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from experiture_mcp.server import build_server

TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
SCRIPTED = "11111111-2222-4333-8444-555555555555"
POLL = 0.1


def settings_for(base_url: str, **more: Any) -> Settings:
    options: dict[str, Any] = {"wait_poll_seconds": POLL, **more}
    return Settings(api_token=SecretStr(DEMO_TOKEN), base_url=base_url, **options)


def client_of(settings: Settings, era: str, clock: Callable[[], datetime] = frozen_clock) -> Client:
    return Client(build_server(settings, clock=clock), mode=era)  # type: ignore[arg-type]


async def validator(client: Client) -> jsonschema.Draft202012Validator:
    (schema,) = [t.output_schema for t in (await client.list_tools()).tools if t.name == "wait_for_run"]
    assert schema is not None
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.anyio
async def test_it_returns_when_the_run_completes_and_sends_progress_with_counts_then_an_eta(era: str) -> None:
    clock = Accelerated(NOW + timedelta(seconds=330), speed=60)  # the demo run ends 148 s (2.5 s real) later
    progress: list[Progress] = []
    with demo(clock) as (_, url):
        async with client_of(settings_for(url), era, clock) as client:
            clock.restart()
            started = time.monotonic()
            result = await wait(client, TOKYO, timeout=20, seen=progress)
            took = time.monotonic() - started
            validator_ = await validator(client)

    data = structured(result)
    validator_.validate(data)  # pyright: ignore[reportUnknownMemberType]
    assert data["outcome"] == "completed" and data["status"]["execution"]["state"] == "completed"
    assert data["change"]["previousState"] == "running" and data["change"]["moved"]["sent"] > 0
    assert took < 10
    text = text_of(result)
    assert text.startswith("The run completed while waiting (after ")
    assert "Changed during the " in text and "state running → completed" in text
    assert "State: completed (the latest execution completed)" in text  # then render_status's text
    values = [p[0] for p in progress]
    assert len(values) >= 5 and values == sorted(set(values))  # each notification a higher count
    assert {p[1] for p in progress} == {50000.0}
    assert all(p[2] is not None and p[2].startswith("sent ") and "of 50,000 scheduled" in p[2] for p in progress)
    assert "done around" not in str(progress[0][2])  # one check tells no speed: the ETA comes later
    eta = re.compile(r"at this rate done around 2026-11-28 15:0[89] UTC = 2026-11-29 00:0[89] JST Asia/Tokyo$")
    assert any(eta.search(str(p[2])) for p in progress)


@pytest.mark.anyio
async def test_at_its_timeout_it_says_still_running_with_counts_and_makes_one_request_per_poll(era: str) -> None:
    with demo(frozen_clock) as (api, url):
        async with client_of(settings_for(url, wait_poll_seconds=0.25), era) as client:
            started = time.monotonic()
            result = await wait(client, TOKYO, timeout=1)
            took = time.monotonic() - started

    data = structured(result)
    assert data["outcome"] == "timeout" and data["timeoutSeconds"] == 1
    assert 1 <= took < 2
    assert data["checks"] == api.requests == 5  # at 0, 0.25, 0.5, 0.75 and 1 s: one request per poll
    text = text_of(result)
    assert text.startswith("Still running after waiting 1s (5 checks): not finished yet.")
    assert "No change during the 1s wait." in text
    assert "Sent 29,876 of 50,000 scheduled" in text


@pytest.mark.anyio
async def test_with_an_injected_clock_the_timeout_answer_carries_the_rate_and_eta(era: str) -> None:
    clock = Accelerated(NOW - timedelta(seconds=60), speed=60)
    with demo(clock) as (_, url):
        async with client_of(settings_for(url), era, clock) as client:
            clock.restart()
            result = await wait(client, TOKYO, timeout=1.2)

    data = structured(result)
    assert data["outcome"] == "timeout" and data["progress"]["remaining"] > 0
    assert data["progress"]["sentPerMinute"] == pytest.approx(2500, rel=0.05)
    text = text_of(result)
    assert "from two checks " in text and "At this rate the remaining " in text and "JST Asia/Tokyo." in text


def scheduled_then(states: list[dict[str, Any]]) -> Callable[[], Response]:
    """Answer the scripted campaign's status with each state in turn, the last one from then on."""
    answers = iter(states)
    last: list[dict[str, Any]] = []

    def reply() -> Response:
        last[:] = [next(answers, last[0] if last else states[-1])]
        return ok(last[0])()

    return reply


def status(state: str, *, run: dict[str, Any] | None = None, send_in: float = 3) -> dict[str, Any]:
    send_at = (NOW + timedelta(seconds=send_in)).isoformat().replace("+00:00", "Z")
    data: dict[str, Any] = {
        "campaignId": SCRIPTED,
        "name": "Scripted",
        "schedule": {"scheduleId": "s-1", "sendAt": send_at, "timezone": "America/New_York", "active": True},
        "execution": {"state": state, "channel": "email", "lastExecution": run},
    }
    return data


RUN = {
    "executionId": "run-1",
    "startedAt": "2026-11-28T15:00:35Z",
    "completedAt": None,
    "status": "running",
    "counts": {"scheduled": 100, "hydrated": 100, "composed": 10, "injected": 10, "sent": 9, "failed": 1},
}


def done(run: dict[str, Any]) -> dict[str, Any]:
    finished = copy.deepcopy(run) | {"status": "completed", "completedAt": "2026-11-28T15:01:35Z"}
    finished["counts"] = {"scheduled": 100, "hydrated": 100, "composed": 100, "injected": 100, "sent": 97, "failed": 3}
    return finished


@pytest.fixture
def scripted(scripted_server: tuple[ScriptedAPI, str]) -> Iterator[tuple[ScriptedAPI, str]]:
    api, url = scripted_server
    api.reset()
    yield api, url
    api.reset()


@pytest.mark.anyio
async def test_a_scheduled_send_within_the_timeout_is_waited_for_until_the_state_changes(
    scripted: tuple[ScriptedAPI, str], era: str
) -> None:
    api, url = scripted
    api.script(SCRIPTED, scheduled_then([status("scheduled")] * 3 + [status("running", run=RUN)]))
    async with client_of(settings_for(url), era) as client:
        result = await wait(client, SCRIPTED, timeout=5)

    data = structured(result)
    assert data["outcome"] == "state_changed" and data["checks"] == 4 == len(api.seen)
    assert data["change"]["newRun"] is True  # the first run appeared
    text = text_of(result)
    assert text.startswith("The state changed while waiting: scheduled → running (after ")
    assert "New run during the " in text and "run id run-1" in text


@pytest.mark.anyio
async def test_a_503_in_the_middle_does_not_end_the_wait(scripted: tuple[ScriptedAPI, str], era: str) -> None:
    api, url = scripted
    unavailable = JSONResponse({"success": False, "error": {"code": "UNAVAILABLE", "message": "down"}}, status_code=503)
    replies = iter([ok(status("running", run=RUN)), *[lambda: unavailable] * 4, ok(status("completed", run=done(RUN)))])
    api.script(SCRIPTED, lambda: next(replies)())
    quick = settings_for(url, retry_attempts=2, retry_backoff_seconds=0.05, retry_max_wait_seconds=0.1)
    async with client_of(quick, era) as client:
        result = await wait(client, SCRIPTED, timeout=10)

    data = structured(result)
    assert data["outcome"] == "completed" and data["failedChecks"] == 2 and len(api.seen) == 6
    text = text_of(result)
    assert text.startswith("The run completed while waiting")
    assert (
        "2 checks got no usable answer (the last: Experiture API answered HTTP 503" in text
        and "the wait went on" in text
    )


@pytest.mark.anyio
async def test_a_503_until_the_end_returns_the_last_status_at_the_timeout_not_an_error(
    scripted: tuple[ScriptedAPI, str], era: str
) -> None:
    api, url = scripted
    unavailable = Response(status_code=503)
    replies = iter([ok(status("running", run=RUN))])
    api.script(SCRIPTED, lambda: next(replies, lambda: unavailable)())
    quick = settings_for(url, retry_attempts=1)
    async with client_of(quick, era) as client:
        result = await wait(client, SCRIPTED, timeout=0.5)

    data = structured(result)
    assert data["outcome"] == "timeout" and data["checks"] == 1 and data["failedChecks"] >= 3
    assert "got no usable answer" in text_of(result) and "Still running after waiting" in text_of(result)


@pytest.mark.anyio
async def test_a_retry_after_from_the_api_spaces_the_polls_out(scripted: tuple[ScriptedAPI, str], era: str) -> None:
    api, url = scripted
    limited = JSONResponse({"success": False}, status_code=429, headers={"Retry-After": "1"})
    replies = iter([ok(status("running", run=RUN))])
    api.script(SCRIPTED, lambda: next(replies, lambda: limited)())
    async with client_of(settings_for(url, retry_attempts=1), era) as client:
        result = await wait(client, SCRIPTED, timeout=2.5)

    assert structured(result)["outcome"] == "timeout"
    assert len(api.seen) == 4  # at 0, 0.1, 1.1 and 2.1 s: never sooner than the API asked, not every 0.1 s


@pytest.mark.anyio
async def test_a_failure_that_retrying_cannot_fix_ends_the_wait_with_the_error(
    scripted: tuple[ScriptedAPI, str], era: str
) -> None:
    api, url = scripted
    replies = iter([ok(status("running", run=RUN))])
    gone = JSONResponse({"success": False, "error": {"code": "X.NOT_FOUND", "message": "gone"}}, status_code=404)
    api.script(SCRIPTED, lambda: next(replies, lambda: gone)())
    async with client_of(settings_for(url), era) as client:
        result = await wait(client, SCRIPTED, timeout=5)

    assert result.is_error and len(api.seen) == 2
    assert text_of(result).startswith(f"wait_for_run failed for campaign {SCRIPTED}: no campaign with this id")


@pytest.mark.anyio
async def test_cancelling_the_call_stops_the_polls_promptly(era: str) -> None:
    with demo(frozen_clock) as (api, url):
        async with client_of(settings_for(url), era) as client:
            started = time.monotonic()
            with anyio.move_on_after(0.5):
                await wait(client, TOKYO, timeout=30)
            cancelled_after = time.monotonic() - started
            await anyio.sleep(0.15)  # a poll that began as the cancel went out may still arrive
            before = api.requests
            await anyio.sleep(0.6)  # six poll intervals
            after = api.requests
            assert not (await client.call_tool("get_status", {"campaign_id": TOKYO})).is_error  # session still fine

    assert cancelled_after < 0.8 and 3 <= before <= 7
    assert after == before


@pytest.mark.anyio
async def test_an_invalid_id_is_refused_before_any_request(scripted: tuple[ScriptedAPI, str], era: str) -> None:
    api, url = scripted
    async with client_of(settings_for(url), era) as client:
        result = await wait(client, "not-a-campaign")

    assert result.is_error and api.seen == []
    assert text_of(result).startswith('wait_for_run refused campaign_id "not-a-campaign": it is not a campaign id')


@pytest.mark.anyio
async def test_the_timeout_is_clamped_to_0_55_and_a_campaign_with_nothing_to_wait_for_returns_at_once(
    settings: Settings, era: str
) -> None:
    fast = settings.model_copy(update={"wait_poll_seconds": POLL})
    texts: dict[str, str] = {}
    async with client_of(fast, era) as client:
        long = structured(await wait(client, DEMO_CAMPAIGNS["spring-dm"], timeout=120))
        at_once = await wait(client, TOKYO, timeout=-5)
        none = structured(at_once)
        started = time.monotonic()
        for name, cid in DEMO_CAMPAIGNS.items():
            if name != "tokyo-push":  # the running one, waited for elsewhere
                texts[name] = text_of(await wait(client, cid))
        took = time.monotonic() - started

    assert long["timeoutSeconds"] == MAX_WAIT_SECONDS and long["outcome"] == "not_waiting"
    assert none["timeoutSeconds"] == 0 and none["outcome"] == "timeout" and none["checks"] == 1
    assert took < 5  # none of the others is waited for
    assert_snapshot("wait/timeout-0", text_of(at_once))
    assert_snapshot("wait/not-waiting", "\n\n".join(f"## {k}\n{v}" for k, v in texts.items()))
    assert clamp_timeout(math.nan) == clamp_timeout(math.inf) == 45 and clamp_timeout(30.5) == 30.5


@pytest.mark.anyio
async def test_its_listing_fits_650_bytes_and_it_is_read_only(client: Client) -> None:
    (tool,) = [t for t in (await client.list_tools()).tools if t.name == "wait_for_run"]
    seen = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    listing = {k: seen[k] for k in ("name", "title", "description", "inputSchema")}
    assert len(json.dumps(listing, separators=(",", ":"), ensure_ascii=False).encode()) <= 650
    assert tool.annotations is not None and tool.annotations.read_only_hint is True
    assert tool.input_schema["required"] == ["campaign_id"] and tool.output_schema is not None
