"""Two OAuth server processes on different ports sharing one real PostgreSQL, as two replicas behind one URL; and
the revocation listener that tells every process at once (LISTEN/NOTIFY), reconnecting when its connection drops."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Generator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from conftest import free_port, healthy
from experiture_mcp.memory.store import async_url
from experiture_mcp.oauth.grants import GrantStore
from experiture_mcp.oauth.listener import APPLICATION_NAME
from experiture_mcp.sandbox import DEMO_TOKEN
from test_oauth_failures import SECRET_KEY, Hosted, RevocableUpstream, call, consent, exchange, refresh
from test_oauth_store import grant

pytestmark = pytest.mark.anyio


def environment(public_url: str, demo_api: str, database_url: str) -> dict[str, str]:
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
    return env


def operator(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`experiture-mcp oauth ARGS` as an operator runs it, against the replicas' database."""
    command = [sys.executable, "-m", "experiture_mcp", "oauth", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=True)


def of_client(env: dict[str, str], client_id: str) -> dict[str, Any]:
    """The one grant of this client, as `oauth list --json` shows it."""
    [grant] = [g for g in json.loads(operator(env, "list", "--json").stdout)["grants"] if g["client_id"] == client_id]
    return grant


@contextmanager
def replica(
    port: int, public_url: str, demo_api: str, database_url: str, log: Path
) -> Generator[subprocess.Popen[bytes]]:
    env = environment(public_url, demo_api, database_url)
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
        await healthy(a.url)
        await healthy(b.url)
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:  # cold replicas, a loaded machine
            done = await consent(http, a)  # consent and code on A
            tokens = (await exchange(http, b, done)).json()  # the code redeemed on B
            assert (await call(http, a, tokens["access_token"])).status_code == 200
            assert (await call(http, b, tokens["access_token"])).status_code == 200  # cached on B from now on

            rotated = (await refresh(http, a, done.client_id, tokens["refresh_token"])).json()
            assert (await call(http, b, rotated["access_token"])).status_code == 200
            assert (await call(http, a, rotated["access_token"])).status_code == 200  # cached on A too
            reused = await refresh(http, b, done.client_id, tokens["refresh_token"])  # reuse seen on the other one
            assert reused.status_code == 400
            # B answered after its revocation committed and every replica heard it: no wait, no retry.
            assert (await call(http, a, rotated["access_token"])).status_code == 401

            second = await consent(http, a)
            fresh = (await exchange(http, a, second)).json()
            assert (await call(http, b, fresh["access_token"])).status_code == 200  # cached on B
            revoked = await http.post(
                a.url + "/revoke", data={"token": fresh["refresh_token"], "client_id": second.client_id}
            )
            assert revoked.status_code == 200
            assert (await call(http, b, fresh["access_token"])).status_code == 401, "B still accepts a token A revoked"
            assert (await call(http, a, fresh["access_token"])).status_code == 401

            third = await consent(http, b)
            last = (await exchange(http, b, third)).json()
            assert (await call(http, a, last["access_token"])).status_code == 200
            assert (await call(http, b, last["access_token"])).status_code == 200
            env = environment(public, "http://127.0.0.1:9", postgres_url)
            listed = json.loads(operator(env, "list", "--json").stdout)
            [grant_id] = [g["grant_id"] for g in listed["grants"] if g["client_id"] == third.client_id]
            operator(env, "revoke", grant_id)  # an operator ends it from a terminal
            assert (await call(http, a, last["access_token"])).status_code == 401
            assert (await call(http, b, last["access_token"])).status_code == 401

            fourth = await consent(http, b)
            gone = (await exchange(http, b, fourth)).json()
            assert (await call(http, a, gone["access_token"])).status_code == 200  # memory of a campaign, on A
            assert (await call(http, b, gone["access_token"])).status_code == 200  # cached on B
            with anyio.fail_after(10):  # the memory is written off the call's path
                while (grant := of_client(env, fourth.client_id))["remembered_campaigns"] != 1:
                    await anyio.sleep(0.1)
            forgot = operator(env, "forget", grant["grant_id"]).stdout
            assert forgot.startswith("Ended 1 grant(s) and forgot 1 remembered campaign(s) with their history")
            assert (await call(http, a, gone["access_token"])).status_code == 401
            assert (await call(http, b, gone["access_token"])).status_code == 401
            assert of_client(env, fourth.client_id)["remembered_campaigns"] == 0
    text = "".join(log.read_text() for log in logs)
    assert text.count(f"callers sign in with OAuth (issuer {public}") == 2  # each replica's banner
    assert text.count("listening for revocations on PostgreSQL") == 2  # each replica's listener, connected once
    assert "not acknowledged" not in text  # each revocation was acknowledged by both replicas before its answer
    for secret in (DEMO_TOKEN, tokens["access_token"], tokens["refresh_token"], fresh["access_token"], SECRET_KEY):
        assert secret not in text


async def test_every_process_hears_a_revocation_at_its_commit_and_a_dropped_listener_reconnects(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="experiture_mcp.oauth.listener")
    now = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
    a = await GrantStore.open(postgres_url, SECRET_KEY, lambda: now)
    b = await GrantStore.open(postgres_url, SECRET_KEY, lambda: now)
    assert a.listener is not None and b.listener is not None
    heard_a: list[str] = []
    heard_b: list[str] = []
    a.on_revoke(heard_a.append)
    b.on_revoke(heard_b.append)

    async def issued(store: GrantStore) -> str:
        redeemed = await store.redeem_code(await grant(store, DEMO_TOKEN))
        assert redeemed is not None
        return redeemed.grant_id

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(a.listen)
            tg.start_soon(b.listen)
            with anyio.fail_after(10):
                await a.listener.ready.wait()
                await b.listener.ready.wait()

            first = await issued(a)
            assert await a.revoke_grant(first) is True
            assert heard_a.count(first) == 2  # before its commit, and its own NOTIFY back before it returned
            assert first in heard_b  # and the other process acknowledged it before it returned

            engine = create_async_engine(async_url(postgres_url))
            try:
                async with engine.begin() as conn:  # the database drops both listeners' connections
                    dropped = await conn.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND application_name = :name"
                        ),
                        {"name": APPLICATION_NAME},
                    )
                    assert len(dropped.all()) == 2
            finally:
                await engine.dispose()
            with anyio.fail_after(10):
                while a.listener.connections < 2 or b.listener.connections < 2:
                    await anyio.sleep(0.05)

            second = await issued(b)
            assert await b.revoke_grant(second) is True
            assert heard_b.count(second) == 2
            assert second in heard_a
            tg.cancel_scope.cancel()
    finally:
        await a.aclose()
        await b.aclose()
    drops = [r for r in caplog.records if "connection dropped" in r.getMessage()]
    assert len(drops) == 2 and all(r.levelno == logging.WARNING for r in drops)  # once per listener
    assert caplog.text.count("listening for revocations on PostgreSQL") == 4
    assert "not acknowledged" not in caplog.text
    assert SECRET_KEY not in caplog.text
