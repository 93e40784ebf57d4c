"""Hosted mode: the streamable HTTP app (/mcp and /healthz), its access-key check, and the checks before binding."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
import re
import socket
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import httpx2
from mcp.server import MCPServer
from mcp.server.transport_security import RequestBodyLimitMiddleware, TransportSecuritySettings
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from experiture_mcp import __version__
from experiture_mcp.config import ConfigError, Settings, is_loopback_host
from experiture_mcp.inflight import SCOPE_KEY, Board, Registry, caller_identity
from experiture_mcp.logs import configure_logging, register_secret
from experiture_mcp.sandbox import demo_transport
from experiture_mcp.server import TOKEN_HEADER, Clock, build_server

if TYPE_CHECKING:
    from experiture_mcp.oauth.cimd import CimdFetcher

__all__ = [
    "HEALTH_PATH",
    "MCP_PATH",
    "MIN_ACCESS_KEY_LENGTH",
    "STREAMING_TOOLS",
    "WORKER_HEADER",
    "AccessKeyMiddleware",
    "NoDelayProtocol",
    "PostOnlyMiddleware",
    "StreamingRouter",
    "WorkerHeaderMiddleware",
    "app_from_env",
    "build_app",
    "check_exposure",
    "serve",
    "transport_security",
]

log = logging.getLogger(__name__)

MCP_PATH = "/mcp"
HEALTH_PATH = "/healthz"
WORKER_HEADER = "X-Experiture-MCP-Worker"  # which process answered, for debugging a load-balanced deployment
MIN_ACCESS_KEY_LENGTH = 16
CALLER_KEY = "experiture_mcp.caller"  # in the ASGI scope: a digest of the access key AccessKeyMiddleware accepted
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")
CORS_REQUEST_HEADERS = (
    "Authorization",
    "Content-Type",
    "Accept",
    "Mcp-Protocol-Version",
    "Mcp-Session-Id",
    "Last-Event-ID",
    "X-Experiture-Token",
)
NEW_KEY_HINT = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'  # stdout-ok: text of a hint


def check_exposure(settings: Settings) -> None:
    """Raise ConfigError, with the fix, when serving on settings.mcp_host would expose the server unsafely."""
    short = [k for k in settings.mcp_access_keys if len(k.get_secret_value()) < MIN_ACCESS_KEY_LENGTH]
    if short:
        raise ConfigError(
            f"EXPERITURE_MCP_ACCESS_KEYS has a key shorter than {MIN_ACCESS_KEY_LENGTH} characters, which could be "
            f"guessed; generate keys with: {NEW_KEY_HINT}"
        )
    if settings.mcp_auth == "oauth":
        from experiture_mcp.oauth.app import check_oauth_settings

        check_oauth_settings(settings)  # every caller of /mcp then needs an OAuth token
    if is_loopback_host(settings.mcp_host):
        return
    if settings.mcp_auth == "oauth":
        return  # the public URL's host is allowed (transport_security); no access keys are involved
    if not settings.mcp_access_keys and not settings.mcp_no_auth_behind_proxy:
        raise ConfigError(
            f"refusing to serve on {settings.mcp_host} without access keys: anyone who can reach it could read "
            f"campaign data. Set EXPERITURE_MCP_ACCESS_KEYS to one or more comma-separated keys (make one with: "
            f"{NEW_KEY_HINT}) and have clients send 'Authorization: Bearer <key>'; or, only if a proxy in front "
            "of this server authenticates every caller, pass --no-auth-behind-proxy."
        )
    if not settings.mcp_allowed_hosts:
        raise ConfigError(
            f"serving on {settings.mcp_host} needs --allowed-hosts (EXPERITURE_MCP_ALLOWED_HOSTS): the host names "
            "clients use to reach this server, e.g. --allowed-hosts mcp.example.com. Requests with any other Host "
            "header are refused (DNS-rebinding protection); '*' accepts any Host when a proxy checks it."
        )


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """Host and Origin allowlists: loopback always, plus the configured ones ('*' hosts turns both checks off)."""
    if "*" in settings.mcp_allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts: list[str] = list(LOOPBACK_HOSTS)
    origins = [*LOOPBACK_ORIGINS, *settings.mcp_allowed_origins]
    named = list(settings.mcp_allowed_hosts)
    if settings.mcp_auth == "oauth" and settings.mcp_public_url:
        public = httpx2.URL(settings.mcp_public_url)
        named.append(f"{public.host}:{public.port}" if public.port else public.host)
        origins.append(settings.mcp_public_url)  # the consent page posts to its own origin
    for host in named:
        # A name without a port matches with or without one, as a proxy may forward either form.
        hosts += [host] if re.search(r":(\d+|\*)$", host) else [host, f"{host}:*"]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


def _digest(key: str | bytes) -> bytes:
    # Comparing fixed-length digests keeps the time of a comparison independent of the keys' lengths.
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).digest()


class AccessKeyMiddleware:
    """Checks `Authorization: Bearer <access key>` before anything else runs, then drops the header.

    The caller's Authorization header never reaches a handler, so it can never be forwarded to Experiture.
    Every response also names the worker process that answered (WORKER_HEADER).
    """

    def __init__(self, app: ASGIApp, keys: tuple[str, ...], open_paths: frozenset[str]) -> None:
        self.app = app
        self._keys = tuple(_digest(k) for k in keys)
        self._open_paths = open_paths
        self._worker = str(os.getpid()).encode()

    def _accepts(self, presented: bytes) -> bool:
        digest = _digest(presented)
        accepted = False
        for key in self._keys:  # no early exit: every key is compared every time
            accepted |= hmac.compare_digest(digest, key)
        return accepted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        authorization = [value for name, value in headers if name == b"authorization"]

        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (WORKER_HEADER.lower().encode(), self._worker)]
            await send(message)

        caller: bytes | None = None
        if self._keys and scope["path"] not in self._open_paths:
            scheme, _, presented = (authorization[0] if len(authorization) == 1 else b"").partition(b" ")
            if scheme.lower() != b"bearer" or not self._accepts(presented.strip()):
                log.info("refused %s %r: %s access key", scope["method"], scope["path"], "wrong" if presented else "no")
                await _unauthorized(bool(presented))(scope, receive, send_with_worker)
                return
            caller = _digest(presented.strip())  # who called, for StreamingRouter; never the key itself
        scope = {**scope, "headers": [(name, value) for name, value in headers if name != b"authorization"]}
        if caller is not None:
            scope[CALLER_KEY] = caller
        await self.app(scope, receive, send_with_worker)


class PostOnlyMiddleware:
    """Answers every method but POST on `path` with 405 and `Allow: POST`, in both protocol eras.

    A stateless server has no standalone event stream (a call's progress rides on its own POST's answer) and no
    session to delete; left to the SDK's 2025 path, a GET would open an event stream that never ends, and clients
    probing with GET would wait for it to time out.
    """

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self._path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self._path and scope["method"] != "POST":
            body = {
                "jsonrpc": "2.0",
                "id": None,
                "error": {
                    "code": -32600,
                    "message": f"Method Not Allowed: this stateless server answers POST only, not {scope['method']} "
                    "(no standalone event stream, no session to delete)",
                },
            }
            await JSONResponse(body, status_code=405, headers={"Allow": "POST"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def _unauthorized(presented: bool) -> Response:
    challenge = 'Bearer realm="experiture-mcp"'
    if presented:
        challenge += ', error="invalid_token", error_description="The access key is not valid"'
    body = {
        "error": "invalid_token" if presented else "unauthorized",
        "error_description": ("The access key is not valid." if presented else "This MCP server needs an access key.")
        + " Send the header 'Authorization: Bearer <access key>' with a key the server's operator gave you "
        "(one of EXPERITURE_MCP_ACCESS_KEYS).",
    }
    return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": challenge})


def build_app(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    clock: Clock | None = None,
    cimd: CimdFetcher | None = None,
    shared_cancels: bool = False,
) -> Starlette:
    """The ASGI app for hosted mode: stateless streamable HTTP at /mcp (JSON answers; event streams for the calls of
    tools that report progress or wait), open /healthz.

    `cimd` (OAuth mode) fetches client metadata documents; tests pass one that may reach loopback.
    `shared_cancels`: other processes serve the same callers (several workers), so a cancel this one holds no call
    for is left for them in the memory's database; on PostgreSQL (several replicas) always.
    Raises ConfigError when settings would expose the server unsafely (see check_exposure).
    """
    check_exposure(settings)
    board = _board(settings, shared_cancels)
    if settings.mcp_auth == "oauth":
        return _build_oauth_app(settings, transport, clock, cimd, board)
    keys = tuple(k.get_secret_value() for k in settings.mcp_access_keys)
    for key in keys:
        register_secret(key)
    server = build_server(settings, transport=transport, clock=clock)
    _add_healthz(server)
    app = _streamable_app(server, settings, board)
    app.add_middleware(AccessKeyMiddleware, keys=keys, open_paths=frozenset({HEALTH_PATH}))
    _add_cors(app, settings)
    return app


def _board(settings: Settings, shared: bool) -> Board | None:
    """Where cancels meet the calls they are for when other processes serve too; None: this process alone."""
    from experiture_mcp.memory import Memory

    memory = Memory(settings, lambda: datetime.now(UTC))
    replicas = memory.url.startswith(("postgresql:", "postgres:", "postgresql+"))
    return Board(memory) if settings.memory and (shared or replicas) else None


def _build_oauth_app(
    settings: Settings,
    transport: httpx2.AsyncBaseTransport | None,
    clock: Clock | None,
    cimd: CimdFetcher | None,
    board: Board | None,
) -> Starlette:
    """OAuth mode: the MCP app as a resource server of the authorization server mounted beside it."""
    from experiture_mcp.memory import Memory
    from experiture_mcp.oauth.app import OAuth

    assert settings.mcp_secret_key is not None  # check_exposure made sure
    register_secret(settings.mcp_secret_key.get_secret_value())
    memory = Memory(settings, lambda: datetime.now(UTC))
    if memory.path is not None:  # sign-in comes before any tool call, so the grants may be the first to need it
        memory.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    database_url = memory.url
    oauth = OAuth(settings, transport=transport, database_url=database_url, cimd=cimd)
    server = build_server(
        settings, transport=oauth.upstream, clock=clock, auth=oauth.auth, token_verifier=oauth.verifier
    )
    _add_healthz(server)
    app = _streamable_app(server, settings, board)
    oauth.install(app)
    app.add_middleware(WorkerHeaderMiddleware)
    _add_cors(app, settings)
    return app


def _add_healthz(server: MCPServer[Any]) -> None:

    @server.custom_route(HEALTH_PATH, methods=["GET"])
    async def healthz(_: Request) -> Response:  # pyright: ignore[reportUnusedFunction]
        # Says only that this process serves; it checks nothing upstream, so an Experiture outage
        # does not make a load balancer take every replica out at once.
        return Response(
            json.dumps({"status": "ok", "version": __version__, "pid": os.getpid()}),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )


def _streamable_app(server: MCPServer[Any], settings: Settings, board: Board | None) -> Starlette:
    """Stateless streamable HTTP at /mcp: JSON answers, but event streams for calls that can stream (StreamingRouter).

    The SDK serves one answer format per session manager, so there are two apps of the same server: the one returned
    (JSON) and, behind its StreamingRouter, one whose answers are event streams; both run the server's lifespan once.
    """

    def app(json_response: bool) -> Starlette:
        return server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,  # any worker or replica can answer any request: no session affinity
            json_response=json_response,
            max_request_body_size=settings.mcp_max_body_bytes,
            transport_security=transport_security(settings),
            host=settings.mcp_host,
        )

    streaming = app(json_response=False)
    plain = app(json_response=True)
    lowlevel = server.session_manager.app
    lowlevel.lifespan = _entered_once(lowlevel.lifespan)  # type: ignore[assignment]  # both managers share one state
    plain_lifespan, streaming_lifespan = plain.router.lifespan_context, streaming.router.lifespan_context

    @asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncGenerator[Any]:
        async with AsyncExitStack() as stack:
            if board is not None:
                await stack.enter_async_context(board.running())
            state = await stack.enter_async_context(plain_lifespan(started))
            await stack.enter_async_context(streaming_lifespan(streaming))
            yield state

    plain.router.lifespan_context = lifespan
    # Inside the key check (strangers learn nothing) and outside the SDK's OAuth check, which each app has its own of.
    plain.add_middleware(
        StreamingRouter, streaming=streaming, path=MCP_PATH, max_body=settings.mcp_max_body_bytes, board=board
    )
    plain.add_middleware(PostOnlyMiddleware, path=MCP_PATH)
    return plain


def _entered_once(lifespan: Callable[[Any], AbstractAsyncContextManager[Any]]) -> Callable[[Any], Any]:
    """`lifespan`, but entered again while entered it yields the same state instead of opening a second one."""
    entered: list[Any] = []

    @asynccontextmanager
    async def once(server: Any) -> AsyncGenerator[Any]:
        if entered:
            yield entered[0]
            return
        async with lifespan(server) as state:
            entered.append(state)
            try:
                yield state
            finally:
                entered.clear()

    return once


class StreamingRouter:
    """Sends the /mcp POSTs that can stream to the event-stream app, every other request on to the JSON one.

    Streaming: a call of a tool in STREAMING_TOOLS (wait_for_run), whose progress rides on the stream and which
    closing the stream cancels. Each streamed exchange has an InFlight in its scope (inflight.py); a
    `notifications/cancelled` POST cancels the same caller's call with that id, as 2025-11-25 clients cancel, which
    the stateless SDK drops: in this process, or through the `board` in whichever process holds it. The body is read
    once, within the server's body limit, and replayed.
    """

    def __init__(self, app: ASGIApp, streaming: ASGIApp, path: str, max_body: int, board: Board | None = None) -> None:
        self.app = app
        self._streaming = streaming
        self._path = path
        self._calls = Registry()
        self._board = board
        self._bounded = RequestBodyLimitMiddleware(self._route, max_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self._path and scope["method"] == "POST":
            await self._bounded(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()  # the whole body (the limit middleware read it), or what ended the request early
        body: bytes = first.get("body", b"") if first["type"] == "http.request" else b""
        replay = [first]

        async def replayed() -> Message:
            return replay.pop() if replay else await receive()

        # Cheap byte checks first: ordinary calls (most of them) are never parsed here.
        message = _json_object(body) if any(marker in body for marker in STREAMING_MARKERS) else None
        if message is None:
            await self.app(scope, replayed, send)
            return
        caller = _caller(scope)
        if message.get("method") == "notifications/cancelled":
            params = message.get("params")
            if isinstance(params, dict):
                request_id = cast(dict[str, Any], params).get("requestId")
                if self._calls.cancel(caller, request_id):
                    log.info("cancelled an in-flight call at its caller's request")
                elif self._board is not None and caller is not None:
                    await self._board.post(caller, request_id)  # another worker or replica may hold it
            await self.app(scope, replayed, send)  # the SDK acknowledges it (202)
            return
        if "id" not in message or not _streams(message):
            await self.app(scope, replayed, send)
            return
        with self._calls.holding(caller, message["id"]) as call:
            if self._board is None:
                await self._streaming({**scope, SCOPE_KEY: call}, replayed, send)
                return
            async with self._board.watching(caller, message["id"], call):
                await self._streaming({**scope, SCOPE_KEY: call}, replayed, send)


STREAMING_TOOLS = frozenset({"wait_for_run"})  # the tools that report progress or wait (tests/test_wait_http.py)
STREAMING_MARKERS = (*(name.encode() for name in STREAMING_TOOLS), b"notifications/cancelled")


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        decoded: Any = json.loads(body)
    except (ValueError, RecursionError):
        return None  # the SDK answers with the parse error
    return cast(dict[str, Any], decoded) if isinstance(decoded, dict) else None


def _streams(message: dict[str, Any]) -> bool:
    """Whether a request's answer should be an event stream: it calls a tool that reports progress or waits.

    A progress token alone does not make a stream: some clients send one with every call, and the other tools never
    report progress, so their answers would pay for a stream that carries nothing but the result.
    """
    params = message.get("params")
    if message.get("method") != "tools/call" or not isinstance(params, dict):
        return False
    return cast(dict[str, Any], params).get("name") in STREAMING_TOOLS


def _caller(scope: Scope) -> bytes | None:
    """Who calls: the access key AccessKeyMiddleware accepted, or the bearer token (OAuth), and the tenant token."""
    headers = dict(cast(list[tuple[bytes, bytes]], scope["headers"]))
    credential: bytes | None = scope.get(CALLER_KEY) or headers.get(b"authorization")
    return caller_identity(credential, headers.get(TOKEN_HEADER.lower().encode()))


def _add_cors(app: Starlette, settings: Settings) -> None:
    if settings.mcp_allowed_origins:
        # Outermost, so a browser's preflight (which carries no access key) is answered before the key check.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.mcp_allowed_origins),
            allow_methods=["POST"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=["Mcp-Session-Id", WORKER_HEADER, "WWW-Authenticate"],
            max_age=600,
        )


class WorkerHeaderMiddleware:
    """Names the worker process that answered on every response (OAuth mode, where no access key is checked)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._worker = str(os.getpid()).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_worker(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (WORKER_HEADER.lower().encode(), self._worker)]
            await send(message)

        await self.app(scope, receive, send_with_worker if scope["type"] == "http" else send)


