"""Pure functions that turn models and errors into the short, labelled text the model reads."""

from __future__ import annotations

import itertools
import re
import unicodedata
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from experiture_mcp.errors import (
    APIError,
    BadResponse,
    CampaignNotFound,
    ConnectionFailed,
    ExperitureError,
    InsufficientScope,
    InvalidCampaignId,
    NotConfigured,
    RateLimited,
    ServerError,
    StatusInconsistent,
    Unauthorized,
    Unavailable,
    UnsupportedCampaignType,
    UnusableToken,
    UpstreamTimeout,
    shown_id,
)
from experiture_mcp.models import (
    EXAMPLE_CAMPAIGN_ID,
    AudienceMember,
    CampaignMetrics,
    CampaignStatus,
    CampaignSummary,
    Counts,
    DigitalSendSchedule,
    DirectMailBatchSchedule,
    Overview,
    OverviewRow,
    Reach,
)

__all__ = [
    "EXECUTION_STATES",
    "HIGH_FAILURE_RATE",
    "REACH_STATUSES",
    "SCOPES",
    "TIMEZONE_SOURCES",
    "describe_time",
    "overview_warnings",
    "percent",
    "plain",
    "quote",
    "render_error",
    "render_metrics",
    "render_overview",
    "render_status",
    "render_summary",
    "short_reason",
    "span",
    "thousands",
]

SCOPES = {"get_summary": "campaigns:read", "get_status": "campaigns:read", "get_metrics": "analytics:read"}

EXECUTION_STATES = {
    "not_scheduled": "no execution history and no schedule",
    "scheduled": "a future send is scheduled",
    "pending_or_overdue": "the scheduled send time has passed but no execution has started",
    "running": "the latest execution is running",
    "completed": "the latest execution completed",
    "failed": "the latest execution failed",
}
REACH_STATUSES = {
    "idle": "no reach evaluation has run since this audience was bound",
    "pending": "evaluation is queued or in progress; the count is not reliable yet",
    "ok": "evaluation completed; the count is current",
    "failed": "evaluation failed; the count is from the prior successful run, if any",
}
TIMEZONE_SOURCES = {
    "request": "set for this campaign",
    "tenant_default": "the account's default",
    "utc_fallback": "none configured, so UTC is used",
}
FLOW = ("scheduled", "hydrated", "composed", "injected")  # then injected splits into sent and failed
HIGH_FAILURE_RATE = 0.05

_UTC_NAMES = ("UTC", "ETC/UTC", "Z")  # zone names that add nothing to the UTC time already shown
_INVISIBLE = re.compile(r"\s+")
_HIDDEN = frozenset({"Cc", "Cf", "Co", "Cs", "Cn"})  # controls, format (zero-width, bidi), private, unassigned


def quote(text: str | None, limit: int = 120) -> str:
    """Untrusted API text as one quoted line: controls, invisible and bidi characters dropped, long text cut."""
    if text is None:
        return "(none)"
    return '"' + _one_line(text, limit).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _one_line(text: str, limit: int) -> str:
    if text.isprintable() and "  " not in text and text == text.strip():
        kept = text  # the common case, with nothing to drop or collapse: no pass over each character
    else:
        # Line breaks of every kind become spaces, so no text can start a line of its own (a heading, "Warnings:").
        kept = "".join(
            " " if ch.isspace() else ch for ch in text if ch.isspace() or unicodedata.category(ch) not in _HIDDEN
        )
        kept = _INVISIBLE.sub(" ", kept).strip()
    if len(kept) > limit:
        kept = kept[: limit - 1].rstrip() + "…"
    return kept


def _plain(value: str | None) -> str:
    # Enum values and ids are shown bare when they look like identifiers, quoted otherwise.
    if value is None:
        return "(none)"
    return value if re.fullmatch(r"[A-Za-z0-9_.:/+-]{1,80}", value) else quote(value, 80)


