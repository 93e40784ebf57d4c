"""The views in a real browser (Debian's Chromium through Playwright), inside a test host that speaks MCP Apps.

Every answer is recorded first from the real server (in-memory MCP client, demo API on loopback); then one browser
shows each case. What is checked is what a person sees: the numbers, the bars' widths, the warnings' words.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from playwright.sync_api import Browser, Page
from pydantic import SecretStr

from _browser import chromium
from _scripted_api import ScriptedAPI, ok
from _view_host import SCREENSHOTS, Shown, Watch, show, watched_page
from conftest import frozen_clock
from experiture_mcp.cli import DEMO_BASE_URL
from experiture_mcp.config import Settings
from experiture_mcp.render import ATTENTION_LABELS, EXECUTION_STATES, HIGH_FAILURE_RATE
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, create_app
from experiture_mcp.server import build_server
from experiture_mcp.views import FUNNEL, HISTORY, OVERVIEW, View, view_html

Wire = dict[str, Any]
UNKNOWN = "00000000-0000-4000-8000-000000000000"
EVERY_ID = [*DEMO_CAMPAIGNS.values(), UNKNOWN, "not-a-uuid"]
HOSTILE_NAMES = {
    "img": "<img src=x onerror=\"parent.postMessage({pwned: 1}, '*')\">",
    "script": "</script><script>parent.postMessage({pwned: 2}, '*')</script>",
    "svg": '"><svg onload="document.title=\'pwned\'"><b>bold</b> &amp; &lt;entity&gt;',
}
HOSTILE_IDS = {
    "img": "11111111-1111-4111-8111-111111111111",
    "script": "22222222-2222-4222-8222-222222222222",
    "svg": "33333333-3333-4333-8333-333333333333",
}
BAR_TOLERANCE = 1  # tolerance, in percentage points, of a bar's measured width


@dataclass
class Recorded:
    """Tool results as the real server returned them, in wire form (camelCase, as a host passes them on)."""

    demo: dict[tuple[str, str], Wire]
    overview: Wire
    hostile: dict[tuple[str, str], Wire]
    hostile_overview: Wire


async def _calls(settings: Settings, calls: list[tuple[str, dict[str, Any]]]) -> list[Wire]:
    async with Client(build_server(settings, clock=frozen_clock)) as client:
        results = [await client.call_tool(tool, arguments) for tool, arguments in calls]
    return [r.model_dump(by_alias=True, mode="json", exclude_none=True) for r in results]


def _status_payload(demo_api: str, campaign_id: str) -> Wire:
    with httpx2.Client() as http:
        response = http.get(
            f"{demo_api}/campaigns/{campaign_id}/status", headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
        )
    return response.json()["data"]


@pytest.fixture(scope="module")
def recorded(demo_api: str, scripted_server: tuple[ScriptedAPI, str]) -> Recorded:
    demo_settings = Settings(api_token=SecretStr(DEMO_TOKEN), base_url=demo_api)
    calls: list[tuple[str, Wire]] = [
        (tool, {"campaign_id": cid}) for cid in DEMO_CAMPAIGNS.values() for tool in FUNNEL.tools
    ]
    calls.append(("get_overview", {"campaign_ids": EVERY_ID}))
    results = anyio.run(_calls, demo_settings, calls)
    demo = {(str(args["campaign_id"]), tool): r for (tool, args), r in zip(calls[:-1], results[:-1], strict=True)}

    api, base = scripted_server
    api.reset()
    template = _status_payload(demo_api, DEMO_CAMPAIGNS["tokyo-push"])
    for key, cid in HOSTILE_IDS.items():
        api.script(cid, ok(template | {"campaignId": cid, "name": HOSTILE_NAMES[key]}))
    hostile_calls: list[tuple[str, Wire]] = [("get_status", {"campaign_id": cid}) for cid in HOSTILE_IDS.values()]
    hostile_calls.append(("get_overview", {"campaign_ids": list(HOSTILE_IDS.values())}))
    hostile_results = anyio.run(_calls, Settings(api_token=SecretStr("scripted"), base_url=base), hostile_calls)
    hostile = {(key, "get_status"): r for key, r in zip(HOSTILE_IDS, hostile_results, strict=False)}
    return Recorded(demo, results[-1], hostile, hostile_results[-1])


async def _histories(data_dir: Path) -> dict[str, Wire]:
    # The demo remembers its live push's past runs; a campaign it never checked has no history.
    settings = Settings(demo=True, base_url=DEMO_BASE_URL, api_token=SecretStr(DEMO_TOKEN), data_dir=data_dir)
    transport = httpx2.ASGITransport(app=create_app(clock=frozen_clock))
    tokyo, winback = DEMO_CAMPAIGNS["tokyo-push"], DEMO_CAMPAIGNS["winback-email"]
    async with Client(build_server(settings, transport=transport, clock=frozen_clock)) as client:
        await client.call_tool("get_status", {"campaign_id": tokyo})
        calls = {"all": {"campaign_id": tokyo}, "three": {"campaign_id": tokyo, "limit": 3}}
        calls["none"] = {"campaign_id": winback}
        results = {key: await client.call_tool("get_history", arguments) for key, arguments in calls.items()}
    return {key: r.model_dump(by_alias=True, mode="json", exclude_none=True) for key, r in results.items()}


@pytest.fixture(scope="module")
def histories(recorded: Recorded, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Wire]:
    return anyio.run(_histories, tmp_path_factory.mktemp("histories"))  # a memory of its own, at the frozen minute


@pytest.fixture(scope="module")
def browser(recorded: Recorded, histories: dict[str, Wire]) -> Iterator[Browser]:
    # After `recorded`: the sync API keeps an event loop running on this thread while it is open.
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def one_page(browser: Browser) -> Iterator[tuple[Page, Watch]]:
    opened, watch = watched_page(browser)  # one page for every case: a fresh one costs more than a case
    yield opened, watch
    opened.close()


@pytest.fixture
def page(one_page: tuple[Page, Watch]) -> tuple[Page, Watch]:
    one_page[1].console.clear()
    one_page[1].requests.clear()
    return one_page


def open_view(page: tuple[Page, Watch], view: View, tool: str, arguments: Wire, result: Wire, **options: Any) -> Shown:
    return show(page[0], page[1], view_html(view), tool, arguments, result, **options)


def text_of(result: Wire) -> str:
    return "\n".join(block["text"] for block in result["content"] if block["type"] == "text")


def stripped(result: Wire) -> Wire:
    """The tool-result as Claude Desktop forwards it: no structuredContent, no _meta."""
    return {k: v for k, v in result.items() if k not in ("structuredContent", "_meta")}


def warnings_in(text: str) -> list[str]:
    lines = text.split("\n")
    return [line[2:] for line in lines[lines.index("Warnings:") + 1 :]] if "Warnings:" in lines else []


def assert_clean(shown: Shown) -> None:
    assert shown.watch.console == []
    assert shown.watch.requests == []
    assert shown.frame.locator("img, svg, script[src], iframe, object").count() == 0
    received = shown.page.evaluate("() => window.host ? window.host.received : []")  # none on a standalone page
    assert not [m for m in received if isinstance(m, dict) and "pwned" in m]


def expected_funnel(result: Wire) -> tuple[dict[str, int] | None, str | None]:
    sc: Wire = result["structuredContent"]
    if "execution" in sc:
        run: Wire = sc["execution"].get("lastExecution") or {}
        return run.get("counts"), sc["execution"]["state"]
    return sc["counts"], None


def check_funnel(shown: Shown, result: Wire) -> None:
    """The funnel shows the answer's numbers, bars in proportion, the state's meaning and the text's warnings."""
    text = text_of(result)
    counts, state = expected_funnel(result)
    if state is not None:
        assert shown.text("[data-state]") == state.replace("_", " ")
        assert EXECUTION_STATES[state] in shown.text(".head")
    if counts is None or not (counts["scheduled"] or counts["sent"] or counts["failed"]):
        assert shown.frame.locator("[data-fact=no-counts]").count() == 1
    else:
        scale = max(counts["scheduled"], counts["hydrated"], counts["composed"], counts["injected"], 1)
        rows = ["scheduled", "hydrated", "composed", "injected", "sent", "failed"]
        shown_counts = {stage: shown.text(f"tr[data-stage={stage}] td.count") for stage in rows}
        assert shown_counts == {stage: f"{counts[stage]:,}" for stage in rows}
        widths = dict(zip(rows, shown.widths("table.funnel tr[data-stage] td.bar .track > span"), strict=False))
        for stage in rows:
            assert abs(widths[stage] - 100 * counts[stage] / scale) < BAR_TOLERANCE, stage
        drops = re.findall(r"(hydrated|composed|injected) [\d,]+ \(−([\d,]+), ([\d.]+%)\)", text)
        for stage in ("hydrated", "composed", "injected"):
            drop = next((f"−{n} ({p})" for s, n, p in drops if s == stage), "no drop")
            assert shown.text(f"tr[data-stage={stage}] td.change") == drop
        rate = re.search(r"failure rate ([\d.]+%|n/a)", text)
        assert rate is not None and shown.text("[data-fact=failure-rate] strong") == rate.group(1)
    assert [w.inner_text() for w in shown.frame.locator("[data-warning]").all()] == warnings_in(text)


