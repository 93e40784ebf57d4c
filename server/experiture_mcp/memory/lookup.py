"""Learning campaigns' names from their ids: one summary request each, a few at a time."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace

import anyio

from experiture_mcp.client import CampaignClient
from experiture_mcp.errors import ExperitureError
from experiture_mcp.memory.entry import Entry, Source, entry_from

__all__ = ["LOOKUP_CONCURRENCY", "look_up"]

log = logging.getLogger(__name__)

LOOKUP_CONCURRENCY = 4


async def look_up(
    client: CampaignClient,
    campaign_ids: Sequence[str],
    *,
    token: str | None = None,
    source: Source = "lookup",
    concurrency: int = LOOKUP_CONCURRENCY,
    states: bool = False,
    progress: Callable[[int, str, ExperitureError | None], None] | None = None,
) -> list[Entry]:
    """Entries for the ids whose summary could be read, in the order given; `progress` hears of each id.

    With `states`, each campaign's status is read too, for its last known execution state.
    """
    found: dict[str, Entry] = {}
    limiter = anyio.CapacityLimiter(concurrency)
    done = 0

    async def one(cid: str) -> None:
        nonlocal done
        error: ExperitureError | None = None
        async with limiter:
            try:
                entry = entry_from(await client.get_summary(cid, token=token), source)
                if entry is not None and states:
                    with contextlib.suppress(ExperitureError):
                        status = await client.get_status(cid, token=token)
                        entry = replace(entry, state=status.execution.state)
                if entry is not None:
                    found[cid] = entry
            except ExperitureError as exc:
                error = exc
                log.info("lookup of %s: %s", cid, exc)
        done += 1
        if progress is not None:
            progress(done, cid, error)

    async with anyio.create_task_group() as tg:
        for cid in campaign_ids:
            tg.start_soon(one, cid)
    return [found[cid] for cid in campaign_ids if cid in found]