def app_from_env() -> Starlette:
    """Uvicorn factory for worker processes: `uvicorn --factory experiture_mcp.hosted:app_from_env`."""
    try:
        settings = Settings()
        configure_logging(settings.log_level)
        _quiet_sdk_request_logs(settings)
        return build_app(settings, transport=demo_transport(settings), shared_cancels=True)  # one of several workers
    except ConfigError as exc:
        sys.stderr.write(f"experiture-mcp: {exc}\n")
        raise SystemExit(2) from None


class NoDelayProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with Nagle's algorithm off on every connection.

    With several workers uvicorn binds the socket itself, without IPPROTO_TCP, so asyncio skips its usual
    TCP_NODELAY and each response waits about 40 ms for the client's delayed ACK.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        sock: socket.socket | None = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def serve(settings: Settings, port: int, workers: int) -> int:
    """Serve hosted mode with uvicorn until interrupted; N workers share the port."""
    import uvicorn

    try:
        check_exposure(settings)  # before binding, and before workers each build their own app
        app = build_app(settings, transport=demo_transport(settings)) if workers == 1 else None
    except ConfigError as exc:
        sys.stderr.write(f"experiture-mcp: {exc}\n")
        return 2
    _quiet_sdk_request_logs(settings)
    sys.stderr.write(_banner(settings, port, workers))
    options: dict[str, Any] = {
        "host": settings.mcp_host,
        "port": port,
        "log_config": None,  # our redacting stderr handler is the only one
        "log_level": settings.log_level.lower(),
        "access_log": settings.log_level == "DEBUG",
        "server_header": False,
        "http": NoDelayProtocol,
        "timeout_keep_alive": 75,  # longer than common load balancers' 60 s idle timeout, so they close first
        "timeout_graceful_shutdown": int(settings.deadline_seconds) + 5,  # in-flight calls finish on SIGTERM
    }
    if app is None:
        # Worker processes build their own app from the environment, so hand every setting down that way.
        os.environ.update(settings.to_env())
        uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=workers, **options)
    else:
        uvicorn.run(app, **options)
    return 0


