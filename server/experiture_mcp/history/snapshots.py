"""Snapshot: one stored observation of a campaign and until when it was still seen like that (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from pydantic import BaseModel

from experiture_mcp.history.progress import Observation
from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary

__all__ = ["HISTORY_CAP", "Snapshot", "expand", "observation_of", "record", "same"]

HISTORY_CAP = 2000  # snapshots kept per campaign, newest first, whatever the retention in days


@dataclass(frozen=True)
class Snapshot:
    """An observation (fetched_at: first seen like this) and `last_checked`: the latest answer that said the same."""

    observation: Observation
    last_checked: datetime


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


def record(timeline: list[Snapshot], observation: Observation) -> list[Snapshot]:
    """The timeline (newest first) with `observation` added: a new snapshot only when something changed."""
    if timeline and same(timeline[0].observation, observation):
        latest = timeline[0]
        return [replace(latest, last_checked=max(latest.last_checked, observation.fetched_at)), *timeline[1:]]
    return [Snapshot(observation, observation.fetched_at), *timeline]


def expand(timeline: Sequence[Snapshot]) -> list[Observation]:
    """Each snapshot as the checks it stands for, oldest first: when first seen and, if later, when last seen."""
    observations: list[Observation] = []
    for snapshot in reversed(timeline):
        observations.append(snapshot.observation)
        if snapshot.last_checked > snapshot.observation.fetched_at:
            observations.append(replace(snapshot.observation, fetched_at=snapshot.last_checked))
    return observations
