"""get_overview: many campaigns' status and counts in one call, those needing attention first."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Protocol, cast

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field, WithJsonSchema

from experiture_mcp.client import CampaignClient
from experiture_mcp.config import Settings
from experiture_mcp.errors import (
    APIError,
    CampaignNotFound,
    ExperitureError,
    InsufficientScope,
    InvalidCampaignId,
    NotConfigured,
    StatusInconsistent,
    UnsupportedCampaignType,
    UpstreamTimeout,
)
from experiture_mcp.history.checks import check
from experiture_mcp.history.progress import Observation
from experiture_mcp.history.snapshots import Snapshot
from experiture_mcp.memory.entry import Entry, entry_from
from experiture_mcp.memory.service import HOW_REMEMBERED, MemoryUnavailable
from experiture_mcp.models import (
    Attention,
    CampaignMetrics,
    CampaignStatus,
    CampaignSummary,
    Counts,
    Overview,
    OverviewError,
    OverviewRow,
    OverviewTotal,
    campaign_id_from,
    dump,
    is_campaign_id,
)
from experiture_mcp.render import HIGH_FAILURE_RATE, overview_warnings, render_error, render_overview, short_reason
from experiture_mcp.results import READ_ONLY, error_result, internal_error_result, ok_result
from experiture_mcp.views import OVERVIEW

__all__ = ["MAX_CAMPAIGNS", "OVERVIEW_CONCURRENCY", "build_overview", "parse_campaign_ids", "register_overview"]

log = logging.getLogger(__name__)

MAX_CAMPAIGNS = 50
OVERVIEW_CONCURRENCY = 8  # requests one overview keeps in flight; the client's own limit caps all calls together
# Rank of each attention reason: lower comes first; rows needing none come last, in the order they were asked for.
_RANK: dict[Attention | None, int] = {
    "failed": 0,
    "pending_or_overdue": 1,
    "inconsistent": 2,
    "high_failure_rate": 3,
    "error": 4,
    None: 5,
}
# Errors about one campaign; any other error that every campaign fails with is about the token or the API.
_CAMPAIGN_ERRORS = (CampaignNotFound, UnsupportedCampaignType, StatusInconsistent, InvalidCampaignId)
_SEPARATORS = re.compile(r"[\s,;]+")

CampaignIds = Annotated[
    # Published as an array (of UUIDs or links); also accepted as one string, for clients that send arrays as text.
    Annotated[
        list[str],
        WithJsonSchema(
            {
                "type": "array",
                "items": {"type": "string"},
                "minItems": 1,
                "maxItems": MAX_CAMPAIGNS,
            }
        ),
    ]
    | str,
    Field(
        description=f"Up to {MAX_CAMPAIGNS} campaign UUIDs or links as a JSON array (a JSON string or "
        "comma-separated list also works). Omit for the remembered campaigns.",
    ),
]


class Remembered(Protocol):
    """Where campaigns seen in answers are remembered (memory.Memory)."""

    @property
    def enabled(self) -> bool: ...
    def note(
        self,
        token: str | None,
        entries: Iterable[Entry | None],
        observations: Iterable[tuple[str, Observation]] = (),
    ) -> None: ...
    async def entries(self, token: str | None) -> list[Entry]: ...
    async def timeline(
        self, token: str | None, campaign_id: str, stored: Sequence[Snapshot] | None = None
    ) -> list[Snapshot]: ...
    async def stored(self, token: str | None, campaign_id: str) -> list[Snapshot] | None: ...


class OverviewState(Protocol):
    """The parts of the server's lifespan state that get_overview uses."""

    @property
    def settings(self) -> Settings: ...
    @property
    def client(self) -> CampaignClient: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def memory(self) -> Remembered: ...


