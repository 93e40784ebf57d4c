"""Hosted mode over real streamable HTTP on loopback: access keys, Host/Origin checks, tenants, workers, secrets."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, Resource, ResourceTemplateReference, TextContent, TextResourceContents
from pydantic import SecretStr
from starlette.types import Receive, Scope, Send

from _snapshot import assert_snapshot
from conftest import ServedApp, connect, free_port, frozen_clock, text_of
from experiture_mcp.config import ConfigError, Settings
from experiture_mcp.hosted import HEALTH_PATH, MCP_PATH, WORKER_HEADER, build_app
from experiture_mcp.sandbox import (
    CAMPAIGNS_ONLY_TOKEN,
    DEMO_CAMPAIGNS,
    DEMO_TOKEN,
    TENANT_B_CAMPAIGNS,
    TENANT_B_TOKEN,
    create_app,
)

ACCESS_KEY = "test-key-" + secrets.token_urlsafe(24)
WRONG_TOKEN = "wrong-token-" + secrets.token_hex(8)
SECRETS = (ACCESS_KEY, DEMO_TOKEN, TENANT_B_TOKEN, CAMPAIGNS_ONLY_TOKEN, WRONG_TOKEN)
APP_ORIGIN = "https://app.example.com"
ACME = [cid for name, cid in DEMO_CAMPAIGNS.items() if name in ("spring-dm", "summer-email", "flash-sms", "tokyo-push")]
GLOBEX = list(TENANT_B_CAMPAIGNS.values())
SPRING = DEMO_CAMPAIGNS["spring-dm"]
STATUS_TEMPLATE = "experiture://campaigns/{campaign_id}/status"
TOOLS_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}


class RecordingUpstream:
    """The demo API, noting every Authorization header it receives."""

    def __init__(self) -> None:
        self.app = create_app(clock=frozen_clock)
        self.authorizations: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.authorizations += [v.decode() for k, v in scope["headers"] if k == b"authorization"]
        await self.app(scope, receive, send)


@dataclass
class Hosted:
    """One hosted app on loopback and the upstream it talks to."""

    url: str
    upstream: RecordingUpstream


@dataclass
class Seen:
    """Everything the client side received: statuses, worker ids and raw bodies."""

    statuses: list[int] = field(default_factory=list[int])
    workers: set[str] = field(default_factory=set[str])
    bodies: list[str] = field(default_factory=list[str])

    async def __call__(self, response: httpx2.Response) -> None:
        await response.aread()
        self.statuses.append(response.status_code)
        self.workers.add(response.headers.get(WORKER_HEADER, "?"))
        self.bodies.append(f"{response.headers}\n{response.text}")


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, RecordingUpstream]]:
    recorder = RecordingUpstream()
    with ServedApp(recorder) as served:
        yield served.url + "/public/v1", recorder


@contextmanager
def serving(upstream: tuple[str, RecordingUpstream], **settings: Any) -> Generator[Hosted]:
    """The hosted app built from `settings`, served on loopback in front of the recording upstream."""
    base_url, recorder = upstream
    app = build_app(Settings(base_url=base_url, **settings), clock=frozen_clock)
    with ServedApp(app, lifespan="on") as served:
        yield Hosted(served.url, recorder)


@pytest.fixture(scope="module")
def multi_tenant(upstream: tuple[str, RecordingUpstream]) -> Iterator[Hosted]:
    """Access keys required; no EXPERITURE_API_TOKEN, so each request brings its own; one extra browser origin."""
    with serving(upstream, mcp_access_keys=ACCESS_KEY, mcp_allowed_origins=APP_ORIGIN) as hosted:
        yield hosted


@pytest.fixture(scope="module")
def single_tenant(upstream: tuple[str, RecordingUpstream]) -> Iterator[Hosted]:
    """Access keys required and EXPERITURE_API_TOKEN set."""
    with serving(upstream, mcp_access_keys=ACCESS_KEY, api_token=SecretStr(DEMO_TOKEN)) as hosted:
        yield hosted


@pytest.fixture(scope="module")
def open_loopback(upstream: tuple[str, RecordingUpstream]) -> Iterator[Hosted]:
    """Loopback without access keys or token, as a developer runs it locally."""
    with serving(upstream) as hosted:
        yield hosted


@asynccontextmanager
async def http_client(url: str, era: str, headers: dict[str, str], seen: Seen | None = None) -> AsyncGenerator[Client]:
    """A real SDK client over streamable HTTP with the given request headers."""
    hooks = {"response": [seen]} if seen is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, event_hooks=hooks) as http,
        Client(streamable_http_client(url + MCP_PATH, http_client=http), mode=era) as client,  # type: ignore[arg-type]
    ):
        yield client


def authorized(token: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {ACCESS_KEY}"}
    return headers if token is None else {**headers, "X-Experiture-Token": token}


async def post(url: str, payload: Any, headers: dict[str, str]) -> httpx2.Response:
    """One raw JSON-RPC POST, as a browser or a script would send it."""
    base = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient() as http:
        return await http.post(url + MCP_PATH, json=payload, headers={**base, **headers})


def assert_no_secret(texts: list[str]) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text


def static(resources: list[Resource]) -> list[Resource]:
    return [r for r in resources if not str(r.uri).startswith("experiture://campaigns/")]


def first_seen(result: CallToolResult) -> CallToolResult:
    """The result as on a first check: without the change since an earlier one."""
    text = "\n".join(line for line in text_of(result).splitlines() if not line.startswith("No change since"))
    content: dict[str, Any] = result.structured_content or {}
    structured = {k: v for k, v in content.items() if k != "sinceLastCheck"}
    return result.model_copy(
        update={"content": [TextContent(type="text", text=text)], "structured_content": structured}
    )


@pytest.mark.anyio
async def test_tools_resources_and_prompts_work_over_http_as_in_memory(
    multi_tenant: Hosted, settings: Settings, era: str
) -> None:
    async with (
        http_client(multi_tenant.url, era, authorized(DEMO_TOKEN)) as remote,
        connect(settings, era) as local,
    ):
        assert (await remote.list_tools()).tools == (await local.list_tools()).tools
        # Remembered campaigns' status resources depend on what each server has seen; the rest must be equal.
        assert static((await remote.list_resources()).resources) == static((await local.list_resources()).resources)
        templates = (await remote.list_resource_templates()).resource_templates
        assert templates == (await local.list_resource_templates()).resource_templates
        assert (await remote.list_prompts()).prompts == (await local.list_prompts()).prompts
        report = await remote.get_prompt("campaign_report", {"campaign_id": SPRING})
        assert report == await local.get_prompt("campaign_report", {"campaign_id": SPRING})

        result = await remote.call_tool("get_status", {"campaign_id": SPRING})
        assert not result.is_error
        # The module's hosted server saw SPRING in the other era too: its change since then is the one difference.
        assert first_seen(result) == first_seen(await local.call_tool("get_status", {"campaign_id": SPRING}))
        uri = f"experiture://campaigns/{SPRING}/summary"
        contents = (await remote.read_resource(uri)).contents
        assert isinstance(contents[0], TextResourceContents)
        assert SPRING in contents[0].text
        assert contents == (await local.read_resource(uri)).contents


@pytest.mark.anyio
async def test_calls_without_or_with_a_wrong_access_key_get_401_before_any_tool_runs(multi_tenant: Hosted) -> None:
    before = len(multi_tenant.upstream.authorizations)
    call = {**TOOLS_CALL, "params": {"name": "get_status", "arguments": {"campaign_id": SPRING}}}

    token = {"X-Experiture-Token": DEMO_TOKEN}
    missing = await post(multi_tenant.url, call, token)
    wrong = await post(multi_tenant.url, call, {**token, "Authorization": f"Bearer {ACCESS_KEY}x"})
    basic = await post(multi_tenant.url, call, {**token, "Authorization": f"Basic {ACCESS_KEY}"})

    assert [r.status_code for r in (missing, wrong, basic)] == [401, 401, 401]
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="experiture-mcp"'
    assert 'error="invalid_token"' in wrong.headers["WWW-Authenticate"]
    assert "Authorization: Bearer <access key>" in missing.json()["error_description"]
    assert len(multi_tenant.upstream.authorizations) == before  # no tool ran, so nothing went upstream
    assert_no_secret([r.text + str(r.headers) for r in (missing, wrong, basic)])


@pytest.mark.anyio
async def test_an_sdk_client_with_a_wrong_access_key_cannot_connect(multi_tenant: Hosted, era: str) -> None:
    seen = Seen()
    with pytest.raises(Exception):  # noqa: B017 - the SDK wraps the HTTP error in version-specific ways
        async with http_client(multi_tenant.url, era, {"Authorization": "Bearer not-the-key-at-all"}, seen):
            pass
    assert seen.statuses[:1] == [401]


@pytest.mark.anyio
async def test_healthz_answers_without_an_access_key_for_any_host(multi_tenant: Hosted) -> None:
    async with httpx2.AsyncClient() as http:
        response = await http.get(multi_tenant.url + HEALTH_PATH, headers={"Host": "10.1.2.3:8000"})
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["pid"] == os.getpid()  # served in this process's thread


@pytest.mark.anyio
async def test_a_foreign_host_header_is_refused_with_421(multi_tenant: Hosted, era: str) -> None:
    seen = Seen()
    with pytest.raises(Exception):  # noqa: B017
        async with http_client(multi_tenant.url, era, {**authorized(DEMO_TOKEN), "Host": "evil.example"}, seen):
            pass
    assert seen.statuses[:1] == [421]


@pytest.mark.anyio
async def test_a_foreign_origin_is_refused_and_a_configured_one_accepted(multi_tenant: Hosted, era: str) -> None:
    seen = Seen()
    with pytest.raises(Exception):  # noqa: B017
        evil = {**authorized(DEMO_TOKEN), "Origin": "https://evil.example"}
        async with http_client(multi_tenant.url, era, evil, seen):
            pass
    assert seen.statuses[:1] == [403]

    async with http_client(multi_tenant.url, era, {**authorized(DEMO_TOKEN), "Origin": APP_ORIGIN}) as client:
        assert not (await client.call_tool("get_metrics", {"campaign_id": SPRING})).is_error


@pytest.mark.anyio
async def test_browsers_get_cors_preflight_answers_only_for_configured_origins(multi_tenant: Hosted) -> None:
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization"}
    async with httpx2.AsyncClient() as http:
        allowed = await http.options(multi_tenant.url + MCP_PATH, headers={**preflight, "Origin": APP_ORIGIN})
        foreign = await http.options(
            multi_tenant.url + MCP_PATH, headers={**preflight, "Origin": "https://evil.example"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert foreign.status_code == 400
    assert "Access-Control-Allow-Origin" not in foreign.headers


@pytest.mark.anyio
async def test_a_request_body_over_the_limit_is_refused_with_413(multi_tenant: Hosted) -> None:
    limit = Settings().mcp_max_body_bytes
    padded = {**TOOLS_CALL, "params": {"name": "get_status", "arguments": {"campaign_id": "x" * (limit - 200)}}}
    oversized = {**TOOLS_CALL, "params": {"name": "get_status", "arguments": {"campaign_id": "x" * limit}}}

    assert (await post(multi_tenant.url, padded, authorized(DEMO_TOKEN))).status_code != 413
    assert (await post(multi_tenant.url, oversized, authorized(DEMO_TOKEN))).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit holds for streamed bodies too
        for _ in range(limit // 4096 + 2):
            yield b" " * 4096

    async with httpx2.AsyncClient() as http:
        headers = {"Content-Type": "application/json", **authorized(DEMO_TOKEN)}
        streamed = await http.post(multi_tenant.url + MCP_PATH, content=chunks(), headers=headers)
    assert streamed.status_code == 413


@pytest.mark.anyio
async def test_concurrent_tenants_each_see_only_their_own_campaigns(multi_tenant: Hosted, era: str) -> None:
    seen = Seen()
    outcomes: dict[str, list[tuple[str, str, CallToolResult]]] = {}

    async def tenant(token: str, rounds: int = 12) -> None:
        calls = outcomes.setdefault(token, [])
        async with http_client(multi_tenant.url, era, authorized(token), seen) as client:
            for i in range(rounds):
                for tool, cid in (
                    ("get_summary", ACME[i % 4]),
                    ("get_summary", GLOBEX[i % 3]),
                    ("get_metrics", SPRING),
                ):
                    calls.append((tool, cid, await client.call_tool(tool, {"campaign_id": cid})))

    async with anyio.create_task_group() as tg:
        for token in (DEMO_TOKEN, TENANT_B_TOKEN, CAMPAIGNS_ONLY_TOKEN):
            tg.start_soon(tenant, token)

    for token, calls in outcomes.items():
        assert len(calls) == 36
        for tool, cid, result in calls:
            visible = (cid in GLOBEX) == (token == TENANT_B_TOKEN)
            allowed = tool == "get_summary" or token != CAMPAIGNS_ONLY_TOKEN
            assert result.is_error is not (visible and allowed), (token, tool, cid, text_of(result))
            if not result.is_error:
                assert result.structured_content is not None
                assert result.structured_content["campaignId"] == cid
            elif not allowed:
                assert "analytics:read" in text_of(result)
            else:
                assert "no campaign with this id is visible to this token" in text_of(result)
    assert_no_secret(seen.bodies)


@pytest.mark.anyio
async def test_a_request_with_neither_token_is_told_to_send_the_token_header(multi_tenant: Hosted, era: str) -> None:
    async with http_client(multi_tenant.url, era, authorized()) as client:
        result = await client.call_tool("get_metrics", {"campaign_id": SPRING})
    assert result.is_error
    assert_snapshot("http_not_configured", text_of(result))


@pytest.mark.anyio
async def test_the_callers_authorization_header_is_never_sent_upstream(
    multi_tenant: Hosted, open_loopback: Hosted, era: str
) -> None:
    # Without keys the header passes the middleware, yet a valid upstream token in it must not be used.
    async with http_client(open_loopback.url, era, {"Authorization": f"Bearer {DEMO_TOKEN}"}) as client:
        result = await client.call_tool("get_summary", {"campaign_id": SPRING})
    assert result.is_error
    assert "X-Experiture-Token" in text_of(result)

    async with http_client(multi_tenant.url, era, authorized(TENANT_B_TOKEN)) as client:
        assert not (await client.call_tool("get_summary", {"campaign_id": GLOBEX[0]})).is_error
    assert f"Bearer {TENANT_B_TOKEN}" in multi_tenant.upstream.authorizations
    assert all(ACCESS_KEY not in value for value in multi_tenant.upstream.authorizations)


@pytest.mark.anyio
async def test_completions_offer_each_caller_only_the_ids_it_looked_up(single_tenant: Hosted, era: str) -> None:
    async with (
        http_client(single_tenant.url, era, authorized(TENANT_B_TOKEN)) as globex,
        http_client(single_tenant.url, era, authorized()) as operator,
    ):
        assert not (await globex.call_tool("get_status", {"campaign_id": GLOBEX[0]})).is_error
        assert not (await operator.call_tool("get_status", {"campaign_id": SPRING})).is_error
        ref = ResourceTemplateReference(type="ref/resource", uri=STATUS_TEMPLATE)
        globex_values = (await globex.complete(ref, {"name": "campaign_id", "value": ""})).completion.values
        operator_values = (await operator.complete(ref, {"name": "campaign_id", "value": ""})).completion.values
        assert GLOBEX[0] in globex_values and SPRING not in globex_values
        assert SPRING in operator_values and GLOBEX[0] not in operator_values


@pytest.mark.anyio
async def test_no_token_or_access_key_reaches_a_response_or_log_record(
    multi_tenant: Hosted, era: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen = Seen()
    async with http_client(multi_tenant.url, era, authorized(WRONG_TOKEN), seen) as client:
        rejected = await client.call_tool("get_status", {"campaign_id": SPRING})
        with pytest.raises(MCPError) as resource_error:
            await client.read_resource(f"experiture://campaigns/{SPRING}/status")
    async with http_client(multi_tenant.url, era, authorized(DEMO_TOKEN), seen) as client:
        assert not (await client.call_tool("get_summary", {"campaign_id": SPRING})).is_error
    refused = await post(multi_tenant.url, {}, {"Authorization": f"Bearer {ACCESS_KEY[:-1]}"})

    assert rejected.is_error
    assert "rejected the token" in text_of(rejected)
    assert "X-Experiture-Token header" in text_of(rejected)  # the caller's own token is the one to replace
    assert "rejected the token" in resource_error.value.error.message
    assert refused.status_code == 401
    messages = [record.getMessage() for record in caplog.records]
    assert any("refused POST '/mcp'" in message for message in messages)  # the log was captured
    assert_no_secret([*seen.bodies, resource_error.value.error.message, refused.text, *messages])


def test_refuses_to_serve_off_loopback_without_access_keys_or_allowed_hosts(demo_api: str) -> None:
    with pytest.raises(ConfigError, match=r"without access keys.*EXPERITURE_MCP_ACCESS_KEYS.*--no-auth-behind-proxy"):
        build_app(Settings(base_url=demo_api, mcp_host="0.0.0.0"))
    with pytest.raises(ConfigError, match="needs --allowed-hosts"):
        build_app(Settings(base_url=demo_api, mcp_host="0.0.0.0", mcp_no_auth_behind_proxy=True))
    with pytest.raises(ConfigError, match="shorter than 16 characters"):
        build_app(Settings(base_url=demo_api, mcp_access_keys=(SecretStr("short"),)))


def test_the_command_refuses_a_public_bind_without_access_keys_before_binding() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPERITURE_")}
    command = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--host", "0.0.0.0", "--demo"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("experiture-mcp: refusing to serve on 0.0.0.0 without access keys")
    assert "Uvicorn running" not in done.stderr


@pytest.mark.anyio
async def test_a_public_bind_accepts_only_the_allowed_host_names(upstream: tuple[str, RecordingUpstream]) -> None:
    # Built for 0.0.0.0 but served on loopback: the Host allowlist is what is under test.
    public = {"mcp_host": "0.0.0.0", "mcp_access_keys": ACCESS_KEY, "mcp_allowed_hosts": "mcp.example.com"}
    with serving(upstream, **public) as hosted:
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        statuses = [
            (await post(hosted.url, ping, {**authorized(), "Host": host})).status_code
            for host in ("mcp.example.com", "mcp.example.com:443", "evil.example", "mcp.example.com.evil.example")
        ]
        assert statuses == [200, 200, 421, 421]


@pytest.mark.anyio
async def test_two_workers_both_serve_calls_and_log_no_secret(demo_api: str, tmp_path: Path) -> None:
    port = free_port()
    stderr = tmp_path / "stderr.log"
    env = {**os.environ, "EXPERITURE_MCP_ACCESS_KEYS": ACCESS_KEY}
    env.pop("EXPERITURE_API_TOKEN", None)
    command = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--workers", "2", "--port", str(port)]
    command += ["--base-url", demo_api, "--log-level", "DEBUG"]
    url = f"http://127.0.0.1:{port}"
    with stderr.open("w") as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        seen = Seen()
        with anyio.fail_after(30):
            await _wait_until_healthy(url)
            while len(seen.workers) < 2:  # each client opens its own connection, which either worker may accept
                async with anyio.create_task_group() as tg:
                    for _ in range(6):
                        tg.start_soon(_one_call, url, seen)
        assert len(seen.workers) == 2
        assert str(process.pid) not in seen.workers  # the supervisor itself serves nothing
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    log = stderr.read_text()
    assert "POST /mcp" in log  # the access log is on at DEBUG: the check below reads a real log
    assert_no_secret([log])


async def _wait_until_healthy(url: str) -> None:
    async with httpx2.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url + HEALTH_PATH)).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await anyio.sleep(0.1)


async def _one_call(url: str, seen: Seen) -> None:
    async with http_client(url, "auto", authorized(DEMO_TOKEN), seen) as client:
        result = await client.call_tool("get_summary", {"campaign_id": SPRING})
    assert not result.is_error


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT", "OPTIONS"])
@pytest.mark.parametrize("version", [None, "2025-11-25", "2026-07-28"])
async def test_every_method_but_post_gets_405_at_once_with_allow_post(
    multi_tenant: Hosted, method: str, version: str | None
) -> None:
    # A GET used to open an event stream that never ended; Codex's probe waited 5 s on it and gave up.
    headers = {**authorized(DEMO_TOKEN), "Accept": "text/event-stream, application/json"}
    if version is not None:
        headers["Mcp-Protocol-Version"] = version
    async with httpx2.AsyncClient(timeout=5) as http:
        response = await http.request(method, multi_tenant.url + MCP_PATH, headers=headers)
        stranger = await http.request(method, multi_tenant.url + MCP_PATH)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert f"answers POST only, not {method}" in response.json()["error"]["message"]
    assert stranger.status_code == 401  # the access key is checked first: a stranger learns nothing more


@pytest.mark.anyio
@pytest.mark.parametrize("placeholder", ["${EXPERITURE_API_TOKEN}", "${env:EXPERITURE_API_TOKEN}", ""])
async def test_an_unexpanded_or_empty_token_header_is_explained_and_never_sent_upstream(
    multi_tenant: Hosted, era: str, placeholder: str
) -> None:
    before = len(multi_tenant.upstream.authorizations)
    async with http_client(multi_tenant.url, era, authorized(placeholder)) as client:
        result = await client.call_tool("get_status", {"campaign_id": SPRING})
        with pytest.raises(MCPError) as resource_error:
            await client.read_resource(f"experiture://campaigns/{SPRING}/status")
    assert result.is_error
    assert "no Experiture API token" in text_of(result)
    assert "unexpanded ${...} placeholder" in text_of(result)
    assert "no Experiture API token" in resource_error.value.error.message
    assert len(multi_tenant.upstream.authorizations) == before  # nothing went upstream with the placeholder


@pytest.mark.anyio
async def test_an_unexpanded_token_header_falls_back_to_the_operators_token_as_a_missing_one_does(
    single_tenant: Hosted, era: str
) -> None:
    async with http_client(single_tenant.url, era, authorized("${EXPERITURE_API_TOKEN}")) as client:
        assert not (await client.call_tool("get_status", {"campaign_id": SPRING})).is_error
    assert single_tenant.upstream.authorizations[-1] == f"Bearer {DEMO_TOKEN}"


SUBSCRIPTION_FLAGS = {("prompts", "listChanged"), ("tools", "listChanged"), ("resources", "listChanged")}


@pytest.mark.anyio
async def test_the_two_eras_advertise_the_same_capabilities_but_for_the_sdks_subscription_flags(
    multi_tenant: Hosted,
) -> None:
    # At 2026-07-28 the SDK derives listChanged and resources.subscribe from serving subscriptions/listen (which
    # MCPServer does by default); at 2025-11-25 from NotificationOptions, all off. Extensions (the MCP Apps views)
    # are advertised only where the protocol has a field for them, 2026-07-28. Nothing else may differ.
    advertised: dict[str, dict[str, Any]] = {}
    for era in ("legacy", "auto"):
        async with http_client(multi_tenant.url, era, authorized(DEMO_TOKEN)) as client:
            caps = client.server_capabilities.model_dump(by_alias=True, exclude_none=True)
            advertised[client.protocol_version] = {"caps": caps, "instructions": client.instructions}
    assert sorted(advertised) == ["2025-11-25", "2026-07-28"]
    legacy, modern = advertised["2025-11-25"], advertised["2026-07-28"]
    assert legacy["instructions"] == modern["instructions"]
    flags = {*SUBSCRIPTION_FLAGS, ("resources", "subscribe")}
    for caps, value in ((legacy["caps"], False), (modern["caps"], True)):
        assert {(group, flag): caps[group].pop(flag) for group, flag in flags} == dict.fromkeys(flags, value)
    assert "extensions" not in legacy["caps"]
    assert modern["caps"].pop("extensions") == {"io.modelcontextprotocol/ui": {}}
    assert legacy["caps"] == modern["caps"] == {"completions": {}, "prompts": {}, "resources": {}, "tools": {}}
