"""CampaignClient: the Experiture public API v1 over one shared httpx2 connection pool. Knows nothing of MCP."""

from __future__ import annotations

import json
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
    BadResponse,
    ConnectionFailed,
    InvalidCampaignId,
    NotConfigured,
    UpstreamTimeout,
    error_from_response,
)
from experiture_mcp.models import CampaignMetrics, CampaignStatus, CampaignSummary, is_campaign_id

__all__ = ["MAX_BODY_BYTES", "USER_AGENT", "CampaignClient", "Endpoint"]

USER_AGENT = f"experiture-mcp/{__version__}"
MAX_BODY_BYTES = 1024 * 1024  # the largest real answer is a few KiB; anything near this is not one

M = TypeVar("M", bound=BaseModel)
Endpoint = str  # "summary" | "status" | "metrics"


class CampaignClient:
    """One method per GET endpoint; each returns a model or raises an `errors.APIError`."""

    def __init__(self, settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None) -> None:
        self._settings = settings
        self._http = httpx2.AsyncClient(
            base_url=settings.base_url + "/",
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
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
        token = token or self._settings.token
        if not token:
            raise NotConfigured()
        async with self._slots:
            status, headers, body = await self._fetch(f"campaigns/{campaign_id.lower()}/{endpoint}", token)
        return _parse(status, headers, body, model)

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
        except httpx2.TransportError as exc:
            # Transport exceptions name the URL, never the headers, so chaining them leaks no token.
            raise ConnectionFailed(f"could not reach {request.url.host} ({type(exc).__name__})") from exc
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
        kind = headers.get("content-type", "no content type").split(";")[0]
        raise BadResponse(f"HTTP {status} with a body that is not JSON ({kind}, {len(body)} bytes)", status=status)
    if not isinstance(data, dict) or "data" not in data:
        raise BadResponse(f"HTTP {status} JSON without the expected {{success, data}} envelope", status=status)
    envelope: dict[str, Any] = data  # pyright: ignore[reportUnknownVariableType]
    if envelope.get("success") is False:
        err = error_from_response(status, envelope)
        raise BadResponse(f"HTTP {status} with success: false", status=status, code=err.code, detail=err.detail)
    try:
        return model.model_validate(envelope["data"])
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        raise BadResponse(f"HTTP {status} JSON of the wrong shape ({where}: {first['msg']})", status=status) from None


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
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
