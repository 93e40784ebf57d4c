"""get_overview through an in-memory MCP client against the demo API, in both protocol eras."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anyio
import jsonschema
import pytest
from mcp import Client
from mcp.types import CallToolResult
from pydantic import SecretStr

from _snapshot import assert_snapshot
from conftest import Instrumented, ServedApp, connect, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.overview import MAX_CAMPAIGNS, OVERVIEW_CONCURRENCY, parse_campaign_ids
from experiture_mcp.sandbox import ANALYTICS_ONLY_TOKEN, CAMPAIGNS_ONLY_TOKEN, DEMO_CAMPAIGNS, create_app

UNKNOWN = "00000000-0000-4000-8000-000000000000"
EVERY_ID = [*DEMO_CAMPAIGNS.values(), UNKNOWN, "not-a-uuid"]
RANK = {"failed": 0, "pending_or_overdue": 1, "inconsistent": 2, "high_failure_rate": 3, "error": 4, None: 5}


async def overview(client: Client, campaign_ids: Any) -> CallToolResult:
    return await client.call_tool("get_overview", {"campaign_ids": campaign_ids})


async def output_validator(client: Client) -> jsonschema.Draft202012Validator:
    (schema,) = [t.output_schema for t in (await client.list_tools()).tools if t.name == "get_overview"]
    assert schema is not None
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def limited(settings: Settings, token: str) -> Settings:
    return settings.model_copy(update={"api_token": SecretStr(token)})


async def every_demo_campaign_with(
    settings: Settings, era: str, token: str, snapshot: str
) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows and notes of an overview of every demo campaign with `token`, after checking its text snapshot."""
    async with connect(limited(settings, token), era) as client:
        result = await overview(client, list(DEMO_CAMPAIGNS.values()))
    assert not result.is_error
    assert_snapshot(f"overview/{snapshot}", text_of(result))
    assert result.structured_content is not None
    return result.structured_content["rows"], result.structured_content["notes"]


@pytest.fixture
def slow_api() -> Iterator[tuple[Instrumented, str]]:
    """The demo API with 20 ms per request, and 1 s for the winback campaign."""
    app = Instrumented(create_app(clock=frozen_clock), 0.02, DEMO_CAMPAIGNS["winback-email"], 1.0)
    with ServedApp(app) as served:
        yield app, served.url + "/public/v1"


@pytest.mark.anyio
async def test_get_overview_is_read_only_and_publishes_a_schema_for_every_row(client: Client) -> None:
    (tool,) = [t for t in (await client.list_tools()).tools if t.name == "get_overview"]

    assert tool.annotations is not None
    assert (tool.annotations.read_only_hint, tool.annotations.destructive_hint) == (True, False)
    assert (tool.annotations.idempotent_hint, tool.annotations.open_world_hint) == (True, True)
    argument = tool.input_schema["properties"]["campaign_ids"]
    assert [branch["type"] for branch in argument["anyOf"]] == ["array", "string"]
    assert argument["anyOf"][0]["maxItems"] == MAX_CAMPAIGNS
    assert tool.output_schema is not None
    assert set(tool.output_schema["required"]) >= {"rows", "total"}
    assert "attention first" in str(tool.description)


@pytest.mark.anyio
async def test_every_demo_campaign_in_one_call_lists_those_needing_attention_first(client: Client) -> None:
    result = await overview(client, EVERY_ID)

    assert not result.is_error
    assert_snapshot("overview/every_demo_campaign", text_of(result))
    data = result.structured_content
    assert data is not None
    (await output_validator(client)).validate(data)  # pyright: ignore[reportUnknownMemberType]
    rows: list[dict[str, Any]] = data["rows"]
    assert sorted(r["campaignId"] for r in rows) == sorted(EVERY_ID)
    assert [RANK[r["attention"]] for r in rows] == sorted(RANK[r["attention"]] for r in rows)
    by_id = {r["campaignId"]: r for r in rows}
    assert by_id[DEMO_CAMPAIGNS["winback-email"]]["attention"] == "failed"
    assert by_id[DEMO_CAMPAIGNS["flash-sms"]]["attention"] == "pending_or_overdue"
    assert by_id[DEMO_CAMPAIGNS["loyalty-inconsistent"]]["error"]["httpStatus"] == 500
    assert by_id[DEMO_CAMPAIGNS["onboarding-journey"]]["error"]["httpStatus"] == 409
    assert by_id[UNKNOWN]["error"]["httpStatus"] == 404
    assert by_id["not-a-uuid"]["error"]["endpoint"] == "none"
    spring = by_id[DEMO_CAMPAIGNS["spring-dm"]]
    assert (spring["sent"], spring["failed"], spring["countsFrom"], spring["attention"]) == (17480, 5, "metrics", None)
    assert data["total"]["campaigns"] == len(EVERY_ID)
    assert data["total"]["sent"] == sum(r["sent"] or 0 for r in rows)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "campaign_ids",
    [
        [DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["tokyo-push"], DEMO_CAMPAIGNS["spring-dm"].upper()],
        json.dumps([DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["tokyo-push"]]),
        f" {DEMO_CAMPAIGNS['spring-dm']}, {DEMO_CAMPAIGNS['tokyo-push']} ,{DEMO_CAMPAIGNS['spring-dm']}",
        f"{DEMO_CAMPAIGNS['spring-dm']}\n{DEMO_CAMPAIGNS['tokyo-push']}",
    ],
    ids=["array", "json-string", "comma-list", "lines"],
)
async def test_ids_may_come_as_an_array_a_json_string_or_a_list_and_each_counts_once(
    client: Client, campaign_ids: Any
) -> None:
    result = await overview(client, campaign_ids)

    assert result.structured_content is not None
    rows = result.structured_content["rows"]
    assert [r["campaignId"] for r in rows] == [DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["tokyo-push"]]


