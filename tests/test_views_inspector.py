"""The views in a real MCP Apps host: the MCP Inspector's web client (its Apps tab), in Debian's Chromium.

The Inspector (the pinned npm package of scripts/npm-tools.sh) is a host nobody on this project wrote: it starts
`experiture-mcp --demo` over stdio, lists the tools whose `_meta` names a view, reads the `ui://` resource, and shows
it through the ext-apps AppBridge in a sandbox proxy on a second origin, the way web hosts do.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from playwright.sync_api import ConsoleMessage, Frame, Page, Request
from pydantic import SecretStr

from _browser import chromium, require_chromium
from _view_host import SCREENSHOTS
from conftest import free_port
from experiture_mcp.cli import DEMO_BASE_URL
from experiture_mcp.config import Settings
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, demo_transport, live_run
from experiture_mcp.server import build_server

ROOT = Path(__file__).resolve().parent.parent
TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
WINBACK = DEMO_CAMPAIGNS["winback-email"]
APPS = {"get_status": "Campaign execution status", "get_metrics": "Campaign pipeline metrics"}
STAGES = ("scheduled", "hydrated", "composed", "injected", "sent", "failed")


def _inspector_binary() -> str:
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to install the MCP Inspector (scripts/npm-tools.sh); CI always has it")
    require_chromium()
    found = subprocess.run(
        ["bash", "-c", "source scripts/npm-tools.sh && ensure_npm_tools >&2 && command -v mcp-inspector"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if found.returncode != 0:
        pytest.fail(f"the pinned MCP Inspector could not be installed:\n{found.stderr[-2000:]}")
    return found.stdout.strip()


@pytest.fixture(scope="module")
def expected() -> dict[tuple[str, str], dict[str, int]]:
    """Each case's counts as the demo server answers them, through an in-memory MCP client (the live push excepted)."""
    settings = Settings(demo=True, base_url=DEMO_BASE_URL, api_token=SecretStr(DEMO_TOKEN))

    async def counts() -> dict[tuple[str, str], dict[str, int]]:
        found: dict[tuple[str, str], dict[str, int]] = {}
        async with Client(build_server(settings, transport=demo_transport(settings))) as client:
            for cid in (WINBACK,):
                for tool in APPS:
                    sc: Any = (await client.call_tool(tool, {"campaign_id": cid})).structured_content
                    found[cid, tool] = (
                        sc["counts"] if tool == "get_metrics" else sc["execution"]["lastExecution"]["counts"]
                    )
        return found

    return anyio.run(counts)


