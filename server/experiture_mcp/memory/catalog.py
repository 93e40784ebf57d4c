"""Ranking remembered campaigns against the words of a name: pure functions over entries, no database.

Matching ignores case and accents and tolerates typos and word order: each word of the query is matched to the
closest word of a campaign's name (or of its channel's usual names, so "dm" finds direct mail), and a campaign's
score is the mean of its words' similarities, 0 to 100.
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from rapidfuzz import fuzz, process

from experiture_mcp.memory.entry import Entry

__all__ = ["AMBIGUITY_MARGIN", "MIN_SCORE", "Index", "Match", "is_ambiguous", "normalize", "words"]

MIN_SCORE = 50.0  # below this a campaign shares too little with the query to be offered
AMBIGUITY_MARGIN = 8.0  # candidates within this many points of the best are "about as good"
_MIN_WORD_SIMILARITY = 75.0
_CHANNEL_WORDS = {
    "direct_mail": "direct mail dm postal",
    "email": "email",
    "sms": "sms text",
    "push": "push notification",
}
_NON_WORD = re.compile(r"[^0-9a-z]+")


def normalize(text: str) -> str:
    """Lower case, accents removed, punctuation as spaces: the form both names and queries are compared in."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return _NON_WORD.sub(" ", plain).strip()


def words(text: str) -> list[str]:
    """The normalized words of `text`, in order, without repeats."""
    return list(dict.fromkeys(normalize(text).split()))


@dataclass(frozen=True)
class Match:
    """One candidate: the entry and how well it matches, 0 to 100."""

    entry: Entry
    score: float


def is_ambiguous(matches: Sequence[Match]) -> bool:
    """True when the best two candidates are about as good, so the user should choose."""
    return len(matches) >= 2 and matches[0].score - matches[1].score <= AMBIGUITY_MARGIN


class Index:
    """One tenant's entries (most recently seen first) prepared for ranking: every word, and which entries hold it."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = list(entries)
        postings: dict[str, list[int]] = {}
        for i, entry in enumerate(self.entries):
            text = f"{entry.name or ''} {_CHANNEL_WORDS.get(entry.channel or '', entry.channel or '')}"
            for word in dict.fromkeys(words(text) + [w for tag in entry.tags for w in words(tag)]):
                postings.setdefault(word, []).append(i)
        self._postings = postings
        self._vocabulary = list(postings)
        self._by_initial: dict[str, list[str]] = {}
        for word in self._vocabulary:
            self._by_initial.setdefault(word[0], []).append(word)

    def _similar(self, query_word: str) -> dict[str, float]:
        """The vocabulary words close to one query word, with their similarity."""
        found: dict[str, float] = {}
        if len(query_word) >= 3:
            close = process.extract_iter(
                query_word, self._vocabulary, scorer=fuzz.ratio, score_cutoff=_MIN_WORD_SIMILARITY
            )
            found = {word: score for word, score, _ in close}
        # A word and its beginning ("mail", "mailing") count as nearly the same word.
        prefix_score = 90.0 if len(query_word) >= 3 else 85.0
        for word in self._by_initial.get(query_word[0], ()):
            if word.startswith(query_word) or (len(word) >= 3 and query_word.startswith(word)):
                found[word] = max(found.get(word, 0.0), prefix_score)
        if query_word in self._postings:
            found[query_word] = 100.0
        return found

    def rank(
        self, query: str, *, limit: int, channel: str | None = None, state: str | None = None
    ) -> tuple[list[Match], int]:
        """The best `limit` matches, best first (ties: most recently seen first), and how many matched in all."""
        query_words = words(query)
        if not query_words:
            return [], 0
        totals: dict[int, float] = {}
        for n, query_word in enumerate(query_words):
            best: dict[int, float] = {}
            for word, score in sorted(self._similar(query_word).items(), key=itemgetter(1)):
                best.update(dict.fromkeys(self._postings[word], score))  # the best score is written last
            if n == 0:
                totals = best
            else:
                for i, score in best.items():
                    totals[i] = totals.get(i, 0.0) + score
        floor = MIN_SCORE * len(query_words)
        if channel or state:
            entries = self.entries
            totals = {
                i: total
                for i, total in totals.items()
                if (not channel or entries[i].channel == channel) and (not state or entries[i].state == state)
            }
        count = sum(total >= floor for total in totals.values())
        # Entries are kept most recently seen first, so on a tie the lower index (seen later) wins.
        top = heapq.nlargest(limit, totals.items(), key=lambda item: (item[1], -item[0]))
        matches = [Match(self.entries[i], round(total / len(query_words), 1)) for i, total in top if total >= floor]
        return matches, count
