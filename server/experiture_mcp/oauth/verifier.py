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
MARK_SECONDS = 0.25  # how often a cache hit checks for revocations by other processes (one tiny indexed query)
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

    async def _fresh(self, store: GrantStore, now: float) -> None:
        """Drop the cache when another process revoked a grant since the last look (this one's are heard at once)."""
        if self._watched is not store:
            store.on_revoke(self.forget_grant)
            self._watched = store
            self._mark = await store.revocation_mark()
            self._mark_checked = now
        elif now - self._mark_checked >= MARK_SECONDS:
            mark = await store.revocation_mark()
            self._mark_checked = now
            if mark != self._mark:
                self._mark = mark
                self._cache.clear()

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
        )
        if len(self._cache) >= _MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (access, now + CACHE_SECONDS)
        return access

    def forget_grant(self, grant_id: str) -> None:
        """Drop every cached token of a grant (it was just revoked in this process)."""
        for key in [k for k, (access, _) in self._cache.items() if access.grant_id == grant_id]:
            del self._cache[key]
