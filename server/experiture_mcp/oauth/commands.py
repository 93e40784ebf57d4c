"""`experiture-mcp oauth add-client|list|revoke|forget|purge`: OAuth clients and grants for operators."""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import anyio

from experiture_mcp.config import Settings

__all__ = ["add_oauth_command", "run_oauth"]

STATIC_PREFIX = "exmcp_client_"
LISTEN_WAIT_SECONDS = 3.0  # how long a revocation waits to connect its listener (PostgreSQL), then goes on


def add_oauth_command(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add `oauth` and its actions to the CLI's subcommands."""
    oauth = commands.add_parser(
        "oauth",
        parents=list(parents),
        help="OAuth mode's clients and grants: mint a static client, list, revoke, forget a user's memory, purge",
    )
    actions = oauth.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add-client",
        parents=list(parents),
        help="mint a pre-registered client (for hosts that cannot register themselves); prints its id and secret",
    )
    add.add_argument("--redirect-uri", action="append", required=True, metavar="URI", help="repeat for several")
    add.add_argument("--name", default="Static client", help="the name the consent page shows")
    add.add_argument("--public", action="store_true", help="no client secret (PKCE only), for native apps")
    listing = actions.add_parser("list", parents=list(parents), help="print the clients and grants")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    revoke = actions.add_parser("revoke", parents=list(parents), help="end grants at once (their tokens stop working)")
    revoke.add_argument("grant_ids", nargs="*", metavar="GRANT", help="grant ids, as `oauth list` shows them")
    revoke.add_argument("--client", metavar="CLIENT_ID", help="remove this client and end all its grants")
    forget = actions.add_parser(
        "forget",
        parents=list(parents),
        help="end grants and delete the campaign memory and history they share (a later sign-in starts afresh)",
    )
    forget.add_argument("grant_ids", nargs="+", metavar="GRANT", help="grant ids, as `oauth list` shows them")
    purge = actions.add_parser("purge", parents=list(parents), help="delete expired and revoked rows")
    purge.add_argument("--all-grants", action="store_true", help="also end every live grant (everyone signs in again)")


def _err(text: str) -> None:
    sys.stderr.write(f"experiture-mcp oauth: {text}\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")  # stdout-ok: a terminal command's own output


def run_oauth(settings: Settings, args: argparse.Namespace) -> int:
    """Run one `oauth` action; 0 on success, 1 when something was not found, 2 on misuse."""
    if settings.mcp_secret_key is None:
        _err("EXPERITURE_MCP_SECRET_KEY is not set: use the server's own (it decides which grants are valid).")
        return 2
    if args.action == "revoke" and bool(args.grant_ids) == bool(args.client):
        _err("give grant ids, or --client CLIENT_ID (not both).")
        return 2
    if args.action == "add-client":
        from experiture_mcp.oauth.provider import OurClient

        try:
            OurClient.model_validate({"client_id": "x", "redirect_uris": args.redirect_uri})
        except ValueError:
            _err("every --redirect-uri must be an absolute URL, e.g. https://host.example/oauth/callback")
            return 2
    return anyio.run(_run, settings, args)


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from experiture_mcp.memory import Memory
    from experiture_mcp.oauth.grants import GrantStore

    assert settings.mcp_secret_key is not None
    url = Memory(settings, lambda: datetime.now(UTC)).url
    store = await GrantStore.open(url, settings.mcp_secret_key.get_secret_value(), lambda: datetime.now(UTC))
    try:
        if args.action == "add-client":
            return await _add(store, args)
        if args.action == "list":
            return await _list(store, as_json=args.json)
        done = 1
        async with anyio.create_task_group() as tg:
            if store.listener is not None:
                # Hearing its own NOTIFY back before it answers: by then every server process has heard it too.
                tg.start_soon(store.listen)
                with anyio.move_on_after(LISTEN_WAIT_SECONDS):
                    await store.listener.ready.wait()
            try:
                if args.action == "revoke":
                    done = await _revoke(store, args.grant_ids, args.client)
                elif args.action == "forget":
                    done = await _forget(store, args.grant_ids)
                else:
                    done = await _purge(store, everything=args.all_grants)
            finally:
                tg.cancel_scope.cancel()
        return done
    finally:
        await store.aclose()