@pytest.mark.parametrize("tool", FUNNEL.tools)
@pytest.mark.parametrize("key", DEMO_CAMPAIGNS)
def test_every_demo_campaign_in_the_funnel(page: Any, recorded: Recorded, key: str, tool: str) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS[key], tool]
    arguments = {"campaign_id": DEMO_CAMPAIGNS[key]}

    shown = open_view(page, FUNNEL, tool, arguments, result)
    shown.screenshot(f"funnel-{tool}-{key}")

    if result.get("isError"):
        assert shown.frame.locator("body").get_attribute("data-shown") == "error"
        assert shown.text("pre") == text_of(result)
    else:
        assert shown.frame.locator("body").get_attribute("data-shown") == "view"
        check_funnel(shown, result)
    assert_clean(shown)


@pytest.mark.parametrize("tool", FUNNEL.tools)
@pytest.mark.parametrize("key", DEMO_CAMPAIGNS)
def test_without_structured_content_the_funnel_calls_the_tool_again_and_shows_the_same(
    page: Any, recorded: Recorded, key: str, tool: str
) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS[key], tool]
    arguments = {"campaign_id": DEMO_CAMPAIGNS[key]}
    if result.get("isError"):  # nothing to lose and nothing to fetch again: the error's text, and no second call
        shown = open_view(page, FUNNEL, tool, arguments, stripped(result), call_result=result)
        assert shown.host("toolCalls") == []
        assert shown.text("pre") == text_of(result)
        return
    normal = open_view(page, FUNNEL, tool, arguments, result).text()

    shown = open_view(page, FUNNEL, tool, arguments, stripped(result), call_result=result)

    assert shown.host("toolCalls") == [{"name": tool, "arguments": arguments}]
    assert shown.text() == normal
    check_funnel(shown, result)
    assert_clean(shown)
    if key == "tokyo-push":
        shown.screenshot(f"fallback-{tool}-{key}")


