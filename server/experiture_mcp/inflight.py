"""Calls in flight over hosted HTTP that a caller may cancel: one per streaming exchange, found by caller and id.

hosted.StreamingRouter opens an InFlight for every exchange it streams and leaves it in the ASGI scope; the tool
runs inside `cancel_scope(ctx)`. The exchange's end (the client closed the stream, or the answer went out) and a
`notifications/cancelled` POST from the same caller naming the call's id both cancel that scope. With several workers
or replicas the POST may reach a process that does not hold the call: it leaves the cancel on a Board in the memory's
database, which the process holding the call watches while the call lasts.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncGenerator, Generator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import anyio

if TYPE_CHECKING:
    from experiture_mcp.memory import Memory

__all__ = ["SCOPE_KEY", "WATCH_SECONDS", "Board", "InFlight", "Registry", "caller_identity", "cancel_scope"]

SCOPE_KEY = "experiture_mcp.inflight"  # the exchange's InFlight, in the ASGI scope
WATCH_SECONDS = 0.25  # how often a streaming call looks for a cancel another process posted

log = logging.getLogger(__name__)


class InFlight:
    """One streaming call: its cancel scope, which may be cancelled before the tool enters it."""

    def __init__(self) -> None:
        self.scope = anyio.CancelScope()

    def cancel(self) -> None:
        self.scope.cancel()


def caller_identity(credential: bytes | None, experiture_token: bytes | None) -> bytes | None:
    """A digest of who is calling (access key or bearer token, plus X-Experiture-Token), or None when anonymous."""
    if not credential and not experiture_token:
        return None  # callers without any credential cannot be told apart, so none may cancel by id
    return hashlib.sha256((credential or b"") + b"\0" + (experiture_token or b"")).digest()


def _id_key(request_id: Any) -> str | None:
    # JSON text keeps 1 and "1" apart, as JSON-RPC does.
    return json.dumps(request_id) if isinstance(request_id, str | int) and not isinstance(request_id, bool) else None


class Registry:
    """The streaming calls in flight in this process, by (caller identity, JSON-RPC request id)."""

    def __init__(self) -> None:
        self._calls: dict[tuple[bytes, str], InFlight] = {}

    def __len__(self) -> int:
        return len(self._calls)

    @contextmanager
    def holding(self, caller: bytes | None, request_id: Any) -> Generator[InFlight]:
        """An InFlight for the exchange, found by `cancel` while it lasts (unless anonymous); cancelled at its end."""
        call = InFlight()
        ident = _id_key(request_id)
        key = (caller, ident) if caller is not None and ident is not None else None
        if key is not None:
            # A client reuses an id only once it is done with the call that had it (JSON-RPC), though that call's
            # exchange may not have ended here yet: the newest call takes the id.
            self._calls[key] = call
        try:
            yield call
        finally:
            if key is not None and self._calls.get(key) is call:
                del self._calls[key]
            call.cancel()  # a handler the SDK runs outside this exchange (2025-11-25) must not outlive it

    def cancel(self, caller: bytes | None, request_id: Any) -> bool:
        """Cancel the caller's own call with that id; True when there was one."""
        ident = _id_key(request_id)
        call = self._calls.get((caller, ident)) if caller is not None and ident is not None else None
        if call is None:
            return False
        call.cancel()
        return True


def cancel_scope(request: object) -> anyio.CancelScope:
    """The scope a tool runs in: its exchange's InFlight's when the hosted router streams it, else a plain one."""
    scope: object = getattr(request, "scope", None)
    call = cast(dict[str, object], scope).get(SCOPE_KEY) if isinstance(scope, dict) else None
    return call.scope if isinstance(call, InFlight) else anyio.CancelScope()


class Board:
    """Cancels shared by every worker and replica through the memory's database (memory.store's cancels table).

    A cancel this process holds no call for is posted. While any streaming call here lasts, one task reads the cancels
    posted since its last look, every WATCH_SECONDS, whatever the number of calls, and cancels those it holds; a
    call takes only cancels posted after the mark of its start, so a cancel of an earlier call with the same id is
    never taken for it. A database that fails costs only that: the calls go on to their own timeouts, and the failure
    is logged once. Run it with `running()` for the life of the app."""

    def __init__(self, memory: Memory) -> None:
        self._memory = memory
        self._warned = False
        self._watched: dict[tuple[str, str], list[tuple[int, InFlight]]] = {}  # (caller, id) -> (mark, call)
        self._last = 0  # the newest cancel the looks have read
        self._wake = anyio.Event()

    def _failed(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("cancels cannot be shared with other workers: %s", exc)

    async def post(self, caller: bytes, request_id: Any) -> None:
        """Leave the caller's cancel of that request id for the process that holds the call."""
        ident = _id_key(request_id)
        if ident is None:
            return
        try:
            store = await self._memory.store()
            await store.post_cancel(caller.hex(), ident, datetime.now(UTC))
        except Exception as exc:
            self._failed(exc)

    @asynccontextmanager
    async def watching(self, caller: bytes | None, request_id: Any, call: InFlight) -> AsyncGenerator[None]:
        """While the body runs, cancel `call` as soon as a cancel of it is posted anywhere (anonymous: never)."""
        ident = _id_key(request_id)
        mark: int | None = None
        if caller is not None and ident is not None:
            try:
                mark = await (await self._memory.store()).cancel_mark()  # before the call starts: one just after counts
            except Exception as exc:
                self._failed(exc)
        if caller is None or ident is None or mark is None:
            yield
            return
        key, entry = (caller.hex(), ident), (mark, call)
        if not self._watched:
            self._last = mark  # the looks start here: what came before is for calls no longer held
        self._watched.setdefault(key, []).append(entry)
        self._wake.set()
        try:
            yield
        finally:
            held = self._watched[key]
            held.remove(entry)
            if not held:
                del self._watched[key]

    @asynccontextmanager
    async def running(self) -> AsyncGenerator[None]:
        """Look for posted cancels while calls are held, until the app stops; then close the connections."""
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._looks)
                try:
                    yield
                finally:
                    tg.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._memory.aclose()

    async def _looks(self) -> None:
        while True:
            if not self._watched:
                self._wake = anyio.Event()
                await self._wake.wait()
            await anyio.sleep(WATCH_SECONDS)
            if not self._watched:
                continue
            try:
                posted = await (await self._memory.store()).cancels_after(self._last)
            except Exception as exc:
                self._failed(exc)
                continue
            for seq, caller, ident in posted:
                self._last = max(self._last, seq)
                for mark, call in self._watched.get((caller, ident), []):
                    if seq > mark:
                        log.info("cancelled an in-flight call at its caller's request, posted to another process")
                        call.cancel()