def parse_campaign_ids(value: list[str] | str) -> list[str]:
    """The distinct ids in `value` (a list, a JSON array in a string, or a comma/space list), first-seen order."""
    items: list[Any]
    if isinstance(value, str):
        text = value.strip()
        try:
            decoded: Any = json.loads(text) if text.startswith(("[", '"')) else text
        except ValueError:
            decoded = text  # a broken JSON array is still a list of ids with some brackets around it
        items = cast(list[Any], decoded) if isinstance(decoded, list) else [str(decoded) if decoded else text]
    else:
        items = list(value)
    seen: dict[str, str] = {}
    for item in items:
        # A whole item that is a link stays whole (its query may hold commas); anything else is split.
        whole = campaign_id_from(str(item))
        for token in [whole] if whole else _SEPARATORS.split(str(item)):
            token = token.strip("[]\"'")
            token = campaign_id_from(token) or token
            if token and token.lower() not in seen:
                seen[token.lower()] = token
    return list(seen.values())


@dataclass
class _Fetched:
    status: CampaignStatus | None = None
    status_error: ExperitureError | None = None
    metrics: CampaignMetrics | None = None
    summary: CampaignSummary | None = None  # only for a status that cannot be assembled: its name and last run


async def build_overview(
    client: CampaignClient,
    campaign_ids: list[str],
    *,
    token: str | None,
    now: datetime,
    concurrency: int,
    deadline_seconds: float,
    statuses: dict[str, CampaignStatus] | None = None,
) -> Overview:
    """Fetch status and metrics for each campaign, at most `concurrency` requests at once, and build the rows.

    Raises:
        ExperitureError: every campaign failed with the same error, one about the token or the API (not configured,
            token rejected or without campaigns:read, API unreachable): the rows would only repeat it.
    """
    fetched = {cid: _Fetched() for cid in campaign_ids}
    valid = [cid for cid in campaign_ids if is_campaign_id(cid)]
    limiter = anyio.CapacityLimiter(concurrency)
    metrics_denied: list[InsufficientScope] = []  # set once: no more metrics requests after the first 403

    async def get_status(cid: str) -> None:
        async with limiter:
            try:
                fetched[cid].status = await client.get_status(cid, token=token)
            except ExperitureError as exc:
                fetched[cid].status_error = exc
        if isinstance(fetched[cid].status_error, StatusInconsistent):
            async with limiter:
                try:
                    fetched[cid].summary = await client.get_summary(cid, token=token)
                except ExperitureError as exc:
                    log.info("get_overview: summary of %s unavailable too: %s", cid, exc)

    async def get_metrics(cid: str) -> None:
        async with limiter:
            if metrics_denied:
                return
            try:
                fetched[cid].metrics = await client.get_metrics(cid, token=token)
            except InsufficientScope as exc:
                metrics_denied.append(exc)
            except ExperitureError as exc:
                log.info("get_overview: metrics of %s unavailable, using status counts: %s", cid, exc)

    with anyio.move_on_after(deadline_seconds):
        async with anyio.create_task_group() as tg:
            for cid in valid:
                tg.start_soon(get_status, cid)
                tg.start_soon(get_metrics, cid)
    late = UpstreamTimeout(f"no answer within the {deadline_seconds:g} s limit of one call")
    common = _common_failure([fetched[cid] for cid in valid], late)
    if common is not None:
        raise common
    if statuses is not None:
        statuses.update({cid: f.status for cid, f in fetched.items() if f.status is not None})
    rows = [_row(cid, fetched[cid], now, late) for cid in campaign_ids]
    rows.sort(key=lambda r: _RANK[r.attention])
    notes: list[str] = []
    if valid and all(isinstance(fetched[cid].status_error, InsufficientScope) for cid in valid):
        notes.append(
            "The token lacks campaigns:read, so names, states and run times are unknown; "
            "the counts come from get_metrics (analytics:read)."
        )
    if metrics_denied and any(r.counts_from == "status" for r in rows):
        notes.append("Counts come from get_status: the token lacks analytics:read, so get_metrics was skipped.")
    return Overview(rows=rows, total=_total(rows), notes=notes)


