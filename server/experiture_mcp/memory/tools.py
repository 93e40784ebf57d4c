"""The MCP side of memory: find_campaigns, remembered status resources in resources/list, argument completion."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.types import (
    CallToolResult,
    Completion,
    CompletionArgument,
    CompletionContext,
    PromptReference,
    Resource,
    ResourceTemplateReference,
    ToolAnnotations,
)
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel

from experiture_mcp.client import CampaignClient
from experiture_mcp.history.progress import COUNT_NAMES, Observation
from experiture_mcp.memory.entry import Entry
from experiture_mcp.memory.service import Found, Memory, MemoryUnavailable, Seed
from experiture_mcp.results import error_result, internal_error_result, ok_result

__all__ = ["CHANNELS", "MAX_LIMIT", "STATES", "CampaignMatches", "caller_token", "demo_seed", "register_memory"]

log = logging.getLogger(__name__)

MAX_LIMIT = 50
MAX_LISTED = 100  # remembered status resources in resources/list, and completion values
CHANNELS = ("email", "sms", "push", "direct_mail")
STATES = ("not_scheduled", "scheduled", "pending_or_overdue", "running", "completed", "failed")
LOCAL = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)
# The caller of the message being handled, set for every message, so that handlers the SDK gives no request
# context (completion) still know whose campaigns they may offer. Unset: nobody known, nothing offered.
_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("experiture_caller")


def caller_token() -> str | None:
    """The API token of the caller whose message is being handled, or None when not known."""
    return _CALLER.get(None)


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, frozen=True)


class Candidate(_Model):
    """One remembered campaign matching the query."""

    campaign_id: str
    name: str | None
    channel: str | None
    state: str | None = Field(description="Last known execution state; get_status gives the current one.")
    last_seen_at: datetime | None = Field(description="When this server last saw it in an API answer.")
    score: float = Field(description="0 to 100; how well the name matches the query.")


class CampaignMatches(_Model):
    """Remembered campaigns matching a name, best first (find_campaigns)."""

    query: str
    candidates: list[Candidate]
    matched: int = Field(description="Campaigns that matched at all; candidates holds the best of them.")
    remembered: int = Field(description="Campaigns remembered for this account.")
    ambiguous: bool = Field(description="True when the best candidates match about equally well: ask the user.")


def _matches(found: Found, query: str) -> CampaignMatches:
    return CampaignMatches(
        query=query,
        candidates=[
            Candidate(
                campaign_id=m.entry.campaign_id,
                name=m.entry.name,
                channel=m.entry.channel,
                state=m.entry.state,
                last_seen_at=m.entry.last_seen,
                score=m.score,
            )
            for m in found.matches
        ],
        matched=found.total,
        remembered=found.remembered,
        ambiguous=found.ambiguous,
    )


def _bare(schema: dict[str, Any]) -> None:
    # Every byte of a tool's schema is read by the model on every turn: no null defaults.
    if schema.get("default", 0) is None:
        del schema["default"]


def _untitled(tool: dict[str, Any]) -> dict[str, Any]:
    """find_campaigns without the titles pydantic derives from parameter names, which tell the model nothing."""
    if tool.get("name") != "find_campaigns":
        return tool
    schema = {k: v for k, v in tool["inputSchema"].items() if k != "title"}
    properties: dict[str, dict[str, Any]] = schema.get("properties", {})
    schema["properties"] = {name: {k: v for k, v in p.items() if k != "title"} for name, p in properties.items()}
    return {**tool, "inputSchema": schema}


Channel = Annotated[
    Literal["email", "sms", "push", "direct_mail"] | None,
    WithJsonSchema({"enum": list(CHANNELS)}),
    Field(json_schema_extra=_bare),
]
State = Annotated[
    Literal["not_scheduled", "scheduled", "pending_or_overdue", "running", "completed", "failed"] | None,
    WithJsonSchema({"enum": list(STATES)}),
    Field(description="Last known state", json_schema_extra=_bare),
]


def demo_seed(client: CampaignClient) -> Seed:
    """What the demo remembers before anything is looked up: every demo campaign the caller's token may read."""

    async def seed(token: str) -> list[Entry]:
        from experiture_mcp.memory.lookup import look_up
        from experiture_mcp.sandbox import DEMO_CAMPAIGNS, TENANT_B_CAMPAIGNS

        ids = [*DEMO_CAMPAIGNS.values(), *TENANT_B_CAMPAIGNS.values()]
        return await look_up(client, ids, token=token, source="demo", states=True)

    return seed


