"""Near-duplicate folding: articles with the same bytes, or nearly the same words, are shown as
one result (the best ranked), which says how many copies it stands for. News folders are full of
them: a wire story filed twice, a correction that changed one sentence.

Two articles are the same when their file checksums are equal, or (near-identical) when their
word 4-shingles overlap by NEAR_DUPLICATE (Jaccard). Shingles are computed only when a comparison
needs them: most pairs are told apart by their scores (near-identical texts score nearly the same
for any query) or by their lengths. Engine-agnostic: an engine hands in candidates that can say
their checksum, their length and their text.
"""

from __future__ import annotations

import re
from typing import Hashable, Mapping, Protocol, Sequence, TypeVar

import numpy as np

from .lru import LruCache

# Two articles whose word 4-shingles overlap this much (Jaccard) are shown as one.
NEAR_DUPLICATE = 0.8
# Byte-identical articles are folded among all the matches (an engine does it over its whole match
# set); near-identical ones, which take reading and comparing texts, among this many best results
# (the first five pages of ten): a query costs the same whatever the number of matches (100 cost
# twice as much).
NEAR_DUPLICATE_WINDOW = 50
# ... and they score within this ratio of each other for any query (a cheap first test).
NEAR_DUPLICATE_SCORE = 0.95
# Shingle sets that share NEAR_DUPLICATE of their union differ in size by less than that; index
# lengths are approximate (one byte each), hence the margin.
_LENGTH_RATIO = 0.6
_SHINGLE_WORD = re.compile(r"\w+")
# Odd 64-bit multipliers that mix four word hashes into one shingle hash.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


class Candidate(Protocol):
    """What folding needs of an article: its checksum (cheap), its length in indexed words if
    known (cheap, or None), a key for the shingle cache (None: do not cache), and its text
    (possibly costly: read only when needed)."""

    checksum: str
    length: float | None
    key: Hashable | None

    def text(self) -> str: ...


class StoredFields:
    """A Candidate over a dict of stored fields (title, body, checksum)."""

    def __init__(self, fields: Mapping[str, object]):
        self.fields = fields
        self.checksum = str(fields.get("checksum") or "")
        self.length = None
        self.key = None

    def text(self) -> str:
        return f"{self.fields.get('title', '')} {self.fields.get('body', '')}"


def shingles(text: str) -> np.ndarray:
    """Hashes of every run of 4 words, sorted and unique."""
    words = np.fromiter(map(hash, _SHINGLE_WORD.findall(text.lower())), dtype=np.int64).view(np.uint64)
    if len(words) < 4:
        words = np.concatenate([words, np.zeros(4 - len(words), dtype=np.uint64)])
    with np.errstate(over="ignore"):
        runs = words[:-3] * _MIX[0] + words[1:-2] * _MIX[1] + words[2:-1] * _MIX[2] + words[3:]
    return np.unique(runs)


class Signature:
    """What decides that two articles are the same."""

    def __init__(self, candidate: Candidate, score: float, cache: LruCache | None = None):
        self.candidate = candidate
        self.checksum = candidate.checksum
        self.length = candidate.length
        self.score = score
        self._cache = cache if candidate.key is not None else None
        self._shingles: np.ndarray | None = None

    @property
    def shingles(self) -> np.ndarray:
        if self._shingles is None:
            if self._cache is not None:
                self._shingles = self._cache.get(self.candidate.key, self._compute)
            else:
                self._shingles = self._compute()
        return self._shingles

    def _compute(self) -> np.ndarray:
        return shingles(self.candidate.text())

    def same_as(self, other: "Signature") -> bool:
        if self.checksum and self.checksum == other.checksum:
            return True
        # Near-identical texts score nearly the same for any query: a cheap test that spares
        # the shingle comparison for almost every pair.
        high, low = max(self.score, other.score), min(self.score, other.score)
        if low < high * NEAR_DUPLICATE_SCORE:
            return False
        # So many shared shingles need about as many words: texts of very different lengths
        # (in indexed terms, known without reading them) are not compared further.
        if self.length is not None and other.length is not None:
            short, long = sorted((self.length, other.length))
            if short < _LENGTH_RATIO * long:
                return False
        small, large = sorted((len(self.shingles), len(other.shingles)))
        if not small or small < NEAR_DUPLICATE * large:
            return False
        common = len(np.intersect1d(self.shingles, other.shingles, assume_unique=True))
        return common >= NEAR_DUPLICATE * (small + large - common)


T = TypeVar("T")


def fold(ranked: Sequence[tuple[T, Candidate]], scores: Sequence[float] | None = None,
         cache: LruCache | None = None) -> list[tuple[tuple[T, Candidate], list[T]]]:
    """Ranked (item, candidate) -> [(best item, its group)], each group holding an article and
    the identical or near-identical articles ranked below it. `scores` (one per item, relevance
    scores whatever the order) let the near-duplicate test skip pairs whose scores differ;
    without them every pair is compared."""
    kept: list[tuple[tuple[T, Candidate], list[T], Signature]] = []
    by_checksum: dict[str, list[T]] = {}
    # The cheap tests of same_as (scores and lengths close), for all kept articles at once.
    kept_scores, kept_lengths = np.empty(len(ranked)), np.empty(len(ranked))
    for index, item in enumerate(ranked):
        signature = Signature(item[1], scores[index] if scores else 1.0, cache)
        group = by_checksum.get(signature.checksum) if signature.checksum else None
        if group is None:
            group = _near_duplicate_group(kept, signature, kept_scores[:len(kept)], kept_lengths[:len(kept)])
        if group is not None:
            group.append(item[0])
            continue
        group = [item[0]]
        kept_scores[len(kept)] = signature.score
        kept_lengths[len(kept)] = np.nan if signature.length is None else signature.length
        kept.append((item, group, signature))
        if signature.checksum:
            by_checksum[signature.checksum] = group
    return [(first, group) for first, group, _ in kept]


def _near_duplicate_group(kept: list, signature: Signature, scores: np.ndarray, lengths: np.ndarray) -> list | None:
    close = np.minimum(scores, signature.score) >= NEAR_DUPLICATE_SCORE * np.maximum(scores, signature.score)
    if signature.length is not None:
        with np.errstate(invalid="ignore"):  # NaN: a length not known, which rules nothing out
            close &= np.isnan(lengths) | (np.minimum(lengths, signature.length)
                                          >= _LENGTH_RATIO * np.maximum(lengths, signature.length))
    for position in np.flatnonzero(close)[::-1]:  # the nearest in rank first
        _first, group, other = kept[position]
        if other.same_as(signature):
            return group
    return None