def _n(value: int) -> str:
    return f"{value:,}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _pct(part: int, whole: int) -> str:
    if whole == 0:
        return "n/a"
    share = 100 * part / whole
    return f"{share:.2f}".rstrip("0").rstrip(".") + "%"


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds < 90:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 90:
        return f"{minutes}m{seconds % 60:02d}s"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60:02d}m"
    return f"{round(seconds / 86400)} days"  # rounded: a run from 9d23h to 10d ago must not read as two days


# The same wording for the history package's change and progress lines (history/progress.py).
thousands, percent, span, plain = _n, _pct, _span, _plain


def _relative(moment: datetime, now: datetime) -> str:
    delta = moment - now
    if abs(delta) < timedelta(seconds=5):
        return "just now"
    return f"in {_span(delta)}" if delta > timedelta(0) else f"{_span(delta)} ago"


def _zone(name: str | None) -> ZoneInfo | None:
    if not name or len(name) > 64 or name.upper() in _UTC_NAMES:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # the name is the API's: it may be any text at all
        return None


def _clock(moment: datetime, with_date: bool) -> str:
    # f-strings rather than strftime: this runs for every time in every result.
    clock = f"{moment.hour:02d}:{moment.minute:02d}" + (f":{moment.second:02d}" if moment.second else "")
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {clock}" if with_date else clock


def describe_time(moment: datetime, timezone: str | None, now: datetime, *, relative: bool = True) -> str:
    """`2026-05-01 09:00 UTC = 05:00 EDT America/New_York (3 days ago)`; the local date only when it differs."""
    utc = moment.astimezone(UTC)
    text = f"{_clock(utc, True)} UTC"
    zone = _zone(timezone)
    if zone is not None:
        local = utc.astimezone(zone)
        text += f" = {_clock(local, local.date() != utc.date())} {local.tzname()} {timezone}"
    elif timezone and timezone.upper() not in _UTC_NAMES:
        text += f" (unknown time zone {quote(timezone, 40)})"
    return f"{text} ({_relative(utc, now)})" if relative else text


def _date(day: date, today: date) -> str:
    days = (day - today).days
    when = (
        "today"
        if days == 0
        else f"in {days} days"
        if days > 1
        else "tomorrow"
        if days == 1
        else ("yesterday" if days == -1 else f"{-days} days ago")
    )
    return f"{day.isoformat()} ({day.strftime('%A')}, {when})"


def _pipeline(counts: Counts, running: bool | None) -> list[str]:
    """Stage counts with drop-offs, outcome and rates; `running` None when the run state is unknown (metrics)."""
    parts = [f"scheduled {_n(counts.scheduled)}"]
    for before, stage in itertools.pairwise(FLOW):
        value, previous = getattr(counts, stage), getattr(counts, before)
        drop = previous - value
        parts.append(f"{stage} {_n(value)}" + (f" (−{_n(drop)}, {_pct(drop, previous)})" if drop > 0 else ""))
    resolved = counts.sent + counts.failed
    open_ = counts.injected - resolved
    lines = [
        "Pipeline: " + " → ".join(parts),
        f"Outcome of injected: sent {_n(counts.sent)} · failed {_n(counts.failed)}"
        + (f" · {_n(open_)} {'still in flight' if running else 'without an outcome'}" if open_ > 0 else ""),
    ]
    if counts.scheduled == 0 and resolved == 0:
        return lines
    rate = f"failure rate {_pct(counts.failed, resolved)} ({_n(counts.failed)} of {_n(resolved)} sent or failed)"
    unsent = max(0, counts.scheduled - counts.sent)
    lines.append(
        f"Sent {_n(counts.sent)} of {_n(counts.scheduled)} scheduled ({_pct(counts.sent, counts.scheduled)}; "
        f"{_n(unsent)} not sent{' yet' if running else ''}); {rate}"
    )
    if running:
        lines.append("The run is in progress: gaps between stages are messages not processed yet, not losses.")
    elif running is None and unsent > counts.failed:
        lines.append("If the run is still in progress (see get_status), gaps between stages are not losses yet.")
    return lines


