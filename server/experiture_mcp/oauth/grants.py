"""GrantStore: OAuth clients, grants and their tokens in the memory's database (SQLite or PostgreSQL).

A grant is one user's consent for one client: its Experiture token sealed (keys.py), the scopes, the resource.
Codes, access and refresh tokens are rows keyed by their hash, each holding the grant's data key wrapped for it.
A second use of a code or a refresh token revokes the whole grant (it was stolen or replayed). On PostgreSQL a
revocation also sends NOTIFY, heard by every process's RevocationListener at its commit. Each grant names its
memory tenant, continued by later grants of the same client for the same Experiture token (its lineage).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import zlib
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from experiture_mcp.memory.store import Store, async_url
from experiture_mcp.oauth.keys import Kind, ServerKey, UnsealError, new_token, token_hash
from experiture_mcp.oauth.listener import APPLICATION_NAME, CHANNEL, RevocationListener, listen_dsn
from experiture_mcp.oauth.schema import clients, failures, grants, lineages, revocations, tokens, transactions

__all__ = [
    "ACCESS_TTL",
    "CODE_TTL",
    "GRANT_MAX_AGE",
    "REFRESH_TTL",
    "TRANSACTION_TTL",
    "Client",
    "CodeInfo",
    "GrantInfo",
    "GrantStore",
    "Issued",
    "Verified",
]

ACCESS_TTL = timedelta(hours=1)
REFRESH_TTL = timedelta(days=30)
CODE_TTL = timedelta(minutes=5)
TRANSACTION_TTL = timedelta(minutes=15)
GRANT_MAX_AGE = timedelta(days=90)  # refreshing never extends a grant past this: the user consents again
FAILURE_WINDOW_KEPT = timedelta(hours=1)  # failed-paste windows older than this are swept
REVOCATIONS_KEPT = timedelta(days=1)  # revocation rows older than this are swept (the newest one stays)
_SWEEP_LOCK = zlib.crc32(b"experiture-mcp oauth sweep")  # PostgreSQL advisory lock key: one sweeper at a time
_LISTENERS = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = :name"
)
Clock = Callable[[], datetime]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _aad(grant_id: str, client_id: str, resource: str) -> bytes:
    # Binds the ciphertext to its grant: a row's ciphertext copied into another grant does not decrypt.
    return f"{grant_id}\n{client_id}\n{resource}".encode()


@dataclass(frozen=True)
class Client:
    """A registered client: how it came (dcr, cimd, static), its metadata, its secret's hash if any."""

    client_id: str
    kind: str
    metadata: dict[str, Any]
    secret_hash: str | None


@dataclass(frozen=True)
class CodeInfo:
    """What an authorization code was issued for, checked before it is redeemed."""

    grant_id: str
    client_id: str
    redirect_uri: str
    redirect_uri_provided_explicitly: bool
    code_challenge: str
    scopes: list[str]
    resource: str
    expires_at: datetime


@dataclass(frozen=True)
class Issued:
    """A new access and refresh token pair."""

    grant_id: str
    access_token: str
    refresh_token: str
    expires_in: int
    scopes: list[str]


@dataclass(frozen=True)
class Verified:
    """A valid access token: its grant, and the grant's Experiture token in clear (for upstream calls only)."""

    grant_id: str
    client_id: str
    scopes: list[str]
    resource: str
    expires_at: datetime
    upstream_token: str
    tenant: str  # whose campaign memory this grant's calls use


@dataclass(frozen=True)
class GrantInfo:
    """A grant as operators see it: never a token, only the Experiture token's short fingerprint."""

    grant_id: str
    client_id: str
    scopes: list[str]
    upstream_scopes: list[str]
    fingerprint: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    tenant: str  # whose campaign memory the grant's calls use (a random id, shared by the grant's lineage)


@dataclass(frozen=True)
class Forgotten:
    """What `GrantStore.forget` did."""

    ended: int  # live grants ended (those named and every other one sharing their memory)
    campaigns: int  # remembered campaigns deleted, with their history
    missing: list[str]  # named grant ids that no row has (never existed, or revoked and swept)


