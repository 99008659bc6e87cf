"""Query evaluation with numpy, over the index's Whoosh segments.

Whoosh evaluates a query one document at a time: a tree of matcher objects steps through the
posting lists in Python and scores each document it lands on. Here each node of the same query
tree (compile.py builds it from Whoosh's query classes) is evaluated over whole posting lists at
once: a term's postings are read block by block into arrays (and kept: segments never change),
scores are array arithmetic over every document a node matches, phrase and proximity checks
compare sorted arrays of positions, facets are counts over column arrays, and the top hits come
from a partial sort. The scores are scoring.py's formulas (Whoosh's BM25, BM25F, sums for
And/Or), so a query ranks as it would through Whoosh's own matchers, in a few milliseconds.

Only reading: the writer side never imports this module.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

import numpy as np
from whoosh import query as wq
from whoosh.codec.whoosh3 import LENGTHS_COLUMN
from whoosh.reading import ReaderClosed
from whoosh.util.numeric import byte_to_length
from whoosh.util.times import datetime_to_long

from ...folding import SKETCH_BYTES, sketch_rows
from . import scoring, termvectors
from .queries import BM25FWord, MinimumMatch
from .ranking import Ranking
from .schema import TEXT_FIELDS
from .segments import posting_blocks

# Whoosh stores a field's length in a document as one byte; this decodes all 256 at once.
_LENGTH_OF_BYTE = np.array([byte_to_length(b) for b in range(256)], dtype=np.float64)
# Bytes of decoded postings kept in memory, across all segments and readers.
POSTINGS_CACHE_BYTES = 32 << 20
# Bytes of Python objects per cache entry (measured with sys.getsizeof on Reuters): the key with
# its term, and the ordered dictionary's slot; a Postings object with its two arrays' headers.
_ENTRY_OVERHEAD, _POSTINGS_OVERHEAD = 200, 350


class Unsupported(TypeError):
    """A query node this evaluator does not know (query.py only builds ones it does)."""


# --- postings -----------------------------------------------------------------------------------

@dataclass
class Postings:
    """One term's postings in one segment: ascending document numbers, term frequencies, and
    for positional fields all positions in a row (the documents' positions one after another)."""

    ids: np.ndarray  # int64, segment-local
    weights: np.ndarray  # float64
    raw_positions: bytes | None = None
    _positions: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    @property
    def nbytes(self) -> int:
        # Raw positions, and once a phrase needs them, 8-byte positions and owners: 5x the raw.
        return self.ids.nbytes + self.weights.nbytes + len(self.raw_positions or b"") * 5

    def positions(self) -> tuple[np.ndarray, np.ndarray]:
        """(document number, position) of every occurrence, in document then position order."""
        if self._positions is None:
            positions = np.frombuffer(self.raw_positions or b"", dtype="<u4").astype(np.int64)
            owners = np.repeat(self.ids, self.weights.astype(np.int64))
            self._positions = (owners, positions)
        return self._positions


def read_postings(leaf: Any, fieldname: str, term: bytes) -> Postings | None:
    """A term's postings in one segment as arrays, positions (if any) as one run of raw bytes."""
    try:
        info = leaf._terms.term_info(fieldname, term)
    except Exception:  # TermNotFound
        return None
    fmt = leaf.schema[fieldname].format
    positional = fmt.supports("positions") and fmt.fixed_value_size() is None
    ids_parts: list[np.ndarray] = []
    weight_parts: list[np.ndarray] = []
    value_parts: list[bytes] = []
    for count, deltas, weights, values in posting_blocks(leaf._terms._postfile, info):
        ids_parts.append(np.cumsum(np.asarray(deltas, dtype=np.int64)))
        if weights is None:
            weight_parts.append(np.ones(count))
        elif isinstance(weights, float):
            weight_parts.append(np.full(count, weights))
        else:
            weight_parts.append(np.asarray(weights, dtype=np.float64))
        if positional and values:
            value_parts.append(b"".join(values))
    return Postings(_joined(ids_parts, np.int64), _joined(weight_parts, np.float64),
                    b"".join(value_parts) if positional else None)


def _entry_bytes(postings: Postings | None) -> int:
    """What an entry of the cache costs in memory, Python's objects included (the key, the
    dictionary's slot, the arrays' headers: most entries are small, and were once counted as
    their data only, which let the cache grow to 1.3x its budget). A term a segment lacks is
    remembered too."""
    return _ENTRY_OVERHEAD + (postings.nbytes + _POSTINGS_OVERHEAD if postings is not None else 0)


class PostingsCache:
    """Decoded postings by (segment, field, term), least recently used first out. Shared by
    every snapshot of an index: a segment's postings never change (deletions are a mask)."""

    def __init__(self, capacity: int = POSTINGS_CACHE_BYTES):
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str, bytes], Postings | None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, bytes], load: Callable[[], Postings | None]) -> Postings | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        postings = load()
        size = _entry_bytes(postings)
        if size > self.capacity // 4:
            return postings  # a huge list is not worth pushing everything else out
        with self._lock:
            if key not in self._items:
                self._items[key] = postings
                self._bytes += size
                while self._bytes > self.capacity and self._items:
                    _, old = self._items.popitem(last=False)
                    self._bytes -= _entry_bytes(old)
        return postings

    def __len__(self) -> int:
        return len(self._items)

    def retain(self, segment_ids: set[str]) -> None:
        """Forget the postings of segments that are gone (merged away or deleted)."""
        with self._lock:
            for key in [key for key in self._items if key[0] not in segment_ids]:
                postings = self._items.pop(key)
                self._bytes -= _entry_bytes(postings)


