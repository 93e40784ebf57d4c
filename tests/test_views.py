"""The MCP Apps views as a host finds them: the tools' _meta, the ui:// resources, and pages that load nothing."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.types import TextResourceContents

from experiture_mcp.cli import main
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from experiture_mcp.server import INSTRUCTIONS
from experiture_mcp.views import APP_MIME_TYPE, FUNNEL, HISTORY, OVERVIEW, VIEWS, View, view_for, view_html

ROOT = Path(__file__).resolve().parent.parent
VIEWED = {"get_status": FUNNEL, "get_metrics": FUNNEL, "get_overview": OVERVIEW, "get_history": HISTORY}
BUDGET = 30 * 1024  # bytes per view: hosts load it for every answer they show
VOID = {"meta", "link", "br", "hr", "img", "input", "source", "wbr", "area", "base", "col", "embed", "track"}
# Anything that would make a page fetch, load or evaluate code from elsewhere.
EXTERNAL = re.compile(
    r"https?:|//[a-z0-9.-]+\.[a-z]{2,}/|\burl\s*\(|@import|<link\b|<img\b|<iframe\b|\bsrc\s*=|\bhref\s*=|"
    r"\bfetch\s*\(|XMLHttpRequest|WebSocket|EventSource|sendBeacon|\bimport\s*\(|\beval\s*\(|new\s+Function|innerHTML|"
    r"outerHTML|insertAdjacentHTML|document\.write",
    re.IGNORECASE,
)


class Structure(HTMLParser):
    """Every element opened is closed in order; the document's skeleton as it was met."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.seen: list[str] = []
        self.problems: list[str] = []
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.append(tag)
        if tag not in VOID:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1:] or 'nothing'}")
        else:
            self.open.pop()


@pytest.mark.anyio
async def test_tools_list_grows_only_by_the_views_meta_keys(client: Client) -> None:
    tools = (await client.list_tools()).tools

    for tool in tools:
        view = VIEWED.get(tool.name)
        wire = tool.model_dump(by_alias=True, exclude_none=True)
        meta = wire.pop("_meta", None)
        assert meta == (None if view is None else {"ui": {"resourceUri": view.uri}, "ui/resourceUri": view.uri})
        assert view_for(tool.name) is view
        # Nothing else the model reads mentions the views: name, title, description and schemas are the tool's own.
        assert not re.search(r"ui://|\bview\b|mcp-app|html", json.dumps(wire), re.IGNORECASE), tool.name
    assert {t.name for t in tools} >= set(VIEWED)
    assert not re.search(r"ui://|\bview\b|html", INSTRUCTIONS, re.IGNORECASE)


@pytest.mark.anyio
async def test_the_extension_is_advertised_where_the_era_carries_it(client: Client, era: str) -> None:
    extensions = client.server_capabilities.extensions if client.server_capabilities else None

    # A 2025 initialize result has no extensions field (the SDK drops it); server/discover carries it.
    assert extensions == (None if era == "legacy" else {"io.modelcontextprotocol/ui": {}})


@pytest.mark.anyio
async def test_each_view_is_an_mcp_app_resource_with_an_explicit_empty_csp(client: Client) -> None:
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    expected_ui: dict[str, Any] = {
        "csp": {"connectDomains": [], "resourceDomains": [], "frameDomains": [], "baseUriDomains": []},
        "prefersBorder": True,
    }

    for view in VIEWS:
        entry = listed[view.uri]
        assert entry.mime_type == APP_MIME_TYPE == "text/html;profile=mcp-app"
        assert entry.meta == {"ui": expected_ui}
        assert entry.title == view.title
        (contents,) = (await client.read_resource(view.uri)).contents
        assert isinstance(contents, TextResourceContents)
        assert contents.mime_type == APP_MIME_TYPE
        assert contents.meta == {"ui": expected_ui}
        assert contents.text == view_html(view)
    assert {uri for uri in listed if uri.startswith("ui://")} == {view.uri for view in VIEWS}


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.name)
def test_each_view_is_one_valid_small_html_document_that_loads_nothing(view: View) -> None:
    page = view_html(view)
    parser = Structure()
    parser.feed(page)
    parser.close()

    assert parser.doctype.lower() == "doctype html"
    assert parser.problems == [] and parser.open == []
    assert parser.seen[:3] == ["html", "head", "meta"] and "body" in parser.seen and "title" in parser.seen
    assert re.search(r'<html lang="en">', page) and '<meta charset="utf-8">' in page
    assert "/*@" not in page and "<!--@" not in page  # every marker was filled
    assert EXTERNAL.findall(page) == []
    assert "http-equiv" not in page  # the host's CSP applies; a host's own markup could push a <meta> out of <head>
    assert '"ui/initialize"' in page and '"ui/notifications/initialized"' in page
    assert "2026-01-26" in page
    assert len(page.encode()) < BUDGET