class GrantStore:
    """The OAuth state; open with GrantStore.open (which upgrades the schema), close with aclose."""

    def __init__(self, store: Store, key: ServerKey, clock: Clock, listen_url: str | None = None) -> None:
        self._store = store
        self._key = key
        self._now = clock
        self._insert = store.dialect_insert
        self._listeners: list[Callable[[str], None]] = []
        self._reconnected: list[Callable[[], None]] = []
        self._echoes: dict[AsyncConnection, list[tuple[str, int]]] = {}  # per transaction: (grant, listeners)
        self.listener = RevocationListener(listen_dsn(listen_url), self._heard, self._heard_all) if listen_url else None

    def on_revoke(self, listener: Callable[[str], None]) -> None:
        """Call listener(grant_id) whenever a grant is revoked: by this process before its commit, by another as
        soon as its NOTIFY arrives (PostgreSQL)."""
        self._listeners.append(listener)

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """Call listener() whenever the revocation listener (re)connects: what was missed meanwhile is unknown."""
        self._reconnected.append(listener)

    def _heard(self, grant_id: str) -> None:
        for listener in self._listeners:
            listener(grant_id)

    def _heard_all(self) -> None:
        for listener in self._reconnected:
            listener()

    @classmethod
    async def open(cls, url: str, secret: str, clock: Clock) -> GrantStore:
        """Connect to the database at url (migrating it), with the server secret."""
        postgres = async_url(url).startswith("postgresql")
        return cls(await Store.open(url), ServerKey(secret), clock, async_url(url) if postgres else None)

    async def listen(self) -> None:
        """Hear other processes' revocations until cancelled (PostgreSQL); returns at once on SQLite."""
        if self.listener is not None:
            await self.listener.run()

    async def aclose(self) -> None:
        """Close every connection."""
        await self._store.aclose()

    @asynccontextmanager
    async def _writing(self) -> AsyncGenerator[AsyncConnection]:
        """A write transaction; when it revoked grants, this returns after its commit, once every listening process
        acknowledged that it dropped them (PostgreSQL), or ECHO_SECONDS passed."""
        expected: list[tuple[str, int]] = []
        committed = False
        try:
            async with self._store.begin(write=True) as conn:
                self._echoes[conn] = expected
                try:
                    yield conn
                finally:
                    del self._echoes[conn]
            committed = True
            if expected and self.listener is not None:
                await self.listener.acknowledged(expected)  # discards them
        finally:
            if not committed and self.listener is not None:
                for grant_id, _ in expected:
                    self.listener.discard(grant_id)

    # Clients.

    async def put_client(self, client_id: str, kind: str, metadata: dict[str, Any], secret: str | None) -> None:
        """Add or replace a client."""
        now = self._now()
        values: dict[str, Any] = {
            "client_id": client_id,
            "kind": kind,
            "metadata": json.dumps(metadata, sort_keys=True),
            "secret_hash": token_hash(secret) if secret else None,
            "created_at": now,
            "last_used_at": now,
        }
        stmt = self._insert(clients).values(**values)
        changed = {k: v for k, v in values.items() if k != "created_at"}
        async with self._store.begin(write=True) as conn:
            await conn.execute(stmt.on_conflict_do_update(index_elements=["client_id"], set_=changed))

    async def get_client(self, client_id: str) -> Client | None:
        """The client, or None."""
        async with self._store.begin(write=False) as conn:
            row = (await conn.execute(select(clients).where(clients.c.client_id == client_id))).first()
        if row is None:
            return None
        return Client(row.client_id, row.kind, json.loads(row.metadata), row.secret_hash)

    async def list_clients(self) -> list[Client]:
        """Every client, oldest first."""
        async with self._store.begin(write=False) as conn:
            rows = await conn.execute(select(clients).order_by(clients.c.created_at, clients.c.client_id))
            return [Client(r.client_id, r.kind, json.loads(r.metadata), r.secret_hash) for r in rows]

    async def delete_client(self, client_id: str) -> bool:
        """Remove a client and revoke its grants; whether it existed."""
        async with self._writing() as conn:
            ids = [
                r.grant_id for r in await conn.execute(select(grants.c.grant_id).where(grants.c.client_id == client_id))
            ]
            for grant_id in ids:
                await self._revoke(conn, grant_id)
            removed = (await conn.execute(delete(clients).where(clients.c.client_id == client_id))).rowcount
            await conn.execute(delete(lineages).where(lineages.c.client_id == client_id))
        return bool(removed)

    # Grants and codes.

    async def create_grant(
        self,
        *,
        client_id: str,
        redirect_uri: str,
        redirect_uri_provided_explicitly: bool,
        code_challenge: str,
        scopes: list[str],
        resource: str,
        upstream_token: str,
        upstream_scopes: list[str],
    ) -> str:
        """Seal the Experiture token in a new grant; the authorization code that redeems it.

        The grant continues the tenant of this client's earlier grants for the same Experiture token (consenting
        again keeps the memory); any other grant starts a tenant of its own."""
        now = self._now()
        lineage = self._key.lineage(client_id, upstream_token)
        grant_id = secrets.token_hex(16)
        code = new_token("code")
        sealed = self._key.seal(upstream_token, _aad(grant_id, client_id, resource), code, "code")
        details = {
            "redirect_uri": redirect_uri,
            "explicit": redirect_uri_provided_explicitly,
            "code_challenge": code_challenge,
        }
        async with self._store.begin(write=True) as conn:
            new = self._insert(lineages).values(
                lineage=lineage, client_id=client_id, tenant=secrets.token_hex(16), created_at=now, last_granted_at=now
            )
            await conn.execute(new.on_conflict_do_update(index_elements=["lineage"], set_={"last_granted_at": now}))
            tenant = (await conn.execute(select(lineages.c.tenant).where(lineages.c.lineage == lineage))).scalar_one()
            await conn.execute(
                insert(grants).values(
                    grant_id=grant_id,
                    client_id=client_id,
                    redirect_uri=redirect_uri,
                    resource=resource,
                    scopes=" ".join(scopes),
                    upstream_scopes=" ".join(upstream_scopes),
                    fingerprint=hashlib.sha256(upstream_token.encode()).hexdigest()[:12],
                    key_id=self._key.key_id,
                    ciphertext=sealed.ciphertext,
                    created_at=now,
                    expires_at=now + GRANT_MAX_AGE,
                    tenant=tenant,
                )
            )
            await self._add_token(conn, code, "code", grant_id, sealed.wrapped_key, now + CODE_TTL, details)
        return code

    async def _add_token(
        self,
        conn: AsyncConnection,
        token: str,
        kind: Kind,
        grant_id: str,
        wrapped: bytes,
        expires_at: datetime,
        details: Any = None,
    ) -> None:
        await conn.execute(
            insert(tokens).values(
                token_hash=token_hash(token),
                grant_id=grant_id,
                kind=kind,
                wrapped_key=wrapped,
                details=json.dumps(details or {}),
                expires_at=expires_at,
            )
        )

    async def _token(self, conn: AsyncConnection, token: str, kind: Kind) -> Row[Any] | None:
        query = (
            select(
                tokens.c.grant_id,
                tokens.c.wrapped_key,
                tokens.c.details,
                tokens.c.expires_at,
                tokens.c.used_at,
                *[c for c in grants.c if c.name not in ("grant_id", "expires_at")],
                grants.c.expires_at.label("grant_expires_at"),
            )
            .join(grants, grants.c.grant_id == tokens.c.grant_id)
            .where(tokens.c.token_hash == token_hash(token), tokens.c.kind == kind)
        )
        row = (await conn.execute(query)).first()
        if row is None or row.revoked_at is not None or row.key_id != self._key.key_id:
            return None  # a grant sealed under another server secret is as good as revoked
        return row

    async def load_code(self, code: str) -> CodeInfo | None:
        """What the code was issued for, or None (unknown, expired, revoked). A code already used revokes its grant."""
        async with self._writing() as conn:
            row = await self._token(conn, code, "code")
            if row is None:
                return None
            if row.used_at is not None:
                await self._revoke(conn, row.grant_id)
                return None
            expires_at = _aware(row.expires_at)
            if expires_at <= self._now():
                return None
            details = json.loads(row.details)
            return CodeInfo(
                grant_id=row.grant_id,
                client_id=row.client_id,
                redirect_uri=details["redirect_uri"],
                redirect_uri_provided_explicitly=bool(details["explicit"]),
                code_challenge=details["code_challenge"],
                scopes=row.scopes.split(),
                resource=row.resource,
                expires_at=expires_at,
            )

    async def redeem_code(self, code: str) -> Issued | None:
        """Tokens for a valid, unused code; None otherwise. A second redemption revokes the grant."""
        async with self._writing() as conn:
            return await self._exchange(conn, code, "code")

    async def refresh(self, refresh_token: str) -> Issued | None:
        """A new token pair for a valid refresh token, which is used up (rotation); reuse revokes the grant."""
        async with self._writing() as conn:
            return await self._exchange(conn, refresh_token, "refresh")

    async def refresh_grant(self, refresh_token: str) -> GrantInfo | None:
        """The grant of a live, unused refresh token, or None; a used one revokes its grant (reuse)."""
        async with self._writing() as conn:
            row = await self._token(conn, refresh_token, "refresh")
            if row is None or _aware(row.expires_at) <= self._now():
                return None
            if row.used_at is not None:
                await self._revoke(conn, row.grant_id)
                return None
            return _info(row, row.grant_expires_at)

    async def _exchange(self, conn: AsyncConnection, presented: str, kind: Kind) -> Issued | None:
        now = self._now()
        row = await self._token(conn, presented, kind)
        if row is None or _aware(row.expires_at) <= now or _aware(row.grant_expires_at) <= now:
            return None
        marked = await conn.execute(
            update(tokens)
            .where(tokens.c.token_hash == token_hash(presented), tokens.c.used_at.is_(None))
            .values(used_at=now)
        )
        if marked.rowcount != 1:  # used before: a replay, or a stolen token racing the real client
            await self._revoke(conn, row.grant_id)
            return None
        grant_expiry = _aware(row.grant_expires_at)
        access, refresh = new_token("access"), new_token("refresh")
        try:
            wrap_access = self._key.rewrap(row.wrapped_key, presented, kind, access, "access")
            wrap_refresh = self._key.rewrap(row.wrapped_key, presented, kind, refresh, "refresh")
        except UnsealError:
            return None
        access_expiry = min(now + ACCESS_TTL, grant_expiry)
        await self._add_token(conn, access, "access", row.grant_id, wrap_access, access_expiry)
        await self._add_token(
            conn, refresh, "refresh", row.grant_id, wrap_refresh, min(now + REFRESH_TTL, grant_expiry)
        )
        return Issued(row.grant_id, access, refresh, int((access_expiry - now).total_seconds()), row.scopes.split())

    async def verify(self, access_token: str) -> Verified | None:
        """The grant behind a live access token, with its Experiture token decrypted; None if not valid."""
        now = self._now()
        async with self._store.begin(write=False) as conn:
            row = await self._token(conn, access_token, "access")
        if row is None or _aware(row.expires_at) <= now or _aware(row.grant_expires_at) <= now:
            return None
        try:
            upstream = self._key.open(
                row.ciphertext,
                row.wrapped_key,
                _aad(row.grant_id, row.client_id, row.resource),
                access_token,
                "access",
            )
        except UnsealError:
            return None
        return Verified(
            row.grant_id,
            row.client_id,
            row.scopes.split(),
            row.resource,
            _aware(row.expires_at),
            upstream,
            row.tenant or row.grant_id,
        )

    # Consent transactions and failed pastes.

    async def put_transaction(self, txn: str, params: dict[str, Any], csrf: str) -> None:
        """Keep a validated authorization request until the user answers the consent page (or it expires)."""
        values = {
            "txn_hash": token_hash(txn),
            "params": json.dumps(params),
            "csrf_hash": token_hash(csrf),
            "expires_at": self._now() + TRANSACTION_TTL,
        }
        async with self._store.begin(write=True) as conn:
            await conn.execute(insert(transactions).values(**values))

    async def update_transaction(self, txn: str, params: dict[str, Any]) -> None:
        """Replace a transaction's parameters (a pasted token waiting for the user's confirmation)."""
        stmt = update(transactions).where(transactions.c.txn_hash == token_hash(txn)).values(params=json.dumps(params))
        async with self._store.begin(write=True) as conn:
            await conn.execute(stmt)

    async def get_transaction(self, txn: str) -> tuple[dict[str, Any], str] | None:
        """A live transaction's parameters and CSRF hash, or None."""
        query = select(transactions).where(transactions.c.txn_hash == token_hash(txn))
        async with self._store.begin(write=False) as conn:
            row = (await conn.execute(query)).first()
        if row is None or _aware(row.expires_at) <= self._now():
            return None
        return json.loads(row.params), row.csrf_hash

    async def take_transaction(self, txn: str) -> bool:
        """End a transaction; whether it was still there (a second answer to one page finds nothing)."""
        async with self._store.begin(write=True) as conn:
            removed = await conn.execute(delete(transactions).where(transactions.c.txn_hash == token_hash(txn)))
        return removed.rowcount == 1

    async def failures(self, source: str, window: timedelta) -> int:
        """Failed pastes from this source in the current window."""
        async with self._store.begin(write=False) as conn:
            row = (await conn.execute(_failure_row(source))).first()
        if row is None or _aware(row.window_start) <= self._now() - window:
            return 0
        return int(row.n)

    async def add_failure(self, source: str, window: timedelta) -> int:
        """Count one failed paste from this source; the count in the current window."""
        now = self._now()
        async with self._store.begin(write=True) as conn:
            row = (await conn.execute(_failure_row(source))).first()
            if row is None or _aware(row.window_start) <= now - window:
                await conn.execute(delete(failures).where(failures.c.source == source))
                await conn.execute(insert(failures).values(source=source, window_start=now, count=1))
                return 1
            await conn.execute(update(failures).where(failures.c.source == source).values(count=failures.c.count + 1))
            return int(row.n) + 1

    # Revocation.

    async def revoke_token(self, token: str) -> str | None:
        """Revoke the grant of any of its tokens (RFC 7009 revokes the grant); its id, or None if unknown."""
        async with self._writing() as conn:
            found = (
                await conn.execute(select(tokens.c.grant_id).where(tokens.c.token_hash == token_hash(token)))
            ).first()
            if found is None:
                return None
            await self._revoke(conn, found.grant_id)
            return str(found.grant_id)

    async def grant_of(self, token: str) -> tuple[str, str] | None:
        """The grant id and client id of any live token, or None."""
        query = (
            select(grants.c.grant_id, grants.c.client_id)
            .join(tokens, tokens.c.grant_id == grants.c.grant_id)
            .where(tokens.c.token_hash == token_hash(token))
        )
        async with self._store.begin(write=False) as conn:
            row = (await conn.execute(query)).first()
        return (str(row.grant_id), str(row.client_id)) if row is not None else None

    async def revoke_grant(self, grant_id: str) -> bool:
        """Revoke a grant by id; whether it was live."""
        async with self._writing() as conn:
            return await self._revoke(conn, grant_id)

    async def _revoke(self, conn: AsyncConnection, grant_id: str) -> bool:
        now = self._now()
        for listener in self._listeners:
            listener(grant_id)  # before the commit: a cache must never outlive a revocation
        if self.listener is not None:
            # Delivered to every listening process when this transaction commits, not before (nor if it fails).
            await conn.execute(select(func.pg_notify(CHANNEL, grant_id)))
            expected = self._echoes.get(conn)
            if expected is not None and self.listener.connected:
                # Every process listening now acknowledges once it dropped the grant (this one's listener too).
                listening = (await conn.execute(_LISTENERS, {"name": APPLICATION_NAME})).scalar()
                self.listener.expect(grant_id)
                expected.append((grant_id, int(listening or 0)))
        changed = await conn.execute(
            update(grants)
            .where(grants.c.grant_id == grant_id, grants.c.revoked_at.is_(None))
            .values(revoked_at=now, ciphertext=b"")  # the sealed token goes with the grant
        )
        await conn.execute(delete(tokens).where(tokens.c.grant_id == grant_id))
        await conn.execute(insert(revocations).values(grant_id=grant_id, at=now))
        return bool(changed.rowcount)

    async def forget(self, grant_ids: Sequence[str]) -> Forgotten:
        """End these grants and every grant sharing their memory, then delete that memory (campaigns and history);
        a later consent of the same client and token starts a memory of its own.

        The grants end first, acknowledged by every process; the memory is then marked forgotten as it is deleted, so
        that a call answered just before the end does not write it again. A crash between the two steps loses
        nothing the operator wanted kept: the ended grants' rows stay until the sweep, and running it again finishes
        the work."""
        wanted = list(dict.fromkeys(grant_ids))
        async with self._writing() as conn:
            named = (
                await conn.execute(select(grants.c.grant_id, grants.c.tenant).where(grants.c.grant_id.in_(wanted)))
            ).all()
            tenants = sorted({row.tenant or row.grant_id for row in named})
            sharing = select(grants.c.grant_id).where(
                grants.c.revoked_at.is_(None),
                grants.c.tenant.in_(tenants) | grants.c.grant_id.in_([row.grant_id for row in named]),
            )
            ended = [row.grant_id for row in await conn.execute(sharing)]
            for grant_id in ended:
                await self._revoke(conn, grant_id)
            await conn.execute(delete(lineages).where(lineages.c.tenant.in_(tenants)))
        campaigns = 0
        for tenant in tenants:
            campaigns += await self._store.forget(tenant, None, for_good=self._now())
        found = {row.grant_id for row in named}
        return Forgotten(len(ended), campaigns, [g for g in wanted if g not in found])

    async def remembered(self, tenants: Sequence[str]) -> dict[str, int]:
        """How many campaigns each of these tenants' memories holds."""
        return await self._store.counts(tenants)

    async def revocation_mark(self) -> int:
        """A number that grows with every revocation, so that a process knows when its cache of grants is stale."""
        async with self._store.begin(write=False) as conn:
            return int((await conn.execute(select(func.max(revocations.c.seq)))).scalar() or 0)

    async def grant_list(self) -> list[GrantInfo]:
        """Every grant, newest first."""
        query = select(grants).order_by(grants.c.created_at.desc(), grants.c.grant_id)
        async with self._store.begin(write=False) as conn:
            return [_info(row, row.expires_at) for row in await conn.execute(query)]

    async def sweep(self) -> int:
        """Delete expired tokens, transactions, failure windows, old revoked or expired grants; how many rows.

        Idempotent, so any process may run it at any time; on PostgreSQL one replica at a time (the others skip).
        Lineages stay: a user who consents again, even long after, finds the memory of before."""
        now = self._now()
        removed = 0
        async with self._store.begin(write=True) as conn:
            if self.listener is not None:
                got = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": _SWEEP_LOCK})
                if not got.scalar():
                    return 0  # another replica sweeps right now: the same rows
            removed += (await conn.execute(delete(tokens).where(tokens.c.expires_at <= now))).rowcount
            removed += (await conn.execute(delete(transactions).where(transactions.c.expires_at <= now))).rowcount
            removed += (
                await conn.execute(delete(failures).where(failures.c.window_start <= now - FAILURE_WINDOW_KEPT))
            ).rowcount
            ended = select(grants.c.grant_id).where(
                (grants.c.expires_at <= now) | (grants.c.key_id != self._key.key_id) | grants.c.revoked_at.is_not(None)
            )
            ended_ids = [r.grant_id for r in await conn.execute(ended)]
            if ended_ids:
                await conn.execute(delete(tokens).where(tokens.c.grant_id.in_(ended_ids)))
                removed += (await conn.execute(delete(grants).where(grants.c.grant_id.in_(ended_ids)))).rowcount
            removed += (
                await conn.execute(
                    # The newest row stays, so that the mark never goes back to a value a cache has seen.
                    delete(revocations).where(
                        revocations.c.at <= now - REVOCATIONS_KEPT,
                        revocations.c.seq < select(func.max(revocations.c.seq)).scalar_subquery(),
                    )
                )
            ).rowcount
        return removed


def _info(row: Row[Any], expires_at: datetime) -> GrantInfo:
    revoked: datetime | None = row.revoked_at
    return GrantInfo(
        grant_id=row.grant_id,
        client_id=row.client_id,
        scopes=row.scopes.split(),
        upstream_scopes=row.upstream_scopes.split(),
        fingerprint=row.fingerprint,
        created_at=_aware(row.created_at),
        expires_at=_aware(expires_at),
        revoked_at=_aware(revoked) if revoked is not None else None,
        tenant=row.tenant or row.grant_id,
    )


def _failure_row(source: str) -> Any:
    # "count" is also a method of every row, hence the label.
    return select(failures.c.window_start, failures.c.count.label("n")).where(failures.c.source == source)
