"""An index's unstemmed words in memory: did-you-mean, fuzzy words (`word~`) and completion are
one C-speed edit-distance scan (rapidfuzz) or one binary search over them, whatever the engine
that supplied the words."""

from __future__ import annotations

import bisect
import time
from typing import Callable

from rapidfuzz import process as fuzz_process
from rapidfuzz.distance import Levenshtein


class Vocabulary:
    """`words` sorted; `expansion`: at most this many near words of a fuzzy word."""

    def __init__(self, words: list[str], expansion: int = 64):
        self.words = words
        self.known = frozenset(words)
        self.expansion = expansion
        self.built = time.monotonic()

    def correct(self, word: str, frequency: Callable[[str], int]) -> str | None:
        """The most frequent known word within edit distance 1 (short words) or 2, or None."""
        word = word.lower()
        if len(word) < 3 or word in self.known or not word.isalpha():
            return None
        limit = 1 if len(word) <= 4 else 2
        matches = fuzz_process.extract(word, self.words, scorer=Levenshtein.distance, score_cutoff=limit, limit=50)
        if not matches:
            return None
        best = min(matches, key=lambda m: (m[1], -frequency(m[0]), m[0]))
        return best[0]

    def near(self, word: str, distance: int) -> list[str]:
        """Known words within `distance` edits of `word`, closest first."""
        matches = fuzz_process.extract(
            word.lower(), self.words, scorer=Levenshtein.distance, score_cutoff=distance, limit=self.expansion
        )
        return [m[0] for m in sorted(matches, key=lambda m: (m[1], m[0]))]

    def starting_with(self, prefix: str) -> list[str]:
        """Known words that start with `prefix`, in order."""
        start = bisect.bisect_left(self.words, prefix)
        end = bisect.bisect_left(self.words, prefix + "\U0010ffff", lo=start)
        return self.words[start:end]
