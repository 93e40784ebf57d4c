"""CampaignClient: the Experiture public API v1 over one shared httpx2 connection pool. Knows nothing of MCP."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import anyio
import httpx2
from pydantic import BaseModel, ValidationError

from experiture_mcp import __version__
from experiture_mcp.config import Settings
from experiture_mcp.errors import (
    APIError,
    BadResponse,
    ConnectionFailed,
    HTTPStatusError,
    InvalidCampaignId,
    NotConfigured,
    Unavailable,
    UnusableToken,
    UpstreamTimeout,
    error_from_response,
)
from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary, is_campaign_id

__all__ = ["MAX_BODY_BYTES", "SUGGESTED_RETRY_SECONDS", "USER_AGENT", "CampaignClient", "Endpoint"]

log = logging.getLogger(__name__)

USER_AGENT = f"experiture-mcp/{__version__}"
MAX_BODY_BYTES = 1024 * 1024  # the largest real answer is a few KiB; anything near this is not one
SUGGESTED_RETRY_SECONDS = 30  # what "retry in N s" says when the API gave no Retry-After

M = TypeVar("M", bound=BaseModel)
Endpoint = str  # "summary" | "status" | "metrics"


class CampaignClient:
    """One method per GET endpoint; each returns a model or raises an `errors.APIError`."""

    def __init__(self, settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._http = httpx2.AsyncClient(
            base_url=settings.base_url + "/",
            # identity: a compressed body could inflate far past MAX_BODY_BYTES inside a single chunk
            headers={"User-Agent": USER_AGENT, "Accept": "application/json", "Accept-Encoding": "identity"},
            timeout=httpx2.Timeout(settings.timeout_seconds),
            limits=httpx2.Limits(
                max_connections=settings.max_concurrency, max_keepalive_connections=settings.max_concurrency
            ),
            follow_redirects=False,  # a redirect would carry the token to wherever it points
            transport=transport,
        )
        self._slots = anyio.Semaphore(settings.max_concurrency)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def get_summary(self, campaign_id: str, *, token: str | None = None) -> CampaignSummary:
        """GET /campaigns/:id/summary (scope campaigns:read)."""
        return await self._get("summary", campaign_id, CampaignSummary, token)

    async def get_status(self, campaign_id: str, *, token: str | None = None) -> CampaignStatus:
        """GET /campaigns/:id/status (scope campaigns:read)."""
        return await self._get("status", campaign_id, CampaignStatus, token)

    async def get_metrics(self, campaign_id: str, *, token: str | None = None) -> CampaignMetrics:
        """GET /campaigns/:id/metrics (scope analytics:read)."""
        return await self._get("metrics", campaign_id, CampaignMetrics, token)

    async def _get(self, endpoint: Endpoint, campaign_id: str, model: type[M], token: str | None) -> M:
        if not is_campaign_id(campaign_id):
            raise InvalidCampaignId(campaign_id)
        token = (token or self._settings.token or "").strip()
        if not token:
            raise NotConfigured()
        if not _TOKEN_CHARS.fullmatch(token):
            raise UnusableToken()  # h11 would refuse it mid-request, with the token in the exception's text
        path = f"campaigns/{campaign_id.lower()}/{endpoint}"
        return await self._with_retries(path, lambda deadline: self._attempt(path, token, model, deadline))

    async def _with_retries(self, path: str, attempt: Callable[[float], Awaitable[M]]) -> M:
        """Run `attempt` until it succeeds, fails for good, runs out of attempts or passes the per-call deadline."""
        s = self._settings
        deadline = anyio.current_time() + s.deadline_seconds
        try:
            # The common case, one answer, skips the retry machinery (~0.1 ms): the attempt is bounded by the deadline.
            return await attempt(deadline)
        except APIError as exc:
            if not exc.retryable:
                raise
            pending = [exc]  # handed to stamina as its first failure

        import stamina  # here, not at the top: its import (tenacity) would add ~20 ms to every server start-up

        tries = 0
        failures: list[APIError] = []

        def backoff(exc: Exception) -> bool | float:
            # stamina's predicate: False gives up, True waits the jittered exponential backoff, a float waits that.
            if not isinstance(exc, APIError) or not exc.retryable:
                return False
            failures.append(exc)
            remaining = deadline - anyio.current_time()
            if exc.retry_after is not None:
                if exc.retry_after > min(s.retry_max_wait_seconds, remaining):
                    return False  # the API asks for a longer wait than we may spend: say so now
                log.info("retrying %s in %.2f s (Retry-After) after: %s", path, exc.retry_after, exc)
                return max(exc.retry_after, s.retry_backoff_seconds)
            if min(s.retry_max_wait_seconds, s.retry_backoff_seconds * 2 ** (tries - 1)) >= remaining:
                return False  # even the shortest backoff would overrun the deadline
            log.info("retrying %s after: %s", path, exc)
            return True

        with anyio.move_on_after(deadline - anyio.current_time()) as scope:
            try:
                async for retry in stamina.retry_context(
                    on=backoff,
                    attempts=s.retry_attempts,
                    timeout=None,  # the deadline scope bounds waits and requests alike
                    wait_initial=s.retry_backoff_seconds,
                    wait_max=s.retry_max_wait_seconds,
                    wait_jitter=s.retry_backoff_seconds,
                ):
                    with retry:
                        tries += 1
                        if pending:
                            raise pending.pop()
                        return await attempt(deadline)
            except APIError as exc:
                if not exc.retryable:
                    raise
                raise _unavailable(exc, tries) from None
        assert scope.cancelled_caught
        last = failures[-1] if failures else None
        if not isinstance(last, HTTPStatusError):  # an answer such as a 503 or 429 says more than "no answer"
            last = UpstreamTimeout(f"no usable answer within the {s.deadline_seconds:g} s deadline")
        raise _unavailable(last, tries)

    async def _attempt(self, path: str, token: str, model: type[M], deadline: float) -> M:
        answer = None
        # One scope: the wait for a slot is bounded by the call's deadline, then the whole exchange, body included, by
        # the request timeout too (a body dripped byte by byte never resets a read timeout).
        with anyio.CancelScope(deadline=deadline) as scope:
            async with self._slots:
                scope.deadline = min(deadline, anyio.current_time() + self._settings.timeout_seconds)
                answer = await self._fetch(path, token)
        if answer is None and scope.deadline >= deadline:
            raise UpstreamTimeout(f"no usable answer within the {self._settings.deadline_seconds:g} s deadline")
        if answer is None:
            raise UpstreamTimeout(f"no complete answer within {self._settings.timeout_seconds:g} s")
        return _parse(*answer, model)

    async def _fetch(self, path: str, token: str) -> tuple[int, httpx2.Headers, bytes]:
        request = self._http.build_request("GET", path, headers={"Authorization": f"Bearer {token}"})
        try:
            response = await self._http.send(request, stream=True)
            try:
                body = await _read_capped(response)
            finally:
                await response.aclose()
        except httpx2.TimeoutException as exc:
            raise UpstreamTimeout(f"no answer within {self._settings.timeout_seconds:g} s") from exc
        except httpx2.ConnectError as exc:
            # Transport exceptions name the URL, never the headers, so chaining them leaks no token.
            host, kind = request.url.host, type(exc).__name__
            raise ConnectionFailed(f"{host} refused or could not be reached ({kind})") from exc
        except httpx2.TransportError as exc:
            host, kind = request.url.host, type(exc).__name__
            raise ConnectionFailed(f"{host} dropped the connection mid-answer ({kind})") from exc
        return response.status_code, response.headers, body


async def _read_capped(response: httpx2.Response) -> bytes:
    declared = response.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BadResponse(
            f"response body of {int(declared)} bytes exceeds the {MAX_BODY_BYTES} byte limit",
            status=response.status_code,
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BadResponse(f"response body exceeds the {MAX_BODY_BYTES} byte limit", status=response.status_code)
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(status: int, headers: httpx2.Headers, body: bytes, model: type[M]) -> M:
    data = _json_or_none(body)
    if not 200 <= status < 300:
        raise error_from_response(status, data, retry_after=retry_after_seconds(headers.get("retry-after")))
    if data is None:
        kind = headers.get("content-type", "no content type").split(";")[0].strip()
        kind = kind if _SAFE_NAME.fullmatch(kind) else "an unusual content type"  # header text is the API's
        raise BadResponse(f"HTTP {status} with a body that is not JSON ({kind}, {len(body)} bytes)", status=status)
    if isinstance(data, dict) and data.get("success") is False:  # pyright: ignore[reportUnknownMemberType]
        err = error_from_response(status, data)
        raise BadResponse(f"HTTP {status} with success: false", status=status, code=err.code, detail=err.detail)
    if not isinstance(data, dict) or "data" not in data:
        raise BadResponse(f"HTTP {status} JSON without the expected {{success, data}} envelope", status=status)
    envelope: dict[str, Any] = data  # pyright: ignore[reportUnknownVariableType]
    try:
        return model.model_validate(envelope["data"])
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        # Locations can hold the API's own dict keys and messages can echo its values: keep only safe names.
        where = ".".join(str(p) if _SAFE_NAME.fullmatch(str(p)) else "…" for p in first["loc"]) or "data"
        raise BadResponse(f"HTTP {status} JSON of the wrong shape ({where}: {first['msg']})", status=status) from None


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.+/ -]{1,60}")
_TOKEN_CHARS = re.compile(r"[!-~]+")  # visible ASCII: what a bearer token may hold


def _unavailable(cause: APIError, tries: int) -> Unavailable:
    # The API's own figure, rounded up, but never more than a day: a huge Retry-After is a bug, not advice.
    wait = min(math.ceil(cause.retry_after), 86400) if cause.retry_after else SUGGESTED_RETRY_SECONDS
    return Unavailable(cause, attempts=tries, retry_after=float(wait))


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit also accepts "²", which float() refuses
        return min(float(value), 1e9)  # a 400-digit value would be inf
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
