"""wait_for_run: poll one campaign's status until its run ends, its state changes or the wait's time is up.

Time limits: `timeout_seconds` (at most 55, so clients' own 60 s limits are not hit) bounds the whole wait; the
per-call deadline (EXPERITURE_DEADLINE_SECONDS) bounds each poll, retries included, as it bounds one get_status call.
The limit counts from the first answer, but from no later than 1 s after the start; a poll still running when it is
up gets at most FINAL_POLL_GRACE more. So a wait ends within timeout + 4 s (≤ 59 s), unless its first check alone
takes longer, as one get_status call may.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal, Protocol

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from experiture_mcp.client import CampaignClient
from experiture_mcp.config import Settings
from experiture_mcp.errors import (
    APIError,
    ExperitureError,
    InvalidCampaignId,
    Unavailable,
    UpstreamTimeout,
    shown_id,
)
from experiture_mcp.history.progress import (
    CamelModel,
    Change,
    Observation,
    Progress,
    compare,
    describe_change,
    estimate,
    eta_clock,
    progress_line,
    rate_pair,
)
from experiture_mcp.inflight import cancel_scope
from experiture_mcp.memory import Memory, entry_from
from experiture_mcp.models import CAMPAIGN_ID_DESCRIPTION, CampaignStatus, campaign_id_from, dump, is_campaign_id
from experiture_mcp.render import describe_time, plain, quote, render_error, render_status, span, thousands
from experiture_mcp.results import READ_ONLY, error_result, internal_error_result, ok_result

__all__ = [
    "DEFAULT_WAIT_SECONDS",
    "FINAL_POLL_GRACE",
    "MAX_WAIT_SECONDS",
    "RunWait",
    "Wait",
    "clamp_timeout",
    "register_wait",
    "render_wait",
    "wait_for",
]

log = logging.getLogger(__name__)

DEFAULT_WAIT_SECONDS: float = 45  # an int, so the schema reads "default":45
MAX_WAIT_SECONDS = 55.0
FINAL_POLL_GRACE = 2.5
OVERDUE_WORTH_WAITING = timedelta(minutes=15)  # a send this late has most likely not just been delayed a little

Outcome = Literal["completed", "failed", "state_changed", "new_run", "timeout", "not_waiting"]


class RunWait(CamelModel):
    """How a wait for a campaign's run ended, and the latest status it saw (wait_for_run)."""

    outcome: Outcome = Field(
        description="completed | failed | state_changed | new_run | timeout (still the same at the end) | "
        "not_waiting (nothing to wait for: returned at once)"
    )
    timeout_seconds: float = Field(description="The wait's limit after clamping to 0..55.")
    waited_seconds: float
    checks: int = Field(description="Successful status checks, the first included.")
    failed_checks: int = Field(description="Checks that got no usable answer (the wait went on).")
    note: str | None = Field(default=None, description="Why it did not wait, when it did not.")
    status: CampaignStatus = Field(description="The latest status seen.")
    change: Change | None = Field(default=None, description="From the first check to the latest.")
    progress: Progress | None = Field(default=None, description="Rate and ETA from the wait's own checks.")


class WaitState(Protocol):
    """The parts of the server's lifespan state that wait_for_run uses."""

    @property
    def settings(self) -> Settings: ...
    @property
    def client(self) -> CampaignClient: ...
    @property
    def clock(self) -> Callable[[], datetime]: ...
    @property
    def memory(self) -> Memory: ...


Report = Callable[[float, float | None, str], Awaitable[None]]


def clamp_timeout(value: float) -> float:
    """The wait's limit in 0..MAX_WAIT_SECONDS; anything not a finite number means the default."""
    if not math.isfinite(value):
        return DEFAULT_WAIT_SECONDS
    return min(MAX_WAIT_SECONDS, max(0.0, value))


def _not_worth_waiting(status: CampaignStatus, timeout: float, now: datetime) -> str | None:
    """Why waiting would only pass the time, or None when it may see a change."""
    state = status.execution.state
    send_at = status.schedule.send_at if status.schedule is not None else None
    zone = status.schedule.timezone if status.schedule is not None else None
    match state:
        case "running":
            return None
        case "completed" | "failed":
            return f"the latest run already {state}; there is nothing to wait for."
        case "not_scheduled":
            return "the campaign has no schedule and no run, so nothing would start while waiting."
        case "scheduled" if send_at is not None and send_at <= now + timedelta(seconds=timeout):
            return None
        case "scheduled" if send_at is not None:
            return (
                f"the next send is at {describe_time(send_at, zone, now)}, after this wait's "
                f"{timeout:g} s; call again shortly before then."
            )
        case "pending_or_overdue" if send_at is None or now - send_at <= OVERDUE_WORTH_WAITING:
            return None
        case "pending_or_overdue":
            assert send_at is not None
            return (
                f"the send time passed {span(now - send_at)} ago and no run has started, so a run is unlikely to "
                "start within the wait; get_summary shows what may hold it back."
            )
        case _:
            return f"the state {quote(state, 40)} is not one this server knows how to wait for."


