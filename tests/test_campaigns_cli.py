"""`experiture-mcp campaigns import|list|forget` against the demo API on loopback, and what the server then finds."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import anyio
import pytest
from mcp.types import CallToolResult

from conftest import connect
from experiture_mcp.cli import main
from experiture_mcp.config import Settings
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, TENANT_B_CAMPAIGNS

SPRING = DEMO_CAMPAIGNS["spring-dm"]
SUMMER = DEMO_CAMPAIGNS["summer-email"]
MISSING = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def configured(demo_api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPERITURE_API_TOKEN", DEMO_TOKEN)
    monkeypatch.setenv("EXPERITURE_BASE_URL", demo_api)


def main_quietly(argv: list[str]) -> int:
    """main(argv), removing the log handler it adds: its stream is capsys's, closed after the test."""
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        return main(argv)
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main_quietly(["campaigns", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_keeps_good_rows_looks_up_bare_ids_and_reports_bad_rows_by_line(
    configured: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: Settings, era: str
) -> None:
    listing = tmp_path / "campaigns.csv"
    listing.write_text(
        f"id,name,tags\n{SPRING},Spring list name,q2|print\nnot-a-uuid,Bad,\n{SUMMER},,vip\n{MISSING},,\n"
    )
    code, out, err = run(capsys, "import", str(listing))

    assert code == 1  # something was skipped
    assert "Imported 2 campaigns (1 named by a lookup)" in out
    assert "line 3" in err and "line 5" in err and MISSING in err
    assert "1/2 looked up" in err or "2/2 looked up" in err

    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "Spring list name" in out and "Summer Collection Early Access" in out
    assert "2 campaigns remembered for this token" in out

    async def find() -> CallToolResult:
        async with connect(settings, era) as client:  # the server finds what was imported
            return await client.call_tool("find_campaigns", {"query": "summer vip"})

    found = anyio.run(find)
    assert found.structured_content is not None
    assert found.structured_content["candidates"][0]["campaignId"] == SUMMER


def test_import_of_a_json_list_and_forget_by_id_link_or_all(
    configured: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "campaigns.json"
    listing.write_text(
        json.dumps([SPRING, {"campaignId": SUMMER, "name": "Summer"}, TENANT_B_CAMPAIGNS["winter-sale"]])
    )
    code, out, _ = run(capsys, "import", str(listing))
    assert code == 1  # the other tenant's campaign is not found with this token
    assert "Imported 2 campaigns" in out

    code, out, _ = run(capsys, "list", "--json")
    assert code == 0
    assert {row["campaignId"] for row in json.loads(out)} == {SPRING, SUMMER}

    code, out, _ = run(capsys, "forget", f"https://app.experiture.ai/campaigns/{SPRING}/overview")
    assert code == 0 and "Forgot 1 remembered campaign" in out
    code, out, _ = run(capsys, "forget", "--all")
    assert code == 0 and "Forgot 1 remembered campaign" in out
    code, out, _ = run(capsys, "list")
    assert "0 campaigns remembered" in out

    assert run(capsys, "forget")[0] == 2  # neither ids nor --all
    assert run(capsys, "forget", "not-an-id")[0] == 2


def test_campaigns_without_a_token_or_with_memory_off_say_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _, err = run(capsys, "list")
    assert code == 2 and "EXPERITURE_API_TOKEN is not set" in err

    monkeypatch.setenv("EXPERITURE_API_TOKEN", DEMO_TOKEN)
    code, _, err = run(capsys, "list", "--no-memory")
    assert code == 1 and "Memory of campaigns is off" in err


def test_data_dir_flag_chooses_where_the_file_is(
    configured: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = tmp_path / "one.csv"
    listing.write_text(f"id,name\n{SPRING},Spring\n")
    code, out, _ = run(capsys, "import", str(listing), "--data-dir", str(tmp_path / "elsewhere"))
    assert code == 0
    assert str(tmp_path / "elsewhere" / "memory.sqlite3") in out
    assert (tmp_path / "elsewhere" / "memory.sqlite3").exists()


def test_call_find_campaigns_in_the_demo_finds_the_spring_mailing(capsys: pytest.CaptureFixture[str]) -> None:
    assert main_quietly(["call", "find_campaigns", "spring mailing", "--demo"]) == 0
    out = capsys.readouterr().out
    assert out.startswith('2 remembered campaigns match "spring mailing"')
    assert '1. "Spring Re-engagement Direct Mail": id 4130bada-9264-465f-bc0c-a26bebcfcc81' in out