@pytest.mark.parametrize("server_tools", [True, False], ids=["call-refused", "no-server-tools"])
def test_when_the_tool_cannot_be_called_again_the_view_shows_the_text(
    page: Any, recorded: Recorded, server_tools: bool
) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS["winback-email"], "get_status"]
    arguments = {"campaign_id": DEMO_CAMPAIGNS["winback-email"]}

    shown = open_view(page, FUNNEL, "get_status", arguments, stripped(result), server_tools=server_tools)

    assert shown.host("toolCalls") == ([{"name": "get_status", "arguments": arguments}] if server_tools else [])
    assert shown.frame.locator("body").get_attribute("data-shown") == "text"
    assert shown.text("pre") == text_of(result)
    assert_clean(shown)


def check_overview(shown: Shown, result: Wire) -> None:
    sc = result["structuredContent"]
    rows = shown.frame.locator("table.campaigns tbody tr")
    assert rows.count() == len(sc["rows"])
    scale = max(1, *((r.get("sent") or 0) + (r.get("failed") or 0) for r in sc["rows"]))
    for i, row in enumerate(sc["rows"]):
        line = rows.nth(i)
        assert line.get_attribute("data-campaign") == row["campaignId"]
        has = row.get("sent") is not None and row.get("failed") is not None
        assert line.locator("td.sent-count").inner_text() == (f"{row['sent']:,}" if has else "—")
        assert line.locator("td.failed-count").inner_text() == (f"{row['failed']:,}" if has else "—")
        rate = row.get("failureRate")
        assert line.locator("td.rate").inner_text() == (
            "—" if rate is None else f"{100 * rate:.2f}".rstrip("0").rstrip(".") + "%"
        )
        if row.get("attention"):
            assert line.locator("[data-attention-label]").inner_text() == ATTENTION_LABELS[row["attention"]]
        if row.get("error"):
            assert row["error"]["reason"] in line.locator(".row-error").inner_text()
        assert [w.inner_text() for w in line.locator(".row-warnings li").all()] == row.get("warnings", [])
        if has:
            sent, failed = shown.widths(f'tr[data-campaign="{row["campaignId"]}"] .track > span')
            assert abs(sent - 100 * row["sent"] / scale) < BAR_TOLERANCE
            assert abs(failed - 100 * row["failed"] / scale) < BAR_TOLERANCE
    total = sc["total"]
    totals = shown.text("[data-fact=totals]")
    assert f"sent {total['sent']:,}" in totals and f"failed {total['failed']:,}" in totals
    assert f"{total['needingAttention']} need" in totals
    for note in sc.get("notes", []):
        assert note in shown.text()