def _failure_warning(counts: Counts | None) -> list[str]:
    if counts is None:
        return []
    resolved = counts.sent + counts.failed
    if resolved and counts.failed / resolved >= HIGH_FAILURE_RATE:
        return [f"High failure rate: {_pct(counts.failed, resolved)} of messages failed."]
    return []


def _meaning(value: str, table: dict[str, str]) -> str:
    meaning = table.get(value)
    return f"{_plain(value)} ({meaning})" if meaning else f"{_plain(value)} (a value this server does not know yet)"


def _reach(reach: Reach | None, zone: str | None, now: datetime) -> tuple[str, list[str]]:
    if reach is None:
        return "Reach: not reported", []
    text = f"Reach: {_meaning(reach.status, REACH_STATUSES)}"
    count = "n/a" if reach.evaluated_count is None else _n(reach.evaluated_count)
    text += f"; evaluated count {count}"
    if reach.evaluated_at is not None:
        text += f" at {describe_time(reach.evaluated_at, zone, now)}"
    if reach.is_stale is not None:
        text += "; stale" if reach.is_stale else "; not stale"
    warnings: list[str] = []
    if reach.is_stale:
        warnings.append("Audience changed after the last reach evaluation: counts may not reflect current membership.")
    if reach.status == "pending":
        warnings.append("Reach evaluation is queued or running: the evaluated count is not reliable yet.")
    elif reach.status == "failed":
        warnings.append("Reach evaluation failed: retry after a short delay or rebind the audience to re-evaluate.")
    elif reach.status == "idle":
        warnings.append("Reach has never been evaluated for this audience: its size is unknown.")
    return text, warnings


def _members(members: list[AudienceMember]) -> str:
    if not members:
        return "none"
    shown = [
        f"{_plain(m.type) if m.type else 'item'} {quote(m.name, 80) if m.name is not None else '(unnamed)'}"
        f" {_plain(m.id)}"
        f" ({'members n/a' if m.member_count is None else _n(m.member_count) + ' members'})"
        for m in members[:20]
    ]
    more = f"; and {len(members) - 20} more" if len(members) > 20 else ""
    return "; ".join(shown) + more


def _header(name: str | None, campaign_id: str) -> str:
    return f"Campaign {quote(name) if name is not None else '(unnamed)'} ({_plain(campaign_id)})"


def _warnings(lines: list[str], warnings: list[str]) -> str:
    if warnings:
        lines.append("Warnings:")
        lines.extend(f"- {w}" for w in warnings)
    return "\n".join(lines)


def render_summary(s: CampaignSummary, now: datetime) -> str:
    """Text for get_summary."""
    zone = s.schedule.timezone if s.schedule else None
    head = f"{_header(s.name, s.campaign_id)} · type {_plain(s.campaign_type)} · channel {_plain(s.channel)}"
    lines = [head + f" · authoring status {_plain(s.authoring_status)}"]
    times = [
        f"{label} {describe_time(t, zone, now)}"
        for label, t in (("Created", s.created_at), ("updated", s.updated_at))
        if t
    ]
    if times:
        lines.append(" · ".join(times))
    warnings: list[str] = []
    lines.append(_summary_schedule(s, now, warnings))
    if s.audience is not None:
        lines.append(f"Audience included: {_members(s.audience.included)}")
        lines.append(f"Audience excluded: {_members(s.audience.excluded)}")
        reach_line, reach_warnings = _reach(s.audience.reach, zone, now)
        lines.append(reach_line)
        warnings += reach_warnings
    else:
        lines.append("Audience: not reported")
    lines.append(_content(s, warnings))
    if s.preflight is not None:
        lines.append(_preflight(s, warnings))
    if s.latest_execution is not None:
        ex = s.latest_execution
        started = ex.last_execution_at
        last = f"last run started {describe_time(started, zone, now)}" if started else "never run"
        lines.append(f"Latest execution: {_meaning(ex.status, EXECUTION_STATES)}; {last}")
        if ex.counts is not None:
            lines += _pipeline(ex.counts, ex.status == "running")
        else:
            lines.append("Counts: none (no execution has produced counts yet)")
        due = s.schedule.send_at if isinstance(s.schedule, DigitalSendSchedule) else None
        warnings += _state_warnings(
            ex.status, ex.counts, due, now, "the preflight checks above" if s.preflight else "the setup above"
        )
    if s.links:
        lines.append("Links: " + ", ".join(f"{_plain(k)} {_plain(v)}" for k, v in s.links.items()))
    return _warnings(lines, warnings)


