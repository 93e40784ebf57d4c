"""Access doctor: checks the configuration and infers the token's scopes by probing each endpoint with the nil UUID."""

from __future__ import annotations

import json
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Literal

import anyio
import httpx2
from mcp.server import MCPServer
from pydantic import BaseModel

from experiture_mcp.client import CampaignClient, Endpoint
from experiture_mcp.config import DEFAULT_BASE_URL, TOKEN_ENV, Settings, is_loopback_host
from experiture_mcp.errors import (
    APIError,
    BadResponse,
    CampaignNotFound,
    InsufficientScope,
    TransportError,
    Unauthorized,
    Unavailable,
)
from experiture_mcp.logs import redact
from experiture_mcp.render import SCOPES

__all__ = [
    "ACCESS_TTL_SECONDS",
    "NIL_UUID",
    "RETRY_TTL_SECONDS",
    "AccessCache",
    "AccessReport",
    "diagnose",
    "register_access",
    "render_access",
    "run_doctor",
]

NIL_UUID = "00000000-0000-0000-0000-000000000000"
ACCESS_TTL_SECONDS = 300.0  # scopes rarely change; a few minutes keeps the resource cheap and still fresh
RETRY_TTL_SECONDS = 30.0  # an inconclusive check (unreachable, unknown answers) is worth repeating sooner
# Each endpoint with the tool that calls it, hence its scope.
PROBES: tuple[tuple[Endpoint, str], ...] = (
    ("summary", "get_summary"),
    ("status", "get_status"),
    ("metrics", "get_metrics"),
)
NO_TOKEN_PROBE = "experiture-mcp-doctor-without-token"  # only proves the API answers; it expects a 401
INFERENCE_NOTE = (
    f"Scopes are inferred, not read from the token: each endpoint was asked for the nil campaign {NIL_UUID}. "
    "404 (not found) means the scope is present, 403 that it is missing, 401 that the token is invalid; "
    "any other answer is shown as unknown. An API that checked a campaign's existence before the scope would "
    "mislead this check."
)

CheckStatus = Literal["ok", "fail", "warn", "unknown", "skipped"]
Finding = Literal["present", "missing", "token_invalid", "unknown"]
Works = Literal["yes", "partly", "no", "unknown"]


class Check(BaseModel):
    """One line of the checklist."""

    name: str
    status: CheckStatus
    detail: str
    fix: str | None = None


class Probe(BaseModel):
    """How one endpoint answered for the nil campaign id, and what that suggests about its scope."""

    endpoint: str
    scope: str
    http_status: int | None
    finding: Finding
    detail: str


class ToolAccess(BaseModel):
    """Whether one tool will work with this token, and why."""

    tool: str
    works: Works
    why: str


class AccessReport(BaseModel):
    """Everything the doctor found."""

    base_url: str
    checked_at: datetime
    checks: list[Check]
    probes: list[Probe]
    tools: list[ToolAccess]

    @property
    def healthy(self) -> bool:
        """True when no check failed."""
        return all(c.status != "fail" for c in self.checks)

    @property
    def conclusive(self) -> bool:
        """True when every probe gave a clear answer, so the report is worth caching for long."""
        return bool(self.probes) and all(p.finding != "unknown" for p in self.probes)


async def _probe(client: CampaignClient, endpoint: Endpoint, tool: str, token: str) -> tuple[Probe, Exception | None]:
    fetch: dict[Endpoint, Callable[..., Awaitable[object]]] = {
        "summary": client.get_summary,
        "status": client.get_status,
        "metrics": client.get_metrics,
    }
    scope = SCOPES[tool]
    where = f"/{endpoint}"
    try:
        await fetch[endpoint](NIL_UUID, token=token)
    except CampaignNotFound:
        return Probe(endpoint=endpoint, scope=scope, http_status=404, finding="present", detail=f"{where} → 404"), None
    except InsufficientScope:
        return Probe(endpoint=endpoint, scope=scope, http_status=403, finding="missing", detail=f"{where} → 403"), None
    except Unauthorized:
        return (
            Probe(endpoint=endpoint, scope=scope, http_status=401, finding="token_invalid", detail=f"{where} → 401"),
            None,
        )
    except APIError as exc:
        answer = f"HTTP {exc.status}" if exc.status else str(exc)
        probe = Probe(
            endpoint=endpoint, scope=scope, http_status=exc.status, finding="unknown", detail=f"{where} → {answer}"
        )
        return probe, exc
    where_ok = f"{where} → 200 for a campaign that cannot exist"
    return Probe(endpoint=endpoint, scope=scope, http_status=200, finding="unknown", detail=where_ok), None


