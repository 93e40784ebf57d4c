"""RevocationListener: PostgreSQL LISTEN for revocations committed by any process, so caches drop them at once.

A revocation sends NOTIFY in its own transaction (grants.py), delivered at its commit to every listening process.
Each listener drops the grant from its caches, then acknowledges on a second channel; the revoking process waits
(bounded) until every listener it counted before its commit has acknowledged, so that once it answers, no process
still trusts the grant. A listener reconnects when its connection drops; the revocation-mark poll (verifier.py)
covers the gap.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import anyio
from sqlalchemy.engine import make_url

from experiture_mcp.logs import redact

__all__ = ["ACK_CHANNEL", "APPLICATION_NAME", "CHANNEL", "ECHO_SECONDS", "RevocationListener", "listen_dsn"]

log = logging.getLogger(__name__)

CHANNEL = "experiture_oauth_revoked"  # payload: the grant id
ACK_CHANNEL = "experiture_oauth_revoked_heard"  # payload: the grant id; sent by each listener that dropped it
APPLICATION_NAME = "experiture-mcp revocation listener"  # how a revoking process counts the listeners
ECHO_SECONDS = 1.0  # longest wait of a revoking process for every listener's acknowledgment (a few ms when idle)
CONNECT_SECONDS = 10
RETRY_SECONDS = 1.0  # after a failed or dropped connection
CHECK_SECONDS = 30.0  # how often an idle connection is checked (a silently dropped one is noticed)


def listen_dsn(url: str) -> str:
    """The plain postgresql:// DSN asyncpg connects with, for a SQLAlchemy URL of any PostgreSQL driver."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class RevocationListener:
    """One connection that LISTENs on CHANNEL; calls on_revoked(grant_id) per notification and acknowledges it,
    and on_connected() per (re)connection (what was missed meanwhile is unknown, so caches start over)."""

    def __init__(self, dsn: str, on_revoked: Callable[[str], None], on_connected: Callable[[], None]) -> None:
        self._dsn = dsn
        self._on_revoked = on_revoked
        self._on_connected = on_connected
        self._waiting: dict[str, int] = {}  # grant ids whose acknowledgments someone waits for, and how many wait
        self._acks: dict[str, set[int]] = {}  # for those: the backend pids of the listeners that acknowledged
        self._acked = anyio.Event()  # set (and replaced) at every acknowledgment
        self._outbox: list[str] = []  # grant ids this listener heard and has yet to acknowledge
        self._wake = anyio.Event()
        self._connected = False
        self.ready = anyio.Event()  # set on the first connection
        self.connections = 0  # how many times it connected (tests watch reconnections)

    @property
    def connected(self) -> bool:
        """Whether notifications are being heard right now."""
        return self._connected

    def expect(self, grant_id: str) -> None:
        """Start collecting acknowledgments of this grant's revocation (before the commit that sends it)."""
        self._waiting[grant_id] = self._waiting.get(grant_id, 0) + 1
        self._acks.setdefault(grant_id, set())

    def discard(self, grant_id: str) -> None:
        """Stop collecting them (heard, timed out or rolled back)."""
        left = self._waiting.get(grant_id, 0) - 1
        if left > 0:
            self._waiting[grant_id] = left
        else:
            self._waiting.pop(grant_id, None)
            self._acks.pop(grant_id, None)

    async def acknowledged(self, expected: Iterable[tuple[str, int]]) -> bool:
        """Wait up to ECHO_SECONDS until each (grant id, listeners) was acknowledged by that many listeners (this
        one included); whether they all were. Call after expect and the commit; discards them."""
        expected = list(expected)
        try:
            with anyio.move_on_after(ECHO_SECONDS):
                while True:
                    acked = self._acked  # taken before the check: an acknowledgment after it sets this one
                    if all(len(self._acks.get(grant_id, ())) >= n for grant_id, n in expected):
                        return True
                    await acked.wait()
            log.info("OAuth: a revocation was not acknowledged by every process within %g s", ECHO_SECONDS)
            return False
        finally:
            for grant_id, _ in expected:
                self.discard(grant_id)

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._on_revoked(payload)
        self._outbox.append(payload)
        self._wake.set()

    def _acknowledged(self, _conn: object, pid: int, _channel: str, payload: str) -> None:
        acks = self._acks.get(payload)
        if acks is not None:
            acks.add(pid)
            self._acked.set()
            self._acked = anyio.Event()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any failure (logged once until it works again)."""
        import asyncpg  # pyright: ignore[reportMissingTypeStubs]

        connect = cast("Callable[..., Awaitable[Any]]", asyncpg.connect)  # pyright: ignore[reportUnknownMemberType]
        failing = False
        while True:
            try:
                conn = await connect(
                    self._dsn, timeout=CONNECT_SECONDS, server_settings={"application_name": APPLICATION_NAME}
                )
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
                await self._serve(conn, failing)
            except Exception as exc:
                if self._connected or not failing:  # once per outage: a drop, or the first failure
                    log.warning(
                        "OAuth: the revocation listener's connection dropped (%s); reconnecting",
                        redact(f"{type(exc).__name__}: {exc}")[:300],
                    )
                failing = True
            finally:
                self._connected = False
                conn.terminate()
            await anyio.sleep(RETRY_SECONDS)

    async def _serve(self, conn: Any, failing: bool) -> None:
        """Listen on one connection, acknowledging what is heard, until it fails (raises)."""
        closed = False

        def on_close(_: object) -> None:
            nonlocal closed
            closed = True
            self._wake.set()

        conn.add_termination_listener(on_close)
        await conn.add_listener(ACK_CHANNEL, self._acknowledged)
        await conn.add_listener(CHANNEL, self._notified)
        self._outbox.clear()  # heard on an earlier connection: its acknowledgment is no longer awaited
        self._connected = True
        self.connections += 1
        self._on_connected()
        self.ready.set()
        log.log(logging.INFO if failing else logging.DEBUG, "OAuth: listening for revocations on PostgreSQL")
        while True:
            self._wake = anyio.Event()  # before the outbox is read: what arrives meanwhile wakes the wait below
            while self._outbox and not closed:
                await conn.execute("SELECT pg_notify($1, $2)", ACK_CHANNEL, self._outbox.pop(0))
            if closed:
                raise ConnectionError("the connection closed")
            with anyio.move_on_after(CHECK_SECONDS) as idle:
                await self._wake.wait()
            if idle.cancelled_caught:
                await conn.fetchval("SELECT 1", timeout=CONNECT_SECONDS)