def _summary_schedule(s: CampaignSummary, now: datetime, warnings: list[str]) -> str:
    sched = s.schedule
    if sched is None:
        return "Schedule: none"
    state = "scheduled" if sched.scheduled else "not scheduled" if sched.scheduled is False else "scheduling unknown"
    text = f"Schedule ({_plain(sched.kind)}, mode {_plain(sched.mode)}): {state}"
    if isinstance(sched, DigitalSendSchedule):
        if sched.send_at is not None:
            text += f"; send at {describe_time(sched.send_at, sched.timezone, now)}"
        else:
            text += f"; no send time set (time zone {_plain(sched.timezone)})"
    elif isinstance(sched, DirectMailBatchSchedule):
        when = (
            _date(sched.batch_date, now.astimezone(_zone(sched.timezone) or UTC).date())
            if sched.batch_date
            else ("no batch date set")
        )
        source = sched.timezone_source
        meaning = TIMEZONE_SOURCES.get(source or "")
        source_text = f", source {_plain(source)}" + (f" ({meaning})" if meaning else "") if source else ""
        text += f"; mail batch on {when}, time zone {_plain(sched.timezone)}{source_text}"
        if source == "utc_fallback":
            warnings.append("No time zone is configured for this campaign: its dates fall back to UTC.")
    else:
        text += f"; time zone {_plain(sched.timezone)} (schedule kind not known to this server)"
    return text


def _content(s: CampaignSummary, warnings: list[str]) -> str:
    if s.content is None:
        return "Content: not reported"
    t = s.content.template
    if t is None:
        text = "Template: none bound"
        warnings.append("No content template is bound to this campaign.")
    else:
        name = quote(t.name, 80) if t.name is not None else "(unnamed)"
        text = f"Template {name} {_plain(t.id)}: status {_plain(t.status)}, channel {_plain(t.channel)}"
        if t.status is not None and t.status != "published":
            warnings.append(f"The template is {_plain(t.status)}, not published.")
    return text + f" · proof status {_plain(s.content.proof_status)}"


def _preflight(s: CampaignSummary, warnings: list[str]) -> str:
    assert s.preflight is not None
    p = s.preflight
    if not p.checks:
        checks = "no checks run" if p.status == "not_evaluated" else "no checks listed"
        return f"Preflight: {_plain(p.status)} ({checks})"
    shown = "; ".join(
        f"{quote(c.name or c.id, 60)}{f' ({_plain(c.id)})' if c.name and c.id else ''} {_plain(c.status)}"
        + (f": {quote(c.message, 160)}" if c.message else "")
        for c in p.checks[:20]
    )
    failing = [c for c in p.checks if c.status in ("failed", "error")]
    if failing:
        warnings.append(f"{len(failing)} preflight check(s) failed: the campaign may not send until they pass.")
    return f"Preflight: {_plain(p.status)} — {shown}"


