"""The Whoosh engine's read side: searches, documents, similar articles, completions and
spelling over the live index.

Threads share one snapshot per index generation (evaluator.Snapshot: the numpy arrays of the
segments) and a postings cache that outlives generations (segments never change); the snapshot
is replaced when the generation changes, so a commit is visible to the next query and an
unchanged index costs nothing to re-open. The few calls into Whoosh itself (stored fields, term
dictionaries) take turns.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Mapping

import numpy as np
from whoosh import query as wq
from whoosh.searching import Searcher as WhooshSearcher

from ...folding import NEAR_DUPLICATE_WINDOW, Signature, StoredFields, fold
from ...lru import LruCache
from ...snippets import Snippets, lead
from ..base import Document, EngineQuery, EngineReader, EngineResults, Hit, Indexed, IndexMissing, IndexStats, QueryTree
from .compile import Compiled, QueryCompiler
from .evaluator import Feedback, PostingsCache, Ranked, SegmentData, Snapshot, highlight_terms, rank
from .feedback import Collection, feedback_scores
from .ranking import Ranking
from .reader import IndexReader
from .schema import TEXT_FIELDS, WORDS_FIELD
from .termvectors import Window
from .store import index_stats, read_manifest, reported_status
from .vocabulary import Vocabulary, segment_words

log = logging.getLogger("searchd.search")

# Autocomplete reads at most this many index terms per prefix, so a one-letter prefix stays fast.
MAX_PREFIX_TERMS = 5000
# The vocabulary for did-you-mean is rebuilt after a commit, but not more often than this: a
# suggestion made from a vocabulary a few seconds old is still a good suggestion.
VOCABULARY_MAX_AGE = 30.0
# Key terms of an article used to find similar ones.
SIMILAR_TERMS = 12


@dataclass(frozen=True)
class _View:
    """What every query of one index generation shares."""

    version: tuple[str, int]
    snapshot: Snapshot
    compiler: QueryCompiler

    def stored_fields(self, docnum: int) -> dict[str, Any]:
        return self.snapshot.stored_fields(docnum)

    def whoosh_searcher(self, weighting: Any) -> WhooshSearcher:
        """For Whoosh's key-term extraction (similar articles); call with the lock."""
        return WhooshSearcher(self.snapshot.reader, weighting=weighting, closereader=False)


