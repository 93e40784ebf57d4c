"""Entry: what is remembered about one campaign, built only from what the API returned."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary, DigitalSendSchedule, OverviewRow

__all__ = ["Entry", "Source", "entry_from"]

Source = Literal["lookup", "import", "demo"]


@dataclass(frozen=True)
class Entry:
    """One remembered campaign; None means "not known", never "empty"."""

    campaign_id: str
    name: str | None = None
    channel: str | None = None
    campaign_type: str | None = None
    authoring_status: str | None = None
    state: str | None = None
    send_at: datetime | None = None
    timezone: str | None = None
    source: Source = "lookup"
    tags: tuple[str, ...] = ()
    first_seen: datetime | None = field(default=None, compare=False)
    last_seen: datetime | None = field(default=None, compare=False)


def entry_from(model: BaseModel, source: Source = "lookup") -> Entry | None:
    """The facts one API answer (or overview row) gives about its campaign; None for any other model."""
    if not isinstance(model, CampaignSummary | CampaignStatus | CampaignMetrics | OverviewRow):
        return None
    cid = model.campaign_id.lower()
    if isinstance(model, CampaignSummary):
        schedule = model.schedule
        return Entry(
            cid,
            name=model.name,
            channel=model.channel,
            campaign_type=model.campaign_type,
            authoring_status=model.authoring_status,
            send_at=schedule.send_at if isinstance(schedule, DigitalSendSchedule) else None,
            timezone=schedule.timezone if schedule is not None else None,
            source=source,
        )
    if isinstance(model, CampaignStatus):
        schedule = model.schedule
        return Entry(
            cid,
            name=model.name,
            channel=model.execution.channel,
            authoring_status=model.authoring_status,
            state=model.execution.state,
            send_at=schedule.send_at if schedule is not None else None,
            timezone=schedule.timezone if schedule is not None else None,
            source=source,
        )
    if isinstance(model, OverviewRow):
        return Entry(cid, name=model.name, state=model.state, send_at=model.next_send_at, source=source)
    return Entry(cid, source=source)