# Terms whose document frequency a snapshot remembers for feedback (about 100 bytes each).
_FREQUENCIES_REMEMBERED = 10_000


# --- segments and snapshots -----------------------------------------------------------------------

class SegmentData:
    """Per-document arrays of one segment: field lengths, dates, categories, years, file
    checksums and near-duplicate sketches."""

    def __init__(self, leaf: Any):
        self.segment_id = leaf.segment().segment_id()
        self.size = leaf.doc_count_all()
        schema = leaf.schema
        self.field_lengths: dict[str, int] = dict(getattr(leaf.segment(), "_fieldlengths", {}) or {})
        self.lengths: dict[str, np.ndarray] = {}
        for name in schema.scorable_names():
            self.lengths[name] = self._lengths(leaf, name)
        self.dates = self._numbers(leaf, "date") if "date" in schema else np.zeros(self.size, dtype=np.int64)
        self.categories = Facet.of(self._values(leaf, "category"))
        self.years = Facet.of(self._values(leaf, "year"))
        self.checksums = _checksum_keys(self._values(leaf, "checksum"))
        self.sketches = self._sketches(leaf)
        self.frequencies = termvectors.Frequencies.read(leaf)

    def _lengths(self, leaf: Any, name: str) -> np.ndarray:
        reader = leaf._perdoc._cached_reader(f"_{name}_len", LENGTHS_COLUMN)
        if reader is None:
            return np.zeros(self.size)
        raw = reader._dbfile.get(reader._basepos, reader._count)
        codes = np.zeros(self.size, dtype=np.uint8)
        codes[:len(raw)] = np.frombuffer(raw, dtype=np.uint8)
        return _LENGTH_OF_BYTE[codes]

    def _numbers(self, leaf: Any, name: str) -> np.ndarray:
        if not leaf.has_column(name):
            return np.zeros(self.size, dtype=np.int64)
        reader = leaf.column_reader(name, translate=False)
        count, width = reader._count, reader._fixedlen
        raw = np.frombuffer(reader._dbfile.get(reader._basepos, count * width), dtype=">" + reader._typecode)
        # A document without a value has the column's default (Whoosh's "missing": 2**64 - 1
        # for dates); it sorts before every real date and is in no date range.
        values = np.full(self.size, np.iinfo(np.int64).min, dtype=np.int64)
        present = raw != reader._default
        values[:count][present] = raw[present].astype(np.int64)
        return values

    def _sketches(self, leaf: Any) -> np.ndarray:
        """Each document's near-duplicate sketch (folding.sketch_rows; zeros for none: a segment
        written before sketches were kept, whose articles are compared by their texts)."""
        present = "sketch" in leaf.schema and leaf.has_column("sketch")
        reader = leaf.column_reader("sketch", translate=False) if present else None
        if reader is None or reader._fixedlen != SKETCH_BYTES:
            return sketch_rows(b"", self.size)
        return sketch_rows(reader._dbfile.get(reader._basepos, reader._count * reader._fixedlen), self.size)

    def _values(self, leaf: Any, name: str) -> list[str]:
        if not leaf.has_column(name):
            return [""] * self.size
        return [v.decode("utf-8") if isinstance(v, bytes) else str(v or "")
                for v in leaf.column_reader(name, translate=False)]