async def _add(store: Any, args: argparse.Namespace) -> int:
    client_id = STATIC_PREFIX + secrets.token_urlsafe(16)
    secret = None if args.public else secrets.token_urlsafe(32)
    metadata = {
        "client_name": args.name,
        "redirect_uris": args.redirect_uri,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none" if args.public else "client_secret_post",
    }
    await store.put_client(client_id, "static", metadata, secret)
    _out(f"client_id: {client_id}")
    if secret:
        _out(f"client_secret: {secret}")
        _out("Give both to the host (e.g. Claude's Advanced settings); the secret is shown only this once.")
    return 0


async def _list(store: Any, *, as_json: bool) -> int:
    clients = await store.list_clients()
    grants = await store.grant_list()
    remembered = await store.remembered([g.tenant for g in grants])
    if as_json:
        data = {
            "clients": [
                {"client_id": c.client_id, "kind": c.kind, "name": c.metadata.get("client_name")} for c in clients
            ],
            "grants": [
                {
                    "grant_id": g.grant_id,
                    "client_id": g.client_id,
                    "token_fingerprint": g.fingerprint,
                    "upstream_scopes": g.upstream_scopes,
                    "created_at": g.created_at.isoformat(),
                    "expires_at": g.expires_at.isoformat(),
                    "revoked_at": g.revoked_at.isoformat() if g.revoked_at else None,
                    "remembered_campaigns": remembered[g.tenant],
                }
                for g in grants
            ],
        }
        _out(json.dumps(data, indent=2))
        return 0
    _out(f"{len(clients)} client(s)")
    for c in clients:
        _out(f"  {c.client_id}  {c.kind}  {c.metadata.get('client_name') or ''}".rstrip())
    live = [g for g in grants if g.revoked_at is None]
    _out(f"{len(live)} live grant(s), {len(grants) - len(live)} revoked")
    for g in grants:
        state = "revoked " + g.revoked_at.strftime("%Y-%m-%d %H:%M") if g.revoked_at else "live"
        _out(
            f"  {g.grant_id}  {state}  client {g.client_id}  token …{g.fingerprint[:8]}  "
            f"{' '.join(g.upstream_scopes) or 'no scopes'}  until {g.expires_at:%Y-%m-%d}  "
            f"memory: {remembered[g.tenant]} campaign(s)"
        )
    return 0


async def _revoke(store: Any, grant_ids: list[str], client: str | None) -> int:
    if client:
        if not await store.delete_client(client):
            _err(f"no client {client}")
            return 1
        _out(f"Removed client {client} and ended its grants.")
        return 0
    missing = [g for g in grant_ids if not await store.revoke_grant(g)]
    _out(f"Ended {len(grant_ids) - len(missing)} grant(s).")
    for g in missing:
        _err(f"no live grant {g}")
    return 1 if missing else 0


async def _forget(store: Any, grant_ids: list[str]) -> int:
    forgotten = await store.forget(grant_ids)
    _out(
        f"Ended {forgotten.ended} grant(s) and forgot {forgotten.campaigns} remembered campaign(s) with their "
        "history; signing in again starts a new memory."
    )
    for g in forgotten.missing:
        _err(f"no grant {g}")
    return 1 if forgotten.missing else 0


async def _purge(store: Any, *, everything: bool) -> int:
    if everything:
        ended = 0
        for g in await store.grant_list():
            ended += bool(await store.revoke_grant(g.grant_id))
        _out(f"Ended {ended} live grant(s).")
    _out(f"Deleted {await store.sweep()} expired or revoked row(s).")
    return 0