@pytest.fixture(scope="module")
def inspector(expected: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Inspector's web client serving one ad-hoc stdio server, `experiture-mcp --demo`; its URL."""
    binary = _inspector_binary()
    client_port, sandbox_port = free_port(), free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "CLIENT_PORT": str(client_port),
        "MCP_SANDBOX_PORT": str(sandbox_port),
        "DANGEROUSLY_OMIT_AUTH": "true",  # loopback only, for this test's lifetime
        "MCP_AUTO_OPEN_ENABLED": "false",
        "MCP_INSPECTOR_SECRET_STORE": "memory",
    }
    data = tmp_path_factory.mktemp("inspector-data")  # the demo's memory, not the user's; the Inspector passes on
    # only the variables it is given with -e (and a few of its own, such as HOME and PATH) to the server it starts.
    command = [binary, "--web", "--transport", "stdio", "-e", f"EXPERITURE_DATA_DIR={data}"]
    command += ["--", sys.executable, "-m", "experiture_mcp", "--demo"]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{client_port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx2.get(url, timeout=2).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                output = process.stdout.read().decode(errors="replace") if process.stdout else ""
                pytest.fail(f"the MCP Inspector did not start at {url}:\n{output[-2000:]}")
            time.sleep(0.25)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the Inspector and the server it started: our own process group
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if process.stdout:
            process.stdout.close()


@pytest.fixture(scope="module")
def browser_page(inspector: str) -> Iterator[Page]:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.set_default_timeout(15_000)
        yield page


def live_counts(start: datetime, end: datetime) -> list[dict[str, str]]:
    """The Tokyo push's counts, as the view formats them, at each millisecond from `start` to `end`."""
    found: list[dict[str, str]] = []
    for ms in range((end - start) // timedelta(milliseconds=1) + 1):
        counts = dict(zip(STAGES, live_run(TOKYO, start + timedelta(milliseconds=ms))[1].counts, strict=True))
        shown = {stage: f"{counts[stage]:,}" for stage in STAGES}
        if not found or found[-1] != shown:
            found.append(shown)
    return found


def view_frame(page: Page) -> Frame:
    """The view: the innermost frame, inside the Inspector's sandbox proxy."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        for frame in page.frames:
            if in_view(frame):
                return frame
        page.wait_for_timeout(100)
    raise AssertionError(f"no view frame inside a sandbox frame: {[f.url for f in page.frames]}")


def in_view(frame: Frame) -> bool:
    return frame.parent_frame is not None and frame.parent_frame.parent_frame is not None


@contextmanager
def opened_app(page: Page, inspector: str, app: str) -> Generator[list[str]]:
    """Connect, open `app` on the Apps tab; collects the view's console errors and any request it makes."""
    troubles: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning") and message.location.get("url", "").startswith("about:srcdoc"):
            troubles.append(f"{message.type}: {message.text}")

    def on_request(request: Request) -> None:
        if in_view(request.frame):
            troubles.append(f"request from the view: {request.url}")

    page.on("console", on_console)
    page.on("request", on_request)
    try:
        page.goto(inspector)
        page.locator(".mantine-Switch-track").first.click()  # connect to the server
        page.get_by_text("Connected", exact=True).wait_for()
        page.get_by_text("Apps", exact=True).first.click()
        page.get_by_text(app, exact=True).first.click()
        yield troubles
    finally:
        page.remove_listener("console", on_console)
        page.remove_listener("request", on_request)


def shown_view(page: Page) -> Frame:
    """Press Open App; the view's frame once it shows an answer."""
    page.get_by_text("Open App", exact=True).click()
    frame = view_frame(page)
    frame.wait_for_selector("body[data-shown=view]")
    return frame


@pytest.mark.parametrize("tool", APPS)
@pytest.mark.parametrize("campaign", ["tokyo-push", "winback-email"])
def test_the_mcp_inspector_shows_the_funnel(
    browser_page: Page, inspector: str, expected: dict[tuple[str, str], dict[str, int]], tool: str, campaign: str
) -> None:
    page = browser_page
    with opened_app(page, inspector, APPS[tool]) as troubles:
        page.locator("label:has-text('Campaign Id') ~ div input").first.fill(DEMO_CAMPAIGNS[campaign])
        before = datetime.now(UTC)
        frame = shown_view(page)
        shown = {stage: frame.locator(f"tr[data-stage={stage}] td.count").inner_text() for stage in STAGES}
        after = datetime.now(UTC)

        if campaign == "tokyo-push":
            # The live push moves with the real clock: what the view shows is its run at one instant of the call.
            assert shown in live_counts(before, after)
        else:
            counts = expected[DEMO_CAMPAIGNS[campaign], tool]
            assert shown == {stage: f"{counts[stage]:,}" for stage in STAGES}
        if tool == "get_status":
            name = {"tokyo-push": "Tokyo Flagship Store Opening Push", "winback-email": "Lapsed Customer Win-back"}
            assert frame.locator("h1").inner_text() == name[campaign]
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"inspector-{tool}-{campaign}.png"))
    assert troubles == []


def test_the_mcp_inspector_shows_the_overview(browser_page: Page, inspector: str) -> None:
    page = browser_page
    ids = [DEMO_CAMPAIGNS[key] for key in ("spring-dm", "winback-email", "flash-sms")]
    with opened_app(page, inspector, "Overview of many campaigns") as troubles:
        # campaign_ids (an array or a string, omitted by default) gets a JSON editor (Ace) holding its default, `""`:
        # a person selects that and pastes the array over it.
        editor = page.locator("label:has-text('Campaign Ids')").locator(
            "xpath=following::div[contains(@class,'ace_editor')][1]"
        )
        assert editor.locator(".ace_line").first.inner_text() == '""'
        editor.click()
        page.keyboard.press("ControlOrMeta+A")
        page.keyboard.insert_text(json.dumps(ids))
        frame = shown_view(page)

        rows = frame.locator("table.campaigns tbody tr")
        # Attention first: the failed run, then the overdue send, then the completed one.
        assert [rows.nth(i).get_attribute("data-campaign") for i in range(3)] == [ids[1], ids[2], ids[0]]
        assert rows.nth(0).locator("td.failed-count").inner_text() == "10,000"
        assert rows.nth(0).locator("[data-attention-label]").inner_text() == "failed"
        assert rows.nth(2).locator("td.sent-count").inner_text() == "17,480"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "inspector-get_overview.png"))
    assert troubles == []


def test_the_mcp_inspector_shows_the_history(browser_page: Page, inspector: str) -> None:
    page = browser_page
    with opened_app(page, inspector, "Runs seen") as troubles:
        page.locator("label:has-text('Campaign Id') ~ div input").first.fill(TOKYO)
        frame = shown_view(page)

        rows = frame.locator("table.runs tbody tr")
        # The demo has seen its push run eight times before the run of the moment (seeded from the real clock).
        assert rows.count() >= 9
        assert frame.locator("h1").inner_text() == "Runs seen"
        assert frame.locator(".sent-cols span.sent").count() == rows.count()
        assert rows.nth(rows.count() - 1).locator("td.versus").inner_text() == "first run seen"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "inspector-get_history.png"))
    assert troubles == []
