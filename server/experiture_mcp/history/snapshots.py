"""Snapshot: one stored observation of a campaign and until when it was still seen like that (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel

from experiture_mcp.history.progress import Observation
from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary, Counts

__all__ = [
    "HISTORY_CAP",
    "RUN_STATES",
    "Digest",
    "Mark",
    "Plan",
    "RunSeen",
    "Snapshot",
    "assemble",
    "digest",
    "expand",
    "mark",
    "merge",
    "observation_of",
    "plan",
    "record",
    "same",
]

HISTORY_CAP = 2000  # snapshots kept per campaign, newest first, whatever the retention in days
RUN_STATES = ("running", "completed", "failed")  # a snapshot in one of these without an execution id: same run


@dataclass(frozen=True)
class Snapshot:
    """An observation (fetched_at: first seen like this) and `last_checked`: the latest answer that said the same."""

    observation: Observation
    last_checked: datetime


@dataclass(frozen=True, slots=True)
class RunSeen:
    """One execution as the snapshots show it: its latest known facts, first seen and last seen."""

    execution_id: str | None
    state: str | None
    started_at: datetime | None
    completed_at: datetime | None
    counts: Counts | None  # of its latest snapshot with counts
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True, slots=True)
class Digest:
    """What get_history needs of a campaign's snapshots: the runs, newest first, and the newest run's latest ones."""

    snapshots: int
    observed_since: datetime | None
    runs: list[RunSeen]  # at most the limit asked for
    more_runs: int
    recent: list[Snapshot]  # newest first


def observation_of(model: BaseModel, fetched_at: datetime) -> Observation | None:
    """What a status, metrics or summary answer says about the latest run; None for any other model."""
    if isinstance(model, CampaignStatus):
        return Observation.of_status(model, fetched_at)
    if isinstance(model, CampaignMetrics):
        return Observation.of_metrics(model, fetched_at)
    if isinstance(model, CampaignSummary):
        return Observation.of_summary(model, fetched_at)
    return None


def same(before: Observation, after: Observation) -> bool:
    """`after` says nothing new: each fact it knows equals `before`'s (an unknown fact is not a change)."""
    for name in ("state", "execution_id", "started_at", "completed_at", "counts"):
        value = getattr(after, name)
        if value is not None and value != getattr(before, name):
            return False
    return True


Mark = tuple[str | None, str | None, bool, bool, bool]
"""What grouping needs of a snapshot: execution id, state, and whether it has a start time, an end time, counts."""


def mark(o: Observation) -> Mark:
    """The Mark of an observation."""
    return (o.execution_id, o.state, o.started_at is not None, o.completed_at is not None, o.counts is not None)


@dataclass(frozen=True, slots=True)
class Plan:
    """Which snapshots (by position, oldest first) hold each run's facts: run, first, last, latest with counts,
    with a start time, with an end time, with a state; newest run first."""

    snapshots: int
    runs: list[tuple[str | None, int, int, int | None, int | None, int | None, int | None]]
    more_runs: int
    recent: list[int]  # the newest run's latest snapshots, newest first

    @property
    def needed(self) -> list[int]:
        """Every position the digest reads, in order."""
        wanted = {0, *self.recent}
        for _, *positions in self.runs:
            wanted.update(p for p in positions if p is not None)
        return sorted(wanted) if self.snapshots else []


