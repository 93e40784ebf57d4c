"""Pure arithmetic and text of a campaign's progress: what changed between two checks, the rate, the ETA, a stall."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary, Counts
from experiture_mcp.render import describe_time, percent, plain, span, thousands

__all__ = [
    "COUNT_NAMES",
    "MAX_ETA",
    "MIN_RATE_SECONDS",
    "STALL_SECONDS",
    "CamelModel",
    "Change",
    "Observation",
    "Progress",
    "compare",
    "describe_change",
    "describe_progress",
    "estimate",
    "eta_clock",
    "failure_rate",
    "progress_line",
    "rate_pair",
    "since_last_check",
]

COUNT_NAMES = ("scheduled", "hydrated", "composed", "injected", "sent", "failed")
MIN_RATE_SECONDS = 30.0  # two checks closer than this say more about jitter than about speed
STALL_SECONDS = 120.0  # no count moving for this long in a running execution is worth a warning
MAX_ETA = timedelta(days=30)  # beyond this an estimate is no estimate; also keeps every datetime far from year 9999


@dataclass(frozen=True)
class Observation:
    """What one successful answer said about a campaign's latest run, and when it was fetched."""

    fetched_at: datetime
    state: str | None  # None when the answer does not report it (get_metrics)
    execution_id: str | None  # None when unknown (get_metrics, get_summary) or when there is no run
    started_at: datetime | None
    completed_at: datetime | None
    counts: Counts | None

    @classmethod
    def of_status(cls, status: CampaignStatus, fetched_at: datetime) -> Observation:
        """An observation from a get_status answer."""
        run = status.execution.last_execution
        return cls(
            fetched_at=fetched_at,
            state=status.execution.state,
            execution_id=run.execution_id if run is not None else None,
            started_at=run.started_at if run is not None else None,
            completed_at=run.completed_at if run is not None else None,
            counts=run.counts if run is not None else None,
        )

    @classmethod
    def of_summary(cls, summary: CampaignSummary, fetched_at: datetime) -> Observation:
        """An observation from a get_summary answer (no execution id or completion time)."""
        latest = summary.latest_execution
        return cls(
            fetched_at=fetched_at,
            state=latest.status if latest is not None else None,
            execution_id=None,
            started_at=latest.last_execution_at if latest is not None else None,
            completed_at=None,
            counts=latest.counts if latest is not None else None,
        )

    @classmethod
    def of_metrics(cls, metrics: CampaignMetrics, fetched_at: datetime) -> Observation:
        """An observation from a get_metrics answer (counts only)."""
        return cls(fetched_at, None, None, None, None, metrics.counts)

    @property
    def resolved(self) -> int | None:
        """Messages sent or failed so far, or None without counts."""
        return None if self.counts is None else self.counts.sent + self.counts.failed


