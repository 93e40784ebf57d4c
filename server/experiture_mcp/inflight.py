"""Calls in flight over hosted HTTP that a caller may cancel: one per streaming exchange, found by caller and id.

hosted.StreamingRouter opens an InFlight for every exchange it streams and leaves it in the ASGI scope; the tool
runs inside `cancel_scope(ctx)`. The exchange's end (the client closed the stream, or the answer went out) and a
`notifications/cancelled` POST from the same caller naming the call's id both cancel that scope. Per process: a
posted cancel reaches only the worker that holds the call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any, cast

import anyio

__all__ = ["SCOPE_KEY", "InFlight", "Registry", "caller_identity", "cancel_scope"]

SCOPE_KEY = "experiture_mcp.inflight"  # the exchange's InFlight, in the ASGI scope


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