class WhooshReader(EngineReader):
    def __init__(self, index_dir: Path, ranking: Ranking | None = None):
        self.index_dir = Path(index_dir)
        self.index = IndexReader(self.index_dir)
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
        self._shingles: LruCache[Any] = LruCache()

    # --- the current snapshot ------------------------------------------------------------------

    def _current(self) -> _View:
        """The snapshot of the index as it is now, rebuilt when the generation changed."""
        version = self.index.version()
        view = self._view
        if view is not None and view.version == version:
            return view
        with self._refresh:
            view = self._view
            if view is not None and view.version == version:
                return view
            previous = view.snapshot.reader if view is not None and view.version[0] == version[0] else None
            reader = self.index.open_reader(previous)
            snapshot = Snapshot(reader, self.ranking, self._cache, self._segments, self._whoosh)
            live = {data.segment_id for _, _, data in snapshot.leaves}
            gone = [s for s in self._segments if s not in live]
            for segment_id in gone:
                del self._segments[segment_id]
            if gone:  # caches keyed by segment: what they hold of the old ones is dead weight
                self._cache.retain(live)
                self._shingles.retain(lambda key: key[0] in live)
            view = _View(version, snapshot, QueryCompiler(reader.schema, self.ranking, fuzzy=_weakly(self.near_words)))
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
        # must not keep this reader alive.
        weakref.finalize(view.snapshot, _release_leaves, self._refresh_users, self._leaf_users, leaves)

    def generation(self) -> Hashable:
        return self.index.version()

    def warm_up(self) -> bool:
        """Open the index and read the did-you-mean vocabulary now (a web server calls this in
        the background at start), so the first searches do not pay for either."""
        try:
            self.vocabulary()
        except IndexMissing:
            return False
        return True

    def document_count(self) -> int:
        try:
            return self._current().snapshot.documents
        except IndexMissing:
            return 0

    def stats(self) -> IndexStats:
        return index_stats(self.index.open())

    def indexed(self) -> dict[str, Indexed]:
        return read_manifest(self.index.open())

    def daemon_status(self) -> dict[str, Any]:
        return reported_status(self.index_dir)

    # --- search ---------------------------------------------------------------------------------

    def search(self, query: EngineQuery) -> EngineResults:
        view = self._current()
        compiled = view.compiler.compile(query.tree)
        if compiled.query is None:
            return EngineResults(0, [], {}, compiled.notice)
        feedback = None if query.sort == "date" else self._feedback(view, compiled)
        total, results, ranked, complete = self._window(view, compiled, feedback, query)
        if query.snippets:
            terms = highlight_terms(compiled.query, view.snapshot)
            hits = [self._hit(fields, score, terms, duplicates) for (_, score), fields, duplicates in results]
        else:
            hits = [_make_hit(fields, "", score, duplicates) for (_, score), fields, duplicates in results]
        facets = {
            name: {str(k): v for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])) if k}
            for name, counts in ranked.facets.items()
        }
        first = {docnum for docnum, _ in ranked.top[:ranked.first]}
        return EngineResults(total, hits, facets, compiled.notice,
                             complete=complete if compiled.below is not None else None,
                             partial=any(item[0] not in first for item, _, _ in results))

    def _window(self, view: _View, compiled: Compiled, feedback: Feedback | None,
                query: EngineQuery) -> tuple[int, list[tuple[tuple[int, float], "_LazyFields", int]], Ranked, int]:
        """The total and the requested window of one list of results that every page is cut from:
        the matches ranked (those of the looser reading `below` after the others),
        byte-identical copies folded into the first of them (all matches), then near-identical
        articles folded among the first NEAR_DUPLICATE_WINDOW. Each entry is (document, score),
        its stored fields and how many articles were folded into it. Also how many of the total
        match the query itself."""
        start, end = query.offset, query.offset + query.limit
        ranked = rank(view.snapshot, compiled.query, NEAR_DUPLICATE_WINDOW + end, below=compiled.below, feedback=feedback,
                      filter=view.compiler.compile_filter(query.category, query.date_from, query.date_to),
                      by_date=query.sort == "date", facets=query.facets, fold_copies=True)
        copies = {docnum: count for (docnum, _), count in zip(ranked.top, ranked.copies)}
        window = ranked.top[:NEAR_DUPLICATE_WINDOW]
        groups = fold(_lazy(view, window), [score for _, score in window], self._shingles)
        folded = [(item, fields, sum(1 + copies[docnum] for docnum, _ in group) - 1)
                  for (item, fields), group in groups]
        beyond = ranked.top[len(window):][max(0, start - len(folded)):max(0, end - len(folded))]
        results = folded[start:end] + [(item, fields, copies[item[0]]) for item, fields in _lazy(view, beyond)]
        # The window is ranked first tier first: a group led by a first-tier article is one.
        leaders = {docnum for docnum, _ in window[:ranked.first]}
        complete = sum(item[0] in leaders for item, _, _ in folded) + max(0, ranked.first - len(window))
        return len(folded) + ranked.total - len(window), results, ranked, complete

    def count(self, tree: QueryTree) -> int:
        view = self._current()
        compiled = view.compiler.compile(tree)
        if compiled.query is None:
            return 0
        return rank(view.snapshot, compiled.query, 0, facets=False, fold_copies=True).total

    def _feedback(self, view: _View, compiled: Compiled) -> Feedback | None:
        """Pseudo-relevance feedback for a query of plain words (Ranking.feedback_*, feedback.py)."""
        ranking = self.ranking
        if not ranking.feedback_docs or not compiled.words:
            return None
        snapshot = view.snapshot
        collection = Collection(snapshot.size, snapshot.average_length, snapshot.term_frequencies)

        def rescore(docs: np.ndarray, scores: np.ndarray) -> np.ndarray:
            lengths = np.zeros((len(TEXT_FIELDS), len(docs)))
            for row, name in enumerate(TEXT_FIELDS):
                if name in snapshot.lengths:
                    lengths[row] = snapshot.lengths[name][docs]
            return feedback_scores(ranking, scores, Window.of(snapshot.term_vectors(docs)), lengths, collection)

        return Feedback(ranking.feedback_depth, rescore)

    def _hit(self, fields: Mapping[str, Any], score: float, terms: dict[str, set[str]], duplicates: int = 0) -> Hit:
        snippet = (self._snippets.snippet(fields.get("body", ""), terms.get("body", set()))
                   or self._snippets.snippet(fields.get("summary", ""), terms.get("summary", set()), top=1))
        if not snippet:
            snippet = lead(fields.get("summary") or fields.get("subtitle") or fields.get("body", ""))
        return _make_hit(fields, snippet, score, duplicates)

    # --- spelling and completion ----------------------------------------------------------------

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
        vocabulary = _read_vocabulary(view)
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
                vocabulary = _read_vocabulary(view)
            except Exception:  # the index moved on or vanished: the old vocabulary stays
                log.debug("vocabulary refresh failed", exc_info=True)
                return
            with self._vocabulary_lock:
                self._vocabulary, self._vocabulary_key = vocabulary, view.version

        self._vocabulary_thread = threading.Thread(target=read, name="searchd-vocabulary", daemon=True)
        self._vocabulary_thread.start()

    def correct(self, word: str) -> str | None:
        snapshot = self._current().snapshot
        return self.vocabulary().correct(
            word, lambda candidate: snapshot.doc_frequency(WORDS_FIELD, candidate.encode("utf-8")))

    def near_words(self, word: str, distance: int) -> list[str]:
        return self.vocabulary().near(word, distance)

    def complete(self, prefix: str, size: int) -> list[str]:
        partial = prefix.lower()
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
        return sorted(scores, key=lambda w: (-scores[w], w))[:size]

    # --- similar articles -----------------------------------------------------------------------

    def similar(self, doc_id: str, size: int) -> list[Hit]:
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
        own = Signature(StoredFields(source), 1.0)
        candidates = [(item, StoredFields(view.stored_fields(item[0]))) for item in ranked.top]
        # The article's own copies are not "similar": they are the same article.
        candidates = [(item, fields) for item, fields in candidates if not own.same_as(Signature(fields, 1.0))]
        hits = []
        for ((_, score), candidate), group in fold(candidates)[:size]:
            fields = candidate.fields
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