def _row(cid: str, f: _Fetched, now: datetime, late: ExperitureError) -> OverviewRow:
    metrics_counts = f.metrics.counts if f.metrics is not None else None
    if f.status is None:
        error = f.status_error or (InvalidCampaignId(cid) if not is_campaign_id(cid) else late)
        latest = f.summary.latest_execution if f.summary is not None else None
        if metrics_counts is None and latest is not None and latest.counts is not None:
            row = _counts(latest.counts, "summary")
        else:
            row = _counts(metrics_counts, "metrics")
        high = row["failure_rate"] is not None and row["failure_rate"] >= HIGH_FAILURE_RATE
        return OverviewRow(
            campaign_id=cid,
            name=f.summary.name if f.summary is not None else None,
            state=None,
            last_run_at=latest.last_execution_at if latest is not None else None,
            attention="inconsistent"
            if isinstance(error, StatusInconsistent)
            else ("high_failure_rate" if high else "error"),
            warnings=overview_warnings(None, metrics_counts or (latest.counts if latest else None), None, now),
            error=_error(error),
            **row,
        )
    s = f.status
    run = s.execution.last_execution
    state = s.execution.state
    # A campaign that never ran has no counts, even though get_metrics reports zeros for it.
    counts, source = (metrics_counts, "metrics") if metrics_counts is not None and run is not None else (None, None)
    if counts is None and run is not None and run.counts is not None:
        counts, source = run.counts, "status"
    send_at = s.schedule.send_at if s.schedule is not None and state in ("scheduled", "pending_or_overdue") else None
    row = _counts(counts, source)
    rate = row["failure_rate"]
    attention: Attention | None = (
        "failed"
        if state == "failed"
        else "pending_or_overdue"
        if state == "pending_or_overdue"
        else "high_failure_rate"
        if rate is not None and rate >= HIGH_FAILURE_RATE
        else None
    )
    return OverviewRow(
        campaign_id=cid,
        name=s.name,
        state=state,
        attention=attention,
        last_run_at=run.started_at if run is not None else None,
        next_send_at=send_at,
        warnings=overview_warnings(state, counts, send_at, now),
        **row,
    )


def _counts(counts: Counts | None, source: str | None) -> dict[str, Any]:
    if counts is None:
        return {"sent": None, "failed": None, "failure_rate": None, "counts_from": None}
    resolved = counts.sent + counts.failed
    rate = round(counts.failed / resolved, 6) if resolved else None
    return {"sent": counts.sent, "failed": counts.failed, "failure_rate": rate, "counts_from": source}


def _error(error: ExperitureError) -> OverviewError:
    api = error if isinstance(error, APIError) else None
    return OverviewError(
        endpoint="none" if isinstance(error, InvalidCampaignId | NotConfigured) else "status",
        http_status=api.status if api else None,
        code=api.code if api else None,
        reason=short_reason(error, "campaigns:read"),
        retryable=bool(api and api.retryable),
    )


def _total(rows: list[OverviewRow]) -> OverviewTotal:
    sent = sum(r.sent or 0 for r in rows)
    failed = sum(r.failed or 0 for r in rows)
    return OverviewTotal(
        campaigns=len(rows),
        needing_attention=sum(r.attention is not None for r in rows),
        errors=sum(r.error is not None for r in rows),
        sent=sent,
        failed=failed,
        failure_rate=round(failed / (sent + failed), 6) if sent + failed else None,
    )


def _common_failure(fetched: list[_Fetched], late: ExperitureError) -> ExperitureError | None:
    """The one error every campaign failed with, when it is about the token or the API rather than a campaign."""
    if not fetched or any(f.status is not None or f.metrics is not None for f in fetched):
        return None
    errors = [f.status_error or late for f in fetched]
    if len({type(e) for e in errors}) != 1 or isinstance(errors[0], _CAMPAIGN_ERRORS):
        return None
    return errors[0]


async def _with_history(
    overview: Overview,
    memory: Remembered,
    tenant: str | None,
    statuses: dict[str, CampaignStatus],
    observed: dict[str, Observation],
    now: datetime,
) -> Overview:
    """Each row with what changed since the last check, and a warning for a run that stalled."""
    rows: list[OverviewRow] = []
    for row in overview.rows:
        status = statuses.get(row.campaign_id)
        if status is None:
            rows.append(row)
            continue
        zone = status.schedule.timezone if status.schedule else None
        # The store's newest check too: another worker or replica may have checked since this process did.
        stored = await memory.stored(tenant, row.campaign_id)
        checked = await check(memory, tenant, row.campaign_id, observed[row.campaign_id], zone, now, stored)
        change = checked.structured.get("sinceLastCheck")
        update: dict[str, Any] = {"since_last_check": change["text"] if change else None}
        if checked.stalled:
            update["warnings"] = [*row.warnings, "no count moved between checks minutes apart: the run may be stalled"]
        rows.append(row.model_copy(update=update))
    return overview.model_copy(update={"rows": rows})