def _state_warnings(
    state: str,
    counts: Counts | None,
    due: datetime | None,
    now: datetime,
    checks: str = "the preflight checks (get_summary)",
) -> list[str]:
    warnings = _failure_warning(counts)
    if state == "pending_or_overdue":
        late = f" by {_span(now - due)}" if due is not None and due < now else ""
        warnings.append(f"The send is overdue{late}: its time has passed but no execution has started.")
    elif state == "failed":
        warnings.append(f"The latest execution failed: {checks} may show why; tell the campaign owner.")
    elif state == "not_scheduled" and counts is None:
        warnings.append("Not scheduled and never run: nothing will send until a schedule is set.")
    elif state == "scheduled" and counts is None:
        warnings.append("No execution has run yet, so there are no delivery counts.")
    return warnings


def render_status(s: CampaignStatus, now: datetime) -> str:
    """Text for get_status."""
    ex = s.execution
    zone = s.schedule.timezone if s.schedule else None
    lines = [
        f"{_header(s.name, s.campaign_id)} · authoring status {_plain(s.authoring_status)}",
        f"State: {_meaning(ex.state, EXECUTION_STATES)}",
    ]
    ids = [
        f"Channel {_plain(ex.channel)}" if ex.channel else None,
        f"touchpoint {_plain(str(ex.touchpoint_id))}" if ex.touchpoint_id is not None else None,
        f"manifest {_plain(ex.manifest_id)}" if ex.manifest_id else None,
    ]
    if any(ids):
        lines.append(" · ".join(i for i in ids if i))
    if s.schedule is None:
        lines.append("Schedule: none")
    else:
        sc = s.schedule
        active = "active" if sc.active else "inactive" if sc.active is False else "activity unknown"
        send = f"send at {describe_time(sc.send_at, zone, now)}" if sc.send_at else "no send time"
        schedule_id = f"; schedule id {_plain(sc.schedule_id)}" if sc.schedule_id else ""
        lines.append(f"Schedule: {active}; {send}{schedule_id}")
    run = ex.last_execution
    due = s.schedule.send_at if s.schedule else None
    warnings = _state_warnings(ex.state, run.counts if run else None, due, now)
    if run is None:
        lines.append("Latest run: none")
    else:
        lines.append(
            f"Latest run: {_plain(run.status)}" + (f"; run id {_plain(run.execution_id)}" if run.execution_id else "")
        )
        if run.started_at is not None:
            lines.append(f"- started {describe_time(run.started_at, zone, now)}")
        if run.completed_at is not None:
            lines.append(f"- completed {describe_time(run.completed_at, zone, now)}")
            if run.started_at is not None:
                lines.append(f"- took {_span(run.completed_at - run.started_at)}")
        elif run.started_at is not None:
            lines.append(f"- not completed; running for {_span(now - run.started_at)}")
        if run.counts is not None:
            lines += _pipeline(run.counts, ex.state == "running")
        else:
            lines.append("Counts: none reported for this run")
    return _warnings(lines, warnings)


def render_metrics(m: CampaignMetrics) -> str:
    """Text for get_metrics."""
    c = m.counts
    lines = [
        f"Metrics of campaign {_plain(m.campaign_id)}, latest execution (counts only; get_status gives state and times)"
    ]
    lines += _pipeline(c, running=None)
    if not any((c.scheduled, c.hydrated, c.composed, c.injected, c.sent, c.failed)):
        lines.append("All counts are 0: the campaign has no execution yet, or its latest run processed nothing.")
    return _warnings(lines, _failure_warning(c))


def render_error(
    tool: str, campaign_id: str, error: ExperitureError, *, subject: str | None = None, over_http: bool = False
) -> str:
    """What the model reads when a tool fails: what happened, whether a retry helps, and what to do next.

    over_http: the call came over hosted HTTP, where each request may bring its own token in a header.
    """
    what, todo = _explain(tool, error, over_http)
    subject = subject or (
        f"{tool} failed for campaign {campaign_id}"
        if not isinstance(error, InvalidCampaignId)
        else (f"{tool} refused campaign_id {quote(shown_id(campaign_id), 60)}")
    )
    text = f"{subject}: {what}"
    if isinstance(error, APIError):
        facts = [f"HTTP {error.status}" if error.status else None, f"code {_plain(error.code)}" if error.code else None]
        if any(facts):
            text += f" [{', '.join(f for f in facts if f)}]"
        if error.detail:
            text += f" API message: {quote(error.detail, 200)}"
    return f"{text}\n{todo}"


