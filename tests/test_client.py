"""CampaignClient over real loopback HTTP: every response variant, error status and body shape; no stray request."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

import pytest
from pydantic import SecretStr
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from _scripted_api import ScriptedAPI, ok
from conftest import NOW
from experiture_mcp import __version__
from experiture_mcp.client import MAX_BODY_BYTES, CampaignClient, retry_after_seconds
from experiture_mcp.config import Settings
from experiture_mcp.errors import (
    APIError,
    BadResponse,
    CampaignNotFound,
    ClientError,
    InsufficientScope,
    InvalidCampaignId,
    NotConfigured,
    RateLimited,
    ServerError,
    StatusInconsistent,
    Unauthorized,
    Unavailable,
    UnsupportedCampaignType,
)
from experiture_mcp.models import Counts, DigitalSendSchedule, DirectMailBatchSchedule, OtherSchedule
from experiture_mcp.sandbox import ANALYTICS_ONLY_TOKEN, CAMPAIGNS_ONLY_TOKEN, DEMO_CAMPAIGNS, DEMO_TOKEN

CID = "11111111-2222-4333-8444-555555555555"
TOKEN = "tok-client-test"


@pytest.fixture
def api(scripted_server: tuple[ScriptedAPI, str]) -> ScriptedAPI:
    """The scripted API, emptied for this test."""
    scripted_server[0].reset()
    return scripted_server[0]


@pytest.fixture
def scripted(scripted_server: tuple[ScriptedAPI, str]) -> Settings:
    # One attempt: retries have their own tests, these are about what a single answer maps to.
    return Settings(api_token=SecretStr(TOKEN), base_url=scripted_server[1], retry_attempts=1)


def underlying(error: APIError) -> APIError:
    """The error behind a gave-up-retrying Unavailable, or the error itself."""
    return error.cause if isinstance(error, Unavailable) else error


@pytest.mark.anyio
async def test_a_digital_summary_parses_the_send_schedule_and_null_counts(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        summary = await client.get_summary(DEMO_CAMPAIGNS["summer-email"])

    assert isinstance(summary.schedule, DigitalSendSchedule)
    assert summary.schedule.send_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert summary.schedule.timezone == "Europe/London"
    assert summary.latest_execution is not None
    assert summary.latest_execution.status == "scheduled"
    assert summary.latest_execution.counts is None
    assert summary.latest_execution.last_execution_at is None


@pytest.mark.anyio
async def test_a_direct_mail_summary_parses_the_batch_date_and_timezone_source(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        summary = await client.get_summary(DEMO_CAMPAIGNS["spring-dm"])

    assert isinstance(summary.schedule, DirectMailBatchSchedule)
    assert summary.schedule.batch_date == date(2026, 11, 22)
    assert summary.schedule.timezone_source == "request"
    assert summary.latest_execution is not None
    assert summary.latest_execution.counts == Counts(
        scheduled=17491, hydrated=17491, composed=17485, injected=17485, sent=17480, failed=5
    )


@pytest.mark.anyio
async def test_null_names_member_counts_and_template_parse_as_none(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        summary = await client.get_summary(DEMO_CAMPAIGNS["holiday-draft"])

    assert summary.audience is not None and summary.audience.reach is not None
    (segment,) = summary.audience.included
    assert (segment.name, segment.member_count) == (None, None)
    assert summary.audience.reach.status == "idle"
    assert summary.audience.reach.evaluated_count is None
    assert summary.content is not None and summary.content.template is None


@pytest.mark.anyio
async def test_a_status_without_schedule_is_not_scheduled(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        status = await client.get_status(DEMO_CAMPAIGNS["holiday-draft"])

    assert status.schedule is None
    assert status.execution.state == "not_scheduled"
    assert status.execution.last_execution is None


@pytest.mark.anyio
async def test_a_running_status_has_a_start_and_no_end(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        status = await client.get_status(DEMO_CAMPAIGNS["tokyo-push"])

    run = status.execution.last_execution
    assert status.execution.state == "running"
    assert status.schedule is not None and status.schedule.active is True
    assert run is not None and run.completed_at is None
    assert run.started_at == NOW.replace(second=0) - timedelta(minutes=12) + timedelta(seconds=3)


@pytest.mark.anyio
async def test_metrics_of_a_campaign_that_never_ran_are_zeros(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        metrics = await client.get_metrics(DEMO_CAMPAIGNS["summer-email"])

    assert metrics.counts == Counts(scheduled=0, hydrated=0, composed=0, injected=0, sent=0, failed=0)


@pytest.mark.anyio
async def test_unknown_fields_are_ignored_and_unknown_values_kept_as_strings(
    api: ScriptedAPI, scripted: Settings
) -> None:
    api.script(
        CID,
        ok(
            {
                "campaignId": CID,
                "name": "Future",
                "channel": "whatsapp",
                "authoringStatus": "in_review",
                "brandNewField": {"nested": [1, 2]},
                "schedule": {"kind": "webhook_trigger", "mode": "on_event", "timezone": "UTC", "scheduled": True},
                "audience": {"included": [], "excluded": [], "reach": {"status": "recalculating", "extra": 1}},
                "preflight": {"status": "warning", "checks": [{"id": "x", "severity": "low"}]},
                "latestExecution": {"status": "paused", "counts": None, "operator": "someone"},
                "execution": {"state": "paused_by_admin"},
            }
        ),
    )

    async with CampaignClient(scripted) as client:
        summary = await client.get_summary(CID)
        status = await client.get_status(CID)

    assert isinstance(summary.schedule, OtherSchedule) and summary.schedule.kind == "webhook_trigger"
    assert (summary.channel, summary.authoring_status) == ("whatsapp", "in_review")
    assert summary.audience is not None and summary.audience.reach is not None
    assert summary.audience.reach.status == "recalculating"
    assert summary.preflight is not None and summary.preflight.status == "warning"
    assert summary.latest_execution is not None and summary.latest_execution.status == "paused"
    assert "brandNewField" not in summary.model_dump(by_alias=True)
    assert status.execution.state == "paused_by_admin"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("token", "slug", "method", "error", "code"),
    [
        ("wrong-token", "spring-dm", "get_status", Unauthorized, "JOURNEY_API.AUTH.UNAUTHORIZED"),
        (ANALYTICS_ONLY_TOKEN, "spring-dm", "get_summary", InsufficientScope, "JOURNEY_API.AUTH.INSUFFICIENT_SCOPE"),
        (CAMPAIGNS_ONLY_TOKEN, "spring-dm", "get_metrics", InsufficientScope, "JOURNEY_API.AUTH.INSUFFICIENT_SCOPE"),
        (DEMO_TOKEN, "onboarding-journey", "get_summary", UnsupportedCampaignType, "SUMMARY_TYPE_UNSUPPORTED"),
        (
            DEMO_TOKEN,
            "onboarding-journey",
            "get_metrics",
            UnsupportedCampaignType,
            "JOURNEY_API.PUBLIC.CAMPAIGNS.TYPE_UNSUPPORTED",
        ),
        (
            DEMO_TOKEN,
            "loyalty-inconsistent",
            "get_status",
            StatusInconsistent,
            "JOURNEY_API.PUBLIC.CAMPAIGNS.STATUS_INCONSISTENT",
        ),
    ],
)
async def test_demo_api_errors_map_to_their_types(
    demo_api: str, token: str, slug: str, method: str, error: type[APIError], code: str
) -> None:
    settings = Settings(api_token=SecretStr(token), base_url=demo_api)
    async with CampaignClient(settings) as client:
        with pytest.raises(error) as raised:
            await getattr(client, method)(DEMO_CAMPAIGNS[slug])

    assert raised.value.code == code
    assert raised.value.detail  # the API's own message is kept for the model
    assert type(raised.value) is error


@pytest.mark.anyio
async def test_an_unknown_campaign_is_not_found(settings: Settings) -> None:
    async with CampaignClient(settings) as client:
        with pytest.raises(CampaignNotFound) as raised:
            await client.get_status("00000000-0000-4000-8000-000000000000")

    assert (raised.value.status, raised.value.code) == (404, "JOURNEY_API.PUBLIC.CAMPAIGNS.NOT_FOUND")


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "error", "status", "code", "detail"),
    [
        (
            JSONResponse({"success": False, "error": {"code": "X.NOT_FOUND", "message": "gone"}}, 404),
            CampaignNotFound,
            404,
            "X.NOT_FOUND",
            "gone",
        ),
        (JSONResponse({"code": "X.SCOPE", "message": "no"}, 403), InsufficientScope, 403, "X.SCOPE", "no"),
        (JSONResponse({"error": "plain words"}, 400), ClientError, 400, None, "plain words"),
        (Response(status_code=401), Unauthorized, 401, None, None),
        (HTMLResponse("<html><body>Internal error</body></html>", 500), ServerError, 500, None, None),
        (JSONResponse({"code": "OTHER", "message": "boom"}, 500), ServerError, 500, "OTHER", "boom"),
        (JSONResponse(["not", "an", "object"], 422), ClientError, 422, None, None),
        (RedirectResponse("/v1/elsewhere", 302), ClientError, 302, None, None),
    ],
    ids=["envelope", "bare", "error-string", "no-body", "html", "bare-500", "array", "redirect"],
)
async def test_each_error_body_shape_maps_on_the_status(
    api: ScriptedAPI,
    scripted: Settings,
    reply: Response,
    error: type[APIError],
    status: int,
    code: str | None,
    detail: str | None,
) -> None:
    api.script(CID, lambda: reply)

    async with CampaignClient(scripted) as client:
        with pytest.raises(error) as raised:
            await client.get_summary(CID)

    assert type(raised.value) is error
    assert (raised.value.status, raised.value.code, raised.value.detail) == (status, code, detail)
    assert len(api.seen) == 1  # a redirect is reported, never followed


@pytest.mark.anyio
async def test_a_429_keeps_the_retry_after_the_api_asked_for(api: ScriptedAPI, scripted: Settings) -> None:
    api.script(CID, lambda: JSONResponse({"code": "RATE", "message": "slow down"}, 429, headers={"Retry-After": "7"}))

    async with CampaignClient(scripted) as client:
        with pytest.raises(APIError) as raised:
            await client.get_metrics(CID)

    cause = underlying(raised.value)
    assert isinstance(cause, RateLimited)
    assert (cause.status, cause.retry_after, cause.code) == (429, 7.0, "RATE")
    assert raised.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_temporary_server_error_is_reported_as_unavailable(
    api: ScriptedAPI, scripted: Settings, status: int
) -> None:
    api.script(CID, lambda: HTMLResponse("<h1>Bad gateway</h1>", status))

    async with CampaignClient(scripted) as client:
        with pytest.raises(Unavailable) as raised:
            await client.get_status(CID)

    assert isinstance(raised.value.cause, ServerError)
    assert (raised.value.status, raised.value.attempts) == (status, 1)
    assert raised.value.retryable


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        (ok({"campaignId": CID}), "wrong shape (counts: Field required)"),
        (ok({"campaignId": CID, "counts": {"scheduled": "many"}}), "wrong shape (counts.scheduled"),
        (lambda: JSONResponse({"success": True, "result": {}}), "without the expected {success, data} envelope"),
        (lambda: JSONResponse({"success": False, "data": None, "error": {"code": "E"}}), "success: false"),
        (lambda: HTMLResponse("<html>login</html>"), "not JSON (text/html"),
        (lambda: Response(b"", 200), "not JSON (no content type, 0 bytes)"),
        (lambda: Response(b"x" * (MAX_BODY_BYTES + 1), 200), "exceeds"),
    ],
    ids=["missing-field", "wrong-type", "no-envelope", "success-false", "html", "empty", "too-big"],
)
async def test_a_2xx_that_is_not_the_documented_json_is_a_bad_response(
    api: ScriptedAPI, scripted: Settings, reply: Callable[[], Response], fragment: str
) -> None:
    api.script(CID, reply)

    async with CampaignClient(scripted) as client:
        with pytest.raises(BadResponse) as raised:
            await client.get_metrics(CID)

    assert fragment in str(raised.value)
    assert raised.value.status == 200


@pytest.mark.anyio
@pytest.mark.parametrize(
    "campaign_id",
    [
        "../x",
        f"../../{CID}",
        "%2F",
        f"{CID[:8]}%2F{CID[9:]}",
        f" {CID}",
        f"{CID}\n",
        f"{CID}?include=all",
        f"{CID}#top",
        f"{CID}/../../admin",
        "",
        CID.replace("-", ""),
        "{" + CID + "}",
    ],
)
async def test_an_id_that_is_not_a_uuid_makes_no_request(
    api: ScriptedAPI, scripted: Settings, campaign_id: str
) -> None:
    async with CampaignClient(scripted) as client:
        for method in (client.get_summary, client.get_status, client.get_metrics):
            with pytest.raises(InvalidCampaignId):
                await method(campaign_id)

    assert api.seen == []


@pytest.mark.anyio
async def test_an_uppercase_uuid_is_valid_and_sent_lowercase(api: ScriptedAPI, scripted: Settings) -> None:
    api.script(CID, ok({"campaignId": CID, "counts": dict.fromkeys(Counts.model_fields, 0)}))

    async with CampaignClient(scripted) as client:
        metrics = await client.get_metrics(CID.upper())

    assert metrics.campaign_id == CID
    assert [seen.path for seen in api.seen] == [f"/v1/campaigns/{CID}/metrics"]


@pytest.mark.anyio
async def test_each_request_carries_the_user_agent_and_bearer_token(api: ScriptedAPI, scripted: Settings) -> None:
    api.script(CID, ok({"campaignId": CID, "execution": {"state": "scheduled"}}))

    async with CampaignClient(scripted) as client:
        await client.get_status(CID)

    (seen,) = api.seen
    assert seen.headers["user-agent"] == f"experiture-mcp/{__version__}"
    assert seen.headers["authorization"] == f"Bearer {TOKEN}"
    assert seen.headers["accept"] == "application/json"


@pytest.mark.anyio
async def test_a_missing_token_raises_not_configured_without_a_request(
    api: ScriptedAPI, scripted_server: tuple[ScriptedAPI, str]
) -> None:
    async with CampaignClient(Settings(base_url=scripted_server[1])) as client:
        with pytest.raises(NotConfigured):
            await client.get_summary(CID)

    assert api.seen == []


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 28, 15, 0, 0, tzinfo=UTC)

    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Sat, 28 Nov 2026 15:00:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Sat, 28 Nov 2026 14:00:00 GMT", now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds("²") is None  # a digit to str.isdigit, not to float()
    assert retry_after_seconds(None) is None