def test_an_embedded_answer_cannot_close_its_script_element() -> None:
    hostile = '</script><img src=x onerror="alert(1)"><!-- & more'
    embedded = {"tool": "get_status", "arguments": {"campaign_id": "x"}, "result": {"name": hostile}}

    page = view_html(FUNNEL, embedded)

    assert hostile not in page and "</script><img" not in page
    block = re.search(r'<script type="application/json" id="experiture-embedded">(.*?)</script>', page, re.DOTALL)
    assert block is not None and json.loads(block.group(1)) == embedded
    assert page.count("<script") == view_html(FUNNEL).count("<script") + 1
    # Opened as a file it has no host CSP: its own, first in <head>, lets it load nothing.
    head = page[page.index("<head>") : page.index("</head>")]
    assert head.index("http-equiv") < head.index("<style>")
    assert "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:" in head


def test_the_wheel_carries_every_view_source(tmp_path: Path) -> None:
    built = subprocess.run(
        ["uv", "build", "--quiet", "--wheel", "--out-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())

    sources = {p.name for p in (ROOT / "server" / "experiture_mcp" / "views").iterdir() if p.is_file()}
    assert {"__init__.py", "bridge.js", "base.css", "funnel.html", "overview.html"} <= sources
    assert {f"experiture_mcp/views/{name}" for name in sources} <= names


def embedded_result(page: str) -> dict[str, Any]:
    block = re.search(r'<script type="application/json" id="experiture-embedded">(.*?)</script>', page, re.DOTALL)
    assert block is not None
    data: dict[str, Any] = json.loads(block.group(1))
    return data


def test_the_view_command_writes_the_page_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["view", "get_metrics", DEMO_CAMPAIGNS["spring-dm"], "--demo"])

    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("<!doctype html>") and out.rstrip().endswith("</html>")
    embedded = embedded_result(out)
    assert embedded["tool"] == "get_metrics" and embedded["arguments"] == {"campaign_id": DEMO_CAMPAIGNS["spring-dm"]}
    assert embedded["result"]["structuredContent"]["counts"]["sent"] == 17480
    assert DEMO_TOKEN not in out


def test_the_view_command_embeds_an_error_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "error.html"

    code = main(["view", "get_status", "not-a-uuid", "--demo", "-o", str(out)])

    assert code == 1
    result = embedded_result(out.read_text(encoding="utf-8"))["result"]
    assert result["isError"] is True and "refused campaign_id" in result["content"][0]["text"]
    assert f"wrote {out}" in capsys.readouterr().err


def test_the_view_command_takes_one_id_for_one_campaign_and_a_writable_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spring, tokyo = DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["tokyo-push"]

    assert main(["view", "get_status", spring, tokyo, "--demo"]) == 2
    assert "get_status shows one campaign; 2 ids were given" in capsys.readouterr().err
    assert main(["view", "get_status", spring, "--demo", "-o", str(tmp_path / "missing" / "x.html")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["view", "get_overview", spring, tokyo, "--demo", "-o", str(tmp_path / "o.html")]) == 0
    rows = embedded_result((tmp_path / "o.html").read_text(encoding="utf-8"))["result"]["structuredContent"]["rows"]
    assert [r["campaignId"] for r in rows] == [spring, tokyo]
