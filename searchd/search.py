"""The search side: a plain request in, plain results out (hits with snippets, facets, timing).

Readers never write. One snapshot of the index (engine.py) is shared by every thread and
replaced when the index generation changes, so a commit is visible to the next query and an
unchanged index costs nothing to re-open.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

import numpy as np
from rapidfuzz import process as fuzz_process
from rapidfuzz.distance import Levenshtein
from whoosh import query as wq
from whoosh.searching import Searcher as WhooshSearcher

from .engine import PostingsCache, Ranked, SegmentData, Snapshot, highlight_terms, rank
from .index import IndexReader
from .query import MAX_EXPANSION, MAX_QUERY_CHARS, ParsedQuery, QueryReader, Ranking
from .schema import WORDS_FIELD
from .snippets import Snippets, lead

log = logging.getLogger("searchd.search")

MAX_PAGE_SIZE = 100
MAX_PAGE = 1000
# Autocomplete reads at most this many index terms per prefix, so a one-letter prefix stays fast.
MAX_PREFIX_TERMS = 5000
# The vocabulary for did-you-mean is rebuilt after a commit, but not more often than this: a
# suggestion made from a vocabulary a few seconds old is still a good suggestion.
VOCABULARY_MAX_AGE = 30.0
# Below this many hits a query gets a did-you-mean check.
FEW_HITS = 3
# Key terms of an article used to find similar ones.
SIMILAR_TERMS = 12
# Two articles whose word 4-shingles overlap this much (Jaccard) are shown as one.
NEAR_DUPLICATE = 0.8
# Byte-identical articles are folded among all the matches (an array operation); near-identical
# ones, which take reading and comparing texts, among this many best results (the first five pages
# of ten): a query costs the same whatever the number of matches (100 cost twice as much).
NEAR_DUPLICATE_WINDOW = 50
# ... and they score within this ratio of each other for any query (a cheap first test).
NEAR_DUPLICATE_SCORE = 0.95

_SUGGESTABLE_WORD = re.compile(r"(?<![\w*?])[^\W\d_]{3,}(?![\w*?~:(])")


class BadRequest(ValueError):
    """A request the caller must change (HTTP 400): the message names the problem."""


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    page: int = 1
    size: int = 10
    sort: str = "relevance"
    category: str = ""
    date_from: datetime | None = None
    date_to: datetime | None = None

    def validate(self) -> None:
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        if not 1 <= self.page <= MAX_PAGE:
            raise BadRequest(f"page must be between 1 and {MAX_PAGE}")
        if self.sort not in ("relevance", "date"):
            raise BadRequest("sort must be 'relevance' or 'date'")


@dataclass(frozen=True)
class Hit:
    id: str
    title: str
    summary: str
    snippet: str  # HTML: escaped text with <mark> around matched words
    score: float
    date: str | None
    category: str
    path: str
    tags: list[str] = field(default_factory=list)
    # How many other identical or near-identical articles were folded into this hit.
    duplicates: int = 0


@dataclass(frozen=True)
class SearchResult:
    query: str
    total: int
    page: int
    size: int
    took_ms: float
    hits: list[Hit]
    facets: dict[str, dict[str, int]] = field(default_factory=dict)
    suggestion: str | None = None
    notice: str = ""
    # The query whose results these are: `query`, or `suggestion` when nothing matched `query`.
    results_for: str = ""

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    summary: str
    subtitle: str
    body: list[str]
    date: str | None
    category: str
    tags: list[str]
    url: str
    author: str
    format: str
    size: int


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _tags(value: str) -> list[str]:
    return [tag for tag in (value or "").split(",") if tag]


class Vocabulary:
    """The index's unstemmed words, held in memory so that a spelling correction is one C-speed
    scan (rapidfuzz) instead of Whoosh's per-field automata."""

    def __init__(self, words: list[str]):
        self.words = words
        self.known = frozenset(words)
        self.built = time.monotonic()

    @classmethod
    def read(cls, view: "_View") -> "Vocabulary":
        reader = view.snapshot.reader
        with view.snapshot.lock:
            if WORDS_FIELD not in reader.schema:
                return cls([])
            words = {w.decode("utf-8") if isinstance(w, bytes) else w for w in reader.lexicon(WORDS_FIELD)}
        return cls(sorted(words))

    def correct(self, word: str, view: "_View") -> str | None:
        """The most frequent known word within edit distance 1 (short words) or 2, or None."""
        word = word.lower()
        if len(word) < 3 or word in self.known or not word.isalpha():
            return None
        limit = 1 if len(word) <= 4 else 2
        matches = fuzz_process.extract(
            word, self.words, scorer=Levenshtein.distance, score_cutoff=limit, limit=50
        )
        if not matches:
            return None

        def frequency(candidate: str) -> int:
            return view.snapshot.doc_frequency(WORDS_FIELD, candidate.encode("utf-8"))

        best = min(matches, key=lambda m: (m[1], -frequency(m[0]), m[0]))
        return best[0]

    def near(self, word: str, distance: int) -> list[str]:
        """Known words within `distance` edits of `word`, closest first (fuzzy `word~`)."""
        matches = fuzz_process.extract(
            word.lower(), self.words, scorer=Levenshtein.distance, score_cutoff=distance, limit=MAX_EXPANSION
        )
        return [m[0] for m in sorted(matches, key=lambda m: (m[1], m[0]))]


