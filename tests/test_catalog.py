"""Ranking names against queries: pure functions over the demo's real campaign names."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from experiture_mcp.memory.catalog import MIN_SCORE, Index, is_ambiguous, normalize, words
from experiture_mcp.memory.entry import Entry

NAMES = {
    "spring": ("Spring Re-engagement Direct Mail", "direct_mail"),
    "summer": ("Summer Collection Early Access", "email"),
    "flash": ("Weekend Flash Sale SMS", "sms"),
    "tokyo": ("Tokyo Flagship Store Opening Push", "push"),
    "april": ("April Product Newsletter", "email"),
    "fall": ("Fall Catalog Mailing", "direct_mail"),
    "cafe": ("Café Crème Launch", "email"),
}
T0 = datetime(2026, 11, 28, tzinfo=UTC)
INDEX = Index(
    Entry(f"{i:08d}-0000-4000-8000-000000000000", name=name, channel=channel, last_seen=T0 - timedelta(hours=i))
    for i, (name, channel) in enumerate(NAMES.values())
)


def best(query: str, **filters: str) -> str | None:
    matches, _ = INDEX.rank(query, limit=5, **filters)
    return matches[0].entry.name if matches else None


def test_normalize_drops_case_accents_and_punctuation() -> None:
    assert normalize("  Café-Crème  LAUNCH! ") == "cafe creme launch"
    assert words("Re-engagement re ENGAGEMENT") == ["re", "engagement"]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("spring mailing", "spring"),
        ("re-engagment spring", "spring"),  # a typo, and the words in another order
        ("SPRING DM", "spring"),  # dm: the channel's usual name
        ("flash sale", "flash"),
        ("tokio flagship", "tokyo"),
        ("cafe creme", "cafe"),
        ("CAFÉ", "cafe"),
        ("newsleter", "april"),
        ("catalog", "fall"),
    ],
)
def test_the_intended_campaign_ranks_first(query: str, expected: str) -> None:
    assert best(query) == NAMES[expected][0]


def test_nothing_unrelated_matches() -> None:
    assert INDEX.rank("quarterly webinar", limit=5) == ([], 0)
    assert INDEX.rank("   ", limit=5) == ([], 0)


def test_every_candidate_clears_the_floor_and_filters_apply() -> None:
    matches, total = INDEX.rank("email", limit=10)
    assert total == len(matches) and all(m.score >= MIN_SCORE for m in matches)
    assert [m.entry.channel for m in matches[:3]] == ["email"] * 3 and matches[2].score == 100
    assert best("sale", channel="email") is None
    assert best("mail", channel="direct_mail") in (NAMES["spring"][0], NAMES["fall"][0])


def test_a_near_tie_is_ambiguous_and_a_clear_winner_is_not() -> None:
    tie, _ = INDEX.rank("direct mail", limit=5)
    clear, _ = INDEX.rank("spring mailing", limit=5)
    assert is_ambiguous(tie)
    assert not is_ambiguous(clear)
    assert tie[0].entry.name == NAMES["spring"][0]  # on a tie, the one seen most recently first


def test_tags_are_searched_like_names() -> None:
    index = Index([Entry("x", name="Q4 push", tags=("holiday", "vip"))])
    assert [m.entry.campaign_id for m in index.rank("vip", limit=5)[0]] == ["x"]
