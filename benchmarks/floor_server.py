"""The SDK floor: a minimal MCPServer with one tool that makes one GET with httpx2 and returns the body.

With FLOOR_RENDER=1 the same tool returns what ours returns instead (the validated model as structured content and
our text), so the latency benchmark can tell the cost of our model and text from the cost of our client around the GET.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent


@dataclass
class State:
    """The one shared upstream client, as the SDK's lifespan docs recommend."""

    http: httpx2.AsyncClient


@asynccontextmanager
async def lifespan(_: MCPServer[State]) -> AsyncGenerator[State]:
    async with httpx2.AsyncClient(
        base_url=os.environ["FLOOR_BASE_URL"] + "/",
        headers={"Authorization": f"Bearer {os.environ['FLOOR_TOKEN']}"},
        timeout=httpx2.Timeout(10.0),
    ) as http:
        yield State(http=http)


# WARNING like ours: at the SDK's default INFO, httpx2 writes one stderr line per request.
mcp = MCPServer("floor", lifespan=lifespan, log_level="WARNING")

if os.environ.get("FLOOR_RENDER") == "1":
    from experiture_mcp.logs import redact
    from experiture_mcp.models import CampaignStatus, dump
    from experiture_mcp.render import render_status

    @mcp.tool(name="get_status")
    async def get_status_rendered(campaign_id: str, ctx: Context[State]) -> Annotated[CallToolResult, CampaignStatus]:
        """Status of one campaign."""
        response = await ctx.request_context.lifespan_context.http.get(f"campaigns/{campaign_id}/status")
        model = CampaignStatus.model_validate(json.loads(response.content)["data"])
        text = redact(render_status(model, datetime.now(UTC)))
        return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=dump(model))

else:

    @mcp.tool()
    async def get_status(campaign_id: str, ctx: Context[State]) -> str:
        """Status of one campaign, as the API's JSON."""
        response = await ctx.request_context.lifespan_context.http.get(f"campaigns/{campaign_id}/status")
        return response.text


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":  # the same HTTP mode as ours: stateless, JSON responses
        mcp.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]), stateless_http=True, json_response=True)
    else:
        mcp.run()