def demo_history(clock: Callable[[], datetime]) -> Callable[[str], list[tuple[str, Observation]]]:
    """What the demo has seen before it starts: the live push checked during each of its last eight runs (each a
    little different, one much worse), and twice during the current one."""

    def seed(token: str) -> list[tuple[str, Observation]]:
        from experiture_mcp.models import Counts
        from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, REMEMBERED_RUNS, Run, live_run, past_live_run

        if token != DEMO_TOKEN:
            return []
        tokyo, now = DEMO_CAMPAIGNS["tokyo-push"], clock()
        start = live_run(tokyo, now)[1].started_at
        # Each past run checked while it ran and after it completed, then the current one twice before now.
        checks: list[tuple[datetime, Run]] = []
        for back in range(REMEMBERED_RUNS, 0, -1):
            for minutes in (6, 25):
                run = past_live_run(tokyo, now, back, timedelta(minutes=minutes))
                checks.append((run.started_at + timedelta(minutes=minutes), run))
        recent = [t for t in (now - timedelta(minutes=9), now - timedelta(minutes=3)) if t >= start]
        checks += [(moment, live_run(tokyo, moment)[1]) for moment in recent]
        seen: list[tuple[str, Observation]] = []
        for moment, run in checks:
            counts = Counts(**dict(zip(COUNT_NAMES, run.counts, strict=True)))
            observation = Observation(moment, run.status, run.execution_id, run.started_at, run.completed_at, counts)
            seen.append((tokyo, observation))
        return seen

    return seed


def _caller_of(
    ctx: ServerRequestContext[Any, Any], grant_token: Callable[[], str | None], configured: str | None
) -> str | None:
    """The calling request's Experiture token: its OAuth grant's, else its X-Experiture-Token, else the configured."""
    own = grant_token()
    if own is None:
        headers = getattr(ctx.request, "headers", None)
        own = headers.get("x-experiture-token") if headers is not None else None
    return own.strip() if own else configured


def register_memory(
    mcp: MCPServer[Any],
    memory: Memory,
    configured_token: str | None,
    request_token: Callable[[Context[Any, Any]], str | None],
    clock: Callable[[], datetime],
    grant_token: Callable[[], str | None] = lambda: None,
) -> None:
    """Add find_campaigns, remembered resources and completion to `mcp`, all per caller (tenant).

    `grant_token` gives the calling OAuth grant's Experiture token (None otherwise): in that mode it, not the
    X-Experiture-Token header, names the caller, as for every tool.
    """

    async def know_caller(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        token = _caller_of(ctx, grant_token, configured_token)
        reset = _CALLER.set(token)
        try:
            result = await call_next(ctx)
        finally:
            _CALLER.reset(reset)
        # Results arrive here as the wire's JSON objects (camelCase), after the SDK shaped them.
        if ctx.method == "tools/list" and isinstance(result, dict):
            result = {**result, "tools": [_untitled(t) for t in result.get("tools", [])]}
        if ctx.method == "resources/list" and isinstance(result, dict) and not (ctx.params or {}).get("cursor"):
            listed = [r.model_dump(by_alias=True, mode="json", exclude_none=True) for r in await _remembered(token)]
            result = {**result, "resources": [*result.get("resources", []), *listed]}
        return result

    async def _remembered(token: str | None) -> list[Resource]:
        if not memory.enabled or token is None:
            return []
        try:
            entries = await memory.entries(token)
        except MemoryUnavailable:
            return []
        return [
            Resource(
                uri=f"experiture://campaigns/{e.campaign_id}/status",
                name=f"campaign_status {e.campaign_id}",
                title=e.name or e.campaign_id,
                description="Remembered campaign: its schedule and latest execution as JSON (campaigns:read).",
                mime_type="application/json",
            )
            # Only campaigns whose status was read before: a host browsing resources should not meet errors.
            for e in [e for e in entries if e.state is not None][:MAX_LISTED]
        ]

    mcp.middleware.append(know_caller)

    @mcp.tool(title="Find campaigns by name", annotations=LOCAL)
    async def find_campaigns(
        query: Annotated[str, Field(description="Words of its name, e.g. spring mailing")],
        ctx: Context[Any, Any],
        limit: Annotated[int, Field(ge=1, le=MAX_LIMIT)] = 10,
        channel: Channel = None,
        state: State = None,
    ) -> Annotated[CallToolResult, CampaignMatches]:
        """Find campaign ids by name among those this server has seen for this account. Use it first when the user names a campaign instead of giving an id; typos and any word order work. If ambiguous, let the user choose."""  # noqa: E501
        token = request_token(ctx) or configured_token
        try:
            found = await memory.find(token, query, limit=limit, channel=channel, state=state)
        except MemoryUnavailable as exc:
            return error_result(f"find_campaigns cannot search: {exc}")
        except Exception:
            log.exception("find_campaigns crashed")
            return internal_error_result("find_campaigns failed")
        from experiture_mcp.memory.text import render_found

        matches = _matches(found, query)
        return ok_result(render_found(found, query, clock()), matches.model_dump(mode="json", by_alias=True))

    @mcp.completion()
    async def complete(
        ref: PromptReference | ResourceTemplateReference,
        argument: CompletionArgument,
        context: CompletionContext | None,
    ) -> Completion | None:
        if argument.name not in ("campaign_id", "campaign_ids"):
            return None
        token = caller_token()
        if not memory.enabled or token is None:
            return None
        try:
            ids = [e.campaign_id for e in await memory.entries(token)]
        except MemoryUnavailable:
            return None
        # A list completes its last item; each offered value keeps the items before it, and skips ids already listed.
        head, comma, typed = argument.value.rpartition(",")
        typed = typed.strip().lower()
        listed = {item.strip().lower() for item in head.split(",")}
        values = [head + comma + cid for cid in ids if cid.startswith(typed) and cid not in listed]
        return Completion(values=values[:MAX_LISTED], total=len(values), has_more=len(values) > MAX_LISTED)