@dataclass(frozen=True)
class _View:
    """What every query of one index generation shares."""

    version: tuple[str, int]
    snapshot: Snapshot
    query_reader: QueryReader

    def stored_fields(self, docnum: int) -> dict[str, Any]:
        with self.snapshot.lock:
            return self.snapshot.reader.stored_fields(docnum)

    def whoosh_searcher(self, weighting: Any) -> WhooshSearcher:
        """For Whoosh's key-term extraction (similar articles, feedback); call with the lock."""
        return WhooshSearcher(self.snapshot.reader, weighting=weighting, closereader=False)


class Searcher:
    """Thread-safe. Threads share one snapshot per index generation: the numpy arrays of the
    segments and a postings cache that outlives generations (segments never change), and take
    turns for the few calls into Whoosh itself (stored fields, term dictionaries)."""

    def __init__(self, index_dir: Path, ranking: Ranking | None = None):
        self.reader = IndexReader(Path(index_dir))
        self.ranking = ranking or Ranking()
        self._cache = PostingsCache()
        self._segments: dict[str, SegmentData] = {}
        self._whoosh = threading.Lock()
        self._refresh = threading.Lock()
        self._refresh_users = threading.Lock()
        self._leaf_users: dict[int, int] = {}
        self._view: _View | None = None
        self._vocabulary: Vocabulary | None = None
        self._vocabulary_key: tuple[str, int] | None = None
        self._vocabulary_lock = threading.Lock()
        self._vocabulary_thread: threading.Thread | None = None
        self._snippets = Snippets()
        self._shingles = ShingleCache()

    # --- the current snapshot ------------------------------------------------------------------

    def _current(self) -> _View:
        """The snapshot of the index as it is now, rebuilt when the generation changed."""
        version = self.reader.version()
        view = self._view
        if view is not None and view.version == version:
            return view
        with self._refresh:
            view = self._view
            if view is not None and view.version == version:
                return view
            previous = view.snapshot.reader if view is not None and view.version[0] == version[0] else None
            reader = self.reader.open_reader(previous)
            snapshot = Snapshot(reader, self.ranking, self._cache, self._segments, self._whoosh)
            live = {data.segment_id for _, _, data in snapshot.leaves}
            gone = [s for s in self._segments if s not in live]
            for segment_id in gone:
                del self._segments[segment_id]
            if gone:  # caches keyed by segment: what they hold of the old ones is dead weight
                self._cache.retain(live)
                self._shingles.retain(live)
            view = _View(version, snapshot, QueryReader(reader.schema, self.ranking, fuzzy=_weakly(self._fuzzy_words)))
            self._track(view)
            self._view = view
            return view

    def _track(self, view: _View) -> None:
        """Segment readers are shared by the snapshots that use the same segment; one is closed
        when the last snapshot using it is gone (no query runs on it any more)."""
        leaves = [leaf for leaf, _, _ in view.snapshot.leaves]
        with self._refresh_users:
            for leaf in leaves:
                self._leaf_users[id(leaf)] = self._leaf_users.get(id(leaf), 0) + 1
        # On the snapshot, not the view: a caller may keep only the snapshot (autocomplete did, and
        # under churn its readers were closed mid-iteration). Not a bound method: the finalizer
        # must not keep this Searcher alive.
        weakref.finalize(view.snapshot, _release_leaves, self._refresh_users, self._leaf_users, leaves)

    def generation(self) -> tuple[str, int]:
        return self.reader.version()

    def warm_up(self) -> None:
        """Open the index and read the did-you-mean vocabulary now (a web server calls this in
        the background at start), so the first searches do not pay for either."""
        from .index import IndexMissing

        try:
            self.vocabulary()
        except IndexMissing:
            pass

    def document_count(self) -> int:
        from .index import IndexMissing

        try:
            return self._current().snapshot.documents
        except IndexMissing:
            return 0

    # --- search ---------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult:
        request.validate()
        started = time.perf_counter()
        view = self._current()
        parsed = view.query_reader.read(request.q)
        if parsed.query is wq.NullQuery:
            return SearchResult(request.q, 0, request.page, request.size, _ms(started), [], notice=parsed.notice,
                                results_for=request.q)
        page, notice, suggestion, results_for = self._answer(view, parsed, request, self._run)
        return SearchResult(
            query=request.q,
            total=page.total,
            page=request.page,
            size=request.size,
            took_ms=_ms(started),
            hits=page.hits,
            facets=page.facets,
            suggestion=suggestion,
            notice=notice,
            results_for=results_for,
        )

    def _answer(self, view: _View, parsed: ParsedQuery, request: SearchRequest,
                run: Callable[[_View, wq.Query, SearchRequest], "_Page"]) -> tuple["_Page", str, str | None, str]:
        """The query as read; with few hits, a did-you-mean; with none, the corrected query's
        results or else those of the looser reading (any of the words), each saying so. Also
        returns the query whose results the page holds."""
        page = run(view, self._with_feedback(view, parsed), request)
        notice = parsed.notice
        suggestion = None
        results_for = request.q
        if page.total < FEW_HITS:
            suggestion = self._did_you_mean(view, request.q, page.total)
            if page.total == 0 and suggestion is not None:
                page = run(view, view.query_reader.read(suggestion).query, request)
                notice = _join(notice, f"no results for {request.q.strip()}; showing results for {suggestion}")
                results_for = suggestion
            elif page.total == 0 and parsed.relaxed is not None:
                page = run(view, parsed.relaxed, request)
                if page.total:
                    notice = _join(notice, "no article has all the words; showing articles with some of them")
        return page, notice, suggestion, results_for

    def _with_feedback(self, view: _View, parsed: ParsedQuery) -> wq.Query:
        """Pseudo-relevance feedback (off unless Ranking.feedback_docs is set)."""
        ranking = self.ranking
        if not ranking.feedback_docs or len(parsed.words) < ranking.feedback_min_words:
            return parsed.query
        top = rank(view.snapshot, parsed.query, ranking.feedback_docs, facets=False).top
        stored = [view.stored_fields(docnum) for docnum, _ in top]
        text = "\n".join(f"{f.get('title', '')}\n{f.get('body', '')}" for f in stored)
        if not text.strip():
            return parsed.query
        with view.snapshot.lock:
            terms = view.whoosh_searcher(ranking.weighting()).key_terms_from_text(
                "body", text, numterms=ranking.feedback_terms, normalize=True)
        return view.query_reader.feedback(parsed.query, terms, parsed.words)

    def ranked_ids(self, text: str, limit: int = 100) -> list[str]:
        """The ids `search(SearchRequest(q=text, size=limit))` would return, in order, without the
        snippets and facets (for relevance evaluation)."""
        view = self._current()
        parsed = view.query_reader.read(text)
        if parsed.query is wq.NullQuery:
            return []
        request = SearchRequest(q=text, size=limit)
        page = self._answer(view, parsed, request, self._run_ids)[0]
        return [hit.id for hit in page.hits]

    def _run_ids(self, view: _View, query: wq.Query, request: SearchRequest) -> "_Page":
        total, results, _ = self._results(view, query, request, facets=False)
        hits = [_make_hit(fields, "", score, duplicates) for (_, score), fields, duplicates in results]
        return _Page(total=total, hits=hits, facets={})

    def _fuzzy_words(self, word: str, distance: int) -> list[str]:
        return self.vocabulary().near(word, distance)

    def _run(self, view: _View, query: wq.Query, request: SearchRequest) -> "_Page":
        total, results, ranked = self._results(view, query, request, facets=True)
        terms = highlight_terms(query, view.snapshot)
        hits = [self._hit(fields, score, terms, duplicates) for (_, score), fields, duplicates in results]
        facets = {
            name: {str(k): v for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if k}
            for name, counts in ranked.facets.items()
        }
        return _Page(total=total, hits=hits, facets=facets)

    def _results(self, view: _View, query: wq.Query, request: SearchRequest,
                 facets: bool) -> tuple[int, list[tuple[tuple[int, float], Mapping[str, Any], int]], Ranked]:
        """The total and the requested page of one list of results that every page is cut from:
        the matches ranked, byte-identical copies folded into the first of them (all matches),
        then near-identical articles folded among the first NEAR_DUPLICATE_WINDOW. Each entry is
        (document, score), its stored fields and how many articles were folded into it."""
        end = request.page * request.size
        ranked = rank(view.snapshot, query, NEAR_DUPLICATE_WINDOW + end, filter=self._filters(request),
                      by_date=request.sort == "date", facets=facets, fold_copies=True)
        copies = {docnum: count for (docnum, _), count in zip(ranked.top, ranked.copies)}
        window = ranked.top[:NEAR_DUPLICATE_WINDOW]
        groups = fold_duplicates(_lazy(view, window), [score for _, score in window], self._shingles)
        folded = [(item, fields, sum(1 + copies[docnum] for docnum, _ in group) - 1)
                  for (item, fields), group in groups]
        start = (request.page - 1) * request.size
        beyond = ranked.top[len(window):][max(0, start - len(folded)):max(0, end - len(folded))]
        results = folded[start:end] + [(item, fields, copies[item[0]]) for item, fields in _lazy(view, beyond)]
        return len(folded) + ranked.total - len(window), results, ranked

    def _filters(self, request: SearchRequest) -> wq.Query | None:
        parts: list[wq.Query] = []
        if request.category:
            parts.append(wq.Term("category", request.category))
        if request.date_from or request.date_to:
            parts.append(wq.DateRange("date", request.date_from, request.date_to))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else wq.And(parts)

    def _hit(self, fields: Mapping[str, Any], score: float, terms: dict[str, set[str]], duplicates: int = 0) -> Hit:
        snippet = (self._snippets.snippet(fields.get("body", ""), terms.get("body", set()))
                   or self._snippets.snippet(fields.get("summary", ""), terms.get("summary", set()), top=1))
        if not snippet:
            snippet = lead(fields.get("summary") or fields.get("subtitle") or fields.get("body", ""))
        return _make_hit(fields, snippet, score, duplicates)

    # --- did you mean ---------------------------------------------------------------------------

    def vocabulary(self) -> Vocabulary:
        """The shared in-memory vocabulary. Only the very first one is built while a query
        waits; after a commit the old one keeps answering while a thread reads the new one
        (reading 30,000+ words takes from 0.2 s to seconds on a busy machine)."""
        view = self._current()
        key = view.version
        with self._vocabulary_lock:
            current = self._vocabulary
            if current is not None:
                stale = self._vocabulary_key != key and (
                    self._vocabulary_key[0] != key[0] or time.monotonic() - current.built >= VOCABULARY_MAX_AGE
                )
                if stale:
                    self._refresh_vocabulary_in_background()
                return current
        vocabulary = Vocabulary.read(view)
        with self._vocabulary_lock:
            if self._vocabulary is None:
                self._vocabulary, self._vocabulary_key = vocabulary, key
            return self._vocabulary

    def _refresh_vocabulary_in_background(self) -> None:
        """Called with the lock held; at most one reader thread at a time."""
        if self._vocabulary_thread is not None and self._vocabulary_thread.is_alive():
            return

        def read() -> None:
            try:
                view = self._current()
                vocabulary = Vocabulary.read(view)
            except Exception:  # the index moved on or vanished: the old vocabulary stays
                log.debug("vocabulary refresh failed", exc_info=True)
                return
            with self._vocabulary_lock:
                self._vocabulary, self._vocabulary_key = vocabulary, view.version

        self._vocabulary_thread = threading.Thread(target=read, name="searchd-vocabulary", daemon=True)
        self._vocabulary_thread.start()

    def _did_you_mean(self, view: _View, text: str, hits: int) -> str | None:
        """Replace unknown words by their nearest frequent neighbours; offer the result only if
        it finds more than the query as typed."""
        vocabulary = self.vocabulary()
        changed = False

        def fix(match: re.Match[str]) -> str:
            nonlocal changed
            word = match.group(0)
            if match.start() > 0 and text[match.start() - 1] in ":~^":
                return word  # a field value or an operator argument, not a word to correct
            better = vocabulary.correct(word, view)
            if better is None:
                return word
            changed = True
            return better

        corrected = _SUGGESTABLE_WORD.sub(fix, text.strip())
        if not changed:
            return None
        parsed = view.query_reader.read(corrected)
        if parsed.query is wq.NullQuery:
            return None
        found = rank(view.snapshot, parsed.query, 0, facets=False, fold_copies=True).total
        return corrected if found > hits else None

    # --- autocomplete ---------------------------------------------------------------------------

    def suggest(self, prefix: str, size: int = 8) -> list[str]:
        """Completions of the last word typed, most frequent first, as whole query strings."""
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        prefix = prefix[:MAX_QUERY_CHARS]
        match = re.search(r"(\w+)$", prefix)
        if match is None:
            return []
        head, partial = prefix[: match.start()], match.group(1).lower()
        snapshot = self._current().snapshot
        scores: dict[str, int] = {}
        with snapshot.lock:
            reader = snapshot.reader
            if WORDS_FIELD in reader.schema:
                for count, (word, info) in enumerate(reader.iter_prefix(WORDS_FIELD, partial)):
                    if count >= MAX_PREFIX_TERMS:
                        break
                    word = word.decode("utf-8") if isinstance(word, bytes) else word
                    if word != partial:
                        scores[word] = info.doc_frequency()
        best = sorted(scores, key=lambda w: (-scores[w], w))[:size]
        return [head + word for word in best]

    # --- similar articles -----------------------------------------------------------------------

    def similar(self, doc_id: str, size: int = 5) -> list[Hit]:
        """Articles sharing the key terms of `doc_id` (the article itself and its copies excluded)."""
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        view = self._current()
        docnum = self._docnum(view, doc_id)
        if docnum is None:
            return []
        source = view.stored_fields(docnum)
        text = "\n".join([source.get("title", "")] * 2 + [source.get("summary", ""), source.get("body", "")])
        with view.snapshot.lock:
            terms = view.whoosh_searcher(self.ranking.weighting()).key_terms_from_text(
                "body", text, numterms=SIMILAR_TERMS, normalize=True)
        if not terms:
            return []
        query = wq.Or(
            [wq.Term("body", word, boost=weight) for word, weight in terms]
            + [wq.Term("title", word, boost=weight * 2) for word, weight in terms]
        )
        ranked = rank(view.snapshot, query, size * 3 + 5, exclude={docnum}, facets=False)
        own = _Signature(source, 1.0)
        candidates = [(item, view.stored_fields(item[0])) for item in ranked.top]
        candidates = [(item, fields) for item, fields in candidates if not own.same_as(_Signature(fields, 1.0))]
        hits = []
        for ((_, score), fields), group in fold_duplicates(candidates)[:size]:
            snippet = lead(fields.get("summary") or fields.get("subtitle") or fields.get("body", ""))
            hits.append(_make_hit(fields, snippet, score, len(group) - 1))
        return hits

    @staticmethod
    def _docnum(view: _View, doc_id: str) -> int | None:
        found = view.snapshot.postings("id", doc_id.encode("utf-8"))
        for offset, postings in found:
            for local in postings.ids:
                docnum = offset + int(local)
                if view.snapshot.live[docnum]:
                    return docnum
        return None

    # --- documents ------------------------------------------------------------------------------

    def document(self, doc_id: str) -> Document | None:
        view = self._current()
        docnum = self._docnum(view, doc_id)
        if docnum is None:
            return None
        fields = view.stored_fields(docnum)
        return Document(
            id=fields["id"],
            title=fields.get("title") or fields["id"],
            summary=fields.get("summary", ""),
            subtitle=fields.get("subtitle", ""),
            body=[p for p in fields.get("body", "").split("\n\n") if p],
            date=_iso(fields.get("date")),
            category=fields.get("category", ""),
            tags=_tags(fields.get("tags", "")),
            url=fields.get("url", ""),
            author=fields.get("author", ""),
            format=fields.get("format", ""),
            size=int(fields.get("size", 0)),
        )


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    """A bound method that does not keep its object alive (the snapshot's query reader would
    otherwise hold the Searcher in a reference cycle)."""
    ref = weakref.WeakMethod(method)

    def call(*args: Any) -> Any:
        bound = ref()
        return bound(*args) if bound is not None else []

    return call