class CamelModel(BaseModel):
    """A frozen model that is camelCase on the wire, like the API's and the other tools' structured content."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, serialize_by_alias=True, frozen=True)


class Change(CamelModel):
    """What differs between an earlier and a later observation of one campaign."""

    since: datetime = Field(description="When the earlier observation was fetched.")
    seconds: float = Field(ge=0, description="Time between the two observations.")
    new_run: bool = Field(description="The latest run is a different execution than before: counts are not compared.")
    previous_execution_id: str | None = None
    execution_id: str | None = None
    previous_state: str | None = None
    state: str | None = None
    moved: dict[str, int] = Field(
        default_factory=dict[str, int], description="Each count that moved in the same run, by how much."
    )
    previous_failure_rate: float | None = Field(default=None, description="failed / (sent + failed), 0 to 1.")
    failure_rate: float | None = None

    @property
    def state_changed(self) -> bool:
        """Both states are known and differ."""
        return self.previous_state is not None and self.state is not None and self.previous_state != self.state

    @property
    def changed(self) -> bool:
        """Anything at all changed."""
        return self.new_run or self.state_changed or bool(self.moved)


class Progress(CamelModel):
    """The speed of one running execution between two observations, and when it would finish at that speed."""

    execution_id: str | None
    measured_from: datetime
    measured_to: datetime
    seconds: float = Field(ge=MIN_RATE_SECONDS, description="Time between the two observations.")
    sent_per_minute: float = Field(ge=0)
    failed_per_minute: float = Field(ge=0)
    remaining: int | None = Field(description="Scheduled messages not sent or failed yet; null when unknown.")
    eta: datetime | None = Field(description="When all would be processed at this rate; null when it cannot be told.")
    beyond_max_eta: bool = Field(default=False, description="At this rate it would take more than 30 days.")
    overdue: bool = Field(default=False, description="At this rate it would have finished before now: eta is now.")
    stalled: bool = Field(default=False, description="No count moved in minutes of a running execution.")


def failure_rate(counts: Counts | None) -> float | None:
    """failed / (sent + failed), rounded to 6 places; None when nothing was sent or failed."""
    if counts is None or counts.sent + counts.failed == 0:
        return None
    return round(counts.failed / (counts.sent + counts.failed), 6)


def compare(before: Observation, after: Observation) -> Change:
    """What changed from `before` to `after`: a new run, the state, each count that moved, the failure rate."""
    # A run id that appears or changes is a new run; an answer without ids (metrics, summary) cannot tell.
    new_run = after.execution_id is not None and before.execution_id != after.execution_id
    new_run = new_run and (before.execution_id is not None or before.state is not None)
    moved: dict[str, int] = {}
    if not new_run and before.counts is not None and after.counts is not None:
        for name in COUNT_NAMES:
            delta = getattr(after.counts, name) - getattr(before.counts, name)
            if delta:
                moved[name] = delta
    return Change(
        since=before.fetched_at,
        seconds=max(0.0, (after.fetched_at - before.fetched_at).total_seconds()),
        new_run=new_run,
        previous_execution_id=before.execution_id,
        execution_id=after.execution_id,
        previous_state=before.state,
        state=after.state,
        moved=moved,
        previous_failure_rate=failure_rate(before.counts),
        failure_rate=failure_rate(after.counts),
    )


def since_last_check(before: Observation, now: datetime) -> str:
    """`since the last check 5m00s ago`, the `when` of describe_change for a remembered check."""
    return f"since the last check {span(now - before.fetched_at)} ago"


def describe_change(change: Change, before: Observation, after: Observation, when: str) -> str:
    """One line: `Changed since the last check 5m00s ago: sent +3,200, failed +12; failure rate 0.10% → 0.14%.`"""
    # States and run ids are the API's text: bare when they look like identifiers, quoted otherwise (render.plain).
    if change.new_run:
        was = f" (the run before was {plain(change.previous_execution_id)})" if change.previous_execution_id else ""
        state = f", state {plain(change.state)}" if change.state else ""
        return f"New run {when}: run id {plain(change.execution_id)}{was}{state}."
    if not change.changed:
        return f"No change {when}."
    parts: list[str] = []
    if change.state_changed:
        parts.append(f"state {plain(change.previous_state)} → {plain(change.state)}")
    if change.moved:
        counts = ", ".join(f"{name} {'+' if d > 0 else '−'}{thousands(abs(d))}" for name, d in change.moved.items())
        rates = _rates(before.counts, after.counts)
        parts.append(counts + (f"; failure rate {rates}" if rates else ""))
    return f"Changed {when}: {'; '.join(parts)}."


def _rates(before: Counts | None, after: Counts | None) -> str | None:
    if before is None or after is None:
        return None
    old = percent(before.failed, before.sent + before.failed)
    new = percent(after.failed, after.sent + after.failed)
    return f"{old} → {new}" if old != new else None


def rate_pair(observations: Sequence[Observation]) -> tuple[Observation, Observation] | None:
    """The latest observation of a running execution and the latest earlier one of the same execution, both running,
    at least MIN_RATE_SECONDS before it; None when there is no such pair. Observations may come in any order."""
    ordered = sorted(observations, key=lambda o: o.fetched_at)
    if not ordered or ordered[-1].state != "running" or ordered[-1].counts is None:
        return None
    after = ordered[-1]
    for before in reversed(ordered[:-1]):
        if before.execution_id != after.execution_id or before.state != "running" or before.counts is None:
            return None  # an earlier check of another run or state: nothing older belongs to this stretch
        if (after.fetched_at - before.fetched_at).total_seconds() >= MIN_RATE_SECONDS:
            return before, after
    return None


def estimate(before: Observation, after: Observation, now: datetime) -> Progress | None:
    """Rate and ETA of one running execution from two of its observations at least MIN_RATE_SECONDS apart.

    None when they are not two running observations of the same execution with counts, are too close together,
    or the counts went down (then there is no speed to speak of). The ETA is never earlier than `now`, never more
    than MAX_ETA ahead, and only given when the scheduled total is known.
    """
    if before.counts is None or after.counts is None or before.state != "running" or after.state != "running":
        return None
    if before.execution_id != after.execution_id:
        return None
    seconds = (after.fetched_at - before.fetched_at).total_seconds()
    if not seconds >= MIN_RATE_SECONDS:
        return None
    sent = after.counts.sent - before.counts.sent
    failed = after.counts.failed - before.counts.failed
    if sent < 0 or failed < 0:
        return None
    per_second = (sent + failed) / seconds
    scheduled = after.counts.scheduled
    resolved = after.counts.sent + after.counts.failed
    remaining = max(0, scheduled - resolved) if scheduled > 0 else None
    moved = any(getattr(after.counts, n) != getattr(before.counts, n) for n in COUNT_NAMES)
    stalled = not moved and seconds >= STALL_SECONDS and remaining != 0
    eta: datetime | None = None
    beyond = overdue = False
    if remaining == 0:
        eta = max(now, after.fetched_at)
    elif remaining is not None and per_second > 0:
        wait = remaining / per_second
        if math.isfinite(wait) and wait <= MAX_ETA.total_seconds():
            eta = after.fetched_at + timedelta(seconds=wait)
            overdue, eta = eta < now, max(now, eta)
        else:
            beyond = True
    return Progress(
        execution_id=after.execution_id,
        measured_from=before.fetched_at,
        measured_to=after.fetched_at,
        seconds=seconds,
        sent_per_minute=sent * 60 / seconds,
        failed_per_minute=failed * 60 / seconds,
        remaining=remaining,
        eta=eta,
        beyond_max_eta=beyond,
        overdue=overdue,
        stalled=stalled,
    )


def describe_progress(p: Progress, timezone: str | None, now: datetime) -> str:
    """`Rate: 2,510 a minute (…), from two checks 5 min apart. At this rate the remaining 13,126 would take …`."""
    apart = _apart(p.seconds)
    if p.stalled:
        return (
            f"Warning: no count moved in the {apart} between two checks of this running execution: "
            "the run may be stalled."
        )
    per_minute = p.sent_per_minute + p.failed_per_minute
    rate = (
        f"Rate: {_per_minute(per_minute)} processed a minute ({_per_minute(p.sent_per_minute)} sent, "
        f"{_per_minute(p.failed_per_minute)} failed), from two checks {apart} apart."
    )
    if p.remaining == 0:
        return f"{rate} All scheduled messages are processed; the run should complete shortly."
    if p.remaining is None:
        return f"{rate} The scheduled total is not known, so there is no estimate of when it ends."
    if per_minute == 0:
        return f"{rate} Nothing was sent or failed between them, so there is no estimate of when it ends yet."
    if p.beyond_max_eta:
        return f"{rate} At this rate the remaining {thousands(p.remaining)} would take more than 30 days."
    assert p.eta is not None
    if p.overdue:
        return (
            f"{rate} At that rate the remaining {thousands(p.remaining)} would be processed by now "
            f"(the later check is {span(now - p.measured_to)} old): a fresh check will tell."
        )
    return (
        f"{rate} At this rate the remaining {thousands(p.remaining)} would take {_about(p.eta - now)}: "
        f"around {eta_clock(p.eta, timezone, now)}."
    )


def eta_clock(eta: datetime, timezone: str | None, now: datetime) -> str:
    """`15:08 UTC = 00:08 JST Asia/Tokyo`, with dates: an estimate to the minute, in UTC and the campaign's zone."""
    # To the minute: seconds would claim a precision a two-point estimate does not have.
    shown = (eta.astimezone(UTC) + timedelta(seconds=30)).replace(second=0, microsecond=0)
    return describe_time(shown, timezone, now, relative=False)