def _read_vocabulary(view: _View) -> Vocabulary:
    # Only the file reads hold the snapshot's lock: every Whoosh call of every thread waits on it.
    with view.snapshot.lock:
        lists = [segment_words(leaf) for leaf, _, _ in view.snapshot.leaves]
    return Vocabulary.of_lists(lists)


def _weakly(method: Callable[..., Any]) -> Callable[..., Any]:
    """A bound method that does not keep its object alive (the snapshot's query compiler would
    otherwise hold the reader in a reference cycle)."""
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


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None


def _tags(value: str) -> list[str]:
    return [tag for tag in (value or "").split(",") if tag]


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


class _LazyFields(Mapping[str, Any]):
    """A hit's stored fields, unpickled only when read: folding duplicates needs the checksum
    and the sketch (arrays, cheap) of every fetched hit but the text of only a few (those whose
    sketches resemble: rare). A folding Candidate."""

    def __init__(self, view: _View, docnum: int, checksum: int, length: float):
        self._view = view
        self._docnum = docnum
        self._data: Mapping[str, Any] | None = None
        self.checksum = str(checksum)  # equal for byte-identical files
        self.key = view.snapshot.locate(docnum)
        self.length: float | None = length
        self.sketch = view.snapshot.sketch(docnum)

    def text(self) -> str:
        return f"{self.get('title', '')} {self.get('body', '')}"

    def _load(self) -> Mapping[str, Any]:
        if self._data is None:
            self._data = self._view.stored_fields(self._docnum)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def get(self, key: str, default: Any = None) -> Any:  # Mapping's, without its try and raise
        return self._load().get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _lazy(view: _View, items: list[tuple[int, float]]) -> list[tuple[tuple[int, float], _LazyFields]]:
    """The ranked documents' fields, read when needed. Their checksums and lengths are read from the arrays for all at once (a numpy scalar at a time
    was half of the cost of 50)."""
    docnums = [docnum for docnum, _ in items]
    checksums = view.snapshot.checksums[docnums].tolist()
    lengths = view.snapshot.text_lengths(docnums)
    return [(item, _LazyFields(view, item[0], checksum, length))
            for item, checksum, length in zip(items, checksums, lengths)]