def _checksum_keys(checksums: list[str]) -> np.ndarray:
    """File checksums (hex) as numbers, to find byte-identical articles with array operations:
    the first 60 bits (a collision among a few million articles is a 1 in 10^5 event and would
    only fold two articles). A document without one gets -1 (Snapshot makes it unique)."""
    return np.fromiter(map(_checksum_key, checksums), dtype=np.int64, count=len(checksums))


def _checksum_key(checksum: str) -> int:
    try:
        return int(checksum[:15], 16) if len(checksum) >= 15 else -1
    except ValueError:
        return -1


@dataclass
class Facet:
    """A column as codes per document and the names the codes stand for."""

    codes: np.ndarray
    names: list[str]

    @classmethod
    def of(cls, values: list[str]) -> "Facet":
        names = sorted(set(values))
        index = {name: code for code, name in enumerate(names)}
        return cls(np.fromiter((index[v] for v in values), dtype=np.int32, count=len(values)), names)

    @classmethod
    def joined(cls, parts: list["Facet"]) -> "Facet":
        """The facets of consecutive segments as one, recoding each part's codes (no Python
        work per document: a snapshot is rebuilt after every commit)."""
        names = sorted({name for part in parts for name in part.names})
        index = {name: code for code, name in enumerate(names)}
        codes = [np.asarray([index[n] for n in part.names], dtype=np.int32)[part.codes] if part.names
                 else part.codes for part in parts]
        return cls(_joined(codes, np.int32), names)

    def counts(self, docs: np.ndarray) -> dict[str, int]:
        counted = np.bincount(self.codes[docs], minlength=len(self.names))
        return {self.names[code]: int(n) for code in np.flatnonzero(counted) if (n := counted[code])}


