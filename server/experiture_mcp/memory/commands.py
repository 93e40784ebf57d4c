"""`experiture-mcp campaigns import|list|forget`: the memory from a terminal, for the configured token."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from experiture_mcp.config import TOKEN_ENV, Settings
from experiture_mcp.errors import ExperitureError
from experiture_mcp.memory.entry import Entry
from experiture_mcp.memory.service import Memory, MemoryUnavailable

__all__ = ["add_campaigns_command", "run_campaigns"]


def add_campaigns_command(commands: Any, parents: Sequence[argparse.ArgumentParser]) -> None:
    """Add `campaigns` and its actions to the CLI's subcommands."""
    campaigns = commands.add_parser(
        "campaigns",
        parents=list(parents),
        help="the campaigns the server remembers for this token: import a list, list them, forget some",
    )
    actions = campaigns.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "import",
        parents=list(parents),
        help="remember the campaigns of a CSV (header: id[,name,tags]) or JSON list; id-only rows are looked up",
    )
    add.add_argument("file", type=Path)
    listing = actions.add_parser("list", parents=list(parents), help="print the remembered campaigns, newest first")
    listing.add_argument("--json", action="store_true", help="print them as JSON")
    forget = actions.add_parser("forget", parents=list(parents), help="remove remembered campaigns")
    forget.add_argument("campaign_ids", nargs="*", metavar="ID", help="campaign UUIDs (or app links) to forget")
    forget.add_argument("--all", action="store_true", help="forget every campaign remembered for this token")


def _err(text: str) -> None:
    sys.stderr.write(f"experiture-mcp campaigns: {text}\n")


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")  # stdout-ok: a terminal command's own output


def run_campaigns(settings: Settings, args: argparse.Namespace, transport: Any = None) -> int:
    """Run one `campaigns` action; 0 when it did everything, 1 when something was skipped or failed, 2 on misuse."""
    if settings.token is None:
        _err(f"{TOKEN_ENV} is not set: campaigns are remembered per token, so there is nothing to {args.action}.")
        return 2
    if args.action == "forget" and bool(args.campaign_ids) == bool(args.all):
        _err("give the campaign ids to forget, or --all (not both).")
        return 2
    return anyio.run(_run, settings, args, transport)


async def _run(settings: Settings, args: argparse.Namespace, transport: Any) -> int:
    memory = Memory(settings, lambda: datetime.now(UTC))
    try:
        if args.action == "import":
            return await _import(memory, settings, args.file, transport)
        if args.action == "list":
            return await _list(memory, settings, as_json=args.json)
        return await _forget(memory, settings, None if args.all else args.campaign_ids)
    except MemoryUnavailable as exc:
        _err(str(exc))
        return 1
    finally:
        await memory.aclose()


async def _import(memory: Memory, settings: Settings, path: Path, transport: Any) -> int:
    from experiture_mcp.client import CampaignClient
    from experiture_mcp.memory.importing import ImportFileError, parse_import_file
    from experiture_mcp.memory.lookup import look_up

    try:
        rows, problems = parse_import_file(path)
    except ImportFileError as exc:
        _err(str(exc))
        return 2
    skipped = [f"line {p.line}: {p.message}" for p in problems]
    named = [Entry(r.campaign_id, name=r.name, source="import", tags=r.tags) for r in rows if r.name]
    bare = {r.campaign_id: r for r in rows if not r.name}
    learned: list[Entry] = []
    if bare:
        sys.stderr.write(f"Looking up the names of {len(bare)} campaigns with the configured token…\n")

        def progress(done: int, cid: str, error: ExperitureError | None) -> None:
            if error is not None:
                skipped.append(f"line {bare[cid].line}: {cid}: {str(error).splitlines()[0]}")
            if done == len(bare) or done % 25 == 0:
                sys.stderr.write(f"  {done}/{len(bare)} looked up\n")

        async with CampaignClient(settings, transport=transport) as client:
            found = await look_up(client, list(bare), source="import", progress=progress)
        learned = [replace(e, tags=bare[e.campaign_id].tags) for e in found]
    entries = named + learned
    await memory.remember(settings.token, entries)
    for line in sorted(skipped, key=lambda s: int(s.split()[1].rstrip(":"))):
        _err(f"skipped {line}")
    _out(
        f"Imported {len(entries)} campaign{'s' if len(entries) != 1 else ''} ({len(learned)} named by a lookup) "
        f"into {memory.where}; {len(skipped)} row{'s' if len(skipped) != 1 else ''} skipped."
    )
    return 1 if skipped else 0


async def _list(memory: Memory, settings: Settings, *, as_json: bool) -> int:
    entries = await memory.entries(settings.token)
    if as_json:
        rows = [
            {
                "campaignId": e.campaign_id,
                "name": e.name,
                "channel": e.channel,
                "state": e.state,
                "tags": list(e.tags),
                "source": e.source,
                "firstSeen": e.first_seen.isoformat() if e.first_seen else None,
                "lastSeen": e.last_seen.isoformat() if e.last_seen else None,
            }
            for e in entries
        ]
        _out(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        seen = f"{e.last_seen:%Y-%m-%d %H:%M} UTC" if e.last_seen else "?"
        _out(f"{e.campaign_id}  {seen}  {e.channel or '-':<11}  {e.state or '-':<18}  {e.name or '(name unknown)'}")
    _out(f"{len(entries)} campaign{'s' if len(entries) != 1 else ''} remembered for this token in {memory.where}")
    return 0


async def _forget(memory: Memory, settings: Settings, campaign_ids: list[str] | None) -> int:
    from experiture_mcp.models import campaign_id_from

    ids: list[str] | None = None
    if campaign_ids is not None:
        ids = []
        for value in campaign_ids:
            cid = campaign_id_from(value)
            if cid is None:
                _err(f"{value[:80]!r} is not a campaign id or link; nothing was forgotten.")
                return 2
            ids.append(cid)
    removed = await memory.forget(settings.token, ids)
    scope = "every campaign" if ids is None else f"{len(ids)} given campaign{'s' if len(ids) != 1 else ''}"
    _out(f"Forgot {removed} remembered campaign{'s' if removed != 1 else ''} ({scope}) in {memory.where}.")
    return 0