def progress_line(observations: Sequence[Observation], timezone: str | None, now: datetime) -> str | None:
    """The progress line of a running campaign from its observations, or None when the latest is not running."""
    if not observations:
        return None
    latest = max(observations, key=lambda o: o.fetched_at)
    if latest.state != "running" or latest.counts is None:
        return None
    pair = rate_pair(observations)
    if pair is None:
        same = sum(o.execution_id == latest.execution_id and o.state == "running" for o in observations)
        checks = (
            "Only one check of this run so far"
            if same < 2
            else f"No two checks of this run {MIN_RATE_SECONDS:g} s apart yet"
        )
        return f"{checks}: a later check will allow a rate and an estimate of when it ends."
    p = estimate(*pair, now)
    if p is None:
        return "Counts went down between the two latest checks of this run, so there is no rate or estimate."
    return describe_progress(p, timezone, now)


def _per_minute(value: float) -> str:
    if value >= 100 or value == 0:
        return thousands(round(value))
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _apart(seconds: float) -> str:
    if seconds < 90:
        return f"{round(seconds)} s"
    return _minutes(round(seconds / 60))


def _about(delta: timedelta) -> str:
    seconds = max(0.0, delta.total_seconds())
    if seconds < 60:
        return "under a minute"
    if seconds < 48 * 3600:
        return "about " + _minutes(max(1, round(seconds / 60)))
    return f"about {round(seconds / 86400)} days"


def _minutes(minutes: int) -> str:
    if minutes < 90:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
