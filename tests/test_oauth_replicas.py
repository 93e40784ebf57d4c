"""Two OAuth server processes on different ports sharing one real PostgreSQL, as two replicas behind one URL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Generator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx2
import pytest

from conftest import free_port
from experiture_mcp.sandbox import DEMO_TOKEN
from test_oauth_failures import SECRET_KEY, Hosted, RevocableUpstream, call, consent, exchange, refresh

pytestmark = pytest.mark.anyio


@contextmanager
def replica(
    port: int, public_url: str, demo_api: str, database_url: str, log: Path
) -> Generator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "EXPERITURE_MCP_AUTH": "oauth",
        "EXPERITURE_MCP_PUBLIC_URL": public_url,
        "EXPERITURE_MCP_SECRET_KEY": SECRET_KEY,
        "EXPERITURE_DATABASE_URL": database_url,
        "EXPERITURE_BASE_URL": demo_api,
        "EXPERITURE_LOG_LEVEL": "DEBUG",
    }
    env.pop("EXPERITURE_API_TOKEN", None)
    command = [sys.executable, "-m", "experiture_mcp", "--transport", "http", "--port", str(port)]
    with log.open("w") as err:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            raise


async def healthy(url: str) -> None:
    async with httpx2.AsyncClient() as http:
        while True:
            try:
                if (await http.get(url + "/healthz")).status_code == 200:
                    return
            except httpx2.TransportError:
                pass
            await anyio.sleep(0.1)


async def test_a_token_from_one_replica_works_on_the_other_and_a_revocation_on_one_ends_it_on_both(
    demo_api: str, postgres_url: str, tmp_path: Path
) -> None:
    port_a, port_b = free_port(), free_port()
    public = f"http://127.0.0.1:{port_a}"  # the one URL hosts know; a load balancer would spread it over both
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    with (
        replica(port_a, public, demo_api, postgres_url, logs[0]),
        replica(port_b, public, demo_api, postgres_url, logs[1]),
    ):
        a = Hosted(public, tmp_path, RevocableUpstream())
        b = Hosted(f"http://127.0.0.1:{port_b}", tmp_path, a.upstream)
        with anyio.fail_after(60):
            await healthy(a.url)
            await healthy(b.url)
        async with httpx2.AsyncClient(follow_redirects=False) as http:
            done = await consent(http, a)  # consent and code on A
            tokens = (await exchange(http, b, done)).json()  # the code redeemed on B
            assert (await call(http, a, tokens["access_token"])).status_code == 200
            assert (await call(http, b, tokens["access_token"])).status_code == 200  # cached on B from now on

            rotated = (await refresh(http, a, done.client_id, tokens["refresh_token"])).json()
            assert (await call(http, b, rotated["access_token"])).status_code == 200
            reused = await refresh(http, b, done.client_id, tokens["refresh_token"])  # reuse seen on the other one
            assert reused.status_code == 400
            start = time.monotonic()
            while (await call(http, a, rotated["access_token"])).status_code != 401:
                assert time.monotonic() - start < 1.5
                await anyio.sleep(0.02)

            second = await consent(http, a)
            fresh = (await exchange(http, a, second)).json()
            assert (await call(http, b, fresh["access_token"])).status_code == 200
            revoked = await http.post(
                a.url + "/revoke", data={"token": fresh["refresh_token"], "client_id": second.client_id}
            )
            assert revoked.status_code == 200
            start = time.monotonic()
            while (await call(http, b, fresh["access_token"])).status_code != 401:
                assert time.monotonic() - start < 0.75, "B still accepts a token A revoked"
                await anyio.sleep(0.02)
            waited = time.monotonic() - start
    assert waited < 0.75
    text = "".join(log.read_text() for log in logs)
    assert text.count(f"callers sign in with OAuth (issuer {public}") == 2  # each replica's banner
    for secret in (DEMO_TOKEN, tokens["access_token"], tokens["refresh_token"], fresh["access_token"], SECRET_KEY):
        assert secret not in text
