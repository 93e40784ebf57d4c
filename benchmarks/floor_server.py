"""The SDK floor: a minimal MCPServer with one tool that makes one GET with httpx2 and returns the body."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx2
from mcp.server import MCPServer
from mcp.server.mcpserver import Context


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
