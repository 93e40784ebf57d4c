"""The OAuth grant store on real SQLite and PostgreSQL: only hashes at rest, sealed Experiture tokens, rotation."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from experiture_mcp.oauth.grants import ACCESS_TTL, CODE_TTL, GRANT_MAX_AGE, REFRESH_TTL, GrantStore
from experiture_mcp.oauth.keys import PREFIXES, ServerKey, UnsealError, new_token, token_hash

pytestmark = pytest.mark.anyio

SECRET = "s" * 40
UPSTREAM = "demo-token"
RESOURCE = "https://mcp.example.com/mcp"
CLIENT = "client-1"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(database_url: str, clock: Clock) -> AsyncIterator[GrantStore]:
    grants = await GrantStore.open(database_url, SECRET, clock)
    try:
        yield grants
    finally:
        await grants.aclose()


async def grant(store: GrantStore, upstream: str = UPSTREAM) -> str:
    return await store.create_grant(
        client_id=CLIENT,
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        redirect_uri_provided_explicitly=True,
        code_challenge="challenge",
        scopes=["campaigns:read", "analytics:read"],
        resource=RESOURCE,
        upstream_token=upstream,
        upstream_scopes=["campaigns:read"],
    )


def test_tokens_are_prefixed_and_random() -> None:
    for kind, prefix in PREFIXES.items():
        first, second = new_token(kind), new_token(kind)
        assert first.startswith(prefix) and second.startswith(prefix)
        assert first != second and len(first) >= len(prefix) + 43
    assert token_hash("x") == token_hash("x") != token_hash("y")


def test_a_sealed_token_opens_only_with_its_token_the_same_secret_and_the_same_grant() -> None:
    key = ServerKey(SECRET)
    code = new_token("code")
    sealed = key.seal(UPSTREAM, b"grant-a", code, "code")
    assert UPSTREAM.encode() not in sealed.ciphertext + sealed.wrapped_key
    assert key.open(sealed.ciphertext, sealed.wrapped_key, b"grant-a", code, "code") == UPSTREAM

    with pytest.raises(UnsealError):
        key.open(sealed.ciphertext, sealed.wrapped_key, b"grant-a", new_token("code"), "code")  # another token
    with pytest.raises(UnsealError):
        key.open(sealed.ciphertext, sealed.wrapped_key, b"grant-a", code, "access")  # the same secret, other kind
    with pytest.raises(UnsealError):
        key.open(sealed.ciphertext, sealed.wrapped_key, b"grant-b", code, "code")  # moved to another grant
    with pytest.raises(UnsealError):
        ServerKey("t" * 40).open(sealed.ciphertext, sealed.wrapped_key, b"grant-a", code, "code")  # rotated secret
    tampered = sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1])
    with pytest.raises(UnsealError):
        key.open(tampered, sealed.wrapped_key, b"grant-a", code, "code")

    access = new_token("access")
    rewrapped = key.rewrap(sealed.wrapped_key, code, "code", access, "access")
    assert key.open(sealed.ciphertext, rewrapped, b"grant-a", access, "access") == UPSTREAM
    assert ServerKey(SECRET).key_id == key.key_id != ServerKey("t" * 40).key_id


async def test_a_code_redeems_once_for_tokens_that_carry_the_users_own_experiture_token(store: GrantStore) -> None:
    code = await grant(store)
    info = await store.load_code(code)
    assert info is not None
    assert (info.client_id, info.code_challenge, info.resource) == (CLIENT, "challenge", RESOURCE)
    assert info.redirect_uri == "https://claude.ai/api/mcp/auth_callback" and info.redirect_uri_provided_explicitly
    assert info.scopes == ["campaigns:read", "analytics:read"]

    issued = await store.redeem_code(code)
    assert issued is not None
    assert issued.access_token.startswith("exmcp_at_") and issued.refresh_token.startswith("exmcp_rt_")
    assert issued.expires_in == int(ACCESS_TTL.total_seconds())
    verified = await store.verify(issued.access_token)
    assert verified is not None
    assert (verified.grant_id, verified.client_id, verified.upstream_token) == (info.grant_id, CLIENT, UPSTREAM)
    assert verified.scopes == ["campaigns:read", "analytics:read"] and verified.resource == RESOURCE

    assert await store.verify(issued.refresh_token) is None  # a refresh token is not an access token
    assert await store.verify(code) is None
    assert await store.verify(issued.access_token + "x") is None


async def test_a_replayed_code_revokes_the_grant_and_its_tokens(store: GrantStore) -> None:
    code = await grant(store)
    issued = await store.redeem_code(code)
    assert issued is not None

    assert await store.redeem_code(code) is None
    assert await store.verify(issued.access_token) is None
    assert await store.refresh(issued.refresh_token) is None
    [info] = await store.grant_list()
    assert info.revoked_at is not None


async def test_loading_a_used_code_also_revokes_the_grant(store: GrantStore) -> None:
    code = await grant(store)
    issued = await store.redeem_code(code)
    assert issued is not None
    assert await store.load_code(code) is None
    assert await store.verify(issued.access_token) is None


async def test_codes_and_access_tokens_expire(store: GrantStore, clock: Clock) -> None:
    stale = await grant(store)
    clock.now += CODE_TTL
    assert await store.load_code(stale) is None
    assert await store.redeem_code(stale) is None

    issued = await store.redeem_code(await grant(store))
    assert issued is not None
    clock.now += ACCESS_TTL - timedelta(seconds=1)
    assert await store.verify(issued.access_token) is not None
    clock.now += timedelta(seconds=1)
    assert await store.verify(issued.access_token) is None


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_grant(store: GrantStore, clock: Clock) -> None:
    first = await store.redeem_code(await grant(store))
    assert first is not None
    clock.now += timedelta(hours=2)
    second = await store.refresh(first.refresh_token)
    assert second is not None and second.grant_id == first.grant_id
    assert second.refresh_token != first.refresh_token
    verified = await store.verify(second.access_token)
    assert verified is not None and verified.upstream_token == UPSTREAM
    assert await store.refresh_grant(first.refresh_token) is None  # used up

    assert await store.refresh(first.refresh_token) is None  # reuse: stolen, or replayed
    assert await store.verify(second.access_token) is None
    assert await store.refresh(second.refresh_token) is None


async def test_refreshing_never_outlives_the_grants_maximum_age(store: GrantStore, clock: Clock) -> None:
    issued = await store.redeem_code(await grant(store))
    assert issued is not None
    while clock.now + REFRESH_TTL < datetime(2026, 11, 28, 15, 0, tzinfo=UTC) + GRANT_MAX_AGE:
        clock.now += REFRESH_TTL - timedelta(days=1)
        issued = await store.refresh(issued.refresh_token)
        assert issued is not None
    clock.now = datetime(2026, 11, 28, 15, 0, tzinfo=UTC) + GRANT_MAX_AGE - timedelta(minutes=10)
    last = await store.refresh(issued.refresh_token)
    assert last is not None and last.expires_in == 600  # the access token ends with the grant
    clock.now += timedelta(minutes=10)
    assert await store.refresh(last.refresh_token) is None
    assert await store.verify(last.access_token) is None


async def test_revoking_any_token_ends_the_whole_grant_and_is_counted(store: GrantStore) -> None:
    mark = await store.revocation_mark()
    issued = await store.redeem_code(await grant(store))
    other = await store.redeem_code(await grant(store, "demo-tenant-b"))
    assert issued is not None and other is not None

    assert await store.revoke_token(issued.refresh_token) == issued.grant_id
    assert await store.verify(issued.access_token) is None
    assert await store.revocation_mark() > mark
    assert await store.revoke_token(issued.refresh_token) is None  # unknown now
    verified = await store.verify(other.access_token)
    assert verified is not None and verified.upstream_token == "demo-tenant-b"
    assert await store.revoke_grant(other.grant_id) is True
    assert await store.revoke_grant(other.grant_id) is False


async def test_a_new_server_secret_opens_no_old_grant(database_url: str, clock: Clock) -> None:
    old = await GrantStore.open(database_url, SECRET, clock)
    issued = await old.redeem_code(await grant(old))
    await old.aclose()
    assert issued is not None
    new = await GrantStore.open(database_url, "n" * 40, clock)
    try:
        assert await new.verify(issued.access_token) is None
        assert await new.refresh(issued.refresh_token) is None
        assert await new.sweep() >= 1
        assert await new.grant_list() == []
    finally:
        await new.aclose()


async def test_sweep_removes_expired_rows_and_keeps_live_ones(store: GrantStore, clock: Clock) -> None:
    live = await store.redeem_code(await grant(store))
    await grant(store)  # a code never redeemed
    assert live is not None
    clock.now += ACCESS_TTL
    assert await store.sweep() == 3  # both codes (one used, one not) and the access token
    assert await store.refresh(live.refresh_token) is not None
    clock.now += GRANT_MAX_AGE
    assert await store.sweep() >= 2
    assert await store.grant_list() == []


async def test_clients_are_stored_with_only_their_secrets_hash(store: GrantStore) -> None:
    await store.put_client(CLIENT, "dcr", {"client_name": "Claude", "redirect_uris": ["https://x/cb"]}, "shh-secret")
    client = await store.get_client(CLIENT)
    assert client is not None
    assert (client.kind, client.metadata["client_name"], client.secret_hash) == (
        "dcr",
        "Claude",
        token_hash("shh-secret"),
    )
    await store.put_client(CLIENT, "dcr", {"client_name": "Claude 2"}, None)
    assert [(c.client_id, c.metadata) for c in await store.list_clients()] == [(CLIENT, {"client_name": "Claude 2"})]
    issued = await store.redeem_code(await grant(store))
    assert issued is not None
    assert await store.delete_client(CLIENT) is True
    assert await store.get_client(CLIENT) is None
    assert await store.verify(issued.access_token) is None
    assert await store.delete_client(CLIENT) is False


async def test_nothing_secret_is_stored_in_clear(tmp_path: Path, clock: Clock) -> None:
    url = f"sqlite:///{tmp_path / 'oauth.sqlite3'}"
    store = await GrantStore.open(url, SECRET, clock)
    pasted = "exp_live_" + "k" * 40
    code = await grant(store, pasted)
    issued = await store.redeem_code(code)
    assert issued is not None
    refreshed = await store.refresh(issued.refresh_token)
    assert refreshed is not None
    await store.put_client("c", "dcr", {}, "client-secret-value")
    await store.aclose()

    raw = b"".join(path.read_bytes() for path in tmp_path.iterdir())
    with sqlite3.connect(tmp_path / "oauth.sqlite3") as db:
        raw += repr(db.execute("SELECT * FROM experiture_oauth_grants").fetchall()).encode()
    for secret in (pasted, code, issued.access_token, issued.refresh_token, refreshed.access_token, SECRET):
        assert secret.encode() not in raw
        assert secret[len("exmcp_at_") :].encode() not in raw  # nor the random part without its prefix
    assert b"client-secret-value" not in raw


async def tenant_of(store: GrantStore, client_id: str, upstream: str) -> str:
    code = await store.create_grant(
        client_id=client_id,
        redirect_uri="https://claude.ai/api/mcp/auth_callback",
        redirect_uri_provided_explicitly=True,
        code_challenge="challenge",
        scopes=["campaigns:read"],
        resource=RESOURCE,
        upstream_token=upstream,
        upstream_scopes=["campaigns:read"],
    )
    issued = await store.redeem_code(code)
    assert issued is not None
    verified = await store.verify(issued.access_token)
    assert verified is not None
    return verified.tenant


async def test_a_new_grant_continues_its_clients_tenant_for_the_same_token_and_no_other(
    store: GrantStore, clock: Clock
) -> None:
    first = await tenant_of(store, CLIENT, UPSTREAM)
    assert await tenant_of(store, CLIENT, UPSTREAM) == first  # the same client consents again with the same token
    assert await tenant_of(store, "client-2", UPSTREAM) != first  # another client, the same token
    assert await tenant_of(store, CLIENT, "demo-tenant-b") != first  # the same client, another token
    assert len({first, await tenant_of(store, "client-2", UPSTREAM), await tenant_of(store, "client-3", UPSTREAM)}) == 3

    for info in await store.grant_list():  # every grant revoked, then past its maximum age, then swept
        await store.revoke_grant(info.grant_id)
    clock.now += GRANT_MAX_AGE + timedelta(days=1)
    await store.sweep()
    assert await store.grant_list() == []
    assert await tenant_of(store, CLIENT, UPSTREAM) == first  # months later: the memory of before

    await store.put_client("static-1", "static", {}, None)
    static = await tenant_of(store, "static-1", UPSTREAM)
    assert await store.delete_client("static-1") is True  # a removed client's lineage goes with it
    assert await tenant_of(store, "static-1", UPSTREAM) != static


async def test_grants_from_before_tenants_each_become_their_own_tenant(database_url: str, clock: Clock) -> None:
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import text
    from sqlalchemy.engine import Connection
    from sqlalchemy.ext.asyncio import create_async_engine

    from experiture_mcp.memory import store as store_module

    engine = create_async_engine(store_module.async_url(database_url))

    def to_0004(conn: Connection) -> None:
        config = Config()
        config.set_main_option("script_location", str(Path(store_module.__file__).parent / "migrations"))
        config.attributes["connection"] = conn
        command.upgrade(config, "0004")

    row = (
        "INSERT INTO experiture_oauth_grants (grant_id, client_id, redirect_uri, resource, scopes, upstream_scopes, "
        "fingerprint, key_id, ciphertext, created_at, expires_at) VALUES (:g, 'c', 'https://x/cb', 'r', '', '', 'f', "
        "'k', :b, :t, :t)"
    )
    async with engine.begin() as conn:
        await conn.run_sync(to_0004)
        for grant_id in ("a" * 32, "b" * 32):
            await conn.execute(text(row), {"g": grant_id, "b": b"x", "t": clock.now})
    await engine.dispose()

    store = await GrantStore.open(database_url, SECRET, clock)  # upgrades through 0005 to the head
    await store.aclose()
    engine = create_async_engine(store_module.async_url(database_url))
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT grant_id, tenant FROM experiture_oauth_grants"))).all()
    finally:
        await engine.dispose()
    assert sorted((r.grant_id, r.tenant) for r in rows) == [("a" * 32, "a" * 32), ("b" * 32, "b" * 32)]
