"""A third-party OAuth MCP client completes the flow: mcp-remote (npm, pinned by scripts/npm-clients.sh on main)."""

from __future__ import annotations

import glob
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.types import CallToolResult

from _oauth_browser import Browser
from conftest import free_port, text_of
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from test_oauth_failures import Hosted, serve

pytestmark = pytest.mark.anyio

MCP_REMOTE_VERSION = "0.15.1"


def mcp_remote() -> Path | None:
    root = os.environ.get("EXPERITURE_NPM_TOOLS_DIR", str(Path.home() / ".cache" / "experiture-mcp" / "npm-tools"))
    found = glob.glob(f"{root}/clients-*-mcp-remote-{MCP_REMOTE_VERSION}/node_modules/.bin/mcp-remote")
    return Path(found[0]) if found else None


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    api, app, hosted = serve(tmp_path_factory.mktemp("oauth-mcp-remote"))
    with api, app:
        yield hosted


async def authorize_when_asked(log: Path, browser: Browser) -> None:
    """Read mcp-remote's stderr for the URL it asks the user to open, then be the user."""
    while True:
        found = re.search(r"(http://127\.0\.0\.1:\d+/authorize\?\S+)", log.read_text())
        if found:
            break
        await anyio.sleep(0.05)
    await browser.redirect_handler(found.group(1))
    assert browser.final is not None, browser.pages[-1].text
    async with httpx2.AsyncClient() as http:  # the browser arriving at mcp-remote's own callback server
        assert (await http.get(str(browser.final))).status_code == 200


async def test_mcp_remote_signs_in_through_the_consent_page_and_calls_a_tool(hosted: Hosted, tmp_path: Path) -> None:
    binary = mcp_remote()
    if binary is None:
        pytest.skip(f"mcp-remote {MCP_REMOTE_VERSION} is not installed: run scripts/npm-clients.sh (main)")
    log = tmp_path / "mcp-remote.log"
    env = {
        "PATH": f"{binary.parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "MCP_REMOTE_CONFIG_DIR": str(tmp_path / "mcp-auth"),
        "BROWSER": "true",
    }
    port = free_port()
    params = StdioServerParameters(command=str(binary), args=[hosted.mcp, str(port), "--allow-http"], env=env)
    browser = Browser([DEMO_TOKEN])
    results: list[CallToolResult] = []
    start = time.monotonic()
    with log.open("w") as errlog:
        async with anyio.create_task_group() as tg:
            tg.start_soon(authorize_when_asked, log, browser)
            with anyio.fail_after(60):
                async with Client(stdio_client(params, errlog=errlog)) as client:
                    results.append(await client.call_tool("get_status", {"campaign_id": DEMO_CAMPAIGNS["spring-dm"]}))
    [result] = results
    assert not result.is_error, text_of(result)
    assert "Spring" in text_of(result)
    assert browser.result is not None and browser.result.iss == hosted.url
    text = log.read_text()
    assert DEMO_TOKEN not in text
    assert time.monotonic() - start < 60