@pytest.mark.parametrize("structured", [True, False], ids=["structured", "fallback"])
def test_the_overview_of_every_demo_campaign(page: Any, recorded: Recorded, structured: bool) -> None:
    result = recorded.overview
    arguments = {"campaign_ids": EVERY_ID}

    sent = result if structured else stripped(result)
    shown = open_view(page, OVERVIEW, "get_overview", arguments, sent, call_result=result)
    shown.screenshot(f"overview-{'normal' if structured else 'fallback'}")

    assert shown.host("toolCalls") == ([] if structured else [{"name": "get_overview", "arguments": arguments}])
    check_overview(shown, result)
    assert shown.text("h1") == "Overview of 14 campaigns"
    assert_clean(shown)


def test_the_overview_sorts_by_click_and_by_keyboard(page: Any, recorded: Recorded) -> None:
    result = recorded.overview
    rows = result["structuredContent"]["rows"]
    shown = open_view(page, OVERVIEW, "get_overview", {"campaign_ids": EVERY_ID}, result)

    def order() -> list[str]:
        return [str(r.get_attribute("data-campaign")) for r in shown.frame.locator("tbody tr").all()]

    def by(key: str, reverse: bool) -> list[str]:
        known = [r for r in rows if r.get(key) is not None]
        ranked = sorted(known, key=lambda r: r[key], reverse=reverse)  # stable: ties keep the answer's order
        return [r["campaignId"] for r in ranked] + [r["campaignId"] for r in rows if r.get(key) is None]

    assert order() == [r["campaignId"] for r in rows]
    shown.frame.click("button[data-sort=sent]")
    assert order() == by("sent", reverse=True)
    assert shown.frame.locator("th[aria-sort]").inner_text().startswith("Sent")
    assert shown.frame.locator("th[aria-sort]").get_attribute("aria-sort") == "descending"
    shown.frame.click("button[data-sort=sent]")
    assert order() == by("sent", reverse=False)
    shown.frame.focus("button[data-sort=failureRate]")
    shown.page.keyboard.press("Enter")
    assert order() == by("failureRate", reverse=True)
    assert shown.frame.evaluate("() => document.activeElement.getAttribute('data-sort')") == "failureRate"
    shown.page.keyboard.press("Shift+Tab")  # to the Failed button, then sort with the space bar
    shown.page.keyboard.press("Space")
    assert order() == by("failed", reverse=True)
    shown.frame.click("button[data-sort=state]")
    assert order() == [r["campaignId"] for r in rows]
    assert_clean(shown)


@pytest.mark.parametrize("key", HOSTILE_NAMES)
def test_hostile_campaign_names_render_as_text(page: Any, recorded: Recorded, key: str) -> None:
    result = recorded.hostile[key, "get_status"]
    assert not result.get("isError"), result
    assert result["structuredContent"]["name"] == HOSTILE_NAMES[key]

    shown = open_view(page, FUNNEL, "get_status", {"campaign_id": HOSTILE_IDS[key]}, result)

    assert shown.frame.locator("h1").text_content() == HOSTILE_NAMES[key]
    assert shown.frame.locator("b").count() == 0
    assert shown.frame.evaluate("() => document.title") == "Campaign delivery funnel"
    assert_clean(shown)
    if key == "img":
        shown.screenshot("hostile-funnel")


