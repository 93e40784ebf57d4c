"""Client ID Metadata Documents: an https client_id is the URL of the client's metadata, fetched with SSRF care.

Only public addresses (every resolved one is checked, and the connection goes to a checked one); no redirects;
at most 64 KiB within 5 seconds; the document's client_id must be its URL. Answers are cached, refusals briefly.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import time
from typing import Any

import anyio
import httpx2

__all__ = ["MAX_BYTES", "TIMEOUT_SECONDS", "CimdFetcher", "is_cimd_client_id"]

log = logging.getLogger(__name__)

MAX_BYTES = 64 * 1024
TIMEOUT_SECONDS = 5.0
CACHE_SECONDS = 300.0
REFUSAL_CACHE_SECONDS = 60.0


class CimdRefused(Exception):
    """The document cannot be used; the message says why (for the log, never a secret)."""


def is_cimd_client_id(client_id: str) -> bool:
    """An https URL with a path: a client id that names its own metadata document."""
    try:
        url = httpx2.URL(client_id)
    except Exception:
        return False
    return url.scheme == "https" and bool(url.host) and url.path not in ("", "/") and not url.fragment


class CimdFetcher:
    """Fetches and caches client metadata documents; `allow_loopback` and `verify` exist for tests only."""

    def __init__(self, *, allow_loopback: bool = False, verify: ssl.SSLContext | bool = True) -> None:
        self._allow_loopback = allow_loopback
        self._verify = verify
        self._cache: dict[str, tuple[dict[str, Any] | None, float]] = {}
        self._slots = anyio.Semaphore(4)

    async def fetch(self, client_id: str) -> dict[str, Any] | None:
        """The client's validated metadata, or None (refused: the reason is logged)."""
        cached = self._cache.get(client_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        try:
            async with self._slots:
                document = await self._fetch(client_id)
            ttl = CACHE_SECONDS
        except CimdRefused as exc:
            log.info("client metadata document %s refused: %s", client_id[:200], exc)
            document, ttl = None, REFUSAL_CACHE_SECONDS
        if len(self._cache) > 1000:
            self._cache.clear()
        self._cache[client_id] = (document, time.monotonic() + ttl)
        return document

    def prune(self) -> int:
        """Drop cached answers past their time; how many."""
        now = time.monotonic()
        stale = [client_id for client_id, (_, until) in self._cache.items() if until <= now]
        for client_id in stale:
            del self._cache[client_id]
        return len(stale)

    def _allowed(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return ip.is_global or (self._allow_loopback and ip.is_loopback)

    async def _fetch(self, client_id: str) -> dict[str, Any]:
        if not is_cimd_client_id(client_id):
            raise CimdRefused("not an https URL with a path")
        url = httpx2.URL(client_id)
        host = url.host
        port = url.port or 443
        try:
            found = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise CimdRefused(f"cannot resolve {host}") from exc
        addresses = [str(info[4][0]) for info in found]
        if not addresses or not all(self._allowed(a) for a in addresses):
            raise CimdRefused(f"{host} resolves to a non-public address")
        pinned = addresses[0]
        target = url.copy_with(host=pinned)  # connect to the address just checked, not a second lookup
        headers = {"Host": url.netloc.decode(), "Accept": "application/json"}
        try:
            async with (
                httpx2.AsyncClient(
                    verify=self._verify, timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False
                ) as http,
                http.stream("GET", target, headers=headers, extensions={"sni_hostname": host}) as response,
            ):
                if response.status_code != 200:
                    raise CimdRefused(f"answered {response.status_code}")
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        raise CimdRefused(f"larger than {MAX_BYTES} bytes")
        except httpx2.HTTPError as exc:
            raise CimdRefused(f"fetch failed: {type(exc).__name__}") from exc
        return _validated(client_id, body)


def _validated(client_id: str, body: bytes) -> dict[str, Any]:
    try:
        document: Any = json.loads(body)
    except ValueError as exc:
        raise CimdRefused("not JSON") from exc
    if not isinstance(document, dict):
        raise CimdRefused("not a JSON object")
    doc: dict[str, Any] = document  # pyright: ignore[reportUnknownVariableType]
    if doc.get("client_id") != client_id:
        raise CimdRefused("its client_id is not its URL")
    uris: Any = doc.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) for u in uris):  # pyright: ignore[reportUnknownVariableType]
        raise CimdRefused("no redirect_uris")
    if doc.get("token_endpoint_auth_method", "none") != "none":
        raise CimdRefused("only public clients (token_endpoint_auth_method none) are supported")
    return doc