def _quiet_sdk_request_logs(settings: Settings) -> None:
    # The SDK logs "Terminating session: None" at INFO after every stateless request: noise unless debugging.
    if settings.log_level != "DEBUG":
        logging.getLogger("mcp.server.streamable_http").setLevel(logging.WARNING)


def _banner(settings: Settings, port: int, workers: int) -> str:
    host = settings.mcp_host
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}{MCP_PATH}"
    if settings.mcp_auth == "oauth":
        callers = f"callers sign in with OAuth (issuer {settings.mcp_public_url}, consent page /oauth/consent)"
    elif settings.mcp_access_keys:
        callers = f"callers need one of {len(settings.mcp_access_keys)} access key(s)"
    elif is_loopback_host(host):
        callers = "no access keys: any program on this machine may call it"
    else:
        callers = "no access keys: the proxy in front must authenticate callers"
    tenant = (
        "each grant's own, pasted once on the consent page"
        if settings.mcp_auth == "oauth"
        else "EXPERITURE_API_TOKEN unless a request sends X-Experiture-Token"
        if settings.token
        else ("each request's X-Experiture-Token header (EXPERITURE_API_TOKEN is not set)")
    )
    return (
        f"experiture-mcp {__version__}: MCP over streamable HTTP at {where}, {workers} worker(s); {callers}; "
        f"Experiture token: {tenant}; health check: GET {HEALTH_PATH}\n"
    )