def test_hostile_names_in_the_overview_render_as_text(page: Any, recorded: Recorded) -> None:
    result = recorded.hostile_overview
    shown = open_view(page, OVERVIEW, "get_overview", {"campaign_ids": list(HOSTILE_IDS.values())}, result)
    shown.screenshot("hostile-overview")

    names = [str(n.text_content()) for n in shown.frame.locator("td.name .label").all()]
    assert sorted(names) == sorted(HOSTILE_NAMES.values())
    assert shown.frame.locator("b").count() == 0
    assert_clean(shown)


def luminance(css_color: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def colors(shown: Shown) -> tuple[float, float]:
    background, text = shown.frame.evaluate(
        "() => [getComputedStyle(document.body).backgroundColor, getComputedStyle(document.body).color]"
    )
    return luminance(background), luminance(text)


def case_of(view: View, recorded: Recorded, histories: dict[str, Wire], funnel: str) -> tuple[str, Wire, Wire]:
    """One recorded answer each view shows: tool, arguments and result (the funnel of the demo campaign `funnel`)."""
    if view is FUNNEL:
        campaign_id = DEMO_CAMPAIGNS[funnel]
        return "get_status", {"campaign_id": campaign_id}, recorded.demo[campaign_id, "get_status"]
    if view is HISTORY:
        return "get_history", {"campaign_id": DEMO_CAMPAIGNS["tokyo-push"]}, histories["all"]
    return "get_overview", {"campaign_ids": EVERY_ID}, recorded.overview


@pytest.mark.parametrize("view", [FUNNEL, OVERVIEW, HISTORY], ids=lambda v: v.name)
def test_dark_theme_and_a_live_switch_to_light(
    page: Any, recorded: Recorded, histories: dict[str, Wire], view: View
) -> None:
    tool, arguments, result = case_of(view, recorded, histories, funnel="winback-email")

    shown = open_view(page, view, tool, arguments, result, theme="dark")
    shown.screenshot(f"{view.name}-dark")
    background, text = colors(shown)
    assert background < 0.2 and text > 0.8
    shown.page.evaluate("() => window.host.notify('ui/notifications/host-context-changed', {theme: 'light'})")
    shown.frame.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
    background, text = colors(shown)
    assert background > 0.9 and text < 0.2
    assert_clean(shown)


def test_the_hosts_own_theme_variables_win(page: Any, recorded: Recorded) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS["spring-dm"], "get_status"]
    variables = {
        "--color-background-primary": "rgb(10, 20, 30)",
        "--color-text-primary": "rgb(250, 240, 230)",
        "--font-sans": "serif",
        "--color-text-danger": "url(https://example.invalid/x.png)",  # never applied: it would load something
    }

    shown = open_view(
        page, FUNNEL, "get_status", {"campaign_id": DEMO_CAMPAIGNS["spring-dm"]}, result, variables=variables
    )

    style = shown.frame.evaluate(
        "() => { const s = getComputedStyle(document.body); return [s.backgroundColor, s.color, s.fontFamily]; }"
    )
    assert style == ["rgb(10, 20, 30)", "rgb(250, 240, 230)", "serif"]
    assert "url(" not in shown.frame.evaluate("() => document.documentElement.getAttribute('style')")
    assert_clean(shown)


@pytest.mark.parametrize("view", [FUNNEL, OVERVIEW, HISTORY], ids=lambda v: v.name)
def test_a_narrow_width_wraps_without_sideways_scrolling(
    page: Any, recorded: Recorded, histories: dict[str, Wire], view: View
) -> None:
    tool, arguments, result = case_of(view, recorded, histories, funnel="tokyo-push")

    shown = open_view(page, view, tool, arguments, result, width=320)
    shown.screenshot(f"{view.name}-narrow")

    sideways = shown.frame.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert sideways <= 0
    if view is FUNNEL:
        check_funnel(shown, result)
    elif view is HISTORY:
        check_history(shown, result)
    else:
        check_overview(shown, result)
    assert_clean(shown)


