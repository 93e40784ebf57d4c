"""The API token never reaches a tool result, resource, error, log record or stderr, whatever path a call takes."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from mcp import Client, MCPError
from mcp.types import ResourceTemplateReference, TextContent, TextResourceContents
from pydantic import SecretStr, ValidationError
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from _scripted_api import ScriptedAPI
from conftest import ServedApp, connect, free_port, frozen_clock
from experiture_mcp.config import Settings
from experiture_mcp.logs import configure_logging
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, create_app

SECRET = "tok-SECRET-abc123"
TOOLS = ("get_summary", "get_status", "get_metrics")
UNKNOWN = "00000000-0000-4000-8000-000000000000"
LOGGERS = ("experiture_mcp", "mcp", "httpx2", "httpcore2", "stamina", "anyio")


def accepting_secret(app: ASGIApp) -> ASGIApp:
    """The demo API, with SECRET accepted as the demo token so that every success and error path is reachable."""
    ours, demo = f"Bearer {SECRET}".encode(), f"Bearer {DEMO_TOKEN}".encode()

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(k, demo if k == b"authorization" and v == ours else v) for k, v in scope["headers"]]
            scope = {**scope, "headers": headers}
        await app(scope, receive, send)

    return wrapped


class Capture(logging.Handler):
    """Every record of our loggers and the libraries', with its traceback and attributes."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.stream = io.StringIO()  # what the configured stderr handler wrote

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name} {record.levelname} {text} {record.__dict__!r}")


@pytest.fixture
def logs() -> Iterator[Capture]:
    """Logging set up as the command line sets it up, then every record at DEBUG, the HTTP libraries' included."""
    root = logging.getLogger()
    saved = (logging.getLogRecordFactory(), root.level, list(root.handlers))
    levels = {name: logging.getLogger(name).level for name in LOGGERS}
    for handler in saved[2]:
        root.removeHandler(handler)  # so that configure_logging installs its handler on our stream
    capture = Capture()
    configure_logging("DEBUG", stream=capture.stream)
    for name in LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
        logging.getLogger(name).addHandler(capture)
    yield capture
    for name in LOGGERS:
        logging.getLogger(name).removeHandler(capture)
        logging.getLogger(name).setLevel(levels[name])
    logging.setLogRecordFactory(saved[0])
    root.setLevel(saved[1])
    root.handlers[:] = saved[2]


@pytest.fixture(scope="module")
def accepting_api() -> Iterator[str]:
    with ServedApp(accepting_secret(create_app(clock=frozen_clock))) as served:
        yield served.url + "/public/v1"


def secret_settings(base_url: str, **more: float) -> Settings:
    return Settings(
        api_token=SecretStr(SECRET),
        base_url=base_url,
        retry_attempts=2,  # a retry and its log lines are exercised too
        retry_backoff_seconds=0.01,
        retry_max_wait_seconds=0.05,
        **more,  # type: ignore[arg-type]
    )


@pytest.fixture
async def seen() -> AsyncIterator[list[str]]:
    """Everything a model, client or user could read, appended by the test."""
    texts: list[str] = []
    yield texts


async def drive(client: Client, campaign_ids: list[str], seen: list[str]) -> None:
    """Call every tool and read every resource for each id; append every text that comes back."""
    for campaign_id in campaign_ids:
        for tool in TOOLS:
            result = await client.call_tool(tool, {"campaign_id": campaign_id})
            seen += [block.text for block in result.content if isinstance(block, TextContent)]
            seen.append(json.dumps(result.structured_content))
        for endpoint in ("summary", "status", "metrics"):
            try:
                read = await client.read_resource(f"experiture://campaigns/{campaign_id}/{endpoint}")
            except MCPError as exc:
                seen.append(f"{exc.error.code} {exc.error.message} {exc.error.data!r}")
            else:
                seen += [c.text for c in read.contents if isinstance(c, TextResourceContents)]
    ref = ResourceTemplateReference(type="ref/resource", uri="experiture://campaigns/{campaign_id}/status")
    seen += (await client.complete(ref, {"name": "campaign_id", "value": ""})).completion.values