@dataclass
class Wait:
    """Everything one wait saw: its checks, failed checks, how it ended."""

    timeout: float
    observations: list[Observation] = field(default_factory=list[Observation])
    statuses: list[CampaignStatus] = field(default_factory=list[CampaignStatus])
    failures: list[APIError] = field(default_factory=list[APIError])
    outcome: Outcome = "timeout"
    waited: float = 0.0
    note: str | None = None
    reported: int = -1  # the processed count last sent as progress

    @property
    def first(self) -> Observation:
        return self.observations[0]

    @property
    def latest(self) -> Observation:
        return self.observations[-1]

    def progress(self) -> Progress | None:
        """Rate and ETA from the wait's own checks, when two of the same run are far enough apart."""
        pair = rate_pair(self.observations)
        return estimate(*pair, self.latest.fetched_at) if pair is not None else None

    def result(self) -> RunWait:
        """The structured content of wait_for_run."""
        waiting = self.outcome != "not_waiting"
        return RunWait(
            outcome=self.outcome,
            timeout_seconds=self.timeout,
            waited_seconds=round(self.waited, 3),
            checks=len(self.observations),
            failed_checks=len(self.failures),
            note=self.note,
            status=self.statuses[-1],
            change=compare(self.first, self.latest) if waiting else None,
            progress=self.progress() if waiting else None,
        )


def _outcome(first: Observation, latest: Observation) -> Outcome | None:
    if latest.execution_id is not None and first.execution_id not in (None, latest.execution_id):
        return "new_run"
    if latest.state == first.state:
        return None
    return "completed" if latest.state == "completed" else "failed" if latest.state == "failed" else "state_changed"


async def wait_for(
    client: CampaignClient,
    campaign_id: str,
    *,
    token: str | None,
    timeout: float,
    interval: float,
    clock: Callable[[], datetime],
    report: Report | None = None,
) -> Wait:
    """Poll get_status every `interval` s (later after a failed check or when the API asks) until the run ends, its
    state changes or `timeout` s pass. Temporary failures after the first check only count as failed checks.

    Raises:
        ExperitureError: the first check failed, or a later one failed for good (token, scope, not found).
    """
    started = anyio.current_time()
    wait = Wait(timeout)

    def done(outcome: Outcome, note: str | None = None) -> Wait:
        wait.outcome, wait.note, wait.waited = outcome, note, anyio.current_time() - started
        return wait

    first = await client.get_status(campaign_id, token=token)
    wait.statuses.append(first)
    wait.observations.append(Observation.of_status(first, clock()))
    zone = first.schedule.timezone if first.schedule is not None else None
    reason = _not_worth_waiting(first, timeout, clock())
    if reason is not None:
        return done("not_waiting", reason)
    await _report(wait, zone, clock(), report)
    # Each check starts at least `interval` after the one before it (after its end when it failed, since its retries
    # were requests too), and never before a Retry-After has passed. The clock starts at the first answer, so the
    # first request's connection set-up never shortens a gap, and so does the limit, but no later than 1 s after the
    # start. A check due within a little of the limit (sleep overshoot adds up) still runs: k intervals, k + 1 checks.
    last = not_before = anyio.current_time()
    end = min(last, started + 1.0) + timeout
    slack = min(interval / 4, 0.5)
    while True:
        next_at = max(last + interval, not_before)
        if next_at > end + slack:
            return done("timeout")
        await anyio.sleep(max(0.0, next_at - anyio.current_time()))
        last = anyio.current_time()
        status: CampaignStatus | None = None
        with anyio.move_on_after(max(end, last) + FINAL_POLL_GRACE - last):
            try:
                status = await client.get_status(campaign_id, token=token)
            except APIError as exc:
                if not exc.retryable:
                    raise
                wait.failures.append(exc)
                last = anyio.current_time()
                asked = exc.cause.retry_after if isinstance(exc, Unavailable) else exc.retry_after
                if asked:
                    not_before = last + asked  # the API's own Retry-After, never sooner
                continue
        if status is None:
            wait.failures.append(UpstreamTimeout(f"no answer before the wait's {timeout:g} s were up"))
            last = anyio.current_time()
            continue
        wait.statuses.append(status)
        wait.observations.append(Observation.of_status(status, clock()))
        outcome = _outcome(wait.first, wait.latest)
        if outcome is not None:
            return done(outcome)
        await _report(wait, zone, clock(), report)


