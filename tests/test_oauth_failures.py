"""OAuth mode's failure paths over real loopback HTTP: each refused exactly, nothing else happens."""

from __future__ import annotations

import base64
import hashlib
import logging
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx2
import pytest
from pydantic import SecretStr
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send

from _oauth_browser import Browser, Page
from conftest import ServedApp, free_port, frozen_clock
from experiture_mcp.config import Settings
from experiture_mcp.hosted import build_app
from experiture_mcp.oauth.consent import FAILURE_LIMIT
from experiture_mcp.oauth.grants import GrantStore
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN, TENANT_B_TOKEN, create_app

pytestmark = pytest.mark.anyio

SECRET_KEY = "server-secret-" + secrets.token_urlsafe(32)
SPRING = DEMO_CAMPAIGNS["spring-dm"]
CALLBACK = "http://127.0.0.1:9/callback"
STATUS_CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "get_status", "arguments": {"campaign_id": SPRING}},
}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Mcp-Protocol-Version": "2025-11-25"}


class RevocableUpstream:
    """The demo API, answering 401 for tokens the test has revoked at Experiture."""

    def __init__(self) -> None:
        self.app = create_app(clock=frozen_clock)
        self.revoked: set[str] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            auth = dict(scope["headers"]).get(b"authorization", b"").decode()
            if auth.removeprefix("Bearer ") in self.revoked:
                body = {"error": {"code": "unauthorized", "message": "token revoked"}}
                await JSONResponse(body, status_code=401)(scope, receive, send)
                return
        await self.app(scope, receive, send)


@dataclass
class Hosted:
    url: str
    data_dir: Path
    upstream: RevocableUpstream

    @property
    def mcp(self) -> str:
        return self.url + "/mcp"


def serve(tmp: Path) -> tuple[ServedApp, ServedApp, Hosted]:
    upstream = RevocableUpstream()
    api = ServedApp(upstream)
    port = free_port()
    settings = Settings(
        base_url=f"http://127.0.0.1:{api.port}/public/v1",
        mcp_auth="oauth",
        mcp_public_url=f"http://127.0.0.1:{port}",
        mcp_secret_key=SecretStr(SECRET_KEY),
        data_dir=tmp,
    )
    app = ServedApp(build_app(settings, clock=frozen_clock), lifespan="on", port=port)
    return api, app, Hosted(f"http://127.0.0.1:{port}", tmp, upstream)


@pytest.fixture(scope="module")
def hosted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hosted]:
    api, app, hosted = serve(tmp_path_factory.mktemp("oauth-failures"))
    with api, app:
        yield hosted


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


async def register(http: httpx2.AsyncClient, hosted: Hosted, **extra: Any) -> str:
    body = {"redirect_uris": [CALLBACK], "token_endpoint_auth_method": "none", "client_name": "Failing Host", **extra}
    response = await http.post(hosted.url + "/register", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["client_id"])


def authorize_url(hosted: Hosted, client_id: str, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": "st-1",
        **extra,
    }
    return f"{hosted.url}/authorize?{urlencode(params)}"


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Consented:
    client_id: str
    verifier: str
    code: str


async def consent(http: httpx2.AsyncClient, hosted: Hosted, token: str = DEMO_TOKEN) -> Consented:
    client_id = await register(http, hosted)
    verifier, challenge = pkce()
    browser = Browser([])
    page = await browser.open(http, authorize_url(hosted, client_id, challenge))
    await browser.submit(http, page, hosted.url, "allow", token)
    assert browser.result is not None, browser.pages[-1].text
    return Consented(client_id, verifier, browser.result.code)


async def exchange(http: httpx2.AsyncClient, hosted: Hosted, done: Consented, **extra: str) -> httpx2.Response:
    form = {
        "grant_type": "authorization_code",
        "code": done.code,
        "redirect_uri": CALLBACK,
        "client_id": done.client_id,
        "code_verifier": done.verifier,
        **extra,
    }
    return await http.post(hosted.url + "/token", data=form)


async def refresh(http: httpx2.AsyncClient, hosted: Hosted, client_id: str, token: str) -> httpx2.Response:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    return await http.post(hosted.url + "/token", data=form)


async def call(http: httpx2.AsyncClient, hosted: Hosted, access: str) -> httpx2.Response:
    return await http.post(hosted.mcp, json=STATUS_CALL, headers={**MCP_HEADERS, "Authorization": f"Bearer {access}"})


