"""What a status or metrics answer adds from the remembered snapshots: the change since the last check, progress."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar, cast

import anyio

from experiture_mcp.history.progress import (
    MIN_RATE_SECONDS,
    Observation,
    Progress,
    compare,
    describe_change,
    describe_progress,
    estimate,
    progress_line,
    rate_pair,
    since_last_check,
)
from experiture_mcp.history.snapshots import Snapshot, expand, same
from experiture_mcp.memory import MemoryUnavailable

__all__ = ["Checked", "Stored", "Timelines", "check", "fetch_meanwhile", "last_known", "progress_of", "progress_view"]

log = logging.getLogger(__name__)
T = TypeVar("T")


class Timelines(Protocol):
    """Where the snapshots are (memory.Memory)."""

    @property
    def enabled(self) -> bool: ...
    async def timeline(
        self, token: str | None, campaign_id: str, stored: Sequence[Snapshot] | None = None
    ) -> list[Snapshot]: ...


class Stored(Protocol):
    """Where the snapshots of every process are (memory.Memory)."""

    @property
    def enabled(self) -> bool: ...
    def stored_read(self, token: str, campaign_id: str) -> Literal["at once", "meanwhile", "later"]: ...
    async def stored(self, token: str | None, campaign_id: str) -> list[Snapshot] | None: ...


async def fetch_meanwhile(
    memory: Stored | None, token: str | None, campaign_id: str, fetch: Callable[[], Awaitable[T]]
) -> tuple[T, list[Snapshot] | None]:
    """`fetch()`'s answer and what the store holds of the campaign's latest checks (another worker or replica may
    have checked since this process did), read meanwhile so that its latency hides behind the upstream request's."""
    if memory is None or not memory.enabled or token is None:
        return await fetch(), None
    how = memory.stored_read(token, campaign_id)
    if how == "later":
        return await fetch(), None
    if how == "at once":  # microseconds: less than running it beside the request
        stored = await memory.stored(token, campaign_id)
        return await fetch(), stored
    stored = None
    failure: Exception | None = None
    answer: T | None = None

    async def read() -> None:
        nonlocal stored
        with anyio.CancelScope(shield=True):  # a read (and the flush before it) is never cut half-way
            stored = await memory.stored(token, campaign_id)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read)
        try:
            answer = await fetch()
        except Exception as exc:  # raised below, outside the task group (which would wrap it in a group)
            failure = exc
    if failure is not None:
        raise failure
    return cast("T", answer), stored


@dataclass(frozen=True)
class Checked:
    """Lines to add to the answer's text and fields to add to its structured content."""

    lines: list[str] = field(default_factory=list[str])
    structured: dict[str, Any] = field(default_factory=dict[str, Any])
    stalled: bool = False


def progress_of(timeline: list[Snapshot], after: Observation, now: datetime) -> Progress | None:
    """Rate and ETA of a running execution from its remembered snapshots and this answer, or None."""
    if timeline and same(timeline[0].observation, after):
        # Nothing moved since the latest snapshot was first seen: measure over all that time (a stall shows).
        first = timeline[0].observation
        if (after.fetched_at - first.fetched_at).total_seconds() >= MIN_RATE_SECONDS:
            return estimate(first, after, now)
    pair = rate_pair([*expand(timeline), after])
    return estimate(*pair, now) if pair is not None else None


def last_known(timeline: list[Snapshot]) -> Observation:
    """The latest snapshot as of its last check, its unknown run facts (a metrics answer's) from earlier ones."""
    latest = timeline[0]
    known = replace(latest.observation, fetched_at=latest.last_checked)
    for older in timeline[1:]:
        if known.state is not None or known.execution_id is not None:
            break
        o = older.observation
        known = replace(
            known, state=o.state, execution_id=o.execution_id, started_at=o.started_at, completed_at=o.completed_at
        )
    return known


def _apart(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"


def progress_view(p: Progress | None, text: str) -> dict[str, Any]:
    """The `progress` block of the structured content, in the shape the funnel view reads."""
    view: dict[str, Any] = {"text": text}
    if p is None:
        return view
    view["ratePerMinute"] = round(p.sent_per_minute + p.failed_per_minute, 3)
    if p.remaining is not None:
        view["remaining"] = p.remaining
    if p.eta is not None and not p.stalled:
        view["etaAt"] = p.eta.astimezone(UTC).isoformat().replace("+00:00", "Z")
    view["basedOn"] = f"From two checks {_apart(p.seconds)} apart, as observed by this server."
    return view


async def check(
    memory: Timelines,
    token: str | None,
    campaign_id: str,
    after: Observation,
    timezone: str | None,
    now: datetime,
    stored: list[Snapshot] | None = None,
) -> Checked:
    """The change since the last remembered check (this process's, or `stored`'s when newer: fetch_meanwhile) and,
    for a running execution, its progress; nothing without memory. Only reads: the answer is recorded by
    Memory.note."""
    if not memory.enabled or token is None:
        return Checked()
    try:
        timeline = await memory.timeline(token, campaign_id, stored)
    except MemoryUnavailable as exc:
        log.info("history of %s unavailable: %s", campaign_id, exc)
        return Checked()
    lines: list[str] = []
    structured: dict[str, Any] = {}
    if timeline:
        before = last_known(timeline)
        change = compare(before, after)
        text = describe_change(change, before, after, since_last_check(before, now))
        lines.append(text)
        structured["sinceLastCheck"] = {"text": text, **change.model_dump(mode="json", exclude_none=True)}
    stalled = False
    if after.state == "running" and after.counts is not None:
        p = progress_of(timeline, after, now)
        if p is not None:
            text = describe_progress(p, timezone, now)
            stalled = p.stalled
        else:
            text = progress_line([*expand(timeline), after], timezone, now) or ""
        if text:
            lines.append(text)
            structured["progress"] = progress_view(p, text)
    return Checked(lines, structured, stalled)