def _tls_problem(exc: BaseException | None) -> str | None:
    """The TLS error somewhere in an exception's chain, if any."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, ssl.SSLError):
            return str(exc.reason or exc.__class__.__name__)
        nxt: Any = exc.cause if isinstance(exc, Unavailable) else None
        exc = nxt or exc.__cause__ or exc.__context__
    return None


async def diagnose(
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    now: Callable[[], datetime] | None = None,
) -> AccessReport:
    """Check token, base URL, reachability and TLS, and infer scopes by probing every endpoint with the nil UUID."""
    url = httpx2.URL(settings.base_url)
    token = settings.token
    checks = [
        Check(name="API token", status="ok", detail=f"{TOKEN_ENV} is set")
        if token
        else Check(
            name="API token",
            status="fail",
            detail=f"{TOKEN_ENV} is not set",
            fix=f"Create an API token in Experiture and set it as {TOKEN_ENV} (or in the extension's settings).",
        )
    ]
    if url.scheme == "https":
        checks.append(Check(name="Base URL", status="ok", detail=f"{settings.base_url} (https)"))
    else:
        checks.append(
            Check(name="Base URL", status="warn", detail=f"{settings.base_url}: plain http, allowed for loopback only")
        )
    # One attempt per probe: the doctor reports what happens, it does not wait out retries.
    probe_settings = settings.model_copy(update={"retry_attempts": 1})
    async with CampaignClient(probe_settings, transport=transport) as client:
        results: list[tuple[Probe, Exception | None]] = []

        async def run(endpoint: Endpoint, tool: str) -> None:
            results.append(await _probe(client, endpoint, tool, token or NO_TOKEN_PROBE))

        async with anyio.create_task_group() as tg:
            for endpoint, tool in PROBES:
                tg.start_soon(run, endpoint, tool)
    order = [e for e, _ in PROBES]
    results.sort(key=lambda r: order.index(r[0].endpoint))
    probes = [p for p, _ in results]
    errors = [e for _, e in results if e is not None]
    checks += _connection_checks(settings, url, probes, errors)
    reached = any(p.http_status is not None for p in probes)
    if not token or not reached:
        return _report(settings, now, checks, [], _tools(probes, token is not None, reached))
    if any(p.finding == "token_invalid" for p in probes):
        checks.append(
            Check(
                name="Token accepted",
                status="fail",
                detail="the API rejected the token (401): it is invalid, revoked or expired",
                fix=f"Create a new API token in Experiture and set it as {TOKEN_ENV}, then restart the server.",
            )
        )
    else:
        checks.append(Check(name="Token accepted", status="ok", detail="the API did not answer 401"))
        checks += _scope_checks(probes)
    return _report(settings, now, checks, probes, _tools(probes, True, True))


def _report(
    settings: Settings,
    now: Callable[[], datetime] | None,
    checks: list[Check],
    probes: list[Probe],
    tools: list[ToolAccess],
) -> AccessReport:
    moment = (now or (lambda: datetime.now(UTC)))()
    return AccessReport(base_url=settings.base_url, checked_at=moment, checks=checks, probes=probes, tools=tools)


def _connection_checks(
    settings: Settings, url: httpx2.URL, probes: list[Probe], errors: list[Exception]
) -> list[Check]:
    reached = [p for p in probes if p.http_status is not None]
    tls = next((t for t in map(_tls_problem, errors) if t), None)
    checks: list[Check] = []
    if reached:
        answer = reached[0].http_status
        if any(isinstance(e, BadResponse) for e in errors):
            checks.append(
                Check(
                    name="Reachable",
                    status="warn",
                    detail=f"something answered (HTTP {answer}), but not with the Experiture API's JSON",
                    fix=f"Check that EXPERITURE_BASE_URL is the API's base URL, e.g. {DEFAULT_BASE_URL}, "
                    "and that no proxy answers instead.",
                )
            )
        else:
            checks.append(Check(name="Reachable", status="ok", detail=f"the API answered (HTTP {answer})"))
    elif tls is not None:
        checks.append(Check(name="Reachable", status="fail", detail="the TLS handshake failed (see TLS)"))
    else:
        cause = next((str(e) for e in errors if isinstance(e, TransportError | Unavailable)), "no answer")
        checks.append(
            Check(
                name="Reachable",
                status="fail",
                detail=redact(cause),
                fix="Check the network connection, a proxy or firewall, and EXPERITURE_BASE_URL.",
            )
        )
    if settings.demo:
        checks.append(Check(name="TLS", status="skipped", detail="the built-in demo API answers in-process"))
    elif tls is not None:
        checks.append(
            Check(
                name="TLS",
                status="fail",
                detail=f"TLS with {url.host} failed: {tls}",
                fix="If a corporate proxy re-signs TLS, point SSL_CERT_FILE at its CA bundle (the system trust "
                "store is used); otherwise check that the base URL's host and port speak https.",
            )
        )
    elif url.scheme != "https":
        where = "a loopback address" if is_loopback_host(url.host) else url.host
        checks.append(Check(name="TLS", status="skipped", detail=f"plain http to {where} (for testing only)"))
    elif reached:
        checks.append(Check(name="TLS", status="ok", detail=f"certificate of {url.host} verified"))
    else:
        checks.append(Check(name="TLS", status="unknown", detail="no connection was made"))
    return checks


def _scope_checks(probes: list[Probe]) -> list[Check]:
    checks: list[Check] = []
    for scope in dict.fromkeys(p.scope for p in probes):
        mine = [p for p in probes if p.scope == scope]
        findings = {p.finding for p in mine}
        evidence = "; ".join(p.detail for p in mine)
        if findings == {"present"}:
            checks.append(Check(name=scope, status="ok", detail=f"present ({evidence})"))
        elif findings == {"missing"}:
            checks.append(
                Check(
                    name=scope,
                    status="fail",
                    detail=f"missing ({evidence})",
                    fix=f"Ask an Experiture admin to grant {scope} to this token, or use a token that has it.",
                )
            )
        else:
            checks.append(
                Check(
                    name=scope,
                    status="unknown",
                    detail=f"could not tell ({evidence})",
                    fix="Run the check again in a minute; if it stays unknown, try one tool call and read its error.",
                )
            )
    return checks


def _tools(probes: list[Probe], has_token: bool, reached: bool) -> list[ToolAccess]:
    finding = {p.endpoint: p.finding for p in probes}

    def one(tool: str, endpoint: Endpoint, extra: str = "") -> ToolAccess:
        scope = SCOPES[tool]
        match finding.get(endpoint):
            case _ if not has_token:
                return ToolAccess(tool=tool, works="no", why="no API token is configured")
            case _ if not reached:
                return ToolAccess(tool=tool, works="unknown", why="the API could not be reached")
            case "present":
                return ToolAccess(tool=tool, works="yes", why=f"the token has {scope}")
            case "missing":
                return ToolAccess(tool=tool, works="no", why=f"the token lacks {scope}{extra}")
            case "token_invalid":
                return ToolAccess(tool=tool, works="no", why="the API rejects the token")
            case _:
                return ToolAccess(tool=tool, works="unknown", why=f"could not tell whether the token has {scope}")

    summary, status = one("get_summary", "summary"), one("get_status", "status")
    metrics = one("get_metrics", "metrics", "; get_status also gives the latest run's counts")
    if status.works == "yes":
        source = "get_metrics" if metrics.works == "yes" else "get_status"
        overview = ToolAccess(
            tool="get_overview", works="yes", why=f"the token has campaigns:read; counts from {source}"
        )
    elif status.works == "no" and metrics.works == "yes":
        overview = ToolAccess(
            tool="get_overview", works="partly", why="counts only: names, states and times need campaigns:read"
        )
    else:
        overview = ToolAccess(tool="get_overview", works=status.works, why=status.why)
    wait = ToolAccess(tool="wait_for_run", works=status.works, why=status.why)  # get_status, polled
    # No request of its own: it lists what the other tools' answers recorded, so it works as far as they do.
    if "yes" in (status.works, metrics.works):
        history = ToolAccess(tool="get_history", works="yes", why="it lists what those answers recorded")
    else:
        history = ToolAccess(tool="get_history", works=status.works, why=status.why)
    return [summary, status, metrics, overview, wait, history]


_MARKS: dict[CheckStatus, str] = {
    "ok": "[ok]",
    "fail": "[FAIL]",
    "warn": "[warn]",
    "unknown": "[??]",
    "skipped": "[--]",
}
_WORKS: dict[Works, str] = {"yes": "works", "partly": "works in part", "no": "will fail", "unknown": "unknown"}


def render_access(report: AccessReport) -> str:
    """The checklist the doctor prints and the experiture://access resource serves."""
    lines = [f"Experiture access check for {report.base_url} at {report.checked_at:%Y-%m-%d %H:%M:%S} UTC"]
    for c in report.checks:
        lines.append(f"{_MARKS[c.status]:<6} {c.name}: {c.detail}")
        if c.fix and c.status != "ok":
            lines.append(f"       Fix: {c.fix}")
    lines.append("Tools with this token:")
    lines += [f"- {t.tool}: {_WORKS[t.works]} ({t.why})" for t in report.tools]
    if report.probes and all(p.finding != "token_invalid" for p in report.probes):
        lines.append(INFERENCE_NOTE)
    return redact("\n".join(lines))