def _explain(tool: str, error: ExperitureError, over_http: bool) -> tuple[str, str]:  # noqa: C901 - one per kind
    scope = SCOPES.get(tool, "campaigns:read")
    match error:
        case UnusableToken():
            return (
                "the Experiture API token holds spaces, line breaks or non-ASCII characters, so it cannot be sent. "
                "No request was made.",
                "Retrying will not help. Ask the user to set the token exactly as Experiture shows it (check for a "
                "pasted line break or quote marks).",
            )
        case NotConfigured() if over_http:
            return (
                "no Experiture API token: the request has no X-Experiture-Token header (or an empty one, or an "
                "unexpanded ${...} placeholder) and the server has no EXPERITURE_API_TOKEN.",
                "Retrying will not help. Tell the user to add the header X-Experiture-Token with an Experiture API "
                f"token that has {scope} to this server's entry in their MCP client settings (if it reads "
                "${NAME}, to set NAME in the environment their MCP client starts from), or to ask the server's "
                "operator to set EXPERITURE_API_TOKEN.",
            )
        case NotConfigured():
            return (
                "the Experiture API token is not configured.",
                "Retrying will not help. Set EXPERITURE_API_TOKEN to an Experiture API token "
                f"with {scope} and restart the server, or run it with --demo to try the sample data.",
            )
        case InvalidCampaignId():
            return (
                f"it is not a campaign id; ids are UUIDs like {EXAMPLE_CAMPAIGN_ID}, or links to a campaign. "
                "No request was made.",
                "Ask the user for the campaign's UUID or its link from the Experiture app and call again.",
            )
        case Unauthorized() if over_http:
            return (
                "the Experiture API rejected the token: it is missing, invalid or expired.",
                "Retrying will not help. Ask the user to create a new API token in Experiture and send it in the "
                "X-Experiture-Token header of this server's entry in their MCP client settings, or, if they send no "
                "such header, to ask the server's operator to replace EXPERITURE_API_TOKEN.",
            )
        case Unauthorized():
            return (
                "the Experiture API rejected the token: it is missing, invalid or expired.",
                "Retrying will not help. Ask the user to create a new API token in Experiture and set it as "
                "EXPERITURE_API_TOKEN (or in the extension's settings), then restart the server.",
            )
        case InsufficientScope():
            hint = (
                " Meanwhile get_status (scope campaigns:read) also returns the latest run's pipeline counts."
                if tool == "get_metrics"
                else ""
            )
            return (
                f"the token lacks the {scope} scope this tool needs.",
                f"Retrying will not help. Ask an Experiture admin to grant {scope} to the token.{hint}",
            )
        case CampaignNotFound():
            return (
                "no campaign with this id is visible to this token.",
                "Do not retry the same id. Check it for typos or ask the user for the right campaign id; "
                "a campaign in another Experiture account is also reported as not found.",
            )
        case UnsupportedCampaignType():
            return (
                "the campaign exists, but it is not a broadcast campaign, and public API v1 supports only "
                "broadcast campaigns for this operation.",
                "Do not retry and do not report the campaign as missing: tell the user this campaign type "
                "cannot be inspected through the Experiture public API yet.",
            )
        case StatusInconsistent():
            return (
                "Experiture cannot assemble this campaign's status because its execution metadata is inconsistent.",
                "An immediate retry is unlikely to help. get_summary and get_metrics may still answer for "
                "this campaign; suggest reporting the inconsistency to Experiture support if it persists.",
            )
        case RateLimited():
            wait = f"{error.retry_after:g} s" if error.retry_after is not None else "a minute"
            return (
                "the Experiture API is rate-limiting requests.",
                f"Wait {wait}, then retry; avoid calling tools for many campaigns at once.",
            )
        case ServerError():
            return (
                "the Experiture API had a server error.",
                "This is usually temporary: retry in a minute. If it persists, Experiture may be having an "
                "outage; tell the user.",
            )
        case UpstreamTimeout():
            return (
                f"the Experiture API did not answer in time ({_one_line(str(error), 200)}).",
                "Usually temporary: retry shortly. If it keeps happening, check the network and "
                "EXPERITURE_BASE_URL, or raise EXPERITURE_TIMEOUT_SECONDS.",
            )
        case ConnectionFailed():
            return (
                f"the connection to the Experiture API failed ({_one_line(str(error), 200)}).",
                "Retry shortly. If it persists, check the network connection and EXPERITURE_BASE_URL.",
            )
        case BadResponse():
            return (
                f"the Experiture API gave an answer this server cannot read: {_one_line(str(error), 200)}.",
                "Retry once; if it persists, the API may have changed or a proxy is answering instead of "
                "Experiture: check EXPERITURE_BASE_URL and tell the user.",
            )
        case Unavailable():
            return _explain_unavailable(error)
        case APIError() if error.status is not None and 300 <= error.status < 400:
            return (
                "the Experiture API answered with a redirect, which this server never follows "
                "(it would send the token elsewhere).",
                "Retrying will not help. Check that EXPERITURE_BASE_URL is the API's exact base URL.",
            )
        case APIError():
            return (
                "the Experiture API refused the request.",
                "Retrying the same call will not help; tell the user the API's message.",
            )
        case _:
            return (_one_line(str(error), 200), "Tell the user what happened.")


