"""Property tests: no campaign id or upstream body, however odd, crashes the client, the renderer or the server."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, cast

import httpx2
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client
from pydantic import BaseModel, SecretStr

from _fault_api import FaultAPI, record_bodies, reply
from conftest import NOW, frozen_clock, text_of
from experiture_mcp.client import CampaignClient, _parse, retry_after_seconds  # pyright: ignore[reportPrivateUsage]
from experiture_mcp.config import Settings
from experiture_mcp.errors import APIError, InvalidCampaignId
from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary, campaign_id_from, is_campaign_id
from experiture_mcp.render import render_error, render_metrics, render_status, render_summary
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from experiture_mcp.server import build_server

settings.register_profile(
    "fuzz", deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], print_blob=True
)
FUZZ = settings.get_profile("fuzz")

Json = Any
ENDPOINTS: dict[str, tuple[type[BaseModel], Callable[[Any, datetime], str]]] = {
    "summary": (CampaignSummary, render_summary),
    "status": (CampaignStatus, render_status),
    "metrics": (CampaignMetrics, lambda m, _: render_metrics(m)),
}
SPRING = DEMO_CAMPAIGNS["spring-dm"]
JSON_HEADERS = httpx2.Headers({"content-type": "application/json"})

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40)
timestamps = st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
edge_timestamps = st.sampled_from(["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "9999-12-31T23:59:59Z"])
json_values = st.recursive(
    scalars | timestamps | edge_timestamps,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
)
campaign_ids = st.one_of(
    st.text(),
    st.uuids().map(str),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: f" {u}"),
    st.uuids().map(lambda u: f"{u}\n"),
    st.uuids().map(lambda u: str(u).replace("-", "")),
    st.uuids().map(lambda u: f"{u}/../../admin"),
    st.uuids().map(lambda u: str(u).replace("a", "\uff41")),  # a full-width look-alike
)


@pytest.fixture(scope="module")
def canned(demo_api: str) -> dict[str, tuple[int, bytes]]:
    return record_bodies(demo_api, DEMO_TOKEN, DEMO_CAMPAIGNS.values())


def _nodes(value: Json, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in cast(dict[str, Any], value).items():
            yield from _nodes(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(cast(list[Any], value)):
            yield from _nodes(child, (*path, i))


def _replace(value: Json, path: tuple[Any, ...], new: Json) -> Json:
    if not path:
        return new
    head, *rest = path
    copy: Any = dict(cast(dict[str, Any], value)) if isinstance(value, dict) else list(cast(list[Any], value))
    copy[head] = _replace(copy[head], tuple(rest), new)
    return copy


@st.composite
def mutated(draw: st.DrawFn, real: Json) -> Json:
    """A real body with a few subtrees swapped for arbitrary JSON: near-valid, so validation and rendering get deep."""
    body = real
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_nodes(body))
        body = _replace(body, paths[draw(st.integers(0, len(paths) - 1))], draw(json_values))
    return body


def _real(canned: dict[str, tuple[int, bytes]], endpoint: str) -> Json:
    return json.loads(canned[f"/public/v1/campaigns/{SPRING}/{endpoint}"][1])


def _check_one_answer(endpoint: str, status: int, body: bytes) -> None:
    """_parse gives a model that renders, or raises one of our errors that renders; nothing else."""
    model_type, render = ENDPOINTS[endpoint]
    try:
        model = _parse(status, JSON_HEADERS, body, model_type)
    except APIError as error:
        text = render_error(f"get_{endpoint}", SPRING, error)
        assert text.count("\n") == 1  # what happened, then what to do
        return
    assert isinstance(model, model_type)
    assert render(model, NOW)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_near_valid_bodies_give_a_model_or_a_typed_error(
    endpoint: str, canned: dict[str, tuple[int, bytes]], data: st.DataObject
) -> None:
    body = data.draw(mutated(_real(canned, endpoint)))
    _check_one_answer(endpoint, 200, json.dumps(body).encode())


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(FUZZ, max_examples=30)
@given(body=json_values, status=st.sampled_from([200, 201, 204, 301, 400, 401, 403, 404, 409, 429, 500, 502, 503]))
def test_arbitrary_json_with_any_status_gives_a_model_or_a_typed_error(endpoint: str, body: Json, status: int) -> None:
    _check_one_answer(endpoint, status, json.dumps(body).encode())


@settings(FUZZ, max_examples=40)
@given(body=st.binary(max_size=200), status=st.integers(100, 599))
def test_arbitrary_bytes_with_any_status_give_a_typed_error_or_a_model(body: bytes, status: int) -> None:
    _check_one_answer("status", status, body)


@settings(FUZZ, max_examples=30)
@given(
    error=st.dictionaries(st.sampled_from(["code", "message", "error", "success", "data"]), json_values, max_size=4),
    status=st.integers(400, 599),
)
def test_error_bodies_of_any_shape_map_to_a_typed_error(error: Json, status: int) -> None:
    _check_one_answer("metrics", status, json.dumps(error).encode())


@settings(FUZZ, max_examples=60)
@given(
    moments=st.lists(edge_timestamps | timestamps, min_size=3, max_size=3),
    zone=st.timezone_keys() | st.text(max_size=30),
)
def test_any_timestamp_in_any_time_zone_renders_or_is_a_bad_response(moments: list[str], zone: str) -> None:
    send_at, started, completed = moments
    run = {"startedAt": started, "completedAt": completed, "status": "completed"}
    data = {
        "campaignId": SPRING,
        "schedule": {"sendAt": send_at, "timezone": zone},
        "execution": {"state": "completed", "lastExecution": run},
    }
    _check_one_answer("status", 200, json.dumps({"success": True, "data": data}).encode())


@settings(FUZZ, max_examples=100)
@given(value=st.text() | st.datetimes().map(lambda d: format_datetime(d.replace(tzinfo=UTC))) | st.integers(0).map(str))
def test_any_retry_after_value_is_a_finite_wait_or_none(value: str) -> None:
    wait = retry_after_seconds(value)
    assert wait is None or (wait >= 0 and math.isfinite(wait))


@pytest.fixture(scope="module")
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal("asyncio") as running:
        yield running


@pytest.fixture(scope="module")
def fault_api(canned: dict[str, tuple[int, bytes]]) -> Iterator[FaultAPI]:
    with FaultAPI(canned) as api:
        yield api


def _settings(api: FaultAPI) -> Settings:
    return Settings(api_token=SecretStr(DEMO_TOKEN), base_url=api.url, timeout_seconds=1, retry_backoff_seconds=0.01)


@pytest.fixture(scope="module")
def campaign_client(portal: BlockingPortal, fault_api: FaultAPI) -> Iterator[CampaignClient]:
    with portal.wrap_async_context_manager(CampaignClient(_settings(fault_api))) as client:
        yield client


@settings(FUZZ, max_examples=150)
@given(campaign_id=campaign_ids)
def test_only_a_uuid_campaign_id_ever_reaches_the_api(
    campaign_id: str, portal: BlockingPortal, fault_api: FaultAPI, campaign_client: CampaignClient
) -> None:
    fault_api.requests.clear()
    try:
        portal.call(campaign_client.get_metrics, campaign_id)
    except InvalidCampaignId:
        assert not is_campaign_id(campaign_id)
        assert fault_api.requests == []
    except APIError:  # an unknown UUID: a 404 from the API
        assert is_campaign_id(campaign_id)
        assert [r.path for r in fault_api.requests] == [f"/public/v1/campaigns/{campaign_id.lower()}/metrics"]
    else:
        assert str(uuid.UUID(campaign_id)) in {c.lower() for c in DEMO_CAMPAIGNS.values()}


@pytest.fixture(scope="module")
def mcp(portal: BlockingPortal, fault_api: FaultAPI) -> Iterator[Client]:
    server = build_server(_settings(fault_api), clock=frozen_clock)
    with portal.wrap_async_context_manager(Client(server)) as client:
        yield client


def _call(portal: BlockingPortal, mcp: Client, tool: str, campaign_id: str) -> str:
    result = portal.call(mcp.call_tool, tool, {"campaign_id": campaign_id})
    text = text_of(result)
    assert "internal error" not in text  # our catch-all for a bug in a tool
    assert "Error executing tool" not in text  # the SDK's, for an exception that escaped the tool
    return text


@settings(FUZZ, max_examples=30)
@given(campaign_id=campaign_ids)
def test_any_campaign_id_through_mcp_gets_a_clear_answer_and_no_request_unless_a_uuid(
    campaign_id: str, portal: BlockingPortal, fault_api: FaultAPI, mcp: Client
) -> None:
    fault_api.requests.clear()
    text = _call(portal, mcp, "get_status", campaign_id)
    if campaign_id_from(campaign_id) is None:  # a UUID with spaces around it, or a link holding one, is looked up
        assert fault_api.requests == []
        assert text.startswith("get_status refused campaign_id ")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@settings(FUZZ, max_examples=8)
@given(data=st.data())
def test_odd_upstream_bodies_through_mcp_never_give_an_internal_error(
    endpoint: str,
    canned: dict[str, tuple[int, bytes]],
    portal: BlockingPortal,
    fault_api: FaultAPI,
    mcp: Client,
    data: st.DataObject,
) -> None:
    body = data.draw(mutated(_real(canned, endpoint)) | json_values)
    fault_api.plan(reply(data.draw(st.sampled_from([200, 400, 404, 500])), body))
    _call(portal, mcp, f"get_{endpoint}", SPRING)
    fault_api.heal()