class Snapshot:
    """One generation of the index as the evaluator sees it: the Whoosh reader (stored fields,
    term dictionaries) and the segments' arrays laid end to end in Whoosh's document order.
    Built once per generation and shared by every thread; Whoosh calls go through `lock`."""

    def __init__(self, reader: Any, ranking: Ranking, cache: PostingsCache,
                 segments: dict[str, SegmentData], lock: threading.Lock):
        self.reader = reader
        self.ranking = ranking
        self.cache = cache
        self.lock = lock
        self.schema = reader.schema
        self.leaves: list[tuple[Any, int, SegmentData]] = []
        for leaf, offset in reader.leaf_readers():
            if leaf.segment() is None:  # the EmptyReader of an index without segments
                continue
            segment_id = leaf.segment().segment_id()
            data = segments.get(segment_id)
            if data is None:
                data = segments[segment_id] = SegmentData(leaf)
            self.leaves.append((leaf, offset, data))
        self.size = sum(data.size for _, _, data in self.leaves)
        self._offsets = [offset for _, offset, _ in self.leaves]
        live = np.ones(self.size, dtype=bool)
        for leaf, offset, _ in self.leaves:
            deleted = list(leaf.segment().deleted_docs() or ())
            if deleted:
                live[offset + np.asarray(deleted, dtype=np.int64)] = False
        self.live = live
        self.documents = int(live.sum())
        self.lengths = {name: _joined([d.lengths[name] for _, _, d in self.leaves], np.float64)
                        for name in self.schema.scorable_names()}
        totals: dict[str, int] = {}
        for _, _, data in self.leaves:
            for name, total in data.field_lengths.items():
                totals[name] = totals.get(name, 0) + total
        self.total_length = {name: totals.get(name, 0) for name in self.lengths}
        self.average_length = {name: (totals.get(name, 0) / self.size if self.size else 0.0) or 1.0
                               for name in self.lengths}
        self.dates = _joined([d.dates for _, _, d in self.leaves], np.int64)
        self.categories = Facet.joined([d.categories for _, _, d in self.leaves])
        self.years = Facet.joined([d.years for _, _, d in self.leaves])
        checksums = _joined([d.checksums for _, _, d in self.leaves], np.int64)
        missing = np.flatnonzero(checksums < 0)
        checksums[missing] = -1 - missing  # no checksum: a copy of nothing
        self.checksums = checksums
        self._frequencies: dict[tuple[str, bytes], int] = {}
        self._vector_readers: dict[int, Callable[[int], bytes]] = {}
        self._term_frequencies: dict[int, int] = {}

    # --- term statistics and postings ---

    def doc_frequency(self, fieldname: str, term: bytes) -> int:
        key = (fieldname, term)
        known = self._frequencies.get(key)
        if known is None:
            with self.lock:
                known = self._frequencies[key] = self.reader.doc_frequency(fieldname, term)
        return known

    def postings(self, fieldname: str, term: bytes) -> list[tuple[int, Postings]]:
        found = []
        # A scored field with no length in a segment has no terms there: not worth a look in its
        # term dictionary (a folder without summaries or subtitles: half of a word's look-ups).
        scored = fieldname in self.lengths
        for leaf, offset, data in self.leaves:
            if scored and not data.field_lengths.get(fieldname):
                continue
            def load(leaf: Any = leaf) -> Postings | None:
                with self.lock:
                    return read_postings(leaf, fieldname, term)

            postings = self.cache.get((data.segment_id, fieldname, term), load)
            if postings is not None and len(postings.ids):
                found.append((offset, postings))
        return found

    def stored_fields(self, docnum: int) -> dict[str, Any]:
        """A document's stored fields (those of the schema), from its segment's column: what
        Whoosh's reader.stored_fields returns, without its dispatch through the multi-reader and
        a schema look-up per field (a third of the cost of the 10 a page reads)."""
        leaf, offset, _ = self.leaves[bisect_right(self._offsets, docnum) - 1]
        with self.lock:
            if leaf.is_closed:
                raise ReaderClosed
            stored = leaf._perdoc.stored_fields(docnum - offset)
        if stored.keys() <= self.schema._fields.keys():  # a new dict each time: ours to return
            return stored
        return {name: value for name, value in stored.items() if name in self.schema}

    def locate(self, docnum: int) -> tuple[str, int]:
        """(segment id, document number within it) of a document: a key that stays valid
        across generations, for as long as the segment lives."""
        data, local = self._segment_of(docnum)
        return data.segment_id, local

    def sketch(self, docnum: int) -> np.ndarray:
        """A document's near-duplicate sketch (folding.sketch_rows), read from its segment's
        array: not joined like the other arrays, to hold the sketches once (2.8 MB for Reuters)."""
        data, local = self._segment_of(docnum)
        return data.sketches[local]

    def _segment_of(self, docnum: int) -> tuple[SegmentData, int]:
        _, offset, data = self.leaves[bisect_right(self._offsets, docnum) - 1]
        return data, docnum - offset

    def term_frequencies(self, hashes: np.ndarray) -> np.ndarray:
        """The document frequency of each term (named by its hash, termvectors.py) in the text
        field where it is most common: what BM25FWord's idf reads. Feedback asks for the same
        heavy terms again and again: they are remembered for the generation."""
        known = self._term_frequencies
        found = np.fromiter((known.get(h, -1) for h in hashes.tolist()), dtype=np.int64, count=len(hashes))
        missing = np.flatnonzero(found < 0)
        if len(missing):
            fields = np.zeros((len(TEXT_FIELDS), len(missing)), dtype=np.int64)
            for _, _, data in self.leaves:
                fields += data.frequencies.lookup(hashes[missing])
            found[missing] = fields.max(axis=0)
            if len(known) > _FREQUENCIES_REMEMBERED:  # each worker holds it: a bounded memo will do
                known.clear()
            known.update(zip(hashes[missing].tolist(), found[missing].tolist()))
        return found

    def term_vectors(self, docnums: np.ndarray) -> list[bytes]:
        """The documents' term vectors (termvectors.py; b"" for a document without one)."""
        places = [bisect_right(self._offsets, int(docnum)) - 1 for docnum in docnums]
        with self.lock:
            return [self._vectors_of(place)(int(docnum) - self._offsets[place])
                    for place, docnum in zip(places, docnums)]

    def _vectors_of(self, place: int) -> Callable[[int], bytes]:
        """A reader of the term vector column of the leaf at `place` (opened once per
        generation; call with the lock)."""
        reader = self._vector_readers.get(place)
        if reader is None:
            leaf = self.leaves[place][0]
            if termvectors.COLUMN in leaf.schema and leaf.has_column(termvectors.COLUMN):
                reader = leaf.column_reader(termvectors.COLUMN, translate=False).__getitem__
            else:
                reader = lambda docnum: b""  # noqa: E731 - a segment written without vectors
            self._vector_readers[place] = reader
        return reader

    def text_lengths(self, docnums: list[int]) -> list[float]:
        """Indexed terms of each document's title and body (approximate: Whoosh keeps a byte)."""
        total = np.zeros(len(docnums))
        for name in ("title", "body"):
            if name in self.lengths:
                total += self.lengths[name][docnums]
        return total.tolist()

    def expand(self, query: wq.Query) -> list[bytes]:
        """The index terms a prefix, wildcard or fuzzy term stands for."""
        with self.lock:
            return [t for t in query._btexts(self.reader) if t]


