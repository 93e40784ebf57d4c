"""The OAuth app's background sweep on real SQLite and PostgreSQL: expired rows go while it runs, live ones stay."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import anyio
import pytest
from pydantic import SecretStr
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from experiture_mcp.config import Settings
from experiture_mcp.memory.store import async_url
from experiture_mcp.oauth.app import OAuth
from experiture_mcp.oauth.grants import ACCESS_TTL, CODE_TTL, TRANSACTION_TTL, GrantStore

pytestmark = pytest.mark.anyio

SECRET = "sweep-secret-" + "s" * 40
INTERVAL = 0.05


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def settings() -> Settings:
    return Settings(mcp_auth="oauth", mcp_public_url="http://127.0.0.1:9", mcp_secret_key=SecretStr(SECRET))


@asynccontextmanager
async def database(url: str) -> AsyncGenerator[AsyncEngine]:
    engine = create_async_engine(async_url(url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(f"SELECT count(*) FROM experiture_oauth_{table}"))).scalar_one())


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait for a background task's effect, at most `seconds`."""
    with anyio.fail_after(seconds):
        while not await check():
            await anyio.sleep(INTERVAL / 2)


async def grant(store: GrantStore, upstream: str = "demo-token") -> str:
    return await store.create_grant(
        client_id="client-1",
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        redirect_uri_provided_explicitly=True,
        code_challenge="challenge",
        scopes=["campaigns:read"],
        resource="http://127.0.0.1:9/mcp",
        upstream_token=upstream,
        upstream_scopes=["campaigns:read"],
    )


async def test_the_running_app_sweeps_expired_rows_and_keeps_live_ones(database_url: str) -> None:
    clock = Clock()
    oauth = OAuth(settings(), transport=None, database_url=database_url, clock=clock, sweep_seconds=INTERVAL)
    async with database(database_url) as engine, oauth.running():
        store = await oauth.store()
        live = await store.redeem_code(await grant(store))
        assert live is not None
        await grant(store)  # a code never redeemed
        await store.put_transaction("txn-1", {"client_id": "client-1"}, "csrf-1")
        await store.add_failure("address-1", timedelta(minutes=15))
        revoked = await store.redeem_code(await grant(store, "revoked-token"))
        assert revoked is not None
        await store.revoke_grant(revoked.grant_id)

        async def revoked_grant_swept() -> bool:
            return await count(engine, "grants") == 2

        await until(revoked_grant_swept)  # revoked: gone at the next sweep
        assert await count(engine, "transactions") == 1 and await count(engine, "failures") == 1

        clock.now += max(CODE_TTL, TRANSACTION_TTL, ACCESS_TTL) + timedelta(minutes=1)

        async def expired_swept() -> bool:
            counts = [await count(engine, t) for t in ("tokens", "transactions", "failures")]
            return counts == [1, 0, 0]  # only the live refresh token is left

        await until(expired_swept)
        assert await count(engine, "grants") == 2  # both grants live on (the unredeemed one until its maximum age)
        refreshed = await store.refresh(live.refresh_token)  # the live refresh token still works
        assert refreshed is not None
        verified = await store.verify(refreshed.access_token)
        assert verified is not None and verified.upstream_token == "demo-token"
    assert oauth._grants is None  # pyright: ignore[reportPrivateUsage]  # stopped and closed at shutdown


async def test_a_failing_sweep_is_logged_once_retried_and_never_ends_the_app(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="experiture_mcp.oauth.app")
    clock = Clock()
    oauth = OAuth(settings(), transport=None, database_url=database_url, clock=clock, sweep_seconds=INTERVAL)
    async with database(database_url) as engine, oauth.running():
        store = await oauth.store()
        await store.put_transaction("txn-1", {"client_id": "client-1"}, "csrf-1")
        async with engine.begin() as conn:  # the table goes away under the running app: every sweep fails
            await conn.execute(text("ALTER TABLE experiture_oauth_transactions RENAME TO experiture_hidden"))
        clock.now += TRANSACTION_TTL + timedelta(minutes=1)

        def failures() -> list[logging.LogRecord]:
            return [r for r in caplog.records if "sweeping expired rows failed" in r.getMessage()]

        async def failed() -> bool:
            return bool(failures())

        await until(failed)
        await anyio.sleep(INTERVAL * 6)  # several more sweeps fail meanwhile
        assert len(failures()) == 1 and failures()[0].levelno == logging.WARNING
        assert SECRET not in caplog.text

        async with engine.begin() as conn:
            await conn.execute(text("ALTER TABLE experiture_hidden RENAME TO experiture_oauth_transactions"))

        async def swept() -> bool:
            return await count(engine, "transactions") == 0

        await until(swept)  # the next sweep works again, and the app never stopped
        assert "sweeping expired rows works again" in caplog.text
        assert len(failures()) == 1
