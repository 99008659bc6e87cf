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

import base64
import hashlib
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
# Hashes kept in an article's sketch, and the estimated resemblance below which two articles are
# not compared further.
SKETCH_SIZE = 32
SKETCH_FLOOR = 0.4
SKETCH_BANDS = 8
# Odd 64-bit multipliers that mix four word hashes into one shingle hash.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


class Candidate(Protocol):
    """What folding needs of an article: its checksum (cheap), its length in indexed words if
    known (cheap, or None), a key for the shingle cache (None: do not cache), and its text
    (possibly costly: read only when needed). A candidate may also carry a `sketch` (see
    `sketch()`, computed when it was indexed): then only pairs whose sketches say they may be
    near-identical read their texts."""

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


def sketch(text: str) -> str:
    """A bottom-k sketch of the text's 4-shingles (the top 32 bits of the SKETCH_SIZE smallest of
    their hashes, in base64), from hashes that are the same in every process (Python's own str hash is not): kept
    with an article when it is indexed, it estimates the resemblance of two articles without
    their texts (`resemblance`)."""
    words = [_stable_word_hash(word) for word in _SHINGLE_WORD.findall(text.lower())]
    hashes = np.array(words or [0], dtype=np.uint64)
    if len(hashes) < 4:
        hashes = np.concatenate([hashes, np.zeros(4 - len(hashes), dtype=np.uint64)])
    with np.errstate(over="ignore"):
        runs = hashes[:-3] * _MIX[0] + hashes[1:-2] * _MIX[1] + hashes[2:-1] * _MIX[2] + hashes[3:]
    return base64.b64encode((np.unique(runs)[:SKETCH_SIZE] >> np.uint64(32)).astype(">u4").tobytes()).decode("ascii")


def resemblance(first: np.ndarray, second: np.ndarray) -> float:
    """Estimated Jaccard resemblance of the shingle sets two sketches (decoded by
    `sketch_values`) were made from: the share, among the SKETCH_SIZE smallest hashes of both, of
    those in both (exact for short texts, whose sketch is their whole set)."""
    union = np.union1d(first, second)[:SKETCH_SIZE]
    if not len(union):
        return 1.0
    both = np.intersect1d(np.intersect1d(first, second, assume_unique=True), union, assume_unique=True)
    return len(both) / len(union)


def sketch_values(value: str) -> np.ndarray:
    return np.unique(np.frombuffer(base64.b64decode(value), dtype=">u4").astype(np.uint32))


def _stable_word_hash(word: str) -> int:
    found = _WORD_HASHES.get(word)
    if found is None:
        found = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
        if len(_WORD_HASHES) >= 200_000:  # a collection repeats its words: a bounded memo is enough
            _WORD_HASHES.clear()
        _WORD_HASHES[word] = found
    return found


# Word -> stable hash, per process (a cache, not state: any value is recomputed identically).
_WORD_HASHES: dict[str, int] = {}


class Signature:
    """What decides that two articles are the same."""

    def __init__(self, candidate: Candidate, score: float, cache: LruCache | None = None):
        self.candidate = candidate
        self.checksum = candidate.checksum
        self.length = candidate.length
        sketched = getattr(candidate, "sketch", None)
        self.sketch: np.ndarray | None = sketch_values(sketched) if sketched else None
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
        # Sketches far apart are texts far apart (with 32 hashes, a pair sharing 80% of its
        # shingles estimates below SKETCH_FLOOR about once in 10^8): no text is read.
        if self.sketch is not None and other.sketch is not None and resemblance(self.sketch, other.sketch) < SKETCH_FLOOR:
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
    # Sketched articles are compared only with those sharing one of their SKETCH_BANDS smallest
    # hashes (near copies share several: a pair sharing 80% of its shingles misses all eight
    # about once in 400,000), and with every article that has no sketch.
    by_band: dict[int, list[int]] = {}
    unsketched: list[int] = []
    for index, item in enumerate(ranked):
        signature = Signature(item[1], scores[index] if scores else 1.0, cache)
        group = by_checksum.get(signature.checksum) if signature.checksum else None
        if group is None:
            pool = np.arange(len(kept))
            if signature.sketch is not None:
                near = {i for value in signature.sketch[:SKETCH_BANDS].tolist() for i in by_band.get(value, ())}
                pool = np.array(sorted(near.union(unsketched)), dtype=np.intp)
            group = _near_duplicate_group(kept, signature, pool, kept_scores[pool], kept_lengths[pool])
        if group is not None:
            group.append(item[0])
            continue
        group = [item[0]]
        kept_scores[len(kept)] = signature.score
        kept_lengths[len(kept)] = np.nan if signature.length is None else signature.length
        kept.append((item, group, signature))
        if signature.checksum:
            by_checksum[signature.checksum] = group
        if signature.sketch is not None:
            for value in signature.sketch[:SKETCH_BANDS].tolist():
                by_band.setdefault(value, []).append(len(kept) - 1)
        else:
            unsketched.append(len(kept) - 1)
    return [(first, group) for first, group, _ in kept]


def _near_duplicate_group(kept: list, signature: Signature, pool: np.ndarray, scores: np.ndarray,
                          lengths: np.ndarray) -> list | None:
    """The group of the kept article (among those at `pool`, whose scores and lengths are given)
    that `signature` is a near copy of, if any."""
    close = np.minimum(scores, signature.score) >= NEAR_DUPLICATE_SCORE * np.maximum(scores, signature.score)
    if signature.length is not None:
        with np.errstate(invalid="ignore"):  # NaN: a length not known, which rules nothing out
            close &= np.isnan(lengths) | (np.minimum(lengths, signature.length)
                                          >= _LENGTH_RATIO * np.maximum(lengths, signature.length))
    for position in pool[close][::-1]:  # the nearest in rank first
        _first, group, other = kept[position]
        if other.same_as(signature):
            return group
    return None