def _explain_unavailable(error: Unavailable) -> tuple[str, str]:
    cause = error.cause
    tries = f"gave up after {_count(error.attempts, 'attempt')}"
    retry = f"Retry in {error.retry_after:g} s"
    match cause:
        case RateLimited():
            reason, todo = "it is rate-limiting requests", f"{retry}; avoid calling tools for many campaigns at once."
        case UpstreamTimeout():
            reason = f"it did not answer in time ({_one_line(str(cause), 200)})"
            todo = (
                f"{retry}. If it keeps happening, check the network and EXPERITURE_BASE_URL, or raise "
                "EXPERITURE_TIMEOUT_SECONDS (one request) or EXPERITURE_DEADLINE_SECONDS (the whole call)."
            )
        case ConnectionFailed():
            reason = f"the connection failed: {_one_line(str(cause), 200)}"
            todo = f"{retry}. If it persists, check the network connection and EXPERITURE_BASE_URL."
        case _:
            reason = "it answered with a temporary server error"
            todo = f"{retry}. If it keeps failing, Experiture may be having an outage; tell the user."
    return f"the Experiture API is temporarily unavailable: {reason}; {tries}.", todo


ATTENTION_LABELS = {
    "failed": "failed",
    "pending_or_overdue": "overdue",
    "inconsistent": "inconsistent",
    "high_failure_rate": "high failure rate",
    "error": "could not be read",
}


def overview_warnings(state: str | None, counts: Counts | None, send_at: datetime | None, now: datetime) -> list[str]:
    """The short warnings of one get_overview row."""
    warnings: list[str] = []
    if state == "failed":
        warnings.append("The latest run failed.")
    elif state == "pending_or_overdue":
        late = f" by {_span(now - send_at)}" if send_at is not None else ""
        warnings.append(f"Overdue{late}: the send time passed and no run started.")
    elif state == "running":
        warnings.append("Run in progress: counts are partial.")
    return warnings + _failure_warning(counts)


