"""What the model reads from the memory features: pure functions of their results."""

from __future__ import annotations

from datetime import datetime

from experiture_mcp.memory.catalog import AMBIGUITY_MARGIN
from experiture_mcp.memory.entry import Entry
from experiture_mcp.memory.service import HOW_REMEMBERED, Found
from experiture_mcp.render import quote

__all__ = ["HOW_REMEMBERED", "render_found"]


def _ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return "just now"


def _line(n: int, entry: Entry, score: float, now: datetime) -> str:
    name = quote(entry.name) if entry.name else "(name unknown)"
    facts = [entry.channel or "channel unknown", f"last known state {entry.state or 'unknown'}"]
    return (
        f"{n}. {name}: id {entry.campaign_id}; {', '.join(facts)}; seen {_ago(entry.last_seen, now)}; match {score:g}"
    )


def render_found(found: Found, query: str, now: datetime) -> str:
    """The text of a find_campaigns answer: candidates best first, and what to do with them."""
    if not found.matches:
        if found.remembered == 0:
            return (
                f"No campaigns are remembered for this account yet, so {quote(query)} cannot be found by name.\n"
                f"{HOW_REMEMBERED}"
            )
        return (
            f"No remembered campaign matches {quote(query)} ({found.remembered} remembered for this account; "
            f"names are matched word by word, ignoring case, accents and small typos).\n{HOW_REMEMBERED}"
        )
    shown = len(found.matches)
    more = f"; {found.total - shown} more matched less well" if found.total > shown else ""
    lines = [f"{shown} remembered campaign{'s match' if shown != 1 else ' matches'} {quote(query)} (best first{more}):"]
    lines += [_line(i, m.entry, m.score, now) for i, m in enumerate(found.matches, 1)]
    best = found.matches[0]
    if found.ambiguous:
        tied = [m for m in found.matches if best.score - m.score <= AMBIGUITY_MARGIN]
        names = ", ".join(quote(m.entry.name or m.entry.campaign_id) for m in tied[:5])
        lines.append(
            f"Ambiguous: {names} match about equally well. Ask the user which one they mean; do not pick one yourself."
        )
    else:
        lines.append(
            f"Best match: {quote(best.entry.name or best.entry.campaign_id)} ({best.entry.campaign_id}). If that is "
            "what the user meant, use its id with get_status, get_summary or get_metrics."
        )
    lines.append("States are as last seen; call get_status for the current one.")
    return "\n".join(lines)