def test_parsing_keeps_first_seen_order_and_tolerates_a_broken_json_array() -> None:
    spring, tokyo = DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["tokyo-push"]

    assert parse_campaign_ids(f'["{tokyo}", "{spring}"') == [tokyo, spring]
    assert parse_campaign_ids(f"{tokyo};{spring.upper()};{tokyo}") == [tokyo, spring]
    assert parse_campaign_ids(json.dumps(f"{spring}, {tokyo}")) == [spring, tokyo]
    assert parse_campaign_ids("  ") == []


@pytest.mark.anyio
async def test_a_token_without_analytics_read_gets_its_counts_from_status_and_no_failed_rows(
    settings: Settings, era: str
) -> None:
    rows, notes = await every_demo_campaign_with(settings, era, CAMPAIGNS_ONLY_TOKEN, "campaigns_only_token")

    assert {r["countsFrom"] for r in rows} == {"status", "summary", None}  # summary: the inconsistent one
    assert all(
        r["error"] is None
        for r in rows
        if r["campaignId"] not in (DEMO_CAMPAIGNS["onboarding-journey"], DEMO_CAMPAIGNS["loyalty-inconsistent"])
    )
    assert "lacks analytics:read" in notes[0]


@pytest.mark.anyio
async def test_a_token_without_campaigns_read_gets_counts_only_with_the_reason_on_each_row(
    settings: Settings, era: str
) -> None:
    rows, notes = await every_demo_campaign_with(settings, era, ANALYTICS_ONLY_TOKEN, "analytics_only_token")

    assert "lacks campaigns:read" in notes[0]
    assert {r["error"]["httpStatus"] for r in rows} == {403}
    assert rows[0]["campaignId"] == DEMO_CAMPAIGNS["winback-email"]  # its failure rate still puts it first
    assert rows[0]["attention"] == "high_failure_rate"


@pytest.mark.anyio
@pytest.mark.parametrize(("token", "name"), [("not-a-demo-token", "unauthorized"), (None, "not_configured")])
async def test_a_problem_with_the_token_fails_the_call_once_instead_of_on_every_row(
    settings: Settings, era: str, token: str | None, name: str
) -> None:
    broken = settings.model_copy(update={"api_token": SecretStr(token) if token else None})
    async with connect(broken, era) as client:
        result = await overview(client, [DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["tokyo-push"], "nope"])

    assert result.is_error and result.structured_content is None
    assert_snapshot(f"overview/{name}", text_of(result))
    assert text_of(result).startswith("get_overview failed for all 2 campaigns")
    assert "not-a-demo-token" not in text_of(result)


@pytest.mark.anyio
@pytest.mark.parametrize("campaign_ids", [[], "  "])
async def test_an_empty_list_with_nothing_remembered_says_how_campaigns_get_remembered(
    client: Client, campaign_ids: Any
) -> None:
    result = await overview(client, campaign_ids)

    assert result.is_error
    assert "no campaigns are remembered for this account yet" in text_of(result)
    assert "campaigns import FILE" in text_of(result)


@pytest.mark.anyio
async def test_more_than_fifty_distinct_ids_is_refused_before_any_request(settings: Settings, era: str) -> None:
    many = ",".join(str(uuid.UUID(int=i + 1)) for i in range(MAX_CAMPAIGNS + 1))
    async with connect(settings, era) as client:
        result = await overview(client, many)

    assert result.is_error
    assert_snapshot("overview/too_many", text_of(result))


@pytest.mark.anyio
async def test_fifty_campaigns_are_fetched_concurrently_with_a_bounded_number_in_flight(
    slow_api: tuple[Instrumented, str], era: str
) -> None:
    app, base_url = slow_api
    ids = [cid for slug, cid in DEMO_CAMPAIGNS.items() if slug != "winback-email"]
    ids += [str(uuid.UUID(int=i + 1)) for i in range(MAX_CAMPAIGNS - len(ids))]
    settings = Settings(api_token=SecretStr("demo-token"), base_url=base_url)
    async with connect(settings, era) as client:
        result = await overview(client, ids)

    assert result.structured_content is not None
    assert len(result.structured_content["rows"]) == MAX_CAMPAIGNS
    assert app.requests == 2 * MAX_CAMPAIGNS + 1  # and the summary of the campaign whose status is inconsistent
    assert 1 < app.most_in_flight <= OVERVIEW_CONCURRENCY


@pytest.mark.anyio
async def test_a_campaign_that_does_not_answer_in_time_gets_a_retryable_row_and_the_rest_still_answer(
    slow_api: tuple[Instrumented, str], era: str
) -> None:
    _, base_url = slow_api
    settings = Settings(api_token=SecretStr("demo-token"), base_url=base_url, deadline_seconds=0.3, retry_attempts=1)
    ids = [DEMO_CAMPAIGNS["spring-dm"], DEMO_CAMPAIGNS["winback-email"]]
    async with connect(settings, era) as client:
        with anyio.fail_after(5):
            result = await overview(client, ids)

    assert result.structured_content is not None
    rows = {r["campaignId"]: r for r in result.structured_content["rows"]}
    assert rows[DEMO_CAMPAIGNS["spring-dm"]]["state"] == "completed"
    late = rows[DEMO_CAMPAIGNS["winback-email"]]["error"]
    assert late["retryable"] is True
    assert "retry" in late["reason"]