def _release_leaves(lock: threading.Lock, users: dict[int, int], leaves: list[Any]) -> None:
    unused = []
    with lock:
        for leaf in leaves:
            count = users.pop(id(leaf), 1) - 1
            if count:
                users[id(leaf)] = count
            else:
                unused.append(leaf)
    for leaf in unused:
        try:
            leaf.close()
        except Exception:  # already closed by Whoosh, or a file gone: nothing to free
            pass


@dataclass(frozen=True)
class _Page:
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]


def _make_hit(fields: Mapping[str, Any], snippet: str, score: float, duplicates: int) -> Hit:
    return Hit(
        id=fields["id"],
        title=fields.get("title") or fields["id"],
        summary=fields.get("summary", ""),
        snippet=snippet,
        score=round(score, 4),
        date=_iso(fields.get("date")),
        category=fields.get("category", ""),
        path=fields["id"],
        tags=_tags(fields.get("tags", "")),
        duplicates=duplicates,
    )


_SHINGLE_WORD = re.compile(r"\w+")
# Shingle sets that share NEAR_DUPLICATE of their union differ in size by less than that; index
# lengths are approximate (one byte each), hence the margin.
_LENGTH_RATIO = 0.6
# Odd 64-bit multipliers that mix four word hashes into one shingle hash.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9], dtype=np.uint64)


