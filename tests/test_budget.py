"""The context budget: what the model reads of tools/list on every turn stays small, whatever tools are added."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client

TOOLS_LIST_BUDGET = 4608  # bytes of compact JSON: name, title, description, inputSchema of every tool (4.5 KB)
FIND_CAMPAIGNS_BUDGET = 700


def model_view(tool: dict[str, Any]) -> dict[str, Any]:
    """What a host hands the model for one tool (as benchmarks/run.py measures it)."""
    return {k: tool[k] for k in ("name", "title", "description", "inputSchema") if k in tool}


def size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.anyio
async def test_the_whole_tools_list_as_the_model_sees_it_fits_the_budget(client: Client) -> None:
    tools = [model_view(t.model_dump(by_alias=True, exclude_none=True)) for t in (await client.list_tools()).tools]
    names = {t["name"] for t in tools}

    assert {"get_summary", "get_status", "get_metrics", "get_overview", "find_campaigns"} <= names
    assert size(tools) <= TOOLS_LIST_BUDGET, {t["name"]: size(t) for t in tools}
    (find,) = [t for t in tools if t["name"] == "find_campaigns"]
    assert size(find) <= FIND_CAMPAIGNS_BUDGET
    assert "title" not in json.dumps(find["inputSchema"])  # no titles derived from parameter names
