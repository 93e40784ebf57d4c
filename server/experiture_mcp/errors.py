"""Errors raised by the API client, and the one place HTTP statuses become error types.

The hierarchy::

    ExperitureError
    ├── NotConfigured            no API token is configured
    │   └── UnusableToken        the token holds characters an HTTP header cannot carry
    ├── InvalidCampaignId        refused before any request: not a UUID
    └── APIError                 the request was made and did not give a usable answer
        ├── TransportError       no HTTP answer at all
        │   ├── UpstreamTimeout
        │   └── ConnectionFailed
        ├── Unavailable          retries on a temporary error ran out (attempts or the per-call deadline)
        ├── BadResponse          an answer that is not the JSON the reference describes
        └── HTTPStatusError      a non-2xx status
            ├── Unauthorized             401
            ├── InsufficientScope        403
            ├── CampaignNotFound         404
            ├── UnsupportedCampaignType  409 (TYPE_UNSUPPORTED or SUMMARY_TYPE_UNSUPPORTED)
            ├── RateLimited              429
            ├── StatusInconsistent       500 with STATUS_INCONSISTENT
            ├── ServerError              other 5xx
            └── ClientError              any other status
"""

from __future__ import annotations

import re
from typing import Any, cast

__all__ = [
    "RETRYABLE_STATUSES",
    "APIError",
    "BadResponse",
    "CampaignNotFound",
    "ClientError",
    "ConnectionFailed",
    "ExperitureError",
    "HTTPStatusError",
    "InsufficientScope",
    "InvalidCampaignId",
    "NotConfigured",
    "RateLimited",
    "ServerError",
    "StatusInconsistent",
    "TransportError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedCampaignType",
    "UnusableToken",
    "UpstreamTimeout",
    "error_from_response",
    "shown_id",
]

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")


class ExperitureError(Exception):
    """Base of every error this package raises; messages never contain the API token."""


class NotConfigured(ExperitureError):
    """No API token is configured."""

    def __init__(self) -> None:
        super().__init__("no Experiture API token is configured")


class UnusableToken(NotConfigured):
    """The token holds spaces, line breaks or non-ASCII characters, so no request was made."""

    def __init__(self) -> None:
        ExperitureError.__init__(self, "the Experiture API token holds characters an HTTP header cannot carry")


_USERINFO = re.compile(r"(?<=//)[^/?#@\s]*@")


def shown_id(value: str) -> str:
    """A campaign id as logs and errors show it: a link's user:password@ masked, at most 80 characters."""
    return _USERINFO.sub("***@", value)[:80]


class InvalidCampaignId(ExperitureError, ValueError):
    """The campaign id is neither a UUID nor a link holding one, so no request was made."""

    def __init__(self, campaign_id: str) -> None:
        super().__init__(f"campaign id {shown_id(campaign_id)!r} is not a UUID or a link to a campaign")
        self.campaign_id = campaign_id


class APIError(ExperitureError):
    """A request to the Experiture API did not give a usable answer."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.detail = detail  # the API's own message: untrusted text, rendered quoted
        self.retry_after = retry_after


class TransportError(APIError):
    """No HTTP answer: the request could not be sent or the answer did not arrive."""

    retryable = True


class UpstreamTimeout(TransportError):
    """The API did not answer in time."""


class ConnectionFailed(TransportError):
    """The API could not be reached (refused, DNS, TLS, reset)."""


class Unavailable(APIError):
    """Every attempt failed with a temporary error, or the per-call deadline passed; `cause` is the last one."""

    retryable = True

    def __init__(self, cause: APIError, *, attempts: int, retry_after: float) -> None:
        super().__init__(
            f"{cause} ({attempts} attempt{'s' if attempts != 1 else ''})",
            status=cause.status,
            code=cause.code,
            detail=cause.detail,
            retry_after=retry_after,
        )
        self.cause = cause
        self.attempts = attempts


class BadResponse(APIError):
    """The answer is not the JSON the reference describes."""


class HTTPStatusError(APIError):
    """The API answered with a non-2xx status."""


class Unauthorized(HTTPStatusError):
    """401: the token is missing, invalid or expired."""


class InsufficientScope(HTTPStatusError):
    """403: the token lacks the scope this endpoint needs."""


class CampaignNotFound(HTTPStatusError):
    """404: no campaign with this id is visible to the token."""


class UnsupportedCampaignType(HTTPStatusError):
    """409: the campaign exists but is not a type this public operation supports."""


class RateLimited(HTTPStatusError):
    """429: too many requests."""

    retryable = True


class StatusInconsistent(HTTPStatusError):
    """500 STATUS_INCONSISTENT: execution metadata cannot be assembled into a status."""


class ServerError(HTTPStatusError):
    """A 5xx other than STATUS_INCONSISTENT."""

    @property
    def retryable(self) -> bool:  # type: ignore[override]
        return self.status in RETRYABLE_STATUSES


class ClientError(HTTPStatusError):
    """Any other non-2xx status (other 4xx, unexpected 1xx/3xx)."""


_BY_STATUS: dict[int, type[HTTPStatusError]] = {
    401: Unauthorized,
    403: InsufficientScope,
    404: CampaignNotFound,
    409: UnsupportedCampaignType,
    429: RateLimited,
}


def error_from_response(status: int, body: Any, retry_after: float | None = None) -> HTTPStatusError:
    """Map a non-2xx status and its (maybe absent) JSON body to an error; the body shape is not specified."""
    code, detail = _code_and_message(body)
    if status == 500 and code is not None and code.endswith("STATUS_INCONSISTENT"):
        cls: type[HTTPStatusError] = StatusInconsistent
    elif status in _BY_STATUS:
        cls = _BY_STATUS[status]
    elif status >= 500:
        cls = ServerError
    else:
        cls = ClientError
    return cls(
        # Only an identifier-like code goes into the message: error texts must never carry the API's free text.
        f"Experiture API answered HTTP {status}" + (f" {code}" if code and _SAFE_CODE.fullmatch(code) else ""),
        status=status,
        code=code,
        detail=detail,
        retry_after=retry_after,
    )


def _code_and_message(body: Any) -> tuple[str | None, str | None]:
    # Accepts {"error": {"code", "message"}}, {"code", "message"}, {"error": "text"} and anything else as nothing.
    if not isinstance(body, dict):
        return None, None
    outer = cast(dict[str, Any], body)
    inner: Any = outer.get("error", outer)
    if isinstance(inner, str):
        return None, inner
    if not isinstance(inner, dict):
        return None, None
    fields = cast(dict[str, Any], inner)
    code, message = fields.get("code"), fields.get("message")
    return (str(code) if isinstance(code, str | int) else None, message if isinstance(message, str) else None)