def plan(marks: Sequence[Mark], limit: int, recent: int) -> Plan:
    """Group snapshots (oldest first) into runs: one per execution id, a snapshot without one joins the run before
    (unless its state says it is not a run: not scheduled yet)."""
    groups: dict[str | None, list[int]] = {}
    current: str | None = None
    for i, (execution_id, state, *_) in enumerate(marks):
        if execution_id is not None or (state is not None and state not in RUN_STATES):
            current = execution_id
        groups.setdefault(current, []).append(i)
    runs: list[tuple[str | None, int, int, int | None, int | None, int | None, int | None]] = []
    for execution_id, positions in groups.items():
        backwards = positions[::-1]
        counts = next((i for i in backwards if marks[i][4]), None)
        started = next((i for i in backwards if marks[i][2]), None)
        completed = next((i for i in backwards if marks[i][3]), None)
        state = next((i for i in backwards if marks[i][1]), None)
        if execution_id is None and started is None and counts is None:
            continue  # never ran as far as this server saw
        runs.append((execution_id, positions[0], positions[-1], counts, started, completed, state))
    runs.reverse()
    newest = groups[runs[0][0]] if runs else []
    return Plan(len(marks), runs[:limit], max(0, len(runs) - limit), newest[::-1][:recent])


def assemble(p: Plan, at: Mapping[int, Snapshot] | Sequence[Snapshot]) -> Digest:
    """The digest from a plan and its needed snapshots by position (oldest first)."""
    seen: list[RunSeen] = []
    for execution_id, first, last, counts, started, completed, state in p.runs:
        seen.append(
            RunSeen(
                execution_id=execution_id,
                state=at[state].observation.state if state is not None else None,
                started_at=at[started].observation.started_at if started is not None else None,
                completed_at=at[completed].observation.completed_at if completed is not None else None,
                counts=at[counts].observation.counts if counts is not None else None,
                first_seen=at[first].observation.fetched_at,
                last_seen=at[last].last_checked,
            )
        )
    return Digest(
        snapshots=p.snapshots,
        observed_since=at[0].observation.fetched_at if p.snapshots else None,
        runs=seen,
        more_runs=p.more_runs,
        recent=[at[i] for i in p.recent],
    )


def digest(timeline: Sequence[Snapshot], limit: int, recent: int) -> Digest:
    """The runs of a timeline (newest first) and the newest run's latest snapshots (Store.digest: the same, reading
    only the rows it needs)."""
    oldest_first = timeline[::-1]
    return assemble(plan([mark(s.observation) for s in oldest_first], limit, recent), oldest_first)


def record(timeline: list[Snapshot], observation: Observation) -> list[Snapshot]:
    """The timeline (newest first) with `observation` added: a new snapshot only when something changed."""
    if timeline and same(timeline[0].observation, observation):
        latest = timeline[0]
        return [replace(latest, last_checked=max(latest.last_checked, observation.fetched_at)), *timeline[1:]]
    return [Snapshot(observation, observation.fetched_at), *timeline]


def merge(mine: list[Snapshot], stored: Sequence[Snapshot]) -> list[Snapshot]:
    """This process's timeline (it may hold checks not written yet) with the store's newest snapshots (other
    processes' checks too): each snapshot once, last checked at the later of the two, newest first."""
    known = {s.observation.fetched_at: s for s in mine}
    if all((k := known.get(s.observation.fetched_at)) and k.last_checked >= s.last_checked for s in stored):
        return mine  # the store knows nothing newer: the usual case with one process
    union = dict(known)
    for s in stored:
        k = known.get(s.observation.fetched_at)
        union[s.observation.fetched_at] = (
            s if k is None else replace(k, last_checked=max(k.last_checked, s.last_checked))
        )
    merged: list[Snapshot] = []
    for s in sorted(union.values(), key=lambda s: s.observation.fetched_at):
        if merged and same(merged[-1].observation, s.observation):  # seen first by one process, then by another
            merged[-1] = replace(merged[-1], last_checked=max(merged[-1].last_checked, s.last_checked))
        else:
            merged.append(s)
    return merged[::-1]


def expand(timeline: Sequence[Snapshot]) -> list[Observation]:
    """Each snapshot as the checks it stands for, oldest first: when first seen and, if later, when last seen."""
    observations: list[Observation] = []
    for snapshot in reversed(timeline):
        observations.append(snapshot.observation)
        if snapshot.last_checked > snapshot.observation.fetched_at:
            observations.append(replace(snapshot.observation, fetched_at=snapshot.last_checked))
    return observations
