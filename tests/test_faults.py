"""Fault injection over real loopback sockets: every fault gets a prompt, actionable answer and the server recovers."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from _fault_api import (
    FaultAPI,
    drip,
    hang,
    huge,
    record_bodies,
    reply,
    reset_mid_body,
    retry_after_date,
)
from conftest import frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.logs import configure_logging, register_secret
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from experiture_mcp.server import build_server

SPRING = DEMO_CAMPAIGNS["spring-dm"]
TOKEN = "tok-FAULTS-7f3a9c-SECRET"  # recognisable, so any leak is easy to find
API_ERROR = {"success": False, "error": {"code": "JOURNEY_API.BUSY", "message": "Try later."}}
HTML = "<!doctype html><html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>"


@pytest.fixture(scope="session")
def canned(demo_api: str) -> dict[str, tuple[int, bytes]]:
    return record_bodies(demo_api, DEMO_TOKEN, [SPRING])


@pytest.fixture
def api(canned: dict[str, tuple[int, bytes]]) -> Iterator[FaultAPI]:
    with FaultAPI(canned) as served:
        yield served


def fault_settings(api: FaultAPI, **overrides: float) -> Settings:
    """Short timeouts and tiny backoff, so faults resolve in about a second, as they would in 20 s in production."""
    values: dict[str, float] = {
        "timeout_seconds": 0.25,
        "deadline_seconds": 2.5,
        "retry_backoff_seconds": 0.01,
        "retry_max_wait_seconds": 2.0,
        **overrides,
    }
    return Settings(api_token=SecretStr(TOKEN), base_url=api.url, **values)  # pyright: ignore[reportArgumentType]


@pytest.fixture
async def mcp(api: FaultAPI, era: str) -> AsyncIterator[Client]:
    async with Client(build_server(fault_settings(api), clock=frozen_clock), mode=era) as c:  # type: ignore[arg-type]
        yield c


async def timed_status(mcp: Client) -> tuple[CallToolResult, float]:
    start = time.monotonic()
    result = await mcp.call_tool("get_status", {"campaign_id": SPRING})
    return result, time.monotonic() - start


async def status_once(api: FaultAPI, **overrides: float) -> tuple[CallToolResult, float]:
    """One get_status call through a fresh server (one era: retries live below the protocol)."""
    async with Client(build_server(fault_settings(api, **overrides), clock=frozen_clock)) as mcp:
        return await timed_status(mcp)


@dataclass(frozen=True)
class Fault:
    arrange: Callable[[FaultAPI], None]
    says: tuple[str, ...] = ()  # fragments of the error text; empty means the call succeeds despite the fault


FAULTS: dict[str, Fault] = {
    "no answer at all": Fault(
        lambda api: api.always(hang()), ("temporarily unavailable", "did not answer in time", "Retry in 30 s")
    ),
    "connection refused": Fault(
        lambda api: api.refuse(), ("temporarily unavailable", "refused or could not be reached", "Retry in 30 s")
    ),
    "reset mid-body every time": Fault(
        lambda api: api.always(reset_mid_body()), ("temporarily unavailable", "dropped the connection mid-answer")
    ),
    "reset mid-body once": Fault(lambda api: api.plan(reset_mid_body())),
    "429 then Retry-After 0 s": Fault(lambda api: api.plan(reply(429, API_ERROR, Retry_After="0"))),
    "429 then Retry-After as a past HTTP date": Fault(
        lambda api: api.plan(reply(429, API_ERROR, Retry_After=retry_after_date(-60)))
    ),
    "429 asking for 120 s": Fault(
        lambda api: api.always(reply(429, API_ERROR, Retry_After="120")),
        ("temporarily unavailable", "rate-limiting", "[HTTP 429, code JOURNEY_API.BUSY]", "Retry in 120 s"),
    ),
    "429 asking for two minutes as a date": Fault(
        lambda api: api.always(reply(429, API_ERROR, Retry_After=retry_after_date(120))),
        ("rate-limiting", "gave up after 1 attempt", "Retry in 1"),
    ),
    "429 asking for an absurd wait": Fault(
        lambda api: api.always(reply(429, API_ERROR, Retry_After="9" * 400)), ("rate-limiting", "Retry in 86400 s")
    ),
    "429 without Retry-After": Fault(
        lambda api: api.always(reply(429, API_ERROR)), ("rate-limiting", "gave up after 4 attempts", "Retry in 30 s")
    ),
    "500 once": Fault(
        lambda api: api.plan(reply(500, API_ERROR)), ("server error", "[HTTP 500, code JOURNEY_API.BUSY]", "retry")
    ),
    "502 twice then success": Fault(lambda api: api.plan(reply(502, HTML, "text/html"), reply(502, API_ERROR))),
    "503 twice then success": Fault(lambda api: api.plan(reply(503, API_ERROR), reply(503, API_ERROR))),
    "504 twice then success": Fault(lambda api: api.plan(reply(504, b""), reply(504, API_ERROR))),
    "503 every time": Fault(
        lambda api: api.always(reply(503, API_ERROR)),
        ("temporarily unavailable", "temporary server error", "[HTTP 503", "Retry in 30 s", "outage"),
    ),
    "HTML error page": Fault(
        lambda api: api.always(reply(502, HTML, "text/html")), ("temporarily unavailable", "[HTTP 502]")
    ),
    "HTML page with 200": Fault(
        lambda api: api.always(reply(200, HTML, "text/html")),
        ("cannot read", "not JSON (text/html", "EXPERITURE_BASE_URL"),
    ),
    "truncated JSON": Fault(
        lambda api: api.always(reply(200, b'{"success": true, "data": {"campaignId": "4130bada')),
        ("cannot read", "not JSON (application/json"),
    ),
    "valid JSON of the wrong shape": Fault(
        lambda api: api.always(reply(200, {"success": True, "data": {"campaignId": SPRING}})),
        ("cannot read", "wrong shape (execution: Field required)"),
    ),
    "success false with 200": Fault(
        lambda api: api.always(reply(200, API_ERROR)),
        ("cannot read", "success: false", "code JOURNEY_API.BUSY", 'API message: "Try later."'),
    ),
    "JSON sent as text/plain": Fault(
        lambda api: api.plan(reply(200, api.canned[f"/public/v1/campaigns/{SPRING}/status"][1], "text/plain"))
    ),
    "binary body with a binary content type": Fault(
        lambda api: api.always(reply(200, bytes(range(256)), "application/octet-stream")),
        ("cannot read", "not JSON (application/octet-stream, 256 bytes)"),
    ),
    "10 MB body with Content-Length": Fault(
        lambda api: api.always(huge(10 * 1024 * 1024, chunked=False)), ("exceeds the 1048576 byte limit",)
    ),
    "10 MB chunked body": Fault(
        lambda api: api.always(huge(10 * 1024 * 1024, chunked=True)), ("exceeds the 1048576 byte limit",)
    ),
    "body dripped one byte at a time": Fault(
        lambda api: api.always(drip(0.02)), ("temporarily unavailable", "no complete answer within 0.25 s")
    ),
    "400 for the request": Fault(lambda api: api.always(reply(400, API_ERROR)), ("refused the request", "HTTP 400")),
}


@pytest.mark.anyio
async def test_every_fault_in_turn_gets_a_prompt_actionable_answer_and_the_same_server_recovers(
    api: FaultAPI, mcp: Client
) -> None:
    with server_log() as log:
        for name, fault in FAULTS.items():
            fault.arrange(api)

            result, elapsed = await timed_status(mcp)

            assert elapsed < 2.5 + 0.5, name  # the deadline, plus the MCP round trip
            text = text_of(result)
            assert result.is_error is bool(fault.says), (name, text)
            for fragment in fault.says:
                assert fragment in text, (name, text)
            if fault.says:
                assert text.startswith(f"get_status failed for campaign {SPRING}: "), name
                assert re.search(r"\n(Retry|Usually|This is|Retrying|Wait)", text), name  # what to do next
            assert TOKEN not in text

            api.heal()
            api.listen()
            result, _ = await timed_status(mcp)
            assert not result.is_error, (name, text_of(result))
            assert text_of(result).startswith('Campaign "Spring Re-engagement Direct Mail"'), name
    assert TOKEN not in log.getvalue()


@pytest.mark.anyio
async def test_retry_after_in_seconds_is_waited_for_before_the_retry(api: FaultAPI) -> None:
    api.plan(reply(503, API_ERROR, Retry_After="1"))
    result, elapsed = await status_once(api)
    assert not result.is_error
    assert elapsed >= 1.0
    assert len(api.requests) == 2


@pytest.mark.anyio
async def test_retry_after_as_an_http_date_is_waited_for_before_the_retry(api: FaultAPI) -> None:
    api.plan(reply(429, API_ERROR, Retry_After=retry_after_date(3)))  # whole seconds: between 2 and 3 s from now
    result, elapsed = await status_once(api, deadline_seconds=6, retry_max_wait_seconds=4)
    assert not result.is_error, text_of(result)
    assert elapsed >= 1.5
    assert len(api.requests) == 2


@pytest.mark.anyio
async def test_only_429_502_503_504_and_transport_errors_are_retried(api: FaultAPI) -> None:
    settings = fault_settings(api)
    async with Client(build_server(settings, clock=frozen_clock)) as mcp:
        await _count_attempts(api, mcp)


async def _count_attempts(api: FaultAPI, mcp: Client) -> None:
    for status in (400, 401, 403, 404, 405, 409, 422, 500, 501):
        api.always(reply(status, API_ERROR))
        api.requests.clear()
        result, _ = await timed_status(mcp)
        assert f"HTTP {status}" in text_of(result)
        assert len(api.requests) == 1, status
    for status in (429, 502, 503, 504):
        api.always(reply(status, API_ERROR))
        api.requests.clear()
        result, _ = await timed_status(mcp)
        assert "gave up after 4 attempts" in text_of(result)
        assert len(api.requests) == 4, status


@pytest.mark.anyio
async def test_the_per_call_deadline_cuts_a_request_that_would_outlast_it(api: FaultAPI) -> None:
    api.always(hang())
    result, elapsed = await status_once(api, timeout_seconds=30, deadline_seconds=1.0)
    assert 0.9 <= elapsed < 1.5
    text = text_of(result)
    assert "temporarily unavailable: it did not answer in time (no usable answer within the 1 s deadline)" in text
    assert "Retry in 30 s" in text


@pytest.mark.anyio
async def test_backoff_that_would_overrun_the_deadline_gives_up_at_once(api: FaultAPI) -> None:
    api.always(reply(503, API_ERROR))
    result, elapsed = await status_once(api, retry_backoff_seconds=5, retry_max_wait_seconds=10, retry_attempts=10)
    assert elapsed < 1.0
    assert "gave up after 1 attempt" in text_of(result)


@pytest.mark.anyio
async def test_a_redirect_is_reported_and_never_followed(canned: dict[str, tuple[int, bytes]], api: FaultAPI) -> None:
    with FaultAPI(canned) as elsewhere:
        api.always(reply(302, b"", Location=f"{elsewhere.url}/campaigns/{SPRING}/status"))
        result, _ = await status_once(api)
        assert elsewhere.requests == []
    text = text_of(result)
    assert "redirect, which this server never follows" in text
    assert "HTTP 302" in text


@contextmanager
def server_log() -> Generator[io.StringIO]:
    """Everything logged at DEBUG, HTTP libraries included, by the server's handler and by a plain one of the kind
    the SDK or uvicorn install (placed first, so it sees each record before our handler's filter touches it)."""
    buffer = io.StringIO()
    foreign = logging.StreamHandler(buffer)
    foreign.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    handlers = list(root.handlers)
    loud = [logging.getLogger(n) for n in ("httpx2", "httpcore2", "stamina", "mcp")]
    levels = [root.level, *(lg.level for lg in loud)]
    root.handlers[:] = [h for h in handlers if not getattr(h, "_experiture", False)]  # ours, installed on `buffer`
    configure_logging("DEBUG", stream=buffer)
    root.handlers.insert(0, foreign)
    for lg in loud:
        lg.setLevel(logging.DEBUG)
    try:
        yield buffer
    finally:
        root.handlers[:] = handlers
        root.setLevel(levels[0])
        for lg, level in zip(loud, levels[1:], strict=True):
            lg.setLevel(level)


@pytest.mark.anyio
async def test_the_token_never_leaks_on_fault_paths_even_when_the_api_echoes_it(api: FaultAPI) -> None:
    echo = {"success": False, "error": {"code": f"BAD_{TOKEN}", "message": f"token {TOKEN} / Bearer {TOKEN}"}}
    echoes = [
        reply(401, echo, WWW_Authenticate=f'Bearer error="invalid_token", token="{TOKEN}"'),
        reply(200, echo),
        reply(200, f"<p>Bearer {TOKEN}</p>", "text/html"),
        reply(503, echo, X_Echo=TOKEN),
        reply(429, echo, Retry_After=TOKEN),
        reply(302, b"", Location=f"http://127.0.0.1:9/?token={TOKEN}"),
    ]
    texts: list[str] = []
    with server_log() as log:
        async with Client(build_server(fault_settings(api), clock=frozen_clock)) as mcp:
            for responder in echoes:
                api.always(responder)
                texts.append(text_of((await timed_status(mcp))[0]))
    assert all("[REDACTED]" in t for t in texts[:2])  # the API's message was shown, with the token taken out
    assert all(TOKEN not in t for t in texts)
    assert log.getvalue()  # the log was captured, at DEBUG, from the HTTP libraries too
    assert TOKEN not in log.getvalue()


@pytest.mark.anyio
async def test_a_token_that_cannot_be_sent_is_refused_before_any_request_without_echoing_it(api: FaultAPI) -> None:
    texts: list[str] = []
    with server_log() as log:
        for token in (f"{TOKEN}\r\nX-Injected: 1", f"{TOKEN}é", f"{TOKEN} {TOKEN}"):
            settings = fault_settings(api).model_copy(update={"api_token": SecretStr(token)})
            async with Client(build_server(settings, clock=frozen_clock)) as mcp:
                result, _ = await timed_status(mcp)
            assert result.is_error
            texts.append(text_of(result))
    assert api.requests == []
    assert all("token holds spaces, line breaks or non-ASCII characters" in t for t in texts)
    assert all(TOKEN not in t for t in texts)
    assert TOKEN not in log.getvalue()


@pytest.mark.anyio
async def test_a_pasted_line_break_around_the_token_is_ignored(api: FaultAPI) -> None:
    settings = fault_settings(api).model_copy(update={"api_token": SecretStr(f" {TOKEN}\n")})
    async with Client(build_server(settings, clock=frozen_clock)) as mcp:
        result, _ = await timed_status(mcp)
    assert not result.is_error
    assert api.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.anyio
async def test_a_traceback_that_quotes_the_token_is_redacted_for_every_handler(api: FaultAPI) -> None:
    register_secret(TOKEN)
    with server_log() as log:
        async with httpx2.AsyncClient() as http:
            try:  # h11 refuses the header and quotes its value, token included, in the exception
                await http.get(f"{api.url}/x", headers={"Authorization": f"Bearer {TOKEN}\r\nX-Injected: 1"})
            except httpx2.HTTPError:
                logging.getLogger("experiture_mcp.client").exception("request failed")
    assert "Traceback" in log.getvalue() and "LocalProtocolError" in log.getvalue()
    assert TOKEN not in log.getvalue()
