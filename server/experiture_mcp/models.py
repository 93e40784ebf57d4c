"""Pydantic models of the API v1 payloads (summary, status, metrics), camelCase on the wire."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "CAMPAIGN_ID_DESCRIPTION",
    "EXAMPLE_CAMPAIGN_ID",
    "MAX_LINK_LENGTH",
    "UUID_PATTERN",
    "Attention",
    "Audience",
    "AudienceMember",
    "CampaignMetrics",
    "CampaignStatus",
    "CampaignSummary",
    "Content",
    "Counts",
    "DigitalSendSchedule",
    "DirectMailBatchSchedule",
    "Execution",
    "ExecutionRun",
    "LatestExecution",
    "OtherSchedule",
    "Overview",
    "OverviewError",
    "OverviewRow",
    "OverviewTotal",
    "Preflight",
    "PreflightCheck",
    "Reach",
    "StatusSchedule",
    "Template",
    "campaign_id_from",
    "dump",
    "is_campaign_id",
]

EXAMPLE_CAMPAIGN_ID = "4130bada-9264-465f-bc0c-a26bebcfcc81"  # the API reference's own example
CAMPAIGN_ID_DESCRIPTION = f"The campaign's UUID, e.g. {EXAMPLE_CAMPAIGN_ID}, or its link."
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID_RE = re.compile(UUID_PATTERN)


MAX_LINK_LENGTH = 2048
_ANY_UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def is_campaign_id(value: str) -> bool:
    """True when value is a UUID, the only shape that is ever put into a request path."""
    return _UUID_RE.fullmatch(value) is not None


def _route_path(path: str, fragment: str) -> str:
    # An SPA hash route (#/campaigns/<id> or #!/campaigns/<id>) is the page's real path; its own ?query is not.
    route = fragment[1:] if fragment.startswith("!/") else fragment
    if not route.startswith("/"):
        return path
    return path + route.partition("?")[0]


def campaign_id_from(value: str) -> str | None:
    """The lower-case campaign UUID in value (a bare UUID or an http(s) link to the campaign), else None."""
    value = value.strip()
    if not value or len(value) > MAX_LINK_LENGTH:
        return None
    if is_campaign_id(value):
        return value.lower()
    # Nothing a person would paste holds control, format (zero-width, bidi) or space characters, or a backslash.
    if "\\" in value or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        return None
    try:
        url = urlsplit(value)
        port_ok = url.port is None or url.port > 0
        path = unquote(_route_path(url.path, url.fragment), errors="strict")
    except ValueError:  # a bad port or IPv6 host, or percent-escapes that are not UTF-8
        return None
    if url.scheme not in ("http", "https") or not url.hostname or "@" in url.netloc or not port_ok:
        return None
    # The UUID must fill one segment of the path and be the only UUID anywhere in it; the query never counts.
    if len(_ANY_UUID_RE.findall(path)) != 1:
        return None
    hits = [segment for segment in path.split("/") if is_campaign_id(segment)]
    return hits[0].lower() if hits else None


def _aware(value: datetime) -> datetime:
    # The API sends UTC with a Z; a timestamp without an offset is read as UTC rather than as local time.
    if not 2 <= value.year <= 9998:  # year 1 or 9999 overflows when shifted into UTC or a campaign's time zone
        raise ValueError("timestamp out of range")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Timestamp = Annotated[datetime, AfterValidator(_aware)]


class _Model(BaseModel):
    # Unknown fields are ignored so a newer API never breaks us; enums stay plain strings for the same reason.
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )


class Counts(_Model):
    """Pipeline counts of one execution run, in stage order."""

    scheduled: int = Field(ge=0, description="Recipients scheduled for the run.")
    hydrated: int = Field(ge=0, description="Recipients whose data was loaded.")
    composed: int = Field(ge=0, description="Messages rendered.")
    injected: int = Field(ge=0, description="Messages handed to the delivery channel.")
    sent: int = Field(ge=0, description="Messages sent.")
    failed: int = Field(ge=0, description="Messages that failed.")


class DigitalSendSchedule(_Model):
    """Schedule of an email, SMS or push campaign."""

    kind: Literal["digital_send"]
    mode: str | None = None
    send_at: Timestamp | None = None
    timezone: str | None = None
    scheduled: bool | None = None


class DirectMailBatchSchedule(_Model):
    """Schedule of a direct-mail campaign: a batch on a calendar date."""

    kind: Literal["direct_mail_batch"]
    mode: str | None = None
    batch_date: date | None = None
    timezone: str | None = None
    timezone_source: str | None = Field(default=None, description="request | tenant_default | utc_fallback")
    scheduled: bool | None = None


class OtherSchedule(_Model):
    """A schedule kind this version does not know yet, kept rather than rejected."""

    kind: str
    mode: str | None = None
    timezone: str | None = None
    scheduled: bool | None = None


SummarySchedule = Annotated[
    DigitalSendSchedule | DirectMailBatchSchedule | OtherSchedule, Field(union_mode="left_to_right")
]


class AudienceMember(_Model):
    """A segment or list included in or excluded from the audience."""

    id: str
    name: str | None = None
    type: str | None = None
    member_count: int | None = None


class Reach(_Model):
    """Result of the latest audience reach evaluation."""

    status: str = Field(description="idle | pending | ok | failed")
    evaluated_count: int | None = None
    evaluated_at: Timestamp | None = None
    is_stale: bool | None = None


class Audience(_Model):
    """Who the campaign targets."""

    included: list[AudienceMember] = Field(default_factory=list[AudienceMember])
    excluded: list[AudienceMember] = Field(default_factory=list[AudienceMember])
    reach: Reach | None = None


class Template(_Model):
    """The content template bound to the campaign."""

    id: str
    name: str | None = None
    status: str | None = None
    channel: str | None = None


class Content(_Model):
    """Content setup: template and proof."""

    template: Template | None = None
    proof_status: str | None = None


class PreflightCheck(_Model):
    """One preflight check; the reference leaves its shape open, so every field is optional."""

    id: str | None = None
    name: str | None = None
    status: str | None = None
    message: str | None = None


class Preflight(_Model):
    """Preflight evaluation of the campaign setup."""

    status: str
    checks: list[PreflightCheck] = Field(default_factory=list[PreflightCheck])


class LatestExecution(_Model):
    """The latest execution as the summary reports it."""

    status: str
    last_execution_at: Timestamp | None = None
    counts: Counts | None = None


class CampaignSummary(_Model):
    """Redacted setup summary of a broadcast campaign (GET /campaigns/:id/summary)."""

    campaign_id: str
    name: str | None = None
    campaign_type: str | None = None
    channel: str | None = None
    authoring_status: str | None = None
    created_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    schedule: SummarySchedule | None = None
    audience: Audience | None = None
    content: Content | None = None
    preflight: Preflight | None = None
    latest_execution: LatestExecution | None = None
    links: dict[str, str] | None = None


class StatusSchedule(_Model):
    """The active schedule as the status endpoint reports it."""

    schedule_id: str | None = None
    send_at: Timestamp | None = None
    timezone: str | None = None
    active: bool | None = None


class ExecutionRun(_Model):
    """One execution run."""

    execution_id: str | None = None
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    status: str | None = None
    counts: Counts | None = None


class Execution(_Model):
    """Execution state and the latest run."""

    state: str = Field(description="not_scheduled | scheduled | pending_or_overdue | running | completed | failed")
    touchpoint_id: int | str | None = None
    manifest_id: str | None = None
    channel: str | None = None
    last_execution: ExecutionRun | None = None


class CampaignStatus(_Model):
    """Schedule and latest execution of a broadcast campaign (GET /campaigns/:id/status)."""

    campaign_id: str
    name: str | None = None
    authoring_status: str | None = None
    schedule: StatusSchedule | None = None
    execution: Execution


class CampaignMetrics(_Model):
    """Pipeline counts of the latest execution (GET /campaigns/:id/metrics)."""

    campaign_id: str
    counts: Counts


def dump(model: BaseModel) -> dict[str, Any]:
    """The model as JSON-ready camelCase data, as the API spells it."""
    return model.model_dump(mode="json", by_alias=True)


Attention = Literal["failed", "pending_or_overdue", "inconsistent", "high_failure_rate", "error"]


class OverviewError(_Model):
    """Why one campaign of an overview could not be read in full."""

    endpoint: Literal["status", "none"] = Field(description="The call that failed; none: no request made.")
    http_status: int | None = None
    code: str | None = Field(default=None, description="The API's error code, when it gave one.")
    reason: str = Field(description="Short reason, with what to do when retrying would help.")
    retryable: bool


class OverviewRow(_Model):
    """One campaign in an overview."""

    campaign_id: str
    name: str | None = None
    state: str | None = Field(description="Execution state from the status endpoint; null when it could not be read.")
    attention: Attention | None = Field(description="The most urgent reason it needs attention; null when none.")
    last_run_at: Timestamp | None = Field(default=None, description="Start of the latest execution run.")
    next_send_at: Timestamp | None = Field(default=None, description="Send time of a scheduled or overdue campaign.")
    sent: int | None = Field(default=None, description="Sent by the latest run; null when unknown or never run.")
    failed: int | None = Field(default=None, description="Failed in the latest run; null when unknown or never run.")
    failure_rate: float | None = Field(
        default=None, description="failed / (sent + failed), from 0 to 1; null when nothing was sent or failed."
    )
    counts_from: Literal["metrics", "status", "summary"] | None = Field(
        default=None, description="Endpoint the counts came from."
    )
    warnings: list[str] = Field(default_factory=list[str])
    error: OverviewError | None = None
    since_last_check: str | None = Field(
        default=None, description="What changed since this server's last check of it; null without one."
    )


class OverviewTotal(_Model):
    """Totals over every row of an overview."""

    campaigns: int
    needing_attention: int
    errors: int = Field(description="Campaigns whose status could not be read.")
    sent: int
    failed: int
    failure_rate: float | None


class Overview(_Model):
    """Many campaigns at once: one row each, those needing attention first (get_overview)."""

    rows: list[OverviewRow] = Field(description="Every requested campaign, those needing attention first.")
    total: OverviewTotal
    notes: list[str] = Field(default_factory=list[str], description="Facts that apply to every row.")
