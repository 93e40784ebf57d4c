"""Client ID Metadata Documents: a host whose client_id is an https URL signs in without registering; the guard."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from mcp import Client
from mcp.client.auth.oauth2 import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientMetadata
from pydantic import AnyUrl, SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from _oauth_browser import Browser
from conftest import ServedApp, free_port, frozen_clock, text_of
from experiture_mcp.config import Settings
from experiture_mcp.hosted import build_app
from experiture_mcp.oauth.cimd import MAX_BYTES, CimdFetcher, is_cimd_client_id
from experiture_mcp.sandbox import DEMO_CAMPAIGNS, DEMO_TOKEN
from test_oauth_flow import Memory

pytestmark = pytest.mark.anyio

CALLBACK = "http://127.0.0.1:9/callback"


@dataclass
class Documents:
    base: str
    context: ssl.SSLContext
    requests: list[str]

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


def _certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Documents]:
    """Client metadata documents over TLS on loopback: a good one and one of each kind of bad one."""
    cert, key = _certificate(tmp_path_factory.mktemp("tls"))
    port = free_port()
    base = f"https://127.0.0.1:{port}"
    seen: list[str] = []

    def doc(name: str, **changes: Any) -> dict[str, Any]:
        return {
            "client_id": f"{base}/{name}",
            "client_name": "Metadata Host",
            "redirect_uris": [CALLBACK],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        } | changes

    async def serve(request: Request) -> Response:
        name = request.path_params["name"]
        seen.append(name)
        if name == "redirect":
            return RedirectResponse(f"{base}/good", status_code=302)
        if name == "mismatch":
            return JSONResponse(doc(name, client_id=f"{base}/good"))
        if name == "huge":
            return JSONResponse(doc(name, client_name="x" * (MAX_BYTES + 1)))
        if name == "no-uris":
            return JSONResponse(doc(name, redirect_uris=[]))
        if name == "secret":
            return JSONResponse(doc(name, token_endpoint_auth_method="client_secret_post"))
        return JSONResponse(doc(name))

    app = Starlette(routes=[Route("/{name}", serve)])
    with ServedApp(app, port=port, ssl_certfile=str(cert), ssl_keyfile=str(key)):
        yield Documents(base, ssl.create_default_context(cafile=str(cert)), seen)


@pytest.fixture(scope="module")
def hosted(demo_api: str, documents: Documents, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    settings = Settings(
        base_url=demo_api,
        mcp_auth="oauth",
        mcp_public_url=f"http://127.0.0.1:{port}",
        mcp_secret_key=SecretStr("server-secret-" + secrets.token_urlsafe(32)),
        data_dir=tmp_path_factory.mktemp("oauth-cimd"),
    )
    relaxed = CimdFetcher(allow_loopback=True, verify=documents.context)  # only here: loopback is allowed
    with ServedApp(build_app(settings, clock=frozen_clock, cimd=relaxed), lifespan="on", port=port) as served:
        yield served.url


@pytest.mark.parametrize("era", ["legacy", "auto"])
async def test_a_host_with_a_metadata_document_signs_in_without_registering(
    hosted: str, documents: Documents, era: str
) -> None:
    browser, storage = Browser([DEMO_TOKEN]), Memory()
    registrations: list[str] = []

    async def note(request: httpx2.Request) -> None:
        if request.url.path == "/register":
            registrations.append(str(request.url))

    provider = OAuthClientProvider(
        hosted + "/mcp",
        OAuthClientMetadata(redirect_uris=[AnyUrl(CALLBACK)], token_endpoint_auth_method="none"),
        storage,
        redirect_handler=browser.redirect_handler,
        callback_handler=browser.callback_handler,
        client_metadata_url=documents.url("good"),
    )
    async with (
        httpx2.AsyncClient(auth=provider, event_hooks={"request": [note]}) as http,
        Client(streamable_http_client(hosted + "/mcp", http_client=http), mode=era) as client,  # type: ignore[arg-type]
    ):
        result = await client.call_tool("get_status", {"campaign_id": DEMO_CAMPAIGNS["spring-dm"]})
    assert not result.is_error, text_of(result)
    assert registrations == []
    assert storage.client is not None and storage.client.client_id == documents.url("good")
    assert "Connect Metadata Host to Experiture" in browser.pages[0].text


async def test_the_guard_refuses_loopback_and_private_addresses_outside_tests(documents: Documents) -> None:
    strict = CimdFetcher(verify=documents.context)
    before = len(documents.requests)
    assert await strict.fetch(documents.url("good")) is None  # 127.0.0.1 is not public
    assert await strict.fetch(documents.url("good").replace("127.0.0.1", "localhost")) is None
    assert await strict.fetch("https://10.0.0.1/client.json") is None
    assert await strict.fetch("https://[::1]/client.json") is None
    assert await strict.fetch("https://169.254.169.254/latest/meta-data") is None
    assert len(documents.requests) == before  # refused before any connection


@pytest.mark.parametrize("name", ["redirect", "mismatch", "huge", "no-uris", "secret"])
async def test_bad_documents_are_refused_even_when_loopback_is_allowed(documents: Documents, name: str) -> None:
    relaxed = CimdFetcher(allow_loopback=True, verify=documents.context)
    assert await relaxed.fetch(documents.url("good")) is not None
    assert await relaxed.fetch(documents.url(name)) is None
    assert documents.requests[-1] == name  # fetched, then refused for what it said


async def test_documents_are_cached_and_only_https_urls_with_a_path_count(documents: Documents) -> None:
    relaxed = CimdFetcher(allow_loopback=True, verify=documents.context)
    await relaxed.fetch(documents.url("cached"))
    await relaxed.fetch(documents.url("cached"))
    assert documents.requests.count("cached") == 1
    assert is_cimd_client_id("https://claude.ai/oauth/mcp-oauth-client-metadata")
    for not_one in ("http://claude.ai/x", "https://claude.ai", "https://claude.ai/", "a-uuid", "https://x/y#f"):
        assert not is_cimd_client_id(not_one)
    untrusted = CimdFetcher(allow_loopback=True)  # the test's certificate is not trusted by default
    assert await untrusted.fetch(documents.url("untrusted")) is None
