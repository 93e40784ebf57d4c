"""Pasted links: campaign_id_from, and every place a campaign id is taken, through a real MCP client in both eras."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mcp import Client, MCPError
from mcp.types import TextContent, TextResourceContents
from pydantic import SecretStr

from _scripted_api import ScriptedAPI
from conftest import connect, text_of
from experiture_mcp.cli import main
from experiture_mcp.config import Settings
from experiture_mcp.models import MAX_LINK_LENGTH, campaign_id_from
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN

SPRING = DEMO_CAMPAIGNS["spring-dm"]
TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
OTHER = "9d3c1a2b-7e6f-4a5b-9c8d-1e2f3a4b5c6d"
LOWER_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
APP = "https://app.experiture.ai"

# Every shape a link to campaign {u} may take when copied from the app or a mail; {U} is the id in upper case.
SHAPES = [
    "{u}",
    "{U}",
    "  {u}\n",
    "\t{U} ",
    APP + "/campaigns/{u}",
    APP + "/campaigns/{u}/",
    APP + "/campaigns/{U}/status?tab=runs",
    APP + "/campaigns/{u}/status?tab=x#top",
    APP + "/campaigns/{u}?utm_source=mail&compare=" + OTHER,
    APP + "/app/t/acme/campaigns/{u}/edit/audience",
    APP + "/#/campaigns/{u}/overview",
    APP + "/#!/campaigns/{u}",
    APP + "/app/#/campaigns/{u}?tab=metrics",
    APP + "/?from=mail#/campaigns/{U}",
    "http://localhost:8080/campaigns/{u}",
    "http://[::1]:8443/campaigns/{u}",
    "HTTPS://APP.EXPERITURE.AI/CAMPAIGNS/{U}",
    "  " + APP + "/campaigns/{u}  ",
    APP + "/campaigns/{pct}",
    APP + "/campaigns%2F{u}",
]

# Not a bare UUID nor a link holding exactly one in its path: refused before any request.
INVALID = [
    "",
    "   ",
    "the spring campaign",
    SPRING[:-1],
    SPRING + "0",
    "{" + SPRING + "}",
    "urn:uuid:" + SPRING,
    SPRING + "?x=1",
    "../../" + SPRING,
    f"{APP}/campaigns/{SPRING}/compare/{OTHER}",
    f"{APP}/campaigns/{SPRING}/copy/{SPRING}",
    f"{APP}/campaigns?id={SPRING}",
    f"{APP}/#campaign-{SPRING}",
    f"{APP}/#/campaigns?id={SPRING}",
    f"{APP}/campaigns/{SPRING}#/compare/{OTHER}",
    f"https://{SPRING}.experiture.ai/",
    f"{APP}/campaigns/campaign-{SPRING}",
    f"{APP}/campaigns/{SPRING}.json",
    f"javascript:alert('{SPRING}')",
    f"javascript://{APP[8:]}/campaigns/{SPRING}",
    f"data:text/html,{SPRING}",
    f"ftp://ftp.example/campaigns/{SPRING}",
    f"file:///campaigns/{SPRING}",
    f"experiture://campaigns/{SPRING}/status",
    f"//app.experiture.ai/campaigns/{SPRING}",
    f"https:///campaigns/{SPRING}",
    f"https:/campaigns/{SPRING}",
    f"https://user:secret@app.experiture.ai/campaigns/{SPRING}",
    f"https://@app.experiture.ai/campaigns/{SPRING}",
    f"https://evil.example\\@app.experiture.ai/campaigns/{SPRING}",
    f"https://app.experiture.ai:99999/campaigns/{SPRING}",
    f"https://app.experiture.ai:0/campaigns/{SPRING}",
    f"https://[::1/campaigns/{SPRING}",
    f"{APP}/campaigns/{SPRING}\n/x",
    f"{APP}/campaigns/\x00{SPRING}",
    f"{APP}/campaigns/{SPRING}\u200b",
    f"{APP}/\u202ecampaigns/{SPRING}",
    f"{APP}/campaigns/ {SPRING}",
    f"{APP}/campaigns/%FF{SPRING}",
    f"{APP}/{'a' * MAX_LINK_LENGTH}/{SPRING}",
]


def shape(template: str, u: str) -> str:
    pct = "".join(f"%{ord(ch):02X}" for ch in u)
    return template.replace("{u}", u.lower()).replace("{U}", u.upper()).replace("{pct}", pct)


LINKS = [shape(template, SPRING) for template in SHAPES]


@pytest.mark.parametrize("link", LINKS)
def test_each_link_shape_gives_its_lower_case_uuid(link: str) -> None:
    assert campaign_id_from(link) == SPRING


@pytest.mark.parametrize("value", INVALID)
def test_anything_else_gives_none(value: str) -> None:
    assert campaign_id_from(value) is None


@given(st.uuids(), st.sampled_from(SHAPES))
def test_for_any_uuid_every_shape_gives_it_back(u: uuid.UUID, template: str) -> None:
    assert campaign_id_from(shape(template, str(u))) == str(u)


@given(
    st.text()
    | st.builds(
        "".join,
        st.lists(
            st.sampled_from(["https://", "http://", "javascript:", "a.b", "/", "#", "#/", "?", "@", ":80", "%2F", "%"])
            | st.uuids().map(str)
            | st.text(max_size=5),
            max_size=8,
        ),
    )
)
def test_it_never_returns_anything_but_a_lower_case_uuid(value: str) -> None:
    found = campaign_id_from(value)
    assert found is None or LOWER_UUID.fullmatch(found) is not None


# Through the real MCP client, against the demo API.


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content  # pyright: ignore[reportUnknownVariableType, reportUnknownMemberType]


@pytest.mark.anyio
@pytest.mark.parametrize("tool", ["get_status", "get_summary", "get_metrics", "wait_for_run"])
async def test_the_tools_take_every_link_shape(client: Client, tool: str) -> None:
    for link in LINKS:
        data = structured(await client.call_tool(tool, {"campaign_id": link}))
        assert data.get("status", data)["campaignId"] == SPRING, link


@pytest.mark.anyio
async def test_get_overview_takes_links_in_an_array_a_json_string_and_a_separated_list(client: Client) -> None:
    tokyo = f"{APP}/#/campaigns/{TOKYO.upper()}/overview"
    for campaign_ids in (
        [*LINKS, tokyo],
        json.dumps([LINKS[6], tokyo]),
        json.dumps(LINKS[10]),
        f"{LINKS[4]}, {tokyo}",
        f"{LINKS[6]} {tokyo};{SPRING}",
    ):
        data = structured(await client.call_tool("get_overview", {"campaign_ids": campaign_ids}))
        expected = {SPRING} if campaign_ids == json.dumps(LINKS[10]) else {SPRING, TOKYO}
        assert {row["campaignId"] for row in data["rows"]} == expected, campaign_ids  # a link and its UUID count once
        assert data["total"]["errors"] == 0


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ["summary", "status", "metrics"])
async def test_resources_take_a_percent_encoded_link(client: Client, endpoint: str) -> None:
    for link in [SPRING.upper(), *(link for link in LINKS if link.strip().lower().startswith("http"))]:
        result = await client.read_resource(f"experiture://campaigns/{quote(link.strip(), safe='')}/{endpoint}")
        (contents,) = result.contents
        assert isinstance(contents, TextResourceContents)
        assert json.loads(contents.text)["campaignId"] == SPRING, link


@pytest.mark.anyio
async def test_a_resource_uri_with_an_unencoded_link_matches_no_template(client: Client) -> None:
    # A template segment stops at a literal "/", so a raw link cannot fill {campaign_id}: encode it (documented).
    with pytest.raises(MCPError, match="Unknown resource"):
        await client.read_resource(f"experiture://campaigns/{APP}/campaigns/{SPRING}/status")


def prompt_text(result: Any) -> str:
    return "\n".join(m.content.text for m in result.messages if isinstance(m.content, TextContent))


@pytest.mark.anyio
async def test_prompts_take_links(client: Client) -> None:
    for name in ("campaign_report", "diagnose_campaign"):
        text = prompt_text(await client.get_prompt(name, {"campaign_id": LINKS[10]}))
        assert f'campaign_id="{SPRING}"' in text and "app.experiture.ai" not in text
    text = prompt_text(
        await client.get_prompt("compare_campaigns", {"campaign_ids": f"{LINKS[4]}, {APP}/campaigns/{TOKYO}/status"})
    )
    assert f"campaign_ids={json.dumps([SPRING, TOKYO])}" in text


# Invalid values make no request: a scripted API records every request it gets.


@pytest.fixture
def scripted(scripted_server: tuple[ScriptedAPI, str]) -> Iterator[tuple[ScriptedAPI, Settings]]:
    api, url = scripted_server
    api.reset()
    yield api, Settings(api_token=SecretStr(DEMO_TOKEN), base_url=url)
    api.reset()


@pytest.mark.anyio
async def test_invalid_values_are_refused_everywhere_before_any_request(
    scripted: tuple[ScriptedAPI, Settings], era: str
) -> None:
    api, settings = scripted
    async with connect(settings, era) as client:
        for value in INVALID:
            for tool in ("get_status", "get_summary", "get_metrics", "wait_for_run"):
                result = await client.call_tool(tool, {"campaign_id": value})
                assert result.is_error and "No request was made" in text_of(result), (tool, value)
                assert "or links to a campaign" in text_of(result)
            for name in ("campaign_report", "diagnose_campaign"):
                with pytest.raises(MCPError, match="nor a link to a campaign"):
                    await client.get_prompt(name, {"campaign_id": value})
            if value.strip() and not re.search(r"[\s,;]", value.strip()):  # a list splits there; see below
                overview = structured(await client.call_tool("get_overview", {"campaign_ids": [value]}))
                assert [row["error"]["endpoint"] for row in overview["rows"]] == ["none"], value
                with pytest.raises(MCPError, match="not campaign UUIDs or links"):
                    await client.get_prompt("compare_campaigns", {"campaign_ids": json.dumps([SPRING, value])})
            encoded = quote(value, safe="")
            if encoded:
                with pytest.raises(MCPError):
                    await client.read_resource(f"experiture://campaigns/{encoded}/status")
    assert api.seen == []


@pytest.mark.anyio
async def test_a_link_reaches_the_api_as_its_uuid_only(scripted: tuple[ScriptedAPI, Settings], era: str) -> None:
    api, settings = scripted
    async with connect(settings, era) as client:
        await client.call_tool("get_status", {"campaign_id": f"{APP}/#/campaigns/{OTHER.upper()}/overview?x=../../y"})
    assert [seen.path for seen in api.seen] == [f"/v1/campaigns/{OTHER}/status"]


@pytest.mark.anyio
async def test_the_argument_descriptions_say_a_link_works_and_stay_short(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name in ("get_status", "get_summary", "get_metrics"):
        argument = tools[name].input_schema["properties"]["campaign_id"]
        assert argument == {
            "description": "The campaign's UUID, e.g. 4130bada-9264-465f-bc0c-a26bebcfcc81, or its link.",
            "title": "Campaign Id",
            "type": "string",
        }
    assert "UUIDs or links" in json.dumps(tools["get_overview"].input_schema["properties"]["campaign_ids"])


def test_the_call_command_takes_links(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["call", "get_status", f"{APP}/#/campaigns/{SPRING.upper()}/overview", "--demo"]) == 0
    assert capsys.readouterr().out.startswith(f'Campaign "Spring Re-engagement Direct Mail" ({SPRING})')
    assert main(["call", "get_overview", f"{APP}/campaigns/{SPRING},{APP}/campaigns/{TOKYO}/status", "--demo"]) == 0
    out = capsys.readouterr().out
    assert SPRING in out and TOKYO in out and "refused" not in out
    assert main(["call", "get_metrics", f"{APP}/campaigns/{SPRING}/compare/{TOKYO}", "--demo"]) == 1
    assert "or links to a campaign. No request was made." in capsys.readouterr().out


@pytest.mark.anyio
async def test_a_refused_link_with_credentials_never_shows_them(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    link = f"https://marketer:hunter2-secret@{'x' * 70}.example.com/campaigns/{SPRING}/{SPRING}"
    with caplog.at_level(logging.DEBUG):
        for tool in ("get_status", "wait_for_run"):
            result = await client.call_tool(tool, {"campaign_id": link})
            assert result.is_error
            assert "hunter2" not in text_of(result)
            assert "***@" in text_of(result)
    assert "hunter2" not in caplog.text