class ShingleCache:
    """Shingles of recently compared articles by (segment, document): an article's text never
    changes within a segment, and the same articles come up for query after query."""

    def __init__(self, capacity: int = 4096):
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, int], compute: Callable[[], np.ndarray]) -> np.ndarray:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        found = compute()
        with self._lock:
            self._items[key] = found
            if len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return found

    def retain(self, segment_ids: set[str]) -> None:
        with self._lock:
            for key in [key for key in self._items if key[0] not in segment_ids]:
                del self._items[key]


class _Signature:
    """What decides that two articles are the same: the file checksum, or (near-identical) the
    overlap of their word 4-shingles, computed only when a comparison needs them."""

    def __init__(self, fields: Mapping[str, Any], score: float, cache: ShingleCache | None = None):
        self.fields = fields
        checksum = fields.checksum if isinstance(fields, _LazyFields) else fields.get("checksum")
        self.checksum = str(checksum or "")
        self.score = score
        self._cache = cache if isinstance(fields, _LazyFields) else None
        self.length = fields.length if isinstance(fields, _LazyFields) else None
        self._shingles: np.ndarray | None = None

    @property
    def shingles(self) -> np.ndarray:
        if self._shingles is None:
            if self._cache is not None:
                self._shingles = self._cache.get(self.fields.key, self._compute)
            else:
                self._shingles = self._compute()
        return self._shingles

    def _compute(self) -> np.ndarray:
        """Hashes of every run of 4 words, sorted and unique."""
        text = f"{self.fields.get('title', '')} {self.fields.get('body', '')}".lower()
        words = np.fromiter(map(hash, _SHINGLE_WORD.findall(text)), dtype=np.int64).view(np.uint64)
        if len(words) < 4:
            words = np.concatenate([words, np.zeros(4 - len(words), dtype=np.uint64)])
        with np.errstate(over="ignore"):
            runs = words[:-3] * _MIX[0] + words[1:-2] * _MIX[1] + words[2:-1] * _MIX[2] + words[3:]
        return np.unique(runs)

    def same_as(self, other: "_Signature") -> bool:
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


