"""GrantVerifier: the resource server's check of a bearer token, a cached hash lookup after the first call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pydantic import SecretStr

from experiture_mcp.logs import register_secret
from experiture_mcp.oauth.access import GrantAccessToken
from experiture_mcp.oauth.grants import GrantStore
from experiture_mcp.oauth.keys import PREFIXES, token_hash

__all__ = ["CACHE_SECONDS", "MARK_SECONDS", "GrantVerifier"]

CACHE_SECONDS = 30.0  # how long a verified token is trusted without reading its row again
MARK_SECONDS = 0.25  # how often a cache hit polls for other processes' revocations (SQLite; PostgreSQL's fallback)
_MAX_CACHED = 10_000


class GrantVerifier:
    """A TokenVerifier over the grant store, with a per-process cache keyed by token hash."""

    def __init__(self, store: Callable[[], Awaitable[GrantStore]], clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self._cache: dict[str, tuple[GrantAccessToken, float]] = {}
        self._watched: GrantStore | None = None
        self._mark = 0
        self._mark_checked = float("-inf")
        self._dropped = 0  # grows whenever cached tokens are dropped, so a check under way does not cache a stale row

    async def _fresh(self, store: GrantStore, now: float) -> None:
        """Drop the cache when another process revoked a grant since the last look (this one's, and on PostgreSQL
        every process's, are heard at once through on_revoke)."""
        if self._watched is not store:
            store.on_revoke(self.forget_grant)
            store.on_reconnect(self.forget_all)
            self._watched = store
            self._mark = await store.revocation_mark()
            self._mark_checked = now
        elif now - self._mark_checked >= MARK_SECONDS:
            mark = await store.revocation_mark()
            self._mark_checked = now
            if mark != self._mark:
                self._mark = mark
                self.forget_all()

    async def verify_token(self, token: str) -> GrantAccessToken | None:
        """The grant behind a live access token of ours, or None."""
        if not token.startswith(PREFIXES["access"]):
            return None
        key = token_hash(token)
        now = self._clock()
        store = await self._store()
        await self._fresh(store, now)
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now and (cached[0].expires_at or 0) > time.time():
            return cached[0]
        dropped = self._dropped
        verified = await store.verify(token)
        if verified is not None and dropped != self._dropped:
            dropped = self._dropped  # a revocation was heard while the row was read: read it again, after its commit
            verified = await store.verify(token)
        if verified is None:
            self._cache.pop(key, None)
            return None
        register_secret(token)
        register_secret(verified.upstream_token)
        access = GrantAccessToken(
            token=token,
            client_id=verified.client_id,
            scopes=verified.scopes,
            expires_at=int(verified.expires_at.timestamp()),
            resource=verified.resource,
            subject=verified.grant_id,
            grant_id=verified.grant_id,
            upstream=SecretStr(verified.upstream_token),
            tenant=verified.tenant,
        )
        if dropped != self._dropped:
            return access  # yet another revocation meanwhile: answer, but cache nothing
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (access, now + CACHE_SECONDS)
        return access

    def forget_grant(self, grant_id: str) -> None:
        """Drop every cached token of a grant (it was just revoked, here or in another process)."""
        self._dropped += 1
        for key in [k for k, (access, _) in self._cache.items() if access.grant_id == grant_id]:
            del self._cache[key]

    def forget_all(self) -> None:
        """Drop every cached token (revocations may have been missed)."""
        self._dropped += 1
        self._cache.clear()