@pytest.fixture
async def http() -> Any:
    async with httpx2.AsyncClient(follow_redirects=False) as client:
        yield client


async def test_a_wrong_pkce_verifier_is_refused_and_the_right_one_still_works(
    http: httpx2.AsyncClient, hosted: Hosted
) -> None:
    done = await consent(http, hosted)
    wrong = await exchange(http, hosted, done, code_verifier=pkce()[0])
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    right = await exchange(http, hosted, done)
    assert right.status_code == 200, right.text
    assert (await call(http, hosted, right.json()["access_token"])).status_code == 200


async def test_an_unregistered_redirect_uri_is_refused_without_redirecting_there(
    http: httpx2.AsyncClient, hosted: Hosted
) -> None:
    client_id = await register(http, hosted)
    _, challenge = pkce()
    evil = await http.get(authorize_url(hosted, client_id, challenge, redirect_uri="https://evil.example/callback"))
    assert evil.status_code == 400 and "location" not in evil.headers
    assert evil.json()["error"] == "invalid_request"
    unknown = await http.get(authorize_url(hosted, "no-such-client", challenge))
    assert unknown.status_code == 400 and "location" not in unknown.headers

    done = await consent(http, hosted)
    other = await exchange(http, hosted, done, redirect_uri="http://127.0.0.1:9/other")
    assert (other.status_code, other.json()["error"]) == (400, "invalid_request")


async def test_a_reused_code_is_refused_and_revokes_what_it_gave(http: httpx2.AsyncClient, hosted: Hosted) -> None:
    done = await consent(http, hosted)
    first = await exchange(http, hosted, done)
    assert first.status_code == 200
    access = first.json()["access_token"]
    assert (await call(http, hosted, access)).status_code == 200

    again = await exchange(http, hosted, done)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    refused = await call(http, hosted, access)
    assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]
    assert (await refresh(http, hosted, done.client_id, first.json()["refresh_token"])).status_code == 400


