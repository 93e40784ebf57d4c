"""The real process: one MCP session over stdio, and the `experiture-mcp` command line."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from subprocess import PIPE

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from experiture_mcp import __version__
from experiture_mcp.cli import main
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

COMMAND = Path(sys.executable).parent / "experiture-mcp"  # the console script installed next to this Python
SPRING = DEMO_CAMPAIGNS["spring-dm"]
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@dataclass(frozen=True)
class Run:
    """What one finished command printed and returned."""

    returncode: int
    stdout: str
    stderr: str


CALLS = {
    "ok": ("call", "get_status", SPRING, "--demo"),
    "error": ("call", "get_status", UNKNOWN, "--demo"),
}


@pytest.fixture(scope="module")
def cli() -> dict[str, Run]:
    """Every command of this module, started at once (each is a Python start-up) and run to the end."""
    env = {
        "PATH": "/usr/bin:/bin",
        "EXPERITURE_DATA_DIR": os.environ["EXPERITURE_DATA_DIR"],
    }  # the demo's memory: the session's, not the user's
    started = {
        name: subprocess.Popen([str(COMMAND), *args], stdout=PIPE, stderr=PIPE, text=True, env=env)
        for name, args in CALLS.items()
    }
    runs: dict[str, Run] = {}
    for name, process in started.items():
        stdout, stderr = process.communicate(timeout=60)
        runs[name] = Run(process.returncode, stdout, stderr)
    return runs


@pytest.mark.anyio
async def test_a_stdio_session_lists_the_tools_and_answers_without_logging_the_token(tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "experiture_mcp", "--demo"],
        env={
            "EXPERITURE_API_TOKEN": DEMO_TOKEN,
            "EXPERITURE_LOG_LEVEL": "DEBUG",
            "EXPERITURE_DATA_DIR": os.environ["EXPERITURE_DATA_DIR"],
        },
    )
    stderr_path = tmp_path / "stderr.txt"
    with stderr_path.open("w") as stderr:
        async with Client(stdio_client(params, errlog=stderr)) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            result = await client.call_tool("get_status", {"campaign_id": SPRING})

    assert {"get_summary", "get_status", "get_metrics"} <= tools
    assert not result.is_error
    assert isinstance(result.content[0], TextContent)
    assert result.content[0].text.startswith('Campaign "Spring Re-engagement Direct Mail"')
    assert result.structured_content is not None and result.structured_content["campaignId"] == SPRING
    logged = stderr_path.read_text()
    assert "DEBUG" in logged  # the log was on, so the next line checks something
    assert DEMO_TOKEN not in logged


def test_call_prints_the_text_the_model_reads_and_exits_0(cli: dict[str, Run]) -> None:
    done = cli["ok"]

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith('Campaign "Spring Re-engagement Direct Mail" (4130bada-9264-465f-bc0c-a26bebcfcc81)')
    assert "State: completed (the latest execution completed)" in done.stdout
    assert "Pipeline: scheduled 17,491 → hydrated 17,491" in done.stdout


def test_call_prints_the_error_text_and_exits_1_when_the_tool_fails(cli: dict[str, Run]) -> None:
    done = cli["error"]

    assert done.returncode == 1
    assert done.stdout.startswith(f"get_status failed for campaign {UNKNOWN}: no campaign with this id")


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert (exited.value.code, capsys.readouterr().out.strip()) == (0, f"experiture-mcp {__version__}")


def test_experiture_demo_in_the_environment_means_the_same_as_the_demo_flag(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Hosted workers receive their settings through the environment, --demo included.
    monkeypatch.setenv("EXPERITURE_DEMO", "1")

    code = main(["call", "get_metrics", SPRING])

    assert code == 0
    assert capsys.readouterr().out.startswith(f"Metrics of campaign {SPRING}, latest execution")
