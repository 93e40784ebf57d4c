"""get_history: the runs of a campaign this server has seen, each against the one before, from the snapshots."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from experiture_mcp.errors import InvalidCampaignId
from experiture_mcp.history.progress import CamelModel, failure_rate
from experiture_mcp.history.snapshots import Digest, Snapshot, digest
from experiture_mcp.memory import Memory, MemoryUnavailable
from experiture_mcp.models import CAMPAIGN_ID_DESCRIPTION, campaign_id_from, dump, is_campaign_id
from experiture_mcp.render import percent, plain, render_error, span, thousands
from experiture_mcp.results import READ_ONLY, error_result, internal_error_result, ok_result
from experiture_mcp.views import HISTORY

__all__ = [
    "DEFAULT_RUNS",
    "History",
    "Run",
    "SnapshotRow",
    "history_from",
    "history_of",
    "register_history",
    "render_history",
]

log = logging.getLogger(__name__)

DEFAULT_RUNS = 20
MAX_RUNS = 100
RECENT = 8  # snapshots of the current run listed after the runs


class Run(CamelModel):
    """One execution seen, as last seen."""

    execution_id: str | None
    state: str | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_seconds: float | None
    scheduled: int | None
    sent: int | None
    failed: int | None
    failure_rate: float | None = Field(description="failed / (sent + failed), 0 to 1.")
    first_seen: datetime
    last_seen: datetime


class SnapshotRow(CamelModel):
    """One stored snapshot: the answer first seen like this, and when it was last seen unchanged."""

    fetched_at: datetime
    last_checked: datetime
    state: str | None
    sent: int | None
    failed: int | None


class History(CamelModel):
    """What this server observed of one campaign (get_history)."""

    campaign_id: str
    observed_since: datetime | None = Field(description="The first snapshot kept; nothing earlier is known.")
    snapshots: int = Field(description="Snapshots kept for this campaign.")
    runs: list[Run] = Field(description="Runs seen, newest first.")
    more_runs: int = Field(description="Older runs seen beyond the limit.")
    recent: list[SnapshotRow] = Field(description="Latest snapshots of the newest run, newest first.")


def history_from(campaign_id: str, d: Digest) -> History:
    """The get_history answer from the digest of a campaign's snapshots."""
    runs = [
        Run(
            execution_id=r.execution_id,
            state=r.state,
            started_at=r.started_at,
            completed_at=r.completed_at,
            duration_seconds=(r.completed_at - r.started_at).total_seconds()
            if r.started_at and r.completed_at
            else None,
            scheduled=r.counts.scheduled if r.counts else None,
            sent=r.counts.sent if r.counts else None,
            failed=r.counts.failed if r.counts else None,
            failure_rate=failure_rate(r.counts),
            first_seen=r.first_seen,
            last_seen=r.last_seen,
        )
        for r in d.runs
    ]
    recent = [
        SnapshotRow(
            fetched_at=s.observation.fetched_at,
            last_checked=s.last_checked,
            state=s.observation.state,
            sent=s.observation.counts.sent if s.observation.counts else None,
            failed=s.observation.counts.failed if s.observation.counts else None,
        )
        for s in d.recent
    ]
    return History(
        campaign_id=campaign_id,
        observed_since=d.observed_since,
        snapshots=d.snapshots,
        runs=runs,
        more_runs=d.more_runs,
        recent=recent,
    )


def history_of(campaign_id: str, timeline: Sequence[Snapshot], limit: int) -> History:
    """Group snapshots (newest first) into runs: one per execution id, a snapshot without one joins the run before."""
    return history_from(campaign_id, digest(timeline, limit, RECENT))