def register_overview(mcp: MCPServer[Any], request_token: Callable[[Context[Any, Any]], str | None]) -> None:
    """Add the get_overview tool to `mcp`; `request_token` gives the caller's own API token, if any."""

    @mcp.tool(title="Overview of many campaigns", annotations=READ_ONLY, meta=OVERVIEW.tool_meta)
    async def get_overview(
        ctx: Context[OverviewState, Any], campaign_ids: CampaignIds = ""
    ) -> Annotated[CallToolResult, Overview]:
        """Status of up to 50 campaigns at once: one row each (name, state, last run, sent, failed, failure rate, warnings), those needing attention first, then a total. Use it for "which campaigns need attention?" or comparisons, then get_status or get_summary on the few that matter. A campaign's error gets its own row, not a failed call. Needs campaigns:read (analytics:read adds metrics)."""  # noqa: E501
        state = ctx.request_context.lifespan_context
        token = request_token(ctx)
        tenant = token or state.settings.token
        ids = parse_campaign_ids(campaign_ids)
        notes: list[str] = []
        if not ids:
            try:
                remembered = [e.campaign_id for e in await state.memory.entries(tenant)]
            except MemoryUnavailable as exc:
                return error_result(f"get_overview without campaign ids covers the remembered campaigns, but: {exc}")
            if not remembered:
                return error_result(
                    "get_overview got no campaign ids, and no campaigns are remembered for this account yet.\n"
                    f"Call it with campaign_ids as a JSON array of campaign UUIDs. {HOW_REMEMBERED}"
                )
            ids = remembered[:MAX_CAMPAIGNS]
            left = len(remembered) - len(ids)
            notes.append(
                f"No ids were given: this covers the {len(ids)} most recently seen of {len(remembered)} remembered "
                f"campaigns; {left} were left out. To narrow it, pass campaign_ids (find_campaigns finds them by name)."
                if left
                else f"No ids were given: this covers all {len(ids)} remembered campaigns."
            )
        if len(ids) > MAX_CAMPAIGNS:
            return error_result(
                f"get_overview accepts at most {MAX_CAMPAIGNS} campaign ids per call; {len(ids)} distinct ids "
                f"were given. No request was made.\nCall it once per batch of up to {MAX_CAMPAIGNS} ids."
            )
        statuses: dict[str, CampaignStatus] = {}
        observed: dict[str, Observation] = {}
        try:
            overview = await build_overview(
                state.client,
                ids,
                token=token,
                now=state.clock(),
                concurrency=min(OVERVIEW_CONCURRENCY, state.settings.max_concurrency),
                deadline_seconds=state.settings.deadline_seconds,
                statuses=statuses,
            )
            now = state.clock()
            observed = {cid: Observation.of_status(s, now) for cid, s in statuses.items()}
            overview = await _with_history(overview, state.memory, tenant, statuses, observed, now)
        except ExperitureError as exc:
            log.info("get_overview of %d campaigns: %s", len(ids), exc)
            n = sum(is_campaign_id(cid) for cid in ids)
            subject = f"get_overview failed for all {n} campaign{'s' if n != 1 else ''}"
            return error_result(
                render_error("get_overview", "", exc, subject=subject, over_http=ctx.headers is not None)
            )
        except Exception:
            log.exception("get_overview of %d campaigns crashed", len(ids))
            return internal_error_result("get_overview failed", ", and use get_status per campaign meanwhile")
        state.memory.note(tenant, [entry_from(row) for row in overview.rows if row.error is None], observed.items())
        if notes:
            overview = overview.model_copy(update={"notes": [*notes, *overview.notes]})
        return ok_result(render_overview(overview, state.clock()), dump(overview))
