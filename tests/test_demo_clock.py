"""The demo's running push follows an injected clock: counts grow steadily, the run completes, a new run follows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import NOW
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, LIVE_RUN_PERIOD, create_app, live_run

TOKYO = DEMO_CAMPAIGNS["tokyo-push"]
STARTED = datetime(2026, 11, 28, 14, 48, 3, tzinfo=UTC)
KEYS = ("scheduled", "hydrated", "composed", "injected", "sent", "failed")


class Clock:
    """A clock the test moves."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def answers(clock: Clock, *offsets: float) -> list[dict[str, Any]]:
    """Status, summary and metrics data of the push at NOW + each offset, through the demo app's HTTP interface."""
    seen: list[dict[str, Any]] = []
    transport = httpx2.ASGITransport(app=create_app(clock=clock))
    headers = {"Authorization": f"Bearer {DEMO_TOKEN}"}
    async with httpx2.AsyncClient(transport=transport, base_url="http://demo/public/v1/", headers=headers) as http:
        for offset in offsets:
            clock.at = NOW + timedelta(seconds=offset)
            seen.append(
                {e: (await http.get(f"campaigns/{TOKYO}/{e}")).json()["data"] for e in ("status", "summary", "metrics")}
            )
    return seen


def run_of(answer: dict[str, Any]) -> dict[str, Any]:
    run: dict[str, Any] = answer["status"]["execution"]["lastExecution"]
    return run


@pytest.mark.anyio
async def test_counts_grow_with_the_clock_and_the_run_completes_when_all_are_processed() -> None:
    seen = await answers(Clock(NOW), -747, 0, 5, 60, 478.079, 478.08, 600)
    runs = [run_of(a) for a in seen]
    sent = [r["counts"]["sent"] for r in runs]

    assert runs[1]["counts"] == dict(zip(KEYS, (50000, 50000, 31250, 30000, 29876, 124), strict=True))
    assert runs[0]["counts"] == dict.fromkeys(KEYS, 0) | {"scheduled": 50000}  # the instant it started
    assert sent == sorted(sent) and sent[2] > sent[1] and sent[3] - sent[1] == 2500  # ~2,500 sent a minute
    assert [r["status"] for r in runs] == ["running"] * 5 + ["completed"] * 2
    assert runs[5]["completedAt"] == "2026-11-28T15:08:28.080Z" and runs[4]["completedAt"] is None
    assert runs[6]["counts"] == dict(zip(KEYS, (50000, 50000, 50000, 50000, 49794, 206), strict=True))
    assert {r["executionId"] for r in runs} == {"0217f057-625d-5b5d-9cd9-6f6a885e47bb"}
    for answer, run in zip(seen, runs, strict=True):  # the three endpoints tell the same story
        assert answer["metrics"]["counts"] == run["counts"]
        latest = answer["summary"]["latestExecution"]
        assert latest == {"status": run["status"], "lastExecutionAt": run["startedAt"], "counts": run["counts"]}
        assert answer["status"]["execution"]["state"] == run["status"]


@pytest.mark.anyio
async def test_the_next_send_starts_a_new_run_with_its_own_id() -> None:
    done, fresh = (run_of(a) for a in await answers(Clock(NOW), 1000, 1060))
    assert done["status"] == "completed" and fresh["status"] == "running"
    assert fresh["startedAt"] == "2026-11-28T15:18:03.000Z" and fresh["executionId"] != done["executionId"]
    assert fresh["counts"]["sent"] < done["counts"]["sent"]


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    st.floats(0, 1800),
)
def test_within_a_run_counts_never_go_down_and_the_pipeline_stays_ordered(at: datetime, later: float) -> None:
    send_at, run = live_run(TOKYO, at)
    send_at2, run2 = live_run(TOKYO, at + timedelta(seconds=later))
    assert send_at == run.started_at - timedelta(seconds=3) and timedelta(0) <= at - run.started_at < LIVE_RUN_PERIOD
    scheduled, hydrated, composed, injected, sent, failed = run.counts
    assert scheduled == 50000 and scheduled >= hydrated >= composed >= injected == sent + failed
    assert (run.status == "completed") == (run.completed_at is not None) == (sent + failed == scheduled)
    if run2.execution_id == run.execution_id:
        assert send_at2 == send_at
        assert all(b >= a for a, b in zip(run.counts, run2.counts, strict=True))
    else:
        assert run2.started_at > run.started_at