async def _report(wait: Wait, zone: str | None, now: datetime, report: Report | None) -> None:
    """A progress notification with the counts so far and the ETA once known, when the processed count grew."""
    latest = wait.latest
    if report is None or latest.counts is None or latest.resolved is None or latest.resolved <= wait.reported:
        return
    wait.reported = latest.resolved
    c = latest.counts
    message = f"sent {thousands(c.sent)} · failed {thousands(c.failed)} of {thousands(c.scheduled)} scheduled"
    p = wait.progress()
    if p is not None and p.eta is not None and not p.overdue and p.remaining:
        message += f"; at this rate done around {eta_clock(p.eta, zone, now)}"
    await report(float(latest.resolved), float(c.scheduled) if c.scheduled else None, message)


def render_wait(wait: Wait, now: datetime) -> str:
    """Text for wait_for_run: how the wait ended, what changed meanwhile, the rate and ETA, then the status."""
    s = wait.statuses[-1]
    zone = s.schedule.timezone if s.schedule is not None else None
    n = len(wait.observations)
    checks = f"{n} check{'s' if n != 1 else ''}"
    waited = span(timedelta(seconds=wait.waited))
    after = f"after {waited}, {checks}"
    first, latest = wait.first, wait.latest
    match wait.outcome:
        case "not_waiting":
            return f"Not waiting: {wait.note}\n{render_status(s, now)}"
        case "completed" | "failed":
            lines = [f"The run {wait.outcome} while waiting ({after})."]
        case "state_changed":
            lines = [f"The state changed while waiting: {plain(first.state)} → {plain(latest.state)} ({after})."]
        case "new_run":
            lines = [f"A new run started while waiting ({after}): the run waited for ended between two checks."]
        case "timeout":
            lines = [
                f"Still {plain(s.execution.state)} after waiting {waited} ({checks}): not finished yet. "
                "Call wait_for_run again to keep waiting."
            ]
    if n > 1:
        lines.append(describe_change(compare(first, latest), first, latest, f"during the {waited} wait"))
    if wait.failures:
        failed = len(wait.failures)
        lines.append(
            f"{failed} check{'s' if failed != 1 else ''} got no usable answer "
            f"(the last: {wait.failures[-1]}); the wait went on; the status below is from the latest check that did."
        )
    line = progress_line(wait.observations, zone, now)
    if line is not None:
        lines.append(line)
    lines.append(render_status(s, now))
    return "\n".join(lines)


def register_wait(mcp: MCPServer[Any], request_token: Callable[[Context[Any, Any]], str | None]) -> None:
    """Add the wait_for_run tool to `mcp`; `request_token` gives the caller's own API token, if any."""

    @mcp.tool(title="Wait for a run", annotations=READ_ONLY)
    async def wait_for_run(
        campaign_id: Annotated[str, Field(description=CAMPAIGN_ID_DESCRIPTION)],
        ctx: Context[WaitState, Any],
        timeout_seconds: Annotated[float, Field(description="Max 55.")] = DEFAULT_WAIT_SECONDS,
    ) -> Annotated[CallToolResult, RunWait]:
        """Waits until a campaign's run ends or its state changes (at timeout: counts and ETA so far); returns at once if nothing runs or is due. Needs campaigns:read."""  # noqa: E501
        state = ctx.request_context.lifespan_context
        token = request_token(ctx)
        timeout = clamp_timeout(timeout_seconds)
        given, campaign_id = campaign_id, campaign_id_from(campaign_id) or campaign_id
        wait: Wait | None = None
        try:
            if not is_campaign_id(campaign_id):
                raise InvalidCampaignId(given)
            # Over hosted HTTP the exchange's end or the caller's posted cancel ends the wait (inflight.py).
            with cancel_scope(ctx.request_context.request):
                wait = await wait_for(
                    state.client,
                    campaign_id,
                    token=token,
                    timeout=timeout,
                    interval=state.settings.wait_poll_seconds,
                    clock=state.clock,
                    report=ctx.report_progress,
                )
        except ExperitureError as exc:
            log.info("wait_for_run %s: %s", shown_id(campaign_id), exc)
            return error_result(render_error("wait_for_run", campaign_id, exc, over_http=ctx.headers is not None))
        except Exception:
            log.exception("wait_for_run %s crashed", shown_id(campaign_id))
            return internal_error_result(f"wait_for_run failed for campaign {campaign_id}")
        if wait is None:  # cancelled: nobody reads the answer any more
            log.info("wait_for_run %s: cancelled", shown_id(campaign_id))
            return error_result("wait_for_run was cancelled before it finished.")
        result = wait.result()
        seen = [(campaign_id, o) for o in wait.observations]  # each check of the wait, in order
        state.memory.note(token or state.settings.token, [entry_from(result.status)], seen)
        return ok_result(render_wait(wait, state.clock()), dump(result))