class _LazyFields(Mapping[str, Any]):
    """A hit's stored fields, unpickled only when read: folding duplicates needs the checksum
    (an array, cheap) of every fetched hit but the text of only a few."""

    def __init__(self, view: _View, docnum: int):
        self._view = view
        self._docnum = docnum
        self._data: dict[str, Any] | None = None
        self.checksum = str(view.snapshot.checksums[docnum])  # equal for byte-identical files
        self.key = view.snapshot.locate(docnum)
        self.length = view.snapshot.text_length(docnum)

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._view.stored_fields(self._docnum)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _lazy(view: _View, items: list[tuple[int, float]]) -> list[tuple[tuple[int, float], _LazyFields]]:
    return [(item, _LazyFields(view, item[0])) for item in items]


def fold_duplicates(ranked: list[tuple[T, Mapping[str, Any]]], scores: list[float] | None = None,
                    cache: ShingleCache | None = None) -> list[tuple[tuple[T, Mapping[str, Any]], list[T]]]:
    """Ranked (hit, stored fields) -> [(best hit, its group)], each group holding an article and
    the identical or near-identical articles ranked below it. `scores` (one per item, relevance
    scores whatever the order) let the near-duplicate test skip pairs whose scores differ;
    without them every pair is compared."""
    kept: list[tuple[tuple[T, dict[str, Any]], list[T], _Signature]] = []
    by_checksum: dict[str, list[T]] = {}
    # The cheap tests of same_as (scores and lengths close), for all kept articles at once.
    kept_scores, kept_lengths = np.empty(len(ranked)), np.empty(len(ranked))
    for index, item in enumerate(ranked):
        signature = _Signature(item[1], scores[index] if scores else 1.0, cache)
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


def _near_duplicate_group(kept: list, signature: _Signature, scores: np.ndarray, lengths: np.ndarray) -> list | None:
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


def _join(*notices: str) -> str:
    return "; ".join(n for n in notices if n)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
