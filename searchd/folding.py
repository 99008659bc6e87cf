"""Near-duplicate folding: articles with the same bytes, or nearly the same words, are shown as
one result (the best ranked), which says how many copies it stands for. News folders are full of
them: a wire story filed twice, a correction that changed one sentence.

Two articles are the same when their file checksums are equal, or (near-identical) when their
word 4-shingles overlap by NEAR_DUPLICATE (Jaccard). Shingles are computed only when a comparison
needs them: most pairs are told apart by their scores (near-identical texts score nearly the same
for any query), by their lengths, or by their sketches (a few hashes of the shingles, computed
when an article is indexed), all compared for the whole window at once. Engine-agnostic: an
engine hands in candidates that can say their checksum, their length, their sketch and their text.
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
SKETCH_BYTES = 4 * SKETCH_SIZE
SKETCH_FLOOR = 0.4
SKETCH_BANDS = 8
# Odd 64-bit multipliers that mix four word hashes into one shingle hash.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


class Candidate(Protocol):
    """What folding needs of an article: its checksum (cheap), its length in indexed words if
    known (cheap, or None), a key for the shingle cache (None: do not cache), and its text
    (possibly costly: read only when needed). A candidate may also carry a `sketch` (computed
    when it was indexed: `sketch()`'s base64, or a row of `sketch_rows`): then only pairs whose
    sketches say they may be near-identical read their texts."""

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
    return _runs(np.fromiter(map(hash, _SHINGLE_WORD.findall(text.lower())), dtype=np.int64).view(np.uint64))


def _runs(words: np.ndarray) -> np.ndarray:
    """Word hashes -> the hash of every run of 4 of them, sorted and unique (a text of fewer
    words is padded with zeros)."""
    if len(words) < 4:
        words = np.concatenate([words, np.zeros(4 - len(words), dtype=np.uint64)])
    with np.errstate(over="ignore"):
        runs = words[:-3] * _MIX[0] + words[1:-2] * _MIX[1] + words[2:-1] * _MIX[2] + words[3:]
    return np.unique(runs)


def sketch_hashes(text: str) -> np.ndarray:
    """A bottom-k sketch of the text's 4-shingles: the top 32 bits of the SKETCH_SIZE smallest of
    their hashes (uint32, sorted, unique), from hashes that are the same in every process (Python's
    own str hash is not). Kept with an article when it is indexed, it estimates the resemblance of
    two articles without their texts (`resemblance`). Engines store it as `sketch` (base64) or
    `sketch_row` (fixed width)."""
    known = _WORD_HASHES.get  # most words are known: no call for them
    words = [known(word) or _stable_word_hash(word) for word in _SHINGLE_WORD.findall(text.lower())]
    runs = _runs(np.array(words or [0], dtype=np.uint64))
    return (runs[:SKETCH_SIZE] >> np.uint64(32)).astype(np.uint32)


def sketch(text: str) -> str:
    """`sketch_hashes` as text: big-endian 32-bit words in base64 (`sketch_values` reads it)."""
    return base64.b64encode(sketch_hashes(text).astype(">u4").tobytes()).decode("ascii")


def sketch_row(text: str) -> bytes:
    """`sketch_hashes` in SKETCH_BYTES: big-endian 32-bit words, a short sketch padded by repeating
    its largest hash (the same set, and the same SKETCH_BANDS smallest). `sketch_rows` reads them."""
    return _padded(sketch_hashes(text)).astype(">u4").tobytes()


def sketch_rows(raw: bytes, count: int) -> np.ndarray:
    """`count` rows of sketches from `sketch_row` values laid end to end (rows past the end of
    `raw` are zeros: no sketch), as a (count, SKETCH_SIZE) uint32 array."""
    rows = np.zeros((count, SKETCH_SIZE), dtype=np.uint32)
    stored = len(raw) // SKETCH_BYTES
    rows[:stored] = np.frombuffer(raw, dtype=">u4", count=stored * SKETCH_SIZE).reshape(stored, SKETCH_SIZE)
    return rows


def _padded(values: np.ndarray) -> np.ndarray:
    row = np.zeros(SKETCH_SIZE, dtype=np.uint32)  # np.pad(mode="edge") takes ten times as long
    if len(values):
        row[:len(values)] = values
        row[len(values):] = values[-1]
    return row


def resemblance(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Estimated Jaccard resemblance of the shingle sets of each pair of sketches (rows of
    SKETCH_SIZE hashes, as `sketch_row` pads them: (pairs, SKETCH_SIZE) arrays, the i-th of
    `first` with the i-th of `second`): the share, among the SKETCH_SIZE smallest hashes of both,
    of those in both (exact for short texts, whose sketch is their whole set)."""
    values = np.concatenate([first, second], axis=1).astype(np.int64)
    # A row's padding repeats its largest hash: only the first of equal hashes in a row counts.
    values[:, 1:SKETCH_SIZE][first[:, 1:] == first[:, :-1]] = _PAST
    values[:, SKETCH_SIZE + 1:][second[:, 1:] == second[:, :-1]] = _PAST
    values.sort(axis=1)
    # Sorted, a hash of both rows is followed by itself.
    distinct = values < _PAST
    distinct[:, 1:] &= values[:, 1:] != values[:, :-1]
    union = distinct & (np.cumsum(distinct, axis=1) <= SKETCH_SIZE)
    shared = np.zeros_like(union)
    shared[:, :-1] = values[:, 1:] == values[:, :-1]
    size = union.sum(axis=1)
    return np.where(size > 0, (union & shared).sum(axis=1) / np.maximum(size, 1), 1.0)


# Beyond every 32-bit hash.
_PAST = 1 << 32


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
        # SKETCH_SIZE hashes (a row of zeros: none), or None.
        self.row: np.ndarray | None = _padded(sketch_values(sketched)) if isinstance(sketched, str) else sketched
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
        return bool(_worth_comparing([self, other])[0, 1]) and self.same_words(other)

    def same_words(self, other: "Signature") -> bool:
        """Whether the two texts share NEAR_DUPLICATE of their shingles (reads both texts)."""
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
    signatures = [Signature(candidate, scores[index] if scores else 1.0, cache)
                  for index, (_, candidate) in enumerate(ranked)]
    compared = _worth_comparing(signatures)
    # Articles with no earlier one worth comparing (most) are kept without a look.
    lonely = ~np.tril(compared, -1).any(axis=1)
    kept: list[tuple[tuple[T, Candidate], list[T]]] = []
    group_at: dict[int, list[T]] = {}  # the group each kept article leads, by its rank
    leads = np.zeros(len(ranked), dtype=bool)
    by_checksum: dict[str, list[T]] = {}
    for index, (item, signature) in enumerate(zip(ranked, signatures)):
        group = by_checksum.get(signature.checksum) if signature.checksum else None
        if group is None and not lonely[index]:
            for position in np.flatnonzero(compared[index, :index] & leads[:index])[::-1].tolist():
                if signatures[position].same_words(signature):  # the nearest in rank first
                    group = group_at[position]
                    break
        if group is not None:
            group.append(item[0])
            continue
        group = group_at[index] = [item[0]]
        leads[index] = True
        kept.append((item, group))
        if signature.checksum:
            by_checksum[signature.checksum] = group
    return kept


def _worth_comparing(signatures: list[Signature]) -> np.ndarray:
    """Which pairs of articles may be near copies, by what is known without their texts, for all
    pairs at once (symmetric)."""
    scores = np.array([s.score for s in signatures], dtype=np.float64)
    # Near-identical texts score nearly the same for any query: a cheap test that spares the
    # shingle comparison for almost every pair.
    close = np.minimum.outer(scores, scores) >= NEAR_DUPLICATE_SCORE * np.maximum.outer(scores, scores)
    # So many shared shingles need about as many words: texts of very different lengths (in
    # indexed terms, known without reading them) are not compared further.
    lengths = np.array([np.nan if s.length is None else s.length for s in signatures], dtype=np.float64)
    with np.errstate(invalid="ignore"):  # NaN: a length not known, which rules nothing out
        unknown = np.isnan(lengths)
        close &= (unknown[:, None] | unknown[None, :]
                  | (np.minimum.outer(lengths, lengths) >= _LENGTH_RATIO * np.maximum.outer(lengths, lengths)))
    # Sketched articles are compared only if they share one of their SKETCH_BANDS smallest hashes
    # (near copies share several: a pair sharing 80% of its shingles misses all eight about once
    # in 400,000) and their sketches resemble (with 32 hashes, a pair sharing 80% of its shingles
    # estimates below SKETCH_FLOOR about once in 10^8). A row of zeros is the sketch of no text,
    # or the place of a sketch a document was indexed without: such articles are compared by text.
    rows = np.array([_NO_SKETCH if s.row is None else s.row for s in signatures],
                    dtype=np.uint32).reshape(len(signatures), SKETCH_SIZE)
    sketched = rows.any(axis=1)
    first, second = np.nonzero(close & sketched[:, None] & sketched[None, :])
    first, second = first[first < second], second[first < second]
    if len(first):
        bands = rows[:, :SKETCH_BANDS]
        apart = ~(bands[first, :, None] == bands[second, None, :]).any(axis=(1, 2))
        near = ~apart
        apart[near] = resemblance(rows[first[near]], rows[second[near]]) < SKETCH_FLOOR
        close[first[apart], second[apart]] = False
        close[second[apart], first[apart]] = False
    return close


_NO_SKETCH = np.zeros(SKETCH_SIZE, dtype=np.uint32)