# Each element's height as a share of its parent's, in percent: what a column of the history chart shows.
COLUMN_SHARES = (
    "els => els.map(e => 100 * e.getBoundingClientRect().height / e.parentElement.getBoundingClientRect().height)"
)


def versus_in(text: str, runs: int, more: int) -> list[str]:
    """Each run's comparison with the one before, as the text the model reads words it."""
    lines = text.split("\n")
    at = next(i for i, line in enumerate(lines) if line.startswith("Runs seen, newest first"))
    found = [line.partition(" | vs before: ")[2] for line in lines[at + 1 : at + 1 + runs]]
    assert found[-1] == ""
    return [*found[:-1], "earlier runs not listed" if more else "first run seen"]


def check_history(shown: Shown, result: Wire) -> None:
    sc = result["structuredContent"]
    runs = sc["runs"]
    rows = shown.frame.locator("table.runs tbody tr")
    assert rows.count() == len(runs)
    for i, run in enumerate(runs):
        row = rows.nth(i)
        assert row.get_attribute("data-run") == run["executionId"]
        assert row.locator("td.sent-count").inner_text() == f"{run['sent']:,}"
        assert row.locator("td.failed-count").inner_text() == f"{run['failed']:,}"
        assert row.locator("td.scheduled").inner_text() == f"{run['scheduled']:,}"
        rate = f"{100 * run['failureRate']:.2f}".rstrip("0").rstrip(".") + "%"
        assert row.locator("td.rate").inner_text() == rate
        assert ("danger" in str(row.locator("td.rate").get_attribute("class"))) is (
            run["failureRate"] >= HIGH_FAILURE_RATE
        )
    shown_versus = [str(v) for v in rows.locator("td.versus").evaluate_all("els => els.map(e => e.dataset.versus)")]
    assert shown_versus == versus_in(text_of(result), len(runs), sc["moreRuns"])
    # The chart runs oldest to newest, each column as tall as its run's sent count against the tallest scale.
    columns = shown.frame.locator(".sent-cols span.sent")
    assert [c.get_attribute("data-run") for c in columns.all()] == [r["executionId"] for r in reversed(runs)]
    top = max(max(r["scheduled"], r["sent"]) for r in runs)
    heights = [float(h) for h in columns.evaluate_all(COLUMN_SHARES)]
    for height, run in zip(heights, reversed(runs), strict=True):
        assert abs(height - 100 * run["sent"] / top) < 1.5, (height, run)
    assert f"{sc['snapshots']} snapshots" in shown.text("[data-fact=observed]")
    assert shown.frame.locator("table.recent tbody tr").count() == len(sc["recent"])


@pytest.mark.parametrize("structured", [True, False], ids=["structured", "fallback"])
def test_the_history_of_the_demo_push(page: Any, histories: dict[str, Wire], structured: bool) -> None:
    result, arguments = histories["all"], {"campaign_id": DEMO_CAMPAIGNS["tokyo-push"]}

    sent = result if structured else stripped(result)
    shown = open_view(page, HISTORY, "get_history", arguments, sent, call_result=result)
    if structured:
        shown.screenshot("history")

    assert shown.host("toolCalls") == ([] if structured else [{"name": "get_history", "arguments": arguments}])
    check_history(shown, result)
    assert len(result["structuredContent"]["runs"]) == 9
    assert shown.text("h1") == "Runs seen"
    assert "runs it never saw are missing" in shown.text("[data-fact=observed]")
    assert_clean(shown)


def test_a_limited_history_says_older_runs_are_not_listed(page: Any, histories: dict[str, Wire]) -> None:
    result = histories["three"]
    shown = open_view(page, HISTORY, "get_history", {"campaign_id": DEMO_CAMPAIGNS["tokyo-push"], "limit": 3}, result)

    check_history(shown, result)
    assert "6 older runs not shown." in shown.text("[data-fact=observed]")
    assert_clean(shown)


def test_a_campaign_never_observed_shows_the_answer_and_no_chart(page: Any, histories: dict[str, Wire]) -> None:
    result = histories["none"]
    shown = open_view(page, HISTORY, "get_history", {"campaign_id": DEMO_CAMPAIGNS["winback-email"]}, result)

    assert result["structuredContent"]["snapshots"] == 0
    assert shown.text("[data-fact=empty]") == text_of(result)
    assert shown.frame.locator(".chart, table").count() == 0
    assert_clean(shown)