def _frequency(parts: list[tuple[int, Postings]]) -> int:
    """A term's document frequency from its postings in every segment: what Whoosh's term
    dictionary says (deleted documents included), without looking the term up a second time."""
    return sum(len(postings.ids) for _, postings in parts)


def _joined(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


# --- evaluation -----------------------------------------------------------------------------------

@dataclass
class Match:
    """Which documents a query node matches (a mask over the snapshot) and their scores."""

    hits: np.ndarray
    scores: np.ndarray


class Evaluator:
    """Evaluates one query tree against one snapshot."""

    def __init__(self, snapshot: Snapshot):
        self.s = snapshot
        self.size = snapshot.size
        # Words and phrases already evaluated: the tiers of a keyword query share them.
        # (Matches are never modified once returned.)
        self._memo: dict[wq.Query, Match] = {}

    def empty(self) -> Match:
        return Match(np.zeros(self.size, dtype=bool), np.zeros(self.size))

    def evaluate(self, query: wq.Query) -> Match:
        if query is wq.NullQuery or isinstance(query, wq.NullQuery.__class__):
            return self.empty()
        if isinstance(query, (BM25FWord, wq.Phrase)):
            found = self._memo.get(query)
            if found is None:
                found = self._memo[query] = self._leaf(query)
            return found
        if isinstance(query, MinimumMatch):
            return self.minimum_match(query)
        if isinstance(query, wq.Term):
            return self.term(query.fieldname, query.text, query.boost)
        if isinstance(query, wq.AndNot):
            return self.and_not(query)
        if isinstance(query, wq.AndMaybe):
            return self.and_maybe(query)
        if isinstance(query, wq.Not):
            return self.negation(query)
        if isinstance(query, wq.And):
            return self.conjunction(query)
        if isinstance(query, wq.Or):
            return self.disjunction(query)
        if isinstance(query, wq.NumericRange) and query.fieldname == "date":
            return self.date_range(query)
        if isinstance(query, wq.Every):
            return Match(self.s.live.copy(), np.where(self.s.live, query.boost, 0.0))
        if isinstance(query, wq.MultiTerm):
            return self.multi_term(query)
        raise Unsupported(f"cannot evaluate {type(query).__name__}")

    def _leaf(self, query: BM25FWord | wq.Phrase) -> Match:
        if isinstance(query, BM25FWord):
            return self.bm25f_word(query)
        return self.phrase(query.fieldname, query.words, query.slop, query.boost)

    # --- leaves ---

    def _term_scores(self, fieldname: str, term: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """(global ids, BM25 score) of a term in a field; None when no document has it."""
        s = self.s
        field_type = s.schema[fieldname]
        parts = s.postings(fieldname, term)
        if not parts:
            return None
        ids = _joined([p.ids + offset for offset, p in parts], np.int64)
        tf = _joined([p.weights for _, p in parts], np.float64)
        if not field_type.scorable:
            return ids, tf
        k1, b = s.ranking.k1_b(fieldname)
        idf = scoring.field_idf(s.size, _frequency(parts))
        length = s.lengths[fieldname][ids]
        length[length == 0] = 1
        scores = scoring.field_bm25(tf, length, s.average_length[fieldname], idf, k1, b)
        return ids, scores

    def term(self, fieldname: str, text: Any, boost: float = 1.0) -> Match:
        term = self._bytes(fieldname, text)
        found = self._term_scores(fieldname, term) if term is not None else None
        match = self.empty()
        if found is not None:
            ids, scores = found
            match.hits[ids] = True
            match.scores[ids] = scores * boost
        return match

    def _bytes(self, fieldname: str, text: Any) -> bytes | None:
        if fieldname not in self.s.schema:
            return None
        if isinstance(text, bytes):
            return text
        try:
            return self.s.schema[fieldname].to_bytes(text)
        except ValueError:
            return None

    def bm25f_word(self, query: BM25FWord) -> Match:
        """query.py's BM25F: length-normalised, weighted frequencies summed over the fields,
        then one saturation, with the document frequency of the field where the word is
        most common."""
        s = self.s
        ranking = query.ranking
        weights = ranking.weights()
        tf = np.zeros(self.size)
        hits = np.zeros(self.size, dtype=bool)
        frequency = 0
        for sub in query.subqueries:
            fieldname = sub.fieldname
            term = self._bytes(fieldname, sub.text)
            if term is None:
                continue
            parts = s.postings(fieldname, term)
            if not parts:
                continue
            frequency = max(frequency, _frequency(parts))
            b = ranking.k1_b(fieldname)[1]
            average = s.average_length.get(fieldname) or 1.0
            ids = _joined([p.ids + offset for offset, p in parts], np.int64)
            weight = _joined([p.weights for _, p in parts], np.float64)
            length = s.lengths[fieldname][ids] if fieldname in s.lengths else np.ones(len(ids))
            length[length == 0] = 1
            tf[ids] += scoring.normalised_tf(weight, length, average, weights.get(fieldname, 1.0), b)
            hits[ids] = True
        if not frequency:
            return self.empty()
        idf = scoring.word_idf(s.size, frequency)
        scores = np.zeros(self.size)
        scores[hits] = query.boost * scoring.saturated(tf[hits], idf, ranking.k1_b("*")[0])
        return Match(hits, scores)

    def multi_term(self, query: wq.MultiTerm) -> Match:
        match = self.empty()
        for term in self.s.expand(query):
            found = self._term_scores(query.fieldname, term)
            if found is not None:
                ids, scores = found
                match.hits[ids] = True
                match.scores[ids] += scores
        match.scores *= query.boost
        return match

    def phrase(self, fieldname: str, words: list[str], slop: int, boost: float) -> Match:
        """Documents with the words in order, each within `slop` positions after the one
        before (Whoosh's SpanNear2 with mindist 1); scored by the sum of the words' scores."""
        match = self.empty()
        terms = [self._bytes(fieldname, w) for w in words]
        if not terms or any(t is None for t in terms):
            return match
        for offset, per_term in self._segment_postings(fieldname, terms):
            common = per_term[0].ids
            for postings in per_term[1:]:
                common = np.intersect1d(common, postings.ids, assume_unique=True)
                if not len(common):
                    break
            if not len(common):
                continue
            ends = self._occurrences(per_term[0], common)
            for postings in per_term[1:]:
                ends = _followers(ends, self._occurrences(postings, common), max(1, slop))
                if not len(ends):
                    break
            if len(ends):
                match.hits[offset + np.unique(ends >> 32)] = True
        if match.hits.any():
            for term in dict.fromkeys(terms):
                found = self._term_scores(fieldname, term)
                if found is not None:
                    ids, scores = found
                    keep = match.hits[ids]
                    match.scores[ids[keep]] += scores[keep] * terms.count(term)
            match.scores *= boost
        return match

    def _segment_postings(self, fieldname: str, terms: list[bytes]) -> list[tuple[int, list[Postings]]]:
        by_segment: dict[int, dict[bytes, Postings]] = {}
        for term in dict.fromkeys(terms):
            for offset, postings in self.s.postings(fieldname, term):
                by_segment.setdefault(offset, {})[term] = postings
        return [(offset, [found[t] for t in terms]) for offset, found in by_segment.items()
                if all(t in found for t in terms)]

    @staticmethod
    def _occurrences(postings: Postings, docs: np.ndarray) -> np.ndarray:
        """Sorted keys (document << 32 | position) of the term's occurrences in `docs`."""
        owners, positions = postings.positions()
        keep = np.isin(owners, docs, assume_unique=False)
        return (owners[keep] << 32) | positions[keep]

    def date_range(self, query: wq.NumericRange) -> Match:
        dates = self.s.dates
        hits = self.s.live.copy()
        start = getattr(query, "startdate", None)
        end = getattr(query, "enddate", None)
        if start is not None:
            bound = datetime_to_long(start) if isinstance(start, datetime) else start
            hits &= (dates > bound) if query.startexcl else (dates >= bound)
        if end is not None:
            bound = datetime_to_long(end) if isinstance(end, datetime) else end
            hits &= (dates < bound) if query.endexcl else (dates <= bound)
        return Match(hits, np.zeros(self.size))

    # --- combinations ---

    def conjunction(self, query: wq.And) -> Match:
        parts = [self.evaluate(q) for q in query.subqueries]
        if not parts:
            return self.empty()
        hits = parts[0].hits.copy()
        for part in parts[1:]:
            hits &= part.hits
        scores = np.zeros(self.size)
        for part in parts:
            scores[hits] += part.scores[hits]
        return Match(hits, scores * query.boost)

    def disjunction(self, query: wq.Or) -> Match:
        match = self.empty()
        for sub in query.subqueries:
            part = self.evaluate(sub)
            match.hits |= part.hits
            match.scores += part.scores
        match.scores *= query.boost
        return match

    def minimum_match(self, query: MinimumMatch) -> Match:
        count = np.zeros(self.size, dtype=np.int32)
        scores = np.zeros(self.size)
        for sub in query.subqueries:
            part = self.evaluate(sub)
            count += part.hits
            scores += part.scores
        hits = count >= query.minmatch
        scores = np.where(hits, scores * query.boost, 0.0)
        if query.coordination:
            scores *= (count / len(query.subqueries)) ** query.coordination
        return Match(hits, scores)

    def and_not(self, query: wq.AndNot) -> Match:
        positive = self.evaluate(query.a)
        negative = self.evaluate(query.b)
        hits = positive.hits & ~negative.hits
        return Match(hits, np.where(hits, positive.scores, 0.0) * query.boost)

    def and_maybe(self, query: wq.AndMaybe) -> Match:
        required = self.evaluate(query.a)
        optional = self.evaluate(query.b)
        scores = np.where(required.hits, required.scores + optional.scores, 0.0)
        return Match(required.hits, scores * query.boost)

    def negation(self, query: wq.Not) -> Match:
        inner = self.evaluate(query.query)
        hits = self.s.live & ~inner.hits
        return Match(hits, np.where(hits, query.boost, 0.0))


def _followers(ends: np.ndarray, keys: np.ndarray, slop: int) -> np.ndarray:
    """Of the occurrences `keys`, those 1..slop positions after one of `ends` (same document:
    keys of different documents are 2**32 apart), as the new ends of the chains."""
    if not len(ends) or not len(keys):
        return ends[:0]
    low = np.searchsorted(keys, ends + 1, "left")
    high = np.searchsorted(keys, ends + slop, "right")
    counts = high - low
    total = int(counts.sum())
    if not total:
        return ends[:0]
    starts = np.repeat(low - np.cumsum(counts) + counts, counts)
    return np.unique(keys[starts + np.arange(total)])


# --- ranking ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ranked:
    """Matching documents: how many, the top ones (global document number, score) in order,
    and facet counts over all of them. The `first` of them match the query itself; the others
    match only its looser reading (`below`) and rank after every one of those. With
    `fold_copies`, `total`, `first` and `top` count each set of byte-identical articles once,
    and `copies` says how many others each top one stands for."""

    total: int
    top: list[tuple[int, float]]
    facets: dict[str, dict[str, int]]
    first: int = 0
    copies: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Feedback:
    """Pseudo-relevance feedback: `rescore` is given the first pass's `window` best matches
    (document, score), best first, and returns what to add to each one's score (never less
    than 0): they are ranked again among themselves, and everything below stays below."""

    window: int
    rescore: Callable[[np.ndarray, np.ndarray], np.ndarray]


def rank(snapshot: Snapshot, query: wq.Query, limit: int, *, below: wq.Query | None = None,
         feedback: Feedback | None = None, filter: wq.Query | None = None, exclude: set[int] | None = None,
         by_date: bool = False, facets: bool = True, fold_copies: bool = False) -> Ranked:
    """Evaluate `query` (restricted by `filter`, without the documents in `exclude`) and return
    the `limit` best (or newest) documents, then those matching only `below`, best (or newest)
    first. Ties go to the earlier document, as in Whoosh. `fold_copies` keeps only the
    best-ranked of byte-identical articles (same file checksum); facets count every match."""
    evaluator = Evaluator(snapshot)
    match = evaluator.evaluate(query)
    allowed = snapshot.live.copy()
    if filter is not None:
        allowed &= evaluator.evaluate(filter).hits
    if exclude:
        allowed[np.fromiter(exclude, dtype=np.int64)] = False
    first = match.hits & allowed
    hits, scores = first, match.scores
    if below is not None:
        looser = evaluator.evaluate(below)
        hits = first | (looser.hits & allowed)
        scores = np.where(first, match.scores, looser.scores)
    docs = np.flatnonzero(hits)
    if feedback is not None and not by_date and len(docs):
        window = docs[_tiered_top(scores[docs], first[docs], feedback.window)]
        scores = scores.copy()
        scores[window] += feedback.rescore(window, scores[window])
    counts = {}
    if facets and len(docs):
        counts = {"category": snapshot.categories.counts(docs), "year": snapshot.years.counts(docs)}
    keys = snapshot.dates[docs] if by_date else scores[docs]
    in_first = first[docs]
    copies = np.zeros(len(docs), dtype=np.int64)
    if fold_copies and len(docs):
        docs, keys, in_first, copies = _first_copies(docs, keys, in_first, snapshot.checksums[docs])
    tier = int(in_first.sum())
    if not len(docs) or limit <= 0:
        return Ranked(len(docs), [], counts, tier)
    order = _tiered_top(keys, in_first, limit)
    top = docs[order]
    shown = scores[top]
    if not by_date and tier < len(top):
        # Scores say the order: the looser matches' are scaled below the last full match's.
        lowest = scores[docs[in_first]].min() if tier else 0.0
        highest = scores[docs[~in_first]].max()
        if tier and highest >= lowest > 0:
            shown = np.where(first[top], shown, shown * (lowest / highest) * (1 - 1e-6))
    return Ranked(len(docs), [(int(d), float(v)) for d, v in zip(top, shown)], counts, tier,
                  [int(c) for c in copies[order]])


def _first_copies(docs: np.ndarray, keys: np.ndarray, in_first: np.ndarray,
                  checksums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Of each set of documents with the same checksum, the one ranked first (of the first tier
    if any is, then the largest key, then the earliest document, as `_tiered_top` orders them),
    with its key, its tier and how many others it stands for. Over the whole match set, so that
    totals and every page agree."""
    # Few articles have a copy (484 of Reuters' 21,577): the checksums alone, sorted, say which
    # matches do, and only those are ordered by rank (a sort of four keys).
    by_sum = np.argsort(checksums)
    sorted_sums = checksums[by_sum]
    same = sorted_sums[1:] == sorted_sums[:-1]
    copies = np.zeros(len(docs), dtype=np.int64)
    if not same.any():
        return docs, keys, in_first, copies
    copied = np.zeros(len(docs), dtype=bool)
    copied[by_sum[1:][same]] = True
    copied[by_sum[:-1][same]] = True
    subset = np.flatnonzero(copied)
    order = subset[np.lexsort((docs[subset], _descending(keys[subset]), ~in_first[subset], checksums[subset]))]
    sorted_sums = checksums[order]
    starts = np.flatnonzero(np.r_[True, sorted_sums[1:] != sorted_sums[:-1]])
    copies[order[starts]] = np.diff(np.r_[starts, len(order)]) - 1
    # Back in document order: _top breaks ties by position.
    first = np.sort(np.concatenate([np.flatnonzero(~copied), order[starts]]))
    return docs[first], keys[first], in_first[first], copies[first]


def _tiered_top(keys: np.ndarray, first: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the `limit` best keys where `first` is set, then of the best of the rest."""
    chosen = np.flatnonzero(first)
    order = chosen[_top(keys[chosen], limit)]
    if len(order) < limit and len(chosen) < len(keys):
        rest = np.flatnonzero(~first)
        order = np.concatenate([order, rest[_top(keys[rest], limit - len(order))]])
    return order


def _top(keys: np.ndarray, limit: int) -> np.ndarray:
    """Indices of the `limit` largest keys, largest first, ties in index order (a stable
    sort of the part that can make the cut)."""
    if len(keys) > limit:
        threshold = np.partition(keys, len(keys) - limit)[len(keys) - limit]
        candidates = np.flatnonzero(keys >= threshold)
    else:
        candidates = np.arange(len(keys))
    order = candidates[np.argsort(_descending(keys[candidates]), kind="stable")]
    return order[:limit]


def _descending(keys: np.ndarray) -> np.ndarray:
    """Keys whose ascending order is the descending order of `keys`. Not `-keys` for integers:
    the smallest int64 (an undated article's date) is its own negation, and sorted first."""
    return ~keys if np.issubdtype(keys.dtype, np.integer) else -keys


def highlight_terms(query: wq.Query, snapshot: Snapshot) -> dict[str, set[str]]:
    """field -> the terms a query looks for there (prefixes expanded), negated parts left out:
    what snippets mark."""
    found: dict[str, set[str]] = {}

    def add(fieldname: str, text: Any) -> None:
        found.setdefault(fieldname, set()).add(text.decode("utf-8") if isinstance(text, bytes) else str(text))

    def walk(node: wq.Query) -> None:
        if isinstance(node, BM25FWord):
            for sub in node.subqueries:
                add(sub.fieldname, sub.text)
        elif isinstance(node, wq.Term):
            add(node.fieldname, node.text)
        elif isinstance(node, wq.Phrase):
            for word in node.words:
                add(node.fieldname, word)
        elif isinstance(node, wq.AndNot):
            walk(node.a)
        elif isinstance(node, wq.Not):
            return
        elif isinstance(node, wq.MultiTerm):
            for term in snapshot.expand(node):
                add(node.fieldname, term)
        elif isinstance(node, wq.BinaryQuery):
            walk(node.a)
            walk(node.b)
        elif isinstance(node, wq.CompoundQuery):
            for sub in node.subqueries:
                walk(sub)

    walk(query)
    return found
