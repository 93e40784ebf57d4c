"""OAuth: the authorization server's routes on the MCP app's origin, and the MCP app as its resource server.

The SDK's MCPServer runs as a resource server (token_verifier, bearer middleware, 401 with resource_metadata,
the path-inserted PRM). Its own authorization-server mode cannot advertise CIMD, `none` or `iss`, so the metadata
document is ours and the SDK's handler classes are mounted behind it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import anyio
import httpx2
from mcp.server.auth.handlers.authorize import AuthorizationHandler
from mcp.server.auth.handlers.metadata import MetadataHandler, ProtectedResourceMetadataHandler
from mcp.server.auth.handlers.register import RegistrationHandler
from mcp.server.auth.handlers.token import TokenHandler
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.client_auth import AuthenticationError
from mcp.server.auth.routes import cors_middleware
from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
from mcp.server.transport_security import RequestBodyLimitMiddleware
from mcp.shared.auth import OAuthMetadata, ProtectedResourceMetadata
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from experiture_mcp.config import ConfigError, Settings
from experiture_mcp.logs import redact
from experiture_mcp.oauth.access import GrantAccessToken
from experiture_mcp.oauth.cimd import CimdFetcher
from experiture_mcp.oauth.consent import Consent, TokenCheck
from experiture_mcp.oauth.grants import GrantStore
from experiture_mcp.oauth.keys import ServerKey
from experiture_mcp.oauth.provider import (
    CONSENT_PATH,
    DEFAULT_SCOPES,
    SCOPES,
    GrantProvider,
    HashedClientAuthenticator,
    same_resource,
)
from experiture_mcp.oauth.verifier import GrantVerifier

__all__ = ["MAX_REGISTRATION_BYTES", "SWEEP_SECONDS", "OAuth", "UpstreamGuard", "check_oauth_settings"]

log = logging.getLogger(__name__)

MAX_REGISTRATION_BYTES = 16 * 1024
AS_METADATA_PATH = "/.well-known/oauth-authorization-server"
PRM_ROOT_PATH = "/.well-known/oauth-protected-resource"
MCP_PATH = "/mcp"
SWEEP_SECONDS = 600.0  # how often each process deletes expired and revoked rows (idempotent: any may do it)
LISTEN_WAIT_SECONDS = 5.0  # how long start-up waits for the revocation listener (PostgreSQL), then goes on
RETRY_SECONDS = 5.0  # after the store failed to open for the listener


def check_oauth_settings(settings: Settings) -> tuple[str, str]:
    """The public origin and server secret of OAuth mode, or ConfigError with the fix."""
    if not settings.mcp_public_url:
        raise ConfigError(
            "--auth oauth needs EXPERITURE_MCP_PUBLIC_URL: the https:// origin chat hosts reach this server at "
            "(e.g. https://mcp.example.com), which is the OAuth issuer; /mcp is served under it"
        )
    if settings.mcp_secret_key is None:
        raise ConfigError(
            "--auth oauth needs EXPERITURE_MCP_SECRET_KEY (32+ characters, the same on every worker and replica); "
            'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'  # stdout-ok: text of a hint
        )
    return settings.mcp_public_url, settings.mcp_secret_key.get_secret_value()


class UpstreamGuard(httpx2.AsyncBaseTransport):
    """The upstream transport; a 401 from Experiture for a grant's token ends that grant (sign in again)."""

    def __init__(self, inner: httpx2.AsyncBaseTransport, on_unauthorized: Callable[[str], Awaitable[None]]) -> None:
        self._inner = inner
        self._on_unauthorized = on_unauthorized

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Forward; note an upstream 401 for the calling grant."""
        response = await self._inner.handle_async_request(request)
        if response.status_code == 401:
            access = get_access_token()
            if isinstance(access, GrantAccessToken):
                await self._on_unauthorized(access.grant_id)
        return response

    async def aclose(self) -> None:
        """Close the inner transport."""
        await self._inner.aclose()


class OAuth:
    """Everything of OAuth mode for one app: store (opened on first use), verifier, provider, routes."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx2.AsyncBaseTransport | None,
        database_url: str,
        cimd: CimdFetcher | None = None,
        clock: Callable[[], datetime] | None = None,
        sweep_seconds: float = SWEEP_SECONDS,
    ) -> None:
        issuer, secret = check_oauth_settings(settings)
        self.settings = settings
        self.issuer = issuer
        self.resource = issuer + MCP_PATH
        self.key = ServerKey(secret)
        self._secret = secret
        self._url = database_url
        self._grants: GrantStore | None = None
        self._lock: anyio.Lock | None = None
        self._clock = clock or (lambda: datetime.now(UTC))
        self.sweep_seconds = sweep_seconds
        self.cimd = cimd or CimdFetcher()
        self.inner_transport = transport or httpx2.AsyncHTTPTransport(
            limits=httpx2.Limits(
                max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
            )
        )
        self.upstream = UpstreamGuard(self.inner_transport, self._upstream_unauthorized)
        self.verifier = GrantVerifier(self.store)
        csrf_key = hmac.new(secret.encode(), b"experiture-mcp/oauth/csrf/v1", hashlib.sha256).digest()
        self.provider = GrantProvider(self.store, self.verifier, issuer, self.resource, csrf_key, self.cimd)
        # Validated from strings, so that the models keep the origin without a trailing slash (exact issuer).
        self.auth = AuthSettings.model_validate(
            {"issuer_url": issuer, "resource_server_url": self.resource, "validate_token_resource": True}
        )

    async def store(self) -> GrantStore:
        """The grant store, opened (and swept) on first use."""
        if self._grants is not None:
            return self._grants
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self._grants is None:
                grants = await GrantStore.open(self._url, self._secret, self._clock)
                await grants.sweep()
                self._grants = grants
        return self._grants

    async def aclose(self) -> None:
        """Close the store's connections."""
        if self._grants is not None:
            await self._grants.aclose()
            self._grants = None

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        """While the app runs: sweep expired rows every sweep_seconds and, on PostgreSQL, listen for revocations
        (start-up waits a little for the listener, so that the first requests are covered); close at the end."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._sweeping)
                if self._url.startswith(("postgresql", "postgres:")):
                    tg.start_soon(self._listening)
                    with anyio.move_on_after(LISTEN_WAIT_SECONDS):
                        await self._listener_ready()
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.aclose()

    async def sweep(self) -> int:
        """Delete expired and revoked rows now, and stale cached client metadata; how many rows."""
        self.cimd.prune()
        return await (await self.store()).sweep()

    async def _sweeping(self) -> None:
        failing = False
        while True:
            await anyio.sleep(self.sweep_seconds)
            try:
                removed = await self.sweep()
            except Exception as exc:
                if not failing:  # once, until a sweep works again: a database outage must not flood the log
                    log.warning(
                        "OAuth: sweeping expired rows failed (%s); retried every %g s",
                        redact(f"{type(exc).__name__}: {exc}")[:300],
                        self.sweep_seconds,
                    )
                failing = True
                continue
            if failing:
                log.info("OAuth: sweeping expired rows works again")
            failing = False
            log.debug("OAuth: swept %d expired or revoked rows", removed)

    async def _listener_ready(self) -> None:
        while True:
            try:
                store = await self.store()
            except Exception:
                await anyio.sleep(0.1)  # _listening logs it
                continue
            if store.listener is not None:
                await store.listener.ready.wait()
            return

    async def _listening(self) -> None:
        failing = False
        while True:
            try:
                store = await self.store()
            except Exception as exc:
                if not failing:
                    log.warning(
                        "OAuth: the grant store cannot be opened (%s); retrying",
                        redact(f"{type(exc).__name__}: {exc}")[:300],
                    )
                failing = True
                await anyio.sleep(RETRY_SECONDS)
                continue
            await store.listen()
            return

    async def _upstream_unauthorized(self, grant_id: str) -> None:
        log.info("Experiture rejected the token of grant %s: the grant ends", grant_id[:8])
        self.verifier.forget_grant(grant_id)
        await (await self.store()).revoke_grant(grant_id)

    async def revoke_for(self, client_id: str, token: str) -> None:
        """Revoke the grant of one of the client's tokens; unknown tokens and other clients' are ignored (RFC 7009)."""
        store = await self.store()
        grant_id = await store.grant_of(token)
        if grant_id is not None and grant_id[1] == client_id:
            await store.revoke_grant(grant_id[0])

    async def check_token(self, pasted: str) -> TokenCheck:
        """Ask the API what a pasted token allows (the doctor's probes)."""
        from experiture_mcp.doctor import diagnose

        settings = self.settings.model_copy(update={"api_token": SecretStr(pasted)})
        report = await diagnose(settings, transport=self.inner_transport)
        probes = report.probes
        return TokenCheck(
            valid=not any(p.finding == "token_invalid" for p in probes),
            reached=any(p.http_status is not None for p in probes),
            scopes=sorted({p.scope for p in probes if p.finding == "present"}),
            works=[t.tool for t in report.tools if t.works == "yes"],
            fails=[
                f"{t.tool} will not work: {t.why.replace('the token', 'this token')}"
                for t in report.tools
                if t.works == "no"
            ],
        )

    def metadata(self) -> OAuthMetadata:
        """RFC 8414 metadata: S256 only, public clients (`none`), CIMD, registration, revocation, `iss`."""
        return OAuthMetadata.model_validate(
            {
                "issuer": self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "registration_endpoint": self.issuer + "/register",
                "revocation_endpoint": self.issuer + "/revoke",
                "scopes_supported": [*SCOPES, "offline_access"],
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
                "code_challenge_methods_supported": ["S256"],
                "client_id_metadata_document_supported": True,
                "authorization_response_iss_parameter_supported": True,
            }
        )

    def routes(self) -> list[Route]:
        """The authorization server's routes, and the root alias of the protected resource metadata."""
        authenticator = HashedClientAuthenticator(self.provider)
        authorize = AuthorizationHandler(self.provider)
        token = TokenHandler(self.provider, authenticator)
        register = RegistrationHandler(
            self.provider, ClientRegistrationOptions(enabled=True, default_scopes=list(DEFAULT_SCOPES))
        )
        prm = ProtectedResourceMetadata.model_validate(
            {"resource": self.resource, "authorization_servers": [self.issuer], "resource_name": "Experiture campaigns"}
        )
        consent = Consent(self.store, self.provider, self.key, self.check_token)

        async def authorize_with_iss(request: Request) -> Response:
            return _with_iss(await authorize.handle(request), self.issuer)

        async def revoke(request: Request) -> Response:
            # RFC 7009 for public clients too (the SDK's handler requires a client_secret field).
            try:
                client = await authenticator.authenticate_request(request)
            except AuthenticationError as exc:
                return JSONResponse({"error": "invalid_client", "error_description": exc.message}, status_code=401)
            token = (await request.form()).get("token")
            if not isinstance(token, str) or not token:
                body = {"error": "invalid_request", "error_description": "the token to revoke is missing"}
                return JSONResponse(body, status_code=400)
            await self.revoke_for(client.client_id or "", token)
            return Response(status_code=200, headers={"Cache-Control": "no-store"})

        async def token_for_us(request: Request) -> Response:
            form = await request.form()  # cached on the request: the SDK handler reads the same form
            resource = form.get("resource")
            if isinstance(resource, str) and not same_resource(resource, self.resource):
                body = {"error": "invalid_target", "error_description": f"tokens are issued only for {self.resource}"}
                return JSONResponse(body, status_code=400, headers={"Cache-Control": "no-store"})
            return await token.handle(request)

        return [
            Route(AS_METADATA_PATH, cors_middleware(MetadataHandler(self.metadata()).handle, ["GET", "OPTIONS"])),
            Route(PRM_ROOT_PATH, cors_middleware(ProtectedResourceMetadataHandler(prm).handle, ["GET", "OPTIONS"])),
            Route("/authorize", authorize_with_iss, methods=["GET", "POST"]),
            Route("/token", cors_middleware(token_for_us, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route(
                "/register",
                RequestBodyLimitMiddleware(
                    cors_middleware(register.handle, ["POST", "OPTIONS"]), MAX_REGISTRATION_BYTES
                ),
                methods=["POST", "OPTIONS"],
            ),
            Route("/revoke", cors_middleware(revoke, ["POST", "OPTIONS"]), methods=["POST", "OPTIONS"]),
            Route("/favicon.ico", _no_icon, methods=["GET"]),  # browsers ask for it on the consent page
            Route(CONSENT_PATH, consent.get, methods=["GET"]),
            Route(CONSENT_PATH, consent.post, methods=["POST"]),
        ]

    def install(self, app: Starlette) -> None:
        """Add the routes to the MCP app; sweep and listen while it runs (running), close the store when it stops."""
        app.router.routes.extend(self.routes())
        original = app.router.lifespan_context

        @asynccontextmanager
        async def lifespan(started: Starlette) -> AsyncGenerator[Any]:
            async with original(started) as state, self.running():
                yield state

        app.router.lifespan_context = lifespan


async def _no_icon(_: Request) -> Response:
    return Response(status_code=204, headers={"Cache-Control": "public, max-age=86400"})


def _with_iss(response: Response, issuer: str) -> Response:
    """RFC 9207: every authorization response sent back to the client carries `iss` (errors too)."""
    location = response.headers.get("location")
    if response.status_code not in (302, 303) or location is None or location.startswith(issuer + CONSENT_PATH):
        return response
    parts = urlsplit(location)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "iss"] + [("iss", issuer)]
    response.headers["location"] = urlunsplit(parts._replace(query=urlencode(query)))
    return response