def test_a_running_campaign_shows_its_progress_and_invents_no_eta(page: Any, recorded: Recorded) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS["tokyo-push"], "get_status"]
    shown = open_view(page, FUNNEL, "get_status", {"campaign_id": DEMO_CAMPAIGNS["tokyo-push"]}, result)
    shown.screenshot("funnel-running")

    bar = shown.frame.locator("[role=progressbar]")
    assert (bar.get_attribute("aria-valuenow"), bar.get_attribute("aria-valuemax")) == ("30000", "50000")
    assert shown.text("[data-fact=progress]") == "30,000 of 50,000 scheduled messages have an outcome (60%)"
    assert shown.frame.locator("tr[data-stage=open]").count() == 0  # every injected message has an outcome
    for absent in ("[data-fact=rate]", "[data-fact=eta]"):
        assert shown.frame.locator(absent).count() == 0
    # One check so far: the server says a later one will allow an estimate, and gives none.
    assert shown.text("[data-fact=eta-text]") == (
        "Only one check of this run so far: a later check will allow a rate and an estimate of when it ends."
    )
    assert "Estimated" not in shown.text()


def test_a_progress_block_in_the_answer_is_shown_as_given(page: Any, recorded: Recorded) -> None:
    result = json.loads(json.dumps(recorded.demo[DEMO_CAMPAIGNS["tokyo-push"], "get_status"]))
    result["structuredContent"]["progress"] = {
        "ratePerMinute": 2403.6,
        "remaining": 20000,
        "etaAt": "2026-11-28T15:08:49Z",
        "basedOn": "from two checks 5 min apart",
        "text": "At this rate the remaining 20,000 would take about 8 min.",
    }

    shown = open_view(page, FUNNEL, "get_status", {"campaign_id": DEMO_CAMPAIGNS["tokyo-push"]}, result)

    assert shown.text("[data-fact=rate]") == "Rate: 2,404 messages per minute"
    assert shown.text("[data-fact=remaining]") == "Remaining: 20,000"
    assert (
        shown.text("[data-fact=eta]")
        == "Estimated finish: 2026-11-29 00:08:49 GMT+9 (Asia/Tokyo) · 2026-11-28 15:08:49 UTC"
    )
    assert shown.text("[data-fact=eta-text]") == "At this rate the remaining 20,000 would take about 8 min."
    assert "from two checks 5 min apart" in shown.text(".progress")
    assert_clean(shown)


def test_the_view_speaks_the_protocol_in_order(page: Any, recorded: Recorded) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS["spring-dm"], "get_metrics"]
    shown = open_view(page, FUNNEL, "get_metrics", {"campaign_id": DEMO_CAMPAIGNS["spring-dm"]}, result)

    received = shown.host("received")
    first, second = received[0], received[1]
    assert first["method"] == "ui/initialize" and isinstance(first["id"], int)
    assert first["params"]["protocolVersion"] == "2026-01-26"
    assert first["params"]["appInfo"]["name"] and first["params"]["appCapabilities"] == {
        "availableDisplayModes": ["inline"]
    }
    assert second == {"jsonrpc": "2.0", "method": "ui/notifications/initialized", "params": {}}
    sizes = [m["params"] for m in received if m.get("method") == "ui/notifications/size-changed"]
    content = shown.frame.evaluate("() => Math.ceil(document.body.getBoundingClientRect().height)")
    assert sizes and sizes[-1]["height"] == content and sizes[-1]["width"] > 0
    assert all(m.get("jsonrpc") == "2.0" for m in received)

    unknown = shown.page.evaluate("() => window.host.request('ui/not-a-method', {})")
    assert unknown["error"]["code"] == -32601
    teardown = shown.page.evaluate("() => window.host.request('ui/resource-teardown', {})")
    assert teardown == {"jsonrpc": "2.0", "id": teardown["id"], "result": {}}
    assert_clean(shown)


