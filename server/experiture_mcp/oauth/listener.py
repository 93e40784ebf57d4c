"""RevocationListener: PostgreSQL LISTEN for revocations committed by any process, so caches drop them at once.

A revocation sends NOTIFY in its own transaction (grants.py), delivered on commit to every listening process.
The listener reconnects when its connection drops; the poll of the revocation mark (verifier.py) covers the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import anyio
from sqlalchemy.engine import make_url

from experiture_mcp.logs import redact

__all__ = ["CHANNEL", "ECHO_SECONDS", "RevocationListener", "listen_dsn"]

log = logging.getLogger(__name__)

CHANNEL = "experiture_oauth_revoked"
ECHO_SECONDS = 0.2  # how long a revoking process waits to hear its own NOTIFY (then every listener was signalled)
CONNECT_SECONDS = 10
RETRY_SECONDS = 1.0  # after a failed or dropped connection
CHECK_SECONDS = 30.0  # how often an idle connection is checked (a silently dropped one is noticed)


def listen_dsn(url: str) -> str:
    """The plain postgresql:// DSN asyncpg connects with, for a SQLAlchemy URL of any PostgreSQL driver."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class RevocationListener:
    """One connection that LISTENs on CHANNEL; calls on_revoked(grant_id) per notification, on_connected() per
    (re)connection (what was missed meanwhile is unknown, so caches start over)."""

    def __init__(self, dsn: str, on_revoked: Callable[[str], None], on_connected: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_revoked = on_revoked
        self._on_connected = on_connected
        self._waiting: dict[str, set[anyio.Event]] = {}
        self._connected = False
        self.ready = anyio.Event()  # set on the first connection
        self.connections = 0  # how many times it connected (tests watch reconnections)

    @property
    def connected(self) -> bool:
        """Whether notifications are being heard right now."""
        return self._connected

    def expect(self, grant_id: str) -> anyio.Event:
        """An event set when this grant's revocation is heard (register before the commit, then wait on it)."""
        event = anyio.Event()
        self._waiting.setdefault(grant_id, set()).add(event)
        return event

    def discard(self, grant_id: str, event: anyio.Event) -> None:
        """Stop expecting (heard, timed out or rolled back)."""
        waiting = self._waiting.get(grant_id)
        if waiting is not None:
            waiting.discard(event)
            if not waiting:
                del self._waiting[grant_id]

    async def echoed(self, expected: Iterable[tuple[str, anyio.Event]]) -> bool:
        """Wait up to ECHO_SECONDS for these revocations to be heard here; whether they all were."""
        expected = list(expected)
        try:
            with anyio.move_on_after(ECHO_SECONDS):
                for _, event in expected:
                    await event.wait()
                return True
            return False
        finally:
            for grant_id, event in expected:
                self.discard(grant_id, event)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._on_revoked(payload)
        for event in self._waiting.pop(payload, set()):
            event.set()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any failure (logged once until it works again)."""
        import asyncpg  # pyright: ignore[reportMissingTypeStubs]

        connect = cast("Callable[..., Awaitable[Any]]", asyncpg.connect)  # pyright: ignore[reportUnknownMemberType]
        failing = False
        while True:
            try:
                conn = await connect(self._dsn, timeout=CONNECT_SECONDS)
            except Exception as exc:
                if not failing:
                    log.warning(
                        "OAuth: cannot listen for revocations (%s); other processes' revocations are seen by "
                        "polling meanwhile, retrying",
                        redact(f"{type(exc).__name__}: {exc}")[:300],
                    )
                failing = True
                await anyio.sleep(RETRY_SECONDS)
                continue
            try:
                closed = anyio.Event()

                def on_close(_: object, closed: anyio.Event = closed) -> None:
                    closed.set()

                conn.add_termination_listener(on_close)
                await conn.add_listener(CHANNEL, self._notified)
                self._connected = True
                self.connections += 1
                self._on_connected()
                self.ready.set()
                log.log(logging.INFO if failing else logging.DEBUG, "OAuth: listening for revocations on PostgreSQL")
                failing = False
                while not closed.is_set():
                    with anyio.move_on_after(CHECK_SECONDS):
                        await closed.wait()
                    if not closed.is_set():
                        await conn.fetchval("SELECT 1", timeout=CONNECT_SECONDS)
                raise ConnectionError("the connection closed")
            except Exception as exc:
                if not failing:
                    log.warning(
                        "OAuth: the revocation listener's connection dropped (%s); reconnecting",
                        redact(f"{type(exc).__name__}: {exc}")[:300],
                    )
                failing = True
            finally:
                self._connected = False
                conn.terminate()
            await anyio.sleep(RETRY_SECONDS)
