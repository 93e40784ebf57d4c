"""The access doctor: the experiture://access resource in both eras, and `experiture-mcp doctor` on the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import anyio
import pytest
from mcp import Client
from mcp.types import TextResourceContents
from pydantic import SecretStr

from _snapshot import assert_snapshot
from conftest import Instrumented, ServedApp, connect, free_port, frozen_clock
from experiture_mcp.config import TOKEN_ENV, Settings
from experiture_mcp.doctor import ACCESS_TTL_SECONDS, RETRY_TTL_SECONDS, AccessCache, AccessReport, diagnose, run_doctor
from experiture_mcp.sandbox import ANALYTICS_ONLY_TOKEN, CAMPAIGNS_ONLY_TOKEN, DEMO_TOKEN, create_app

TOKENS = {
    "both_scopes": DEMO_TOKEN,
    "campaigns_only": CAMPAIGNS_ONLY_TOKEN,
    "analytics_only": ANALYTICS_ONLY_TOKEN,
    "rejected": "not-a-demo-token",
}


async def read_access(client: Client) -> str:
    (contents,) = (await client.read_resource("experiture://access")).contents
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == "text/plain"
    return contents.text


@pytest.fixture
def counted_api() -> Iterator[tuple[Instrumented, str]]:
    """The demo API with a request counter."""
    app = Instrumented(create_app(clock=frozen_clock))
    with ServedApp(app) as served:
        yield app, served.url + "/public/v1"


@pytest.mark.anyio
@pytest.mark.parametrize("name", sorted(TOKENS))
async def test_the_access_resource_says_which_tools_work_with_the_token_and_why(
    settings: Settings, era: str, demo_api: str, name: str
) -> None:
    token = settings.model_copy(update={"api_token": SecretStr(TOKENS[name])})
    async with connect(token, era) as client:
        text = await read_access(client)

    assert_snapshot(f"doctor/access_{name}", text.replace(demo_api, "http://127.0.0.1:<port>/public/v1"))
    assert "not-a-demo-token" not in text
    assert ("inferred" in text) is (name != "rejected")  # no scope is inferred from a rejected token


@pytest.mark.anyio
async def test_the_access_resource_is_probed_on_first_read_and_then_served_from_cache(
    counted_api: tuple[Instrumented, str], era: str
) -> None:
    app, base_url = counted_api
    async with connect(Settings(api_token=SecretStr(DEMO_TOKEN), base_url=base_url), era) as client:
        listed = {str(r.uri) for r in (await client.list_resources()).resources}
        before = app.requests
        first = await read_access(client)
        second = await read_access(client)

    assert "experiture://access" in listed
    assert before == 0  # listing resources probes nothing
    assert app.requests == 3  # one probe per endpoint, once
    assert first == second


@pytest.mark.anyio
async def test_the_cache_keeps_a_clear_report_for_minutes_and_an_unclear_one_for_seconds(demo_api: str) -> None:
    now = [0.0]
    probes: list[str] = []
    token = [DEMO_TOKEN]

    async def probe() -> AccessReport:
        probes.append(token[0])
        return await diagnose(Settings(api_token=SecretStr(token[0]), base_url=demo_api), now=frozen_clock)

    cache = AccessCache(probe, clock=lambda: now[0])
    await cache.get()
    now[0] = ACCESS_TTL_SECONDS - 1
    await cache.get()
    now[0] = ACCESS_TTL_SECONDS
    await cache.get()
    assert len(probes) == 2

    unreachable = Settings(
        api_token=SecretStr(DEMO_TOKEN), base_url=f"http://127.0.0.1:{free_port()}", retry_attempts=1
    )
    cache = AccessCache(lambda: diagnose(unreachable, now=frozen_clock), clock=lambda: now[0])
    report = await cache.get()
    assert not report.conclusive
    now[0] += RETRY_TTL_SECONDS
    assert await cache.get() is not report


def test_the_doctor_prints_the_same_checklist_as_the_resource_and_fails_on_a_missing_scope(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    limited = settings.model_copy(update={"api_token": SecretStr(CAMPAIGNS_ONLY_TOKEN)})

    async def resource_text() -> str:
        async with connect(limited, "auto") as client:
            return await read_access(client)

    resource = anyio.run(resource_text)
    code = run_doctor(limited, [], token_set=True, as_json=False)

    printed = capsys.readouterr().out
    assert code == 1
    assert printed.splitlines()[1:] == resource.splitlines()[1:]  # all but the time of the check
    assert "[FAIL] analytics:read: missing (/metrics → 403)" in printed
    assert "Fix: Ask an Experiture admin to grant analytics:read" in printed


def test_the_doctor_passes_with_both_scopes_and_prints_json_on_request(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    code = run_doctor(settings, [], token_set=True, as_json=True)

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {p["endpoint"]: (p["http_status"], p["finding"]) for p in report["probes"]} == {
        "summary": (404, "present"),
        "status": (404, "present"),
        "metrics": (404, "present"),
    }
    assert {t["tool"]: t["works"] for t in report["tools"]} == {
        "get_summary": "yes",
        "get_status": "yes",
        "get_metrics": "yes",
        "get_overview": "yes",
        "wait_for_run": "yes",
        "get_history": "yes",
    }


@pytest.mark.anyio
async def test_https_to_a_port_that_speaks_plain_http_is_reported_as_a_tls_failure(demo_api: str) -> None:
    wrong = Settings(
        api_token=SecretStr(DEMO_TOKEN), base_url=demo_api.replace("http://", "https://"), retry_attempts=1
    )

    report = await diagnose(wrong, now=frozen_clock)

    checks = {c.name: c for c in report.checks}
    assert checks["TLS"].status == "fail" and "SSL_CERT_FILE" in str(checks["TLS"].fix)
    assert checks["Reachable"].status == "fail"
    assert {t.works for t in report.tools} == {"unknown"}


@pytest.mark.anyio
async def test_an_unreachable_api_and_a_missing_token_each_get_a_fix(demo_api: str) -> None:
    closed = Settings(api_token=SecretStr(DEMO_TOKEN), base_url=f"http://127.0.0.1:{free_port()}", retry_attempts=1)
    no_token = Settings(base_url=demo_api)

    unreachable = {c.name: c for c in (await diagnose(closed, now=frozen_clock)).checks}
    tokenless = await diagnose(no_token, now=frozen_clock)

    assert unreachable["Reachable"].status == "fail" and "EXPERITURE_BASE_URL" in str(unreachable["Reachable"].fix)
    checks = {c.name: c for c in tokenless.checks}
    assert checks["API token"].status == "fail" and TOKEN_ENV in str(checks["API token"].fix)
    assert checks["Reachable"].status == "ok"  # the API answered the tokenless probe with 401
    assert {t.works for t in tokenless.tools} == {"no"}


def test_the_doctor_command_reports_an_invalid_base_url_as_a_failed_check() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EXPERITURE_")}
    env |= {TOKEN_ENV: "some-token", "EXPERITURE_BASE_URL": "http://api.example.com/public/v1"}

    done = subprocess.run(
        [sys.executable, "-m", "experiture_mcp", "doctor"], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 1, done.stderr
    assert "[FAIL] Configuration: EXPERITURE_BASE_URL 'http://api.example.com/public/v1' uses plain http://" in (
        done.stdout
    )
    assert "some-token" not in done.stdout + done.stderr