def cli_view(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[Path, Wire]:
    """Run `experiture-mcp view …` as a user would; the page it wrote and the answer embedded in it."""
    out = tmp_path / "view.html"
    done = subprocess.run(
        [sys.executable, "-m", "experiture_mcp", "view", *args, "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ.get("PATH", ""), "EXPERITURE_DATA_DIR": str(tmp_path / "data"), **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and f"wrote {out}" in done.stderr
    page = out.read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="experiture-embedded">(.*?)</script>', page, re.DOTALL)
    assert block is not None
    embedded: Wire = json.loads(block.group(1))
    return out, embedded["result"]


def open_file(page: tuple[Page, Watch], path: Path) -> Shown:
    opened, watch = page
    opened.goto(path.as_uri())
    opened.main_frame.wait_for_selector("body[data-shown]")
    watch.requests.remove(path.as_uri())  # the page itself; anything else would be a load the page made
    return Shown(opened, opened.main_frame, watch)


def test_the_view_command_writes_a_page_that_shows_the_answer_without_a_host(page: Any, tmp_path: Path) -> None:
    path, result = cli_view(tmp_path, "get_status", DEMO_CAMPAIGNS["tokyo-push"], "--demo")

    shown = open_file(page, path)
    shown.page.screenshot(path=str(SCREENSHOTS / "standalone-funnel.png"), full_page=True)

    assert result["structuredContent"]["name"] == "Tokyo Flagship Store Opening Push"
    assert shown.frame.locator("body").get_attribute("data-shown") == "view"
    check_funnel(shown, result)
    assert_clean(shown)


def test_the_view_command_shows_an_overview_of_several_campaigns(page: Any, tmp_path: Path) -> None:
    path, result = cli_view(tmp_path, "get_overview", *EVERY_ID[:4], "--demo")

    shown = open_file(page, path)

    assert len(result["structuredContent"]["rows"]) == 4
    check_overview(shown, result)
    assert_clean(shown)


def test_the_view_command_page_shows_a_hostile_name_as_text(
    page: Any, tmp_path: Path, recorded: Recorded, scripted_server: tuple[ScriptedAPI, str]
) -> None:
    _, base = scripted_server
    env = {"EXPERITURE_API_TOKEN": "scripted", "EXPERITURE_BASE_URL": base}
    path, result = cli_view(tmp_path, "get_status", HOSTILE_IDS["script"], env=env)

    shown = open_file(page, path)

    assert result["structuredContent"]["name"] == HOSTILE_NAMES["script"]
    assert shown.frame.locator("h1").text_content() == HOSTILE_NAMES["script"]
    assert shown.frame.locator("script").count() == 4  # the config, the answer, the bridge and the view: no more
    assert_clean(shown)


def test_only_the_host_window_is_listened_to(page: Any, recorded: Recorded) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS["spring-dm"], "get_status"]
    shown = open_view(page, FUNNEL, "get_status", {"campaign_id": DEMO_CAMPAIGNS["spring-dm"]}, result)
    before = shown.text()
    forged = json.loads(json.dumps(result))
    forged["structuredContent"]["name"] = "forged by the page itself"

    # A message the view's own window posts (or any frame but the host) is not the host speaking.
    shown.frame.evaluate(
        "r => window.postMessage({jsonrpc: '2.0', method: 'ui/notifications/tool-result', params: r}, '*')", forged
    )
    shown.page.wait_for_timeout(200)

    assert shown.text() == before
    assert_clean(shown)


def test_a_new_locale_from_the_host_renders_the_numbers_again(page: Any, recorded: Recorded) -> None:
    result = recorded.demo[DEMO_CAMPAIGNS["tokyo-push"], "get_status"]
    shown = open_view(page, FUNNEL, "get_status", {"campaign_id": DEMO_CAMPAIGNS["tokyo-push"]}, result)
    assert shown.text("tr[data-stage=scheduled] td.count") == "50,000"

    shown.page.evaluate("() => window.host.notify('ui/notifications/host-context-changed', {locale: 'de-DE'})")
    shown.frame.wait_for_function(
        "() => document.querySelector('tr[data-stage=scheduled] td.count').textContent !== '50,000'"
    )

    assert shown.text("tr[data-stage=scheduled] td.count") == "50.000"
    assert shown.text("tr[data-stage=sent] td.count") == "29.876"
    assert_clean(shown)
