"""OAuth mode end to end on real loopback HTTP: discovery, DCR, the consent page, tokens, every tool in both eras."""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncGenerator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx2
import pytest
from mcp import Client
from mcp.client.auth.oauth2 import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl, SecretStr

from _oauth_browser import Browser
from conftest import ServedApp, free_port, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.hosted import build_app
from experiture_mcp.sandbox import CAMPAIGNS_ONLY_TOKEN, DEMO_CAMPAIGNS, DEMO_TOKEN, TENANT_B_CAMPAIGNS, TENANT_B_TOKEN

pytestmark = pytest.mark.anyio

SECRET_KEY = "server-secret-" + secrets.token_urlsafe(32)
SPRING = DEMO_CAMPAIGNS["spring-dm"]
CALLBACK = "http://127.0.0.1:9/callback"


@dataclass
class Hosted:
    url: str
    logs: list[str] = field(default_factory=list[str])

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"


@pytest.fixture(scope="module")
def hosted(demo_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    port = free_port()
    settings = Settings(
        base_url=demo_api,
        mcp_auth="oauth",
        mcp_public_url=f"http://127.0.0.1:{port}",
        mcp_secret_key=SecretStr(SECRET_KEY),
        data_dir=tmp_path_factory.mktemp("oauth") / "a" / "fresh" / "host",  # not there yet: a first start
    )
    with ServedApp(build_app(settings, clock=frozen_clock), lifespan="on", port=port) as served:
        yield Hosted(served.url)


class Memory:
    """TokenStorage in memory, as a host keeps it."""

    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


@dataclass
class Session:
    client: Client
    browser: Browser
    storage: Memory
    sent: list[str]  # every Authorization header the MCP client sent


@asynccontextmanager
async def signed_in(
    hosted: Hosted, era: str, tokens: list[str], auth_method: str = "none", storage: Memory | None = None
) -> AsyncGenerator[Session]:
    browser = Browser(tokens)
    storage = storage or Memory()
    metadata = OAuthClientMetadata(
        client_name="Test Host",
        redirect_uris=[AnyUrl(CALLBACK)],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method=auth_method,  # pyright: ignore[reportArgumentType]
        scope="campaigns:read analytics:read",
    )
    provider = OAuthClientProvider(
        hosted.mcp,
        metadata,
        storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
    )
    sent: list[str] = []

    async def note(request: httpx2.Request) -> None:
        if request.url.path == "/mcp" and "authorization" in request.headers:
            sent.append(request.headers["authorization"])

    async with (
        httpx2.AsyncClient(auth=provider, event_hooks={"request": [note]}) as http,
        Client(streamable_http_client(hosted.mcp, http_client=http), mode=era) as client,  # type: ignore[arg-type]
    ):
        yield Session(client, browser, storage, sent)


async def test_discovery_documents_are_exact_and_mcp_asks_for_a_token(hosted: Hosted) -> None:
    async with httpx2.AsyncClient() as http:
        unauthorized = await http.post(hosted.mcp, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        path_prm = (await http.get(hosted.url + "/.well-known/oauth-protected-resource/mcp")).json()
        root_prm = (await http.get(hosted.url + "/.well-known/oauth-protected-resource")).json()
        meta = await http.get(hosted.url + "/.well-known/oauth-authorization-server")

    assert unauthorized.status_code == 401
    challenge = unauthorized.headers["www-authenticate"]
    assert f'resource_metadata="{hosted.url}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert unauthorized.json()["error"] == "invalid_token"
    for prm in (path_prm, root_prm):
        assert prm["resource"] == hosted.mcp
        assert prm["authorization_servers"] == [hosted.url]
    body = meta.json()
    assert body["issuer"] == hosted.url  # no trailing slash
    assert body["authorization_endpoint"] == hosted.url + "/authorize"
    assert body["token_endpoint"] == hosted.url + "/token"
    assert body["registration_endpoint"] == hosted.url + "/register"
    assert body["revocation_endpoint"] == hosted.url + "/revoke"
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert "none" in body["token_endpoint_auth_methods_supported"]
    assert body["client_id_metadata_document_supported"] is True
    assert body["authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize("era", ["legacy", "auto"])
async def test_a_host_signs_in_once_and_every_tool_answers_with_the_users_own_token(hosted: Hosted, era: str) -> None:
    async with signed_in(hosted, era, [DEMO_TOKEN]) as session:
        tools = {tool.name for tool in (await session.client.list_tools()).tools}
        assert tools == {
            *("get_summary", "get_status", "get_metrics", "get_overview"),
            *("find_campaigns", "wait_for_run", "get_history"),
        }
        for tool in ("get_summary", "get_status", "get_metrics", "wait_for_run", "get_history"):
            result = await session.client.call_tool(tool, {"campaign_id": SPRING})
            assert not result.is_error, text_of(result)
            assert ("Spring" in text_of(result)) or tool == "get_metrics" or SPRING in text_of(result)
        overview = await session.client.call_tool("get_overview", {"campaign_ids": SPRING})
        assert not overview.is_error and "Spring" in text_of(overview)
        found = await session.client.call_tool("find_campaigns", {"query": "spring"})
        assert not found.is_error and SPRING in text_of(found)

    consent = session.browser.pages[0]
    assert consent.status == 200
    assert "Connect Test Host to Experiture" in consent.text and "127.0.0.1:9" in consent.text
    assert consent.forms[0].password == "token" and set(consent.forms[0].buttons) == {"allow", "deny"}
    assert session.browser.result is not None and session.browser.result.iss == hosted.url
    assert session.sent and all(h.startswith("Bearer exmcp_at_") for h in session.sent)  # only our token to /mcp
    assert all(DEMO_TOKEN not in page.html for page in session.browser.pages)
    assert session.storage.tokens is not None and session.storage.tokens.refresh_token is not None
    assert session.storage.tokens.refresh_token.startswith("exmcp_rt_")


async def test_a_refused_token_gets_a_clear_message_and_another_can_be_pasted(hosted: Hosted) -> None:
    async with signed_in(hosted, "auto", ["not-a-real-token", DEMO_TOKEN]) as session:
        result = await session.client.call_tool("get_status", {"campaign_id": SPRING})
        assert not result.is_error
    refused = session.browser.pages[1]
    assert refused.status == 400
    assert "Experiture rejected this token" in refused.text and "Paste another token" in refused.text
    assert "not-a-real-token" not in refused.html


async def test_a_campaigns_only_token_is_shown_what_will_not_work_and_can_be_allowed_anyway(hosted: Hosted) -> None:
    async with signed_in(hosted, "auto", [CAMPAIGNS_ONLY_TOKEN]) as session:
        status = await session.client.call_tool("get_status", {"campaign_id": SPRING})
        metrics = await session.client.call_tool("get_metrics", {"campaign_id": SPRING})
    partial = session.browser.pages[1]
    assert "get_metrics will not work: this token lacks analytics:read" in partial.text
    assert "get_status" in partial.text
    assert CAMPAIGNS_ONLY_TOKEN not in partial.html
    assert not status.is_error
    assert metrics.is_error and "analytics:read" in text_of(metrics)


async def test_each_grant_is_its_own_tenant(hosted: Hosted) -> None:
    async with signed_in(hosted, "auto", [TENANT_B_TOKEN]) as globex:
        for campaign_id in TENANT_B_CAMPAIGNS.values():
            assert not (await globex.client.call_tool("get_status", {"campaign_id": campaign_id})).is_error
        globex_found = text_of(await globex.client.call_tool("find_campaigns", {"query": "spring"}))
        mine = await globex.client.call_tool("get_status", {"campaign_id": SPRING})
    assert SPRING not in globex_found
    assert mine.is_error  # acme's campaign is not globex's


async def test_grants_with_the_same_token_keep_apart_unless_the_same_client_consents_again(hosted: Hosted) -> None:
    summer = DEMO_CAMPAIGNS["summer-email"]
    first = Memory()  # one host's token storage: its client registration outlives its tokens
    async with signed_in(hosted, "auto", [DEMO_TOKEN], storage=first) as one:
        assert not (await one.client.call_tool("get_status", {"campaign_id": SPRING})).is_error
        assert SPRING in text_of(await one.client.call_tool("find_campaigns", {"query": "spring"}))
        # The remembered resources follow the grant too, though the host sends no X-Experiture-Token.
        assert f"experiture://campaigns/{SPRING}/status" in [
            str(r.uri) for r in (await one.client.list_resources()).resources
        ]

    async with signed_in(hosted, "auto", [DEMO_TOKEN]) as other:  # another client, the same Experiture token
        assert other.storage.client is not None and first.client is not None
        assert other.storage.client.client_id != first.client.client_id
        found = text_of(await other.client.call_tool("find_campaigns", {"query": "spring"}))
        history = text_of(await other.client.call_tool("get_history", {"campaign_id": SPRING}))
        listed = [str(r.uri) for r in (await other.client.list_resources()).resources]
        assert not (await other.client.call_tool("get_status", {"campaign_id": summer})).is_error
    assert not [uri for uri in listed if uri.startswith("experiture://campaigns/")]
    assert SPRING not in found and "No campaigns are remembered for this account yet" in found
    assert f"No history of campaign {SPRING}" in history

    first.tokens = None  # the host lost its tokens (or the grant reached its maximum age): it consents again
    async with signed_in(hosted, "auto", [DEMO_TOKEN], storage=first) as again:
        found = text_of(await again.client.call_tool("find_campaigns", {"query": "spring"}))
        history = text_of(await again.client.call_tool("get_history", {"campaign_id": SPRING}))
        summer_found = text_of(await again.client.call_tool("find_campaigns", {"query": "summer"}))
    assert again.browser.pages, "a new consent, so a new grant"
    assert SPRING in found and f"History of campaign {SPRING}" in history  # its earlier memory
    assert summer not in summer_found  # the other client's lookups are still not its own

    first.tokens = None
    async with signed_in(hosted, "auto", [TENANT_B_TOKEN], storage=first) as switched:  # same client, other token
        found = text_of(await switched.client.call_tool("find_campaigns", {"query": "spring"}))
        history = text_of(await switched.client.call_tool("get_history", {"campaign_id": SPRING}))
    assert SPRING not in found and "No campaigns are remembered for this account yet" in found
    assert f"No history of campaign {SPRING}" in history


async def test_page_headers_forbid_framing_caching_and_external_assets(hosted: Hosted) -> None:
    browser = Browser([])
    metadata = OAuthClientMetadata(redirect_uris=[AnyUrl(CALLBACK)], token_endpoint_auth_method="none")
    async with httpx2.AsyncClient() as http:
        registered = await http.post(hosted.url + "/register", content=metadata.model_dump_json(exclude_none=True))
        assert registered.status_code == 201, registered.text
        client_id = registered.json()["client_id"]
        url = (
            f"{hosted.url}/authorize?response_type=code&client_id={client_id}&redirect_uri={CALLBACK}"
            "&code_challenge=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG&code_challenge_method=S256&state=s1"
        )
        page = await browser.open(http, url)
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self' http://127.0.0.1:9" in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "http" not in page.html.split("<main>")[0].replace('content="width=device-width,initial-scale=1"', "")
    assert json.dumps(page.forms[0].fields)  # the hidden txn and csrf fields are there
    assert set(page.forms[0].fields) == {"txn", "csrf"}