def short_reason(error: ExperitureError, scope: str) -> str:
    """A few words on why one campaign could not be read, for a row of a many-campaign answer."""
    match error:
        case InvalidCampaignId():
            return "not a campaign id (a UUID or a link to one); no request made"
        case NotConfigured():
            return "no Experiture API token is configured"
        case Unauthorized():
            return "the API rejected the token (missing, invalid or expired)"
        case InsufficientScope():
            return f"the token lacks the {scope} scope"
        case CampaignNotFound():
            return "not found: no campaign with this id is visible to this token"
        case UnsupportedCampaignType():
            return "not a broadcast campaign: public API v1 cannot report it"
        case StatusInconsistent():
            return "its execution metadata is inconsistent"
        case APIError() if error.retryable:
            wait = f"{error.retry_after:g} s" if error.retry_after is not None else "a minute"
            return f"temporarily unavailable ({error}); retry in {wait}"
        case BadResponse():
            return f"unreadable answer ({error})"
        case _:
            return str(error)


def _overview_row(r: OverviewRow, now: datetime) -> str:
    parts = [f"{quote(r.name, 80) if r.name is not None else '(name unknown)'} {_plain(r.campaign_id)}"]
    if r.state is not None:
        parts.append(_plain(r.state))
    if r.error is not None:
        e = r.error
        code = e.code.rsplit(".", 1)[-1] if e.code else None  # the structured row carries the full code
        facts = " ".join(f for f in (f"HTTP {e.http_status}" if e.http_status else None, code and _plain(code)) if f)
        what = "status unavailable" if e.endpoint == "status" else "refused"
        parts.append(f"{what}: {e.reason}" + (f" [{facts}]" if facts else ""))
    if r.last_run_at is not None:
        parts.append(f"last run {describe_time(r.last_run_at, None, now)}")
    elif r.state is not None:
        parts.append("never run")
    if r.next_send_at is not None:
        parts.append(f"{'was due' if r.next_send_at <= now else 'sends'} {describe_time(r.next_send_at, None, now)}")
    if r.sent is not None and r.failed is not None:
        counts = f"sent {_n(r.sent)} · failed {_n(r.failed)}"
        if r.sent + r.failed:
            counts += f" · failure rate {_pct(r.failed, r.sent + r.failed)}"
        parts.append(counts + (f" (from get_{r.counts_from})" if r.state is None else ""))
    if r.since_last_check is not None:
        parts.append(r.since_last_check.rstrip("."))
    return "- " + " · ".join(parts) + ("".join(f" ⚠ {w}" for w in r.warnings))


def render_overview(o: Overview, now: datetime) -> str:
    """Text for get_overview: rows needing attention first, then the rest, then one line of totals."""
    t = o.total
    urgent = [r for r in o.rows if r.attention is not None]
    calm = [r for r in o.rows if r.attention is None]
    needing = f"{t.needing_attention} need{'s' if t.needing_attention == 1 else ''} attention"
    lines = [
        f"Overview of {_count(t.campaigns, 'campaign')}: {needing}"
        + (", listed first" if urgent and calm else "")
        + ". Times in UTC; failure rate = failed ÷ (sent + failed) of the latest run."
    ]
    if urgent:
        lines.append("Needs attention:")
        lines += [_overview_row(r, now) for r in urgent]
    if calm:
        lines.append("No attention needed:")
        lines += [_overview_row(r, now) for r in calm]
    lines += [f"Note: {n}" for n in o.notes]
    kinds = [
        f"{sum(r.attention == key for r in urgent)} {label}"
        for key, label in ATTENTION_LABELS.items()
        if any(r.attention == key for r in urgent)
    ]
    total = f"Total: {_count(t.campaigns, 'campaign')} · {needing}"
    total += f" ({', '.join(kinds)})" if kinds else ""
    total += f" · sent {_n(t.sent)} · failed {_n(t.failed)}"
    if t.sent + t.failed:
        total += f" · failure rate {_pct(t.failed, t.sent + t.failed)}"
    return "\n".join([*lines, total])