def _when(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%m-%d %H:%M") if moment is not None else "?"


def _n(value: int | None) -> str:
    return thousands(value) if value is not None else "?"


def _signed(delta: int) -> str:
    return f"{'+' if delta >= 0 else '−'}{thousands(abs(delta))}"


def _versus(run: Run, before: Run) -> str:
    if run.completed_at is None and run.state in ("running", None):
        return " | vs before: not finished yet"
    parts: list[str] = []
    if run.sent is not None and before.sent is not None and run.sent != before.sent:
        parts.append(f"sent {_signed(run.sent - before.sent)}")
    if run.failed is not None and before.failed is not None and run.failed != before.failed:
        parts.append(f"failed {_signed(run.failed - before.failed)}")
    if run.sent is not None and run.failed is not None and before.sent is not None and before.failed is not None:
        old, new = percent(before.failed, before.sent + before.failed), percent(run.failed, run.sent + run.failed)
        if old != new:
            parts.append(f"failure rate {old} → {new}")
    if run.duration_seconds is not None and before.duration_seconds is not None:
        delta = run.duration_seconds - before.duration_seconds
        if abs(delta) >= 60:
            parts.append(f"{span(timedelta(seconds=abs(delta)))} {'longer' if delta > 0 else 'shorter'}")
    return f" | vs before: {', '.join(parts)}" if parts else " | vs before: same"


def render_history(h: History, now: datetime) -> str:
    """The text the model reads: runs newest first, each against the one before, then the newest run's snapshots."""
    if not h.snapshots:
        return (
            f"No history of campaign {h.campaign_id}: this server has not observed it yet (or forgot it). "
            "Each get_status, get_metrics or get_summary answer is recorded; call get_status to start."
        )
    assert h.observed_since is not None
    lines = [
        f"History of campaign {h.campaign_id} as observed by this server since {_when(h.observed_since)} UTC "
        f"({span(now - h.observed_since)} ago, {h.snapshots} snapshots): only what it saw; runs it never saw are "
        "missing and counts are as last seen. Times UTC (month-day hour:minute).",
        f"Runs seen, newest first ({len(h.runs)}{f', {h.more_runs} older not shown' if h.more_runs else ''}): "
        "started, duration, scheduled, sent, failed, failure rate",
    ]
    for i, run in enumerate(h.runs):
        duration = (
            span(timedelta(seconds=run.duration_seconds)) if run.duration_seconds is not None else plain(run.state)
        )
        rate = percent(run.failed, run.sent + run.failed) if run.sent is not None and run.failed is not None else "?"
        line = f"{_when(run.started_at)} {duration} {_n(run.scheduled)} {_n(run.sent)} {_n(run.failed)} {rate}"
        if i + 1 < len(h.runs):
            line += _versus(run, h.runs[i + 1])
        lines.append(line)
    if h.recent:
        lines.append("Latest snapshots of the newest run (first seen–last seen, state, sent, failed):")
        lines.extend(
            f"{_when(s.fetched_at)}–{s.last_checked.astimezone(UTC):%H:%M} {plain(s.state)} {_n(s.sent)} {_n(s.failed)}"
            for s in h.recent
        )
    return "\n".join(lines)


def register_history(
    mcp: MCPServer[Any], memory: Memory, request_token: Callable[[Context[Any, Any]], str | None]
) -> None:
    """Add the get_history tool to `mcp`: read-only, from this server's own snapshots, no upstream request."""

    @mcp.tool(title="Runs seen", annotations=READ_ONLY, meta=HISTORY.tool_meta)
    async def get_history(
        campaign_id: Annotated[str, Field(description=CAMPAIGN_ID_DESCRIPTION)],
        ctx: Context[Any, Any],
        limit: Annotated[int, Field(ge=1, le=MAX_RUNS)] = DEFAULT_RUNS,
    ) -> Annotated[CallToolResult, History]:
        """Runs of a campaign this server saw, newest first, each vs the one before; only what it observed."""
        state = ctx.request_context.lifespan_context
        token = request_token(ctx) or state.settings.token
        given, campaign_id = campaign_id, (campaign_id_from(campaign_id) or campaign_id).lower()
        if not is_campaign_id(campaign_id):
            return error_result(render_error("get_history", given, InvalidCampaignId(given)))
        try:
            history = history_from(campaign_id, await memory.digest(token, campaign_id, limit, RECENT))
            text = render_history(history, state.clock())
        except MemoryUnavailable as exc:
            return error_result(f"get_history for campaign {campaign_id}: no history, {exc}")
        except Exception:
            log.exception("get_history %s crashed", campaign_id[:80])
            return internal_error_result(f"get_history failed for campaign {campaign_id}")
        return ok_result(text, dump(history))