def config_failure_report(problems: list[str], token_set: bool, now: datetime) -> AccessReport:
    """The report when the settings themselves are invalid: nothing can be probed until they are fixed."""
    checks = [
        Check(
            name="API token",
            status="ok" if token_set else "fail",
            detail=f"{TOKEN_ENV} is {'' if token_set else 'not '}set",
        ),
        *(
            Check(name="Configuration", status="fail", detail=p, fix="Fix this setting and run the doctor again.")
            for p in problems
        ),
    ]
    tools = [
        ToolAccess(tool=t, works="unknown", why="the configuration is invalid")
        for t in (*SCOPES, "get_overview", "wait_for_run", "get_history")
    ]
    return AccessReport(base_url="(invalid)", checked_at=now, checks=checks, probes=[], tools=tools)


def run_doctor(
    settings: Settings | None,
    problems: list[str],
    *,
    token_set: bool,
    as_json: bool,
    transport: httpx2.AsyncBaseTransport | None = None,
) -> int:
    """`experiture-mcp doctor`: print the checklist (or JSON); exit 0 when nothing failed, else 1."""
    if settings is None:
        report = config_failure_report(problems, token_set, datetime.now(UTC))
    else:
        report = anyio.run(lambda: diagnose(settings, transport=transport))
    if as_json:
        out = redact(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
    else:
        out = render_access(report)
    sys.stdout.write(out + "\n")  # stdout-ok: `doctor` is a terminal command, not the protocol
    return 0 if report.healthy else 1


class AccessCache:
    """The latest access report, probed on first use and again once it is older than its time to live."""

    def __init__(
        self, probe: Callable[[], Awaitable[AccessReport]], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._report: AccessReport | None = None
        self._expires = 0.0
        self._lock = anyio.Lock()

    async def get(self) -> AccessReport:
        """The cached report, or a fresh one when it has expired; concurrent readers share one probe."""
        async with self._lock:
            if self._report is None or self._clock() >= self._expires:
                self._report = await self._probe()
                ttl = ACCESS_TTL_SECONDS if self._report.conclusive else RETRY_TTL_SECONDS
                self._expires = self._clock() + ttl
            return self._report


def register_access(
    mcp: MCPServer[Any],
    settings: Settings,
    *,
    transport: httpx2.AsyncBaseTransport | None = None,
    now: Callable[[], datetime] | None = None,
) -> AccessCache:
    """Add the experiture://access resource to `mcp`; returns its cache."""
    cache = AccessCache(lambda: diagnose(settings, transport=transport, now=now))

    @mcp.resource(
        "experiture://access",
        name="access",
        title="What this token can do",
        mime_type="text/plain",
    )
    async def access() -> str:
        """Which tools work with the server's configured API token, and why: configuration checks and the scopes inferred by probing each endpoint. Probed on first read and cached for 5 minutes."""  # noqa: E501
        return render_access(await cache.get())

    return cache