async def test_refresh_rotates_and_a_reused_refresh_token_ends_the_grant(
    http: httpx2.AsyncClient, hosted: Hosted
) -> None:
    done = await consent(http, hosted)
    first = (await exchange(http, hosted, done)).json()
    second = await refresh(http, hosted, done.client_id, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["refresh_token"] != first["refresh_token"] and rotated["access_token"].startswith("exmcp_at_")
    assert (await call(http, hosted, rotated["access_token"])).status_code == 200

    reused = await refresh(http, hosted, done.client_id, first["refresh_token"])
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert (await call(http, hosted, rotated["access_token"])).status_code == 401
    assert (await refresh(http, hosted, done.client_id, rotated["refresh_token"])).status_code == 400


async def test_a_revoked_grant_is_refused_at_once(http: httpx2.AsyncClient, hosted: Hosted) -> None:
    done = await consent(http, hosted)
    tokens = (await exchange(http, hosted, done)).json()
    assert (await call(http, hosted, tokens["access_token"])).status_code == 200
    revoked = await http.post(
        hosted.url + "/revoke", data={"token": tokens["access_token"], "client_id": done.client_id}
    )
    assert revoked.status_code == 200
    assert (await call(http, hosted, tokens["access_token"])).status_code == 401
    assert (await refresh(http, hosted, done.client_id, tokens["refresh_token"])).status_code == 400


async def test_expired_and_foreign_resource_tokens_are_refused(http: httpx2.AsyncClient, hosted: Hosted) -> None:
    client_id = await register(http, hosted)
    url = f"sqlite:///{hosted.data_dir / 'memory.sqlite3'}"
    issued: dict[str, str] = {}
    for name, resource, hours_ago in (("expired", hosted.mcp, 2), ("foreign", "https://other.example/mcp", 0)):
        at = datetime.now(UTC) - timedelta(hours=hours_ago)
        store = await GrantStore.open(url, SECRET_KEY, lambda at=at: at)
        code = await store.create_grant(
            client_id=client_id,
            redirect_uri=CALLBACK,
            redirect_uri_provided_explicitly=True,
            code_challenge="x",
            scopes=["campaigns:read"],
            resource=resource,
            upstream_token=DEMO_TOKEN,
            upstream_scopes=["campaigns:read"],
        )
        pair = await store.redeem_code(code)
        await store.aclose()
        assert pair is not None
        issued[name] = pair.access_token
    for access in issued.values():
        refused = await call(http, hosted, access)
        assert refused.status_code == 401 and "invalid_token" in refused.headers["www-authenticate"]


async def test_a_resource_other_than_this_servers_mcp_url_is_refused(http: httpx2.AsyncClient, hosted: Hosted) -> None:
    client_id = await register(http, hosted)
    _, challenge = pkce()
    wrong = await http.get(authorize_url(hosted, client_id, challenge, resource="https://other.example/mcp"))
    assert wrong.status_code == 302
    answer = query(wrong.headers["location"])
    assert (answer["error"], answer["state"], answer["iss"]) == ("invalid_target", "st-1", hosted.url)
    ok = await http.get(authorize_url(hosted, client_id, challenge, resource=hosted.mcp + "/"))
    assert ok.status_code == 302 and "/oauth/consent?txn=" in ok.headers["location"]

    done = await consent(http, hosted)
    refused = await exchange(http, hosted, done, resource="https://other.example/mcp")
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_target")
    assert (await exchange(http, hosted, done, resource=hosted.mcp)).status_code == 200


async def test_an_upstream_401_after_consent_ends_the_grant_and_asks_the_host_to_sign_in_again(
    http: httpx2.AsyncClient, hosted: Hosted
) -> None:
    done = await consent(http, hosted, TENANT_B_TOKEN)
    tokens = (await exchange(http, hosted, done)).json()
    hosted.upstream.revoked.add(TENANT_B_TOKEN)
    try:
        first = await call(http, hosted, tokens["access_token"])
        assert first.status_code == 200 and first.json()["result"]["isError"] is True
        again = await call(http, hosted, tokens["access_token"])
        assert again.status_code == 401 and 'error="invalid_token"' in again.headers["www-authenticate"]
        assert (await refresh(http, hosted, done.client_id, tokens["refresh_token"])).status_code == 400
    finally:
        hosted.upstream.revoked.discard(TENANT_B_TOKEN)


async def test_consent_forms_with_a_bad_csrf_token_or_from_another_site_are_refused(
    http: httpx2.AsyncClient, hosted: Hosted
) -> None:
    client_id = await register(http, hosted)
    browser = Browser([])
    page = await browser.open(http, authorize_url(hosted, client_id, pkce()[1]))
    other = await browser.open(http, authorize_url(hosted, client_id, pkce()[1]))
    form = page.forms[0].fields

    async def post(fields: dict[str, str], **headers: str) -> httpx2.Response:
        data = {**fields, "token": DEMO_TOKEN, "action": "allow"}
        return await http.post(hosted.url + "/oauth/consent", data=data, headers=headers)

    assert (await post({**form, "csrf": "0" * 64})).status_code == 403
    assert (await post({**form, "csrf": other.forms[0].fields["csrf"]})).status_code == 403  # another transaction's
    assert (await post({"txn": form["txn"]})).status_code == 403
    assert (await post(form, **{"Sec-Fetch-Site": "cross-site"})).status_code == 403
    assert (await post({**form, "txn": "made-up"})).status_code == 400
    accepted = await post(form)
    assert accepted.status_code == 303 and "code=" in accepted.headers["location"]
    replayed = await post(form)
    assert replayed.status_code == 400 and "expired" in replayed.text


async def test_deny_sends_access_denied_with_state_and_issuer(http: httpx2.AsyncClient, hosted: Hosted) -> None:
    client_id = await register(http, hosted)
    browser = Browser([])
    page: Page = await browser.open(http, authorize_url(hosted, client_id, pkce()[1]))
    await browser.submit(http, page, hosted.url, "deny", None)
    assert browser.final is not None and browser.result is None
    answer = query(str(browser.final))
    assert (answer["error"], answer["state"], answer["iss"]) == ("access_denied", "st-1", hosted.url)


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        (b"{not json", 400, "invalid_client_metadata"),
        (b"[]", 400, "invalid_client_metadata"),
        (b'{"client_name": "no redirect uris"}', 400, "invalid_client_metadata"),
        (b'{"redirect_uris": ["http://127.0.0.1:9/cb"], "grant_types": ["client_credentials"]}', 400, None),
        (b'{"redirect_uris": [' + b",".join([b'"http://127.0.0.1:9/cb"'] * 11) + b"]}", 400, "invalid_redirect_uri"),
        (b'{"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "' + b"x" * 20_000 + b'"}', 413, None),
    ],
)
async def test_malformed_or_oversized_registrations_are_refused(
    http: httpx2.AsyncClient, hosted: Hosted, body: bytes, status: int, error: str | None
) -> None:
    response = await http.post(hosted.url + "/register", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    if error:
        assert response.json()["error"] == error


async def test_failed_pastes_are_limited_per_address(tmp_path: Path) -> None:
    api, app, hosted = serve(tmp_path)
    with api, app:
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            client_id = await register(http, hosted)
            browser = Browser([])
            page = await browser.open(http, authorize_url(hosted, client_id, pkce()[1]))
            for _ in range(FAILURE_LIMIT):
                page = await browser.submit(http, page, hosted.url, "allow", "wrong-" + secrets.token_hex(4))
                assert page.status == 400
            limited = await browser.submit(http, page, hosted.url, "allow", DEMO_TOKEN)
    assert limited.status == 429 and "Too many attempts" in limited.text
    assert browser.result is None


async def test_no_token_code_or_pasted_token_reaches_a_log_record(
    http: httpx2.AsyncClient, hosted: Hosted, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    done = await consent(http, hosted, TENANT_B_TOKEN)
    tokens = (await exchange(http, hosted, done)).json()
    assert (await call(http, hosted, tokens["access_token"])).status_code == 200
    await exchange(http, hosted, done)  # a replay, logged as refused
    secrets_seen = (TENANT_B_TOKEN, done.code, tokens["access_token"], tokens["refresh_token"], SECRET_KEY)
    # The server's loggers (the test's own HTTP client logs the redirects it receives, as a browser would show them).
    server_side = [
        r for r in caplog.records if r.name.split(".")[0] in ("experiture_mcp", "mcp", "uvicorn", "sqlalchemy")
    ]
    logged = " ".join(f"{r.getMessage()} {r.args}" for r in server_side)
    assert any(r.name.startswith("experiture_mcp") for r in server_side)
    for value in secrets_seen:
        assert value not in logged


async def test_loopback_redirects_may_use_any_port_and_nothing_else_differs(
    http: httpx2.AsyncClient, hosted: Hosted
) -> None:
    client_id = await register(http, hosted)
    _, challenge = pkce()
    other_port = await http.get(
        authorize_url(hosted, client_id, challenge, redirect_uri="http://127.0.0.1:5555/callback")
    )
    assert other_port.status_code == 302 and "/oauth/consent?txn=" in other_port.headers["location"]
    for refused in ("http://127.0.0.1:5555/other", "http://127.0.0.2:9/callback", "https://127.0.0.1:9/callback"):
        answer = await http.get(authorize_url(hosted, client_id, challenge, redirect_uri=refused))
        assert answer.status_code == 400, refused

    remote = await register(http, hosted, redirect_uris=["https://host.example/cb"])
    wrong_port = await http.get(authorize_url(hosted, remote, challenge, redirect_uri="https://host.example:8443/cb"))
    assert wrong_port.status_code == 400


@pytest.mark.parametrize("scope", [None, "", "offline_access", " campaigns:read\toffline_access ", "profile email"])
async def test_scopes_are_lenient(http: httpx2.AsyncClient, hosted: Hosted, scope: str | None) -> None:
    client_id = await register(http, hosted)
    extra = {} if scope is None else {"scope": scope}
    answer = await http.get(authorize_url(hosted, client_id, pkce()[1], **extra))
    assert answer.status_code == 302 and "/oauth/consent?txn=" in answer.headers["location"]


async def test_an_x_experiture_token_header_is_ignored_in_oauth_mode(http: httpx2.AsyncClient, hosted: Hosted) -> None:
    done = await consent(http, hosted, TENANT_B_TOKEN)  # globex's grant
    access = (await exchange(http, hosted, done)).json()["access_token"]
    headers = {**MCP_HEADERS, "Authorization": f"Bearer {access}", "X-Experiture-Token": DEMO_TOKEN}
    answer = (await http.post(hosted.mcp, json=STATUS_CALL, headers=headers)).json()
    assert answer["result"]["isError"] is True  # SPRING is acme's: the grant's globex token was used, not the header
    no_bearer = await http.post(hosted.mcp, json=STATUS_CALL, headers={**MCP_HEADERS, "X-Experiture-Token": DEMO_TOKEN})
    assert no_bearer.status_code == 401