@pytest.mark.anyio
async def test_no_result_resource_error_or_log_record_contains_the_token(
    accepting_api: str,
    scripted_server: tuple[ScriptedAPI, str],
    silent_port: int,
    logs: Capture,
    seen: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    api, scripted_url = scripted_server
    api.reset()
    echo = f"rejected header Authorization: Bearer {SECRET} (token {SECRET})"
    replies: dict[str, Response] = {
        "401": JSONResponse({"success": False, "error": {"code": "AUTH", "message": echo}}, 401),
        "403": JSONResponse({"code": "JOURNEY_API.AUTH.INSUFFICIENT_SCOPE", "message": echo}, 403),
        "429": JSONResponse({"message": echo}, 429, headers={"Retry-After": "0"}),
        "503": HTMLResponse(f"<h1>{echo}</h1>", 503),
        "302": RedirectResponse(f"/v1/elsewhere?token={SECRET}", 302),
        "bad": JSONResponse({"success": True, "data": {"campaignId": SECRET, "counts": SECRET}}),
        "false": JSONResponse({"success": False, "data": None, "error": {"code": "E", "message": echo}}),
        "echoed in data": JSONResponse(
            {
                "success": True,
                "data": {
                    "campaignId": "00000008-0000-4000-8000-000000000000",
                    "name": f"Q4 {SECRET}",
                    "execution": {"state": "completed", "channel": SECRET},
                    "counts": dict.fromkeys(("scheduled", "hydrated", "composed", "injected", "sent", "failed"), 0),
                },
            }
        ),
    }
    scripted_ids = [
        api.script(f"{n:08d}-0000-4000-8000-000000000000", lambda reply=reply: reply)
        for n, reply in enumerate(replies.values(), start=1)
    ]

    async with connect(secret_settings(accepting_api), "auto") as client:
        await drive(client, [*DEMO_CAMPAIGNS.values(), UNKNOWN, "../admin"], seen)
        static = await client.read_resource("experiture://reference/status-values")
        seen += [c.text for c in static.contents if isinstance(c, TextResourceContents)]
    async with connect(secret_settings(scripted_url), "legacy") as client:
        await drive(client, scripted_ids, seen)
    for unreachable in (f"http://127.0.0.1:{silent_port}", f"http://127.0.0.1:{free_port()}"):
        async with connect(secret_settings(unreachable, timeout_seconds=0.05), "auto") as client:
            await drive(client, [DEMO_CAMPAIGNS["spring-dm"]], seen)

    captured = capsys.readouterr()
    everything = [*seen, *logs.lines, logs.stream.getvalue(), captured.out, captured.err]
    assert len(seen) > 200 and any("HTTP Request" in line or "httpcore2" in line for line in logs.lines)
    assert any("rejected header Authorization" in text for text in seen)  # the echoes reached us, redacted
    assert any('"Q4 [REDACTED]"' in text for text in seen)
    assert [text for text in everything if SECRET in text] == []
    assert all("/elsewhere" not in s.path for s in api.seen)  # the redirect was not followed


def test_the_call_command_keeps_the_token_out_of_stdout_and_stderr(accepting_api: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "EXPERITURE_API_TOKEN": SECRET, "EXPERITURE_LOG_LEVEL": "DEBUG"}
    command = [str(Path(sys.executable).parent / "experiture-mcp"), "call", "get_status", UNKNOWN]

    done = subprocess.run([*command, "--base-url", accepting_api], capture_output=True, text=True, env=env, timeout=60)

    assert done.returncode == 1 and "no campaign with this id" in done.stdout
    assert "DEBUG" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_a_plain_http_base_url_off_loopback_is_refused_without_echoing_the_token() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(api_token=SecretStr(SECRET), base_url="http://api.experiture.ai/public/v1")

    assert "use https://" in str(raised.value)
    assert SECRET not in str(raised.value)
