"""The tools, resources and completions through an in-memory MCP client, in both protocol eras."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from mcp import Client, MCPError
from mcp.types import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    CallToolResult,
    ResourceTemplateReference,
    TextResourceContents,
)
from pydantic import SecretStr

from _snapshot import assert_snapshot, snapshot_mismatch
from conftest import connect, free_port, text_of
from experiture_mcp.config import Settings
from experiture_mcp.render import SCOPES
from experiture_mcp.sandbox import ANALYTICS_ONLY_TOKEN, CAMPAIGNS_ONLY_TOKEN, DEMO_CAMPAIGNS, DEMO_TOKEN

TOOLS = ("get_summary", "get_status", "get_metrics")
SPRING = DEMO_CAMPAIGNS["spring-dm"]
UNKNOWN = "00000000-0000-4000-8000-000000000000"
# The demo campaigns whose calls the API refuses, by design of the sample data.
REFUSED = {
    ("onboarding-journey", "get_summary"),
    ("onboarding-journey", "get_status"),
    ("onboarding-journey", "get_metrics"),
    ("loyalty-inconsistent", "get_status"),
}


async def call(client: Client, tool: str, campaign_id: str) -> CallToolResult:
    return await client.call_tool(tool, {"campaign_id": campaign_id})


@pytest.mark.anyio
async def test_tools_list_publishes_the_three_read_only_tools(client: Client) -> None:
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}

    assert set(TOOLS) <= set(tools)
    assert {name: tools[name].title for name in TOOLS} == {
        "get_summary": "Campaign setup summary",
        "get_status": "Campaign execution status",
        "get_metrics": "Campaign pipeline metrics",
    }
    for tool in tools.values():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
        assert tool.annotations.idempotent_hint is True
        assert tool.annotations.destructive_hint is False
        assert tool.annotations.open_world_hint is (tool.name != "find_campaigns")  # memory, not the API
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
    for tool in (tools[name] for name in TOOLS):
        assert tool.input_schema["required"] == ["campaign_id"]
        argument = tool.input_schema["properties"]["campaign_id"]
        assert argument["type"] == "string"
        assert "pattern" not in argument  # a link is accepted too; the server checks, before any request
        assert "UUID" in argument["description"] and "link" in argument["description"]
    for name, scope in SCOPES.items():
        assert scope in str(tools[name].description)
    assert "get_status" in str(tools["get_metrics"].description)


@pytest.mark.anyio
@pytest.mark.parametrize("tool", TOOLS)
async def test_each_demo_campaign_gets_the_snapshotted_text_and_valid_structured_content(
    client: Client, tool: str
) -> None:
    (schema,) = [t.output_schema for t in (await client.list_tools()).tools if t.name == tool]
    assert schema is not None
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    problems: list[str] = []

    for slug, campaign_id in sorted(DEMO_CAMPAIGNS.items()):
        result = await call(client, tool, campaign_id)

        problems.append(snapshot_mismatch(f"{tool}/{slug}", text_of(result)) or "")
        assert result.is_error is ((slug, tool) in REFUSED), slug
        if result.is_error:
            assert result.structured_content is None
        else:
            assert result.structured_content is not None
            assert result.structured_content["campaignId"] == campaign_id
            validator.validate(result.structured_content)  # pyright: ignore[reportUnknownMemberType]
    assert not "".join(problems), "\n".join(p for p in problems if p)


async def error_text(settings: Settings, era: str, tool: str, campaign_id: str) -> str:
    async with connect(settings, era) as client:
        result = await call(client, tool, campaign_id)
    assert result.is_error
    assert result.structured_content is None
    return text_of(result)


@pytest.mark.anyio
async def test_a_rejected_token_says_how_to_set_a_new_one(settings: Settings, era: str) -> None:
    bad = settings.model_copy(update={"api_token": SecretStr("not-a-demo-token")})
    text = await error_text(bad, era, "get_status", SPRING)
    assert_snapshot("errors/unauthorized", text)
    assert "not-a-demo-token" not in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "tool"),
    [
        (CAMPAIGNS_ONLY_TOKEN, "get_metrics"),
        (ANALYTICS_ONLY_TOKEN, "get_summary"),
        (ANALYTICS_ONLY_TOKEN, "get_status"),
    ],
)
async def test_a_token_without_the_scope_names_the_scope_the_tool_needs(
    settings: Settings, era: str, token: str, tool: str
) -> None:
    limited = settings.model_copy(update={"api_token": SecretStr(token)})
    text = await error_text(limited, era, tool, SPRING)
    assert_snapshot(f"errors/insufficient_scope_{tool}", text)
    assert "JOURNEY_API.AUTH.INSUFFICIENT_SCOPE" in text


@pytest.mark.anyio
async def test_an_unknown_campaign_is_reported_as_not_found(settings: Settings, era: str) -> None:
    text = await error_text(settings, era, "get_summary", UNKNOWN)
    assert_snapshot("errors/not_found", text)
    assert UNKNOWN in text and "HTTP 404" in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("tool", "code"),
    [("get_summary", "SUMMARY_TYPE_UNSUPPORTED"), ("get_status", "JOURNEY_API.PUBLIC.CAMPAIGNS.TYPE_UNSUPPORTED")],
)
async def test_an_unsupported_campaign_type_is_not_reported_as_missing(
    settings: Settings, era: str, tool: str, code: str
) -> None:
    text = await error_text(settings, era, tool, DEMO_CAMPAIGNS["onboarding-journey"])
    assert f"code {code}" in text
    assert "Do not retry and do not report the campaign as missing" in text


@pytest.mark.anyio
async def test_an_inconsistent_status_points_to_summary_and_metrics(settings: Settings, era: str) -> None:
    text = await error_text(settings, era, "get_status", DEMO_CAMPAIGNS["loyalty-inconsistent"])
    assert "JOURNEY_API.PUBLIC.CAMPAIGNS.STATUS_INCONSISTENT" in text
    assert "get_summary and get_metrics may still answer" in text


@pytest.mark.anyio
@pytest.mark.parametrize("tool", TOOLS)
async def test_a_missing_token_is_reported_as_not_configured(demo_api: str, era: str, tool: str) -> None:
    text = await error_text(Settings(base_url=demo_api), era, tool, SPRING)
    assert_snapshot(f"errors/not_configured_{tool}", text)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "campaign_id"),
    [("path", "../../admin"), ("query", SPRING + "?x=1"), ("empty", ""), ("prose", "the spring campaign")],
)
async def test_an_id_that_is_not_a_uuid_is_refused_with_an_example(
    settings: Settings, era: str, name: str, campaign_id: str
) -> None:
    text = await error_text(settings, era, "get_status", campaign_id)
    assert_snapshot(f"errors/invalid_id_{name}", text)
    assert "No request was made" in text


@pytest.mark.anyio
async def test_an_api_that_never_answers_times_out_with_advice(demo_api: str, era: str, silent_port: int) -> None:
    slow = Settings(
        api_token=SecretStr(DEMO_TOKEN),
        base_url=f"http://127.0.0.1:{silent_port}",
        timeout_seconds=0.2,
        retry_attempts=1,  # retries have their own tests; this one is about the text
    )
    text = await error_text(slow, era, "get_status", SPRING)
    assert_snapshot("errors/timeout", text)


@pytest.mark.anyio
async def test_an_unreachable_api_is_reported_as_a_connection_failure(era: str) -> None:
    closed = Settings(
        api_token=SecretStr(DEMO_TOKEN), base_url=f"http://127.0.0.1:{free_port()}", timeout_seconds=2, retry_attempts=1
    )
    text = await error_text(closed, era, "get_metrics", SPRING)
    assert_snapshot("errors/connection_refused", text)


@pytest.mark.anyio
async def test_resource_templates_cover_summary_status_and_metrics(client: Client) -> None:
    templates = {t.uri_template: t for t in (await client.list_resource_templates()).resource_templates}

    assert sorted(templates) == [
        f"experiture://campaigns/{{campaign_id}}/{endpoint}" for endpoint in ("metrics", "status", "summary")
    ]
    assert {t.mime_type for t in templates.values()} == {"application/json"}


@pytest.mark.anyio
@pytest.mark.parametrize("endpoint", ["summary", "status", "metrics"])
async def test_reading_a_campaign_resource_returns_its_json(client: Client, endpoint: str) -> None:
    result = await client.read_resource(f"experiture://campaigns/{SPRING}/{endpoint}")

    (contents,) = result.contents
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == "application/json"
    data: dict[str, Any] = json.loads(contents.text)
    assert data["campaignId"] == SPRING


@pytest.mark.anyio
@pytest.mark.parametrize("campaign_id", [UNKNOWN, "not-a-uuid"])
async def test_reading_an_unknown_or_invalid_campaign_is_invalid_params(client: Client, campaign_id: str) -> None:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(f"experiture://campaigns/{campaign_id}/status")

    assert raised.value.error.code == INVALID_PARAMS


@pytest.mark.anyio
async def test_a_refused_resource_read_carries_our_explanation(client: Client) -> None:
    with pytest.raises(MCPError) as raised:
        await client.read_resource(f"experiture://campaigns/{DEMO_CAMPAIGNS['loyalty-inconsistent']}/status")

    assert raised.value.error.code == INTERNAL_ERROR
    assert "STATUS_INCONSISTENT" in raised.value.error.message
    assert "get_summary and get_metrics may still answer" in raised.value.error.message


@pytest.mark.anyio
async def test_the_status_values_reference_is_a_static_markdown_resource(client: Client) -> None:
    listed = {str(r.uri): r for r in (await client.list_resources()).resources}
    assert listed["experiture://reference/status-values"].mime_type == "text/markdown"

    result = await client.read_resource("experiture://reference/status-values")

    (contents,) = result.contents
    assert isinstance(contents, TextResourceContents)
    for value in ("pending_or_overdue", "utc_fallback", "SUMMARY_TYPE_UNSUPPORTED", "analytics:read", "isStale"):
        assert value in contents.text


@pytest.mark.anyio
async def test_campaign_id_completion_offers_the_campaigns_looked_up_in_this_session(client: Client) -> None:
    ref = ResourceTemplateReference(type="ref/resource", uri="experiture://campaigns/{campaign_id}/status")
    before = await client.complete(ref, {"name": "campaign_id", "value": ""})
    await call(client, "get_status", SPRING)
    await call(client, "get_metrics", DEMO_CAMPAIGNS["tokyo-push"])
    await call(client, "get_status", UNKNOWN)  # not found: never offered

    everything = await client.complete(ref, {"name": "campaign_id", "value": ""})
    prefixed = await client.complete(ref, {"name": "campaign_id", "value": SPRING[:3].upper()})

    assert before.completion.values == []
    assert everything.completion.values == [DEMO_CAMPAIGNS["tokyo-push"], SPRING]
    assert prefixed.completion.values == [SPRING]
