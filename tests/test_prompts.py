"""The prompts and their argument completion through an in-memory MCP client, in both protocol eras."""

from __future__ import annotations

import re

import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, GetPromptResult, PromptReference, TextContent

from _snapshot import assert_snapshot
from experiture_mcp.overview import MAX_CAMPAIGNS
from experiture_mcp.sandbox import DEMO_CAMPAIGNS

SPRING = DEMO_CAMPAIGNS["spring-dm"]
TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
WINBACK = DEMO_CAMPAIGNS["winback-email"]
CALLS = {
    "campaign_report": {"campaign_id": SPRING},
    "diagnose_campaign": {"campaign_id": WINBACK.upper()},
    "compare_campaigns": {"campaign_ids": f"{SPRING}, {TOKYO},{WINBACK} {SPRING}"},
}


def message_text(result: GetPromptResult) -> str:
    (message,) = result.messages
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    return message.content.text


@pytest.mark.anyio
async def test_three_prompts_are_listed_with_their_required_arguments(client: Client) -> None:
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}

    assert {name: [(a.name, a.required) for a in p.arguments or []] for name, p in prompts.items()} == {
        "campaign_report": [("campaign_id", True)],
        "diagnose_campaign": [("campaign_id", True)],
        "compare_campaigns": [("campaign_ids", True)],
    }
    assert all(p.title and p.description for p in prompts.values())
    assert all(a.description for p in prompts.values() for a in p.arguments or [])


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(CALLS))
async def test_each_prompt_names_the_tools_to_call_and_how_to_present_numbers(client: Client, name: str) -> None:
    text = message_text(await client.get_prompt(name, CALLS[name]))

    assert_snapshot(f"prompts/{name}", text)
    tools = {t.name for t in (await client.list_tools()).tools}
    named = set(re.findall(r"\b(get_[a-z]+)\(", text))
    assert named and named <= tools
    assert "How to present the numbers" in text
    assert "never instructions" in text


@pytest.mark.anyio
async def test_the_comparison_asks_for_one_overview_call_with_every_distinct_id(client: Client) -> None:
    text = message_text(await client.get_prompt("compare_campaigns", CALLS["compare_campaigns"]))

    assert f'get_overview(campaign_ids=["{SPRING}", "{TOKYO}", "{WINBACK}"])' in text


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("campaign_report", {"campaign_id": "the spring campaign"}, "is neither a campaign UUID"),
        ("diagnose_campaign", {"campaign_id": ""}, "is neither a campaign UUID"),
        ("compare_campaigns", {"campaign_ids": SPRING}, "give 2 to 50 distinct campaign ids; 1 given"),
        ("compare_campaigns", {"campaign_ids": f"{SPRING},nope"}, "not campaign UUIDs or links: 'nope'"),
        (
            "compare_campaigns",
            {"campaign_ids": ",".join(f"{i:08x}-0000-4000-8000-000000000000" for i in range(MAX_CAMPAIGNS + 1))},
            "51 given",
        ),
    ],
)
async def test_a_bad_argument_is_rejected_as_invalid_params_with_the_reason(
    client: Client, name: str, arguments: dict[str, str], says: str
) -> None:
    with pytest.raises(MCPError) as raised:
        await client.get_prompt(name, arguments)

    assert raised.value.error.code == INVALID_PARAMS
    assert says in raised.value.error.message
    if "given" not in says:  # a name instead of an id: the model is pointed at find_campaigns
        assert "call the find_campaigns tool first" in raised.value.error.message


@pytest.mark.anyio
async def test_prompt_arguments_complete_with_campaigns_seen_in_the_session(client: Client) -> None:
    report = PromptReference(type="ref/prompt", name="campaign_report")
    compare = PromptReference(type="ref/prompt", name="compare_campaigns")
    before = await client.complete(report, {"name": "campaign_id", "value": ""})

    await client.call_tool("get_overview", {"campaign_ids": [SPRING, TOKYO, "00000000-0000-4000-8000-000000000000"]})
    single = await client.complete(report, {"name": "campaign_id", "value": "2C"})
    listed = await client.complete(compare, {"name": "campaign_ids", "value": f"{SPRING},"})

    assert before.completion.values == []
    assert single.completion.values == [TOKYO]
    assert listed.completion.values == [f"{SPRING},{TOKYO}"]  # the id already listed and the unknown id are not offered
