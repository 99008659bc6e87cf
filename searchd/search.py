"""The search side: a plain request in, plain results out (hits with snippets, facets, timing).

Readers never write. Each thread keeps its own Whoosh searcher and refreshes it only when the
index generation changes, so a commit is visible to the next query and an unchanged index costs
nothing to re-open.
"""

from __future__ import annotations

import html
import logging
import queue
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, TypeVar

from rapidfuzz import process as fuzz_process
from rapidfuzz.distance import Levenshtein
from whoosh import highlight, query as wq, sorting
from whoosh.searching import Hit as WhooshHit, Searcher as WhooshSearcher

from .index import IndexMissing, IndexReader
from .query import MAX_EXPANSION, MAX_QUERY_CHARS, ParsedQuery, QueryReader, Ranking

log = logging.getLogger("searchd.search")

MAX_PAGE_SIZE = 100
MAX_PAGE = 1000
SNIPPET_CHARS = 240
# Fields whose unstemmed words (Whoosh "spell_" fields) feed autocomplete and did-you-mean.
SPELL_FIELDS = ("spell_title", "spell_summary", "spell_body")
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


class _MarkFormatter(highlight.Formatter):
    """Escapes all article text and wraps matched words in <mark>: the only markup we emit."""

    between = " … "

    def _text(self, text: str) -> str:
        return html.escape(text, quote=False)

    def format_token(self, text: str, token: Any, replace: bool = False) -> str:
        return "<mark>" + html.escape(highlight.get_text(text, token, replace), quote=False) + "</mark>"


def lead(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The first words of a text, escaped: the snippet when nothing in the body matched."""
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return html.escape(text, quote=False)


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
    def read(cls, searcher: WhooshSearcher) -> "Vocabulary":
        reader = searcher.reader()
        words: set[str] = set()
        for fieldname in SPELL_FIELDS:
            if fieldname in reader.schema:
                words.update(w.decode("utf-8") if isinstance(w, bytes) else w for w in reader.lexicon(fieldname))
        return cls(sorted(words))

    def correct(self, word: str, searcher: WhooshSearcher) -> str | None:
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
        reader = searcher.reader()

        def frequency(candidate: str) -> int:
            return sum(reader.doc_frequency(f, candidate) for f in SPELL_FIELDS if f in reader.schema)

        best = min(matches, key=lambda m: (m[1], -frequency(m[0]), m[0]))
        return best[0]

    def near(self, word: str, distance: int) -> list[str]:
        """Known words within `distance` edits of `word`, closest first (fuzzy `word~`)."""
        matches = fuzz_process.extract(
            word.lower(), self.words, scorer=Levenshtein.distance, score_cutoff=distance, limit=MAX_EXPANSION
        )
        return [m[0] for m in sorted(matches, key=lambda m: (m[1], m[0]))]


@dataclass
class _Reader:
    """One Whoosh searcher and its query reader; used by one thread at a time."""

    searcher: WhooshSearcher | None = None
    query_reader: QueryReader | None = None
    version: tuple[str, int] = ("", -1)


_M = TypeVar("_M", bound=Callable[..., Any])


def _reading(method: _M) -> _M:
    """Run the method with one of the shared readers checked out for this thread."""

    @wraps(method)
    def wrapper(self: "Searcher", *args: Any, **kwargs: Any) -> Any:
        with self._checkout():
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class Searcher:
    """Thread-safe: threads share a small pool of Whoosh searchers, each used by one thread at a
    time. One searcher per thread would keep a copy of every cache per web worker thread (over
    2 GB for Reuters with 8 threads) and refresh all of them on every commit; Python runs one
    query at a time anyway, so two readers keep both cores' worth of work going."""

    def __init__(self, index_dir: Path, ranking: Ranking | None = None, readers: int = 2):
        self.reader = IndexReader(Path(index_dir))
        self.ranking = ranking or Ranking()
        self._local = threading.local()
        self._pool: queue.LifoQueue[_Reader] = queue.LifoQueue()
        for _ in range(max(1, readers)):
            self._pool.put(_Reader())
        self._vocabulary: Vocabulary | None = None
        self._vocabulary_key: tuple[str, int] | None = None
        self._vocabulary_lock = threading.Lock()
        self._vocabulary_thread: threading.Thread | None = None
        self._formatter = _MarkFormatter()
        self._fragmenter = highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=60)

    # --- searcher lifecycle ---------------------------------------------------------------------

    @contextmanager
    def _checkout(self) -> Iterator[_Reader]:
        held = getattr(self._local, "held", None)
        if held is not None:  # a public method calling another: keep the reader it has
            yield held
            return
        slot = self._pool.get()
        self._local.held = slot
        try:
            yield slot
        finally:
            self._local.held = None
            self._pool.put(slot)

    def _searcher(self) -> WhooshSearcher:
        """The checked-out reader's searcher, refreshed when the index generation changed."""
        slot: _Reader = self._local.held
        version = self.reader.version()
        current = slot.searcher
        if current is not None and slot.version == version:
            return current
        if current is not None and slot.version[0] == version[0]:
            slot.searcher = current.refresh()
        else:
            if current is not None:
                current.close()
            ix = self.reader.open()
            slot.searcher = ix.searcher(weighting=self.ranking.weighting())
            slot.query_reader = QueryReader(ix.schema, self.ranking, fuzzy=self._fuzzy_words)
        slot.version = version
        return slot.searcher

    def _query_reader(self) -> QueryReader:
        return self._local.held.query_reader

    def generation(self) -> tuple[str, int]:
        return self.reader.version()

    @_reading
    def document_count(self) -> int:
        try:
            return self._searcher().doc_count()
        except IndexMissing:
            return 0

    # --- search ---------------------------------------------------------------------------------

    @_reading
    def search(self, request: SearchRequest) -> SearchResult:
        request.validate()
        started = time.perf_counter()
        searcher = self._searcher()
        query_reader: QueryReader = self._query_reader()
        parsed = query_reader.read(request.q)
        if parsed.query is wq.NullQuery:
            return SearchResult(request.q, 0, request.page, request.size, _ms(started), [], notice=parsed.notice)
        page, notice, suggestion = self._answer(searcher, parsed, request, self._run)
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
        )

    def _answer(self, searcher: WhooshSearcher, parsed: ParsedQuery, request: SearchRequest,
                run: Callable[[WhooshSearcher, wq.Query, SearchRequest], "_Page"]) -> tuple["_Page", str, str | None]:
        """The query as read; with few hits, a did-you-mean; with none, the corrected query's
        results or else those of the looser reading (any of the words), each saying so."""
        page = run(searcher, self._with_feedback(searcher, parsed), request)
        notice = parsed.notice
        suggestion = None
        if page.total < FEW_HITS:
            suggestion = self._did_you_mean(searcher, request.q, page.total)
            if page.total == 0 and suggestion is not None:
                page = run(searcher, self._query_reader().read(suggestion).query, request)
                notice = _join(notice, f"no results for {request.q.strip()}; showing results for {suggestion}")
            elif page.total == 0 and parsed.relaxed is not None:
                page = run(searcher, parsed.relaxed, request)
                if page.total:
                    notice = _join(notice, "no article has all the words; showing articles with some of them")
        return page, notice, suggestion

    def _with_feedback(self, searcher: WhooshSearcher, parsed: ParsedQuery) -> wq.Query:
        """Pseudo-relevance feedback (off unless Ranking.feedback_docs is set)."""
        ranking = self.ranking
        if not ranking.feedback_docs or len(parsed.words) < ranking.feedback_min_words:
            return parsed.query
        top = searcher.search(parsed.query, limit=ranking.feedback_docs)
        text = "\n".join(f"{hit.get('title', '')}\n{hit.get('body', '')}" for hit in top)
        if not text.strip():
            return parsed.query
        terms = searcher.key_terms_from_text("body", text, numterms=ranking.feedback_terms, normalize=True)
        return self._query_reader().feedback(parsed.query, terms, parsed.words)

    @_reading
    def ranked_ids(self, text: str, limit: int = 100) -> list[str]:
        """The ids `search(SearchRequest(q=text, size=limit))` would return, in order, without the
        snippets and facets (for relevance evaluation)."""
        searcher = self._searcher()
        parsed = self._query_reader().read(text)
        if parsed.query is wq.NullQuery:
            return []
        request = SearchRequest(q=text, size=limit)
        page, _, _ = self._answer(searcher, parsed, request, self._run_ids)
        return [hit.id for hit in page.hits]

    def _run_ids(self, searcher: WhooshSearcher, query: wq.Query, request: SearchRequest) -> "_Page":
        fetch = _fetch(request)
        results = searcher.search(query, limit=fetch)
        top = results[:fetch]
        groups = fold_duplicates(_lazy(searcher, top), [hit.score or 0.0 for hit in top])
        hits = [_make_hit(fields, "", float(hit.score or 0.0), len(group) - 1) for (hit, fields), group in groups[: request.size]]
        # Only "none" and "a few" matter here: a full count would be a second pass.
        return _Page(total=results.scored_length(), hits=hits, facets={})

    def _fuzzy_words(self, word: str, distance: int) -> list[str]:
        return self.vocabulary().near(word, distance)

    def _run(self, searcher: WhooshSearcher, query: wq.Query, request: SearchRequest) -> "_Page":
        kwargs: dict[str, Any] = {
            "limit": _fetch(request),
            "groupedby": {
                "category": sorting.FieldFacet("category", maptype=sorting.Count),
                "year": sorting.FieldFacet("year", maptype=sorting.Count),
            },
            "terms": True,
        }
        filters = self._filters(request)
        if filters is not None:
            kwargs["filter"] = filters
        if request.sort == "date":
            kwargs["sortedby"] = sorting.FieldFacet("date", reverse=True)
        results = searcher.search(query, **kwargs)
        results.fragmenter = self._fragmenter
        results.formatter = self._formatter
        top = results[: kwargs["limit"]]
        scores = [hit.score or 0.0 for hit in top] if request.sort == "relevance" else None
        groups = fold_duplicates(_lazy(searcher, top), scores)
        start = (request.page - 1) * request.size
        hits = [self._hit(hit, fields, len(group) - 1) for (hit, fields), group in groups[start:start + request.size]]
        facets = {
            name: dict(sorted(results.groups(name).items(), key=lambda kv: (-kv[1], str(kv[0]))))
            for name in ("category", "year")
        }
        facets = {name: {str(k): v for k, v in counts.items() if k} for name, counts in facets.items()}
        total = len(results)
        return _Page(total=total, hits=hits, facets=facets)

    def _filters(self, request: SearchRequest) -> wq.Query | None:
        parts: list[wq.Query] = []
        if request.category:
            parts.append(wq.Term("category", request.category))
        if request.date_from or request.date_to:
            parts.append(wq.DateRange("date", request.date_from, request.date_to))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else wq.And(parts)

    def _hit(self, hit: WhooshHit, fields: dict[str, Any], duplicates: int = 0) -> Hit:
        snippet = hit.highlights("body", top=2) or hit.highlights("summary", top=1)
        if not snippet:
            snippet = lead(fields.get("summary") or fields.get("subtitle") or fields.get("body", ""))
        return _make_hit(fields, snippet, float(hit.score or 0.0), duplicates)

    # --- did you mean ---------------------------------------------------------------------------

    @_reading
    def vocabulary(self) -> Vocabulary:
        """The shared in-memory vocabulary. Only the very first one is built while a query
        waits; after a commit the old one keeps answering while a thread reads the new one
        (reading 30,000+ words takes from 0.2 s to seconds on a busy machine)."""
        key = self.reader.version()
        with self._vocabulary_lock:
            current = self._vocabulary
            if current is not None:
                stale = self._vocabulary_key != key and (
                    self._vocabulary_key[0] != key[0] or time.monotonic() - current.built >= VOCABULARY_MAX_AGE
                )
                if stale:
                    self._refresh_vocabulary_in_background()
                return current
        vocabulary = Vocabulary.read(self._searcher())
        with self._vocabulary_lock:
            if self._vocabulary is None:
                self._vocabulary, self._vocabulary_key = vocabulary, key
            return self._vocabulary

    def _refresh_vocabulary_in_background(self) -> None:
        """Called with the lock held; at most one reader thread at a time."""
        if self._vocabulary_thread is not None and self._vocabulary_thread.is_alive():
            return

        def read() -> None:
            key = self.reader.version()
            try:
                with self._checkout():
                    vocabulary = Vocabulary.read(self._searcher())
            except Exception:  # the index moved on or vanished: the old vocabulary stays
                log.debug("vocabulary refresh failed", exc_info=True)
                return
            with self._vocabulary_lock:
                self._vocabulary, self._vocabulary_key = vocabulary, key

        self._vocabulary_thread = threading.Thread(target=read, name="searchd-vocabulary", daemon=True)
        self._vocabulary_thread.start()

    def _did_you_mean(self, searcher: WhooshSearcher, text: str, hits: int) -> str | None:
        """Replace unknown words by their nearest frequent neighbours; offer the result only if
        it finds more than the query as typed."""
        vocabulary = self.vocabulary()
        changed = False

        def fix(match: re.Match[str]) -> str:
            nonlocal changed
            word = match.group(0)
            if match.start() > 0 and text[match.start() - 1] in ":~^":
                return word  # a field value or an operator argument, not a word to correct
            better = vocabulary.correct(word, searcher)
            if better is None:
                return word
            changed = True
            return better

        corrected = _SUGGESTABLE_WORD.sub(fix, text.strip())
        if not changed:
            return None
        parsed = self._query_reader().read(corrected)
        if parsed.query is wq.NullQuery:
            return None
        found = searcher.search(parsed.query, limit=1, scored=False)
        return corrected if len(found) > hits else None

    # --- autocomplete ---------------------------------------------------------------------------

    @_reading
    def suggest(self, prefix: str, size: int = 8) -> list[str]:
        """Completions of the last word typed, most frequent first, as whole query strings."""
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        prefix = prefix[:MAX_QUERY_CHARS]
        match = re.search(r"(\w+)$", prefix)
        if match is None:
            return []
        head, partial = prefix[: match.start()], match.group(1).lower()
        searcher = self._searcher()
        reader = searcher.reader()
        scores: dict[str, int] = {}
        for fieldname, weight in (("spell_title", 3), ("spell_summary", 2), ("spell_body", 1)):
            if fieldname not in reader.schema:
                continue
            for count, (word, info) in enumerate(reader.iter_prefix(fieldname, partial)):
                if count >= MAX_PREFIX_TERMS:
                    break
                word = word.decode("utf-8") if isinstance(word, bytes) else word
                if word != partial:
                    scores[word] = scores.get(word, 0) + weight * info.doc_frequency()
        best = sorted(scores, key=lambda w: (-scores[w], w))[:size]
        return [head + word for word in best]

    # --- similar articles -----------------------------------------------------------------------

    @_reading
    def similar(self, doc_id: str, size: int = 5) -> list[Hit]:
        """Articles sharing the key terms of `doc_id` (the article itself and its copies excluded)."""
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        searcher = self._searcher()
        docnum = searcher.document_number(id=doc_id)
        if docnum is None:
            return []
        source = searcher.stored_fields(docnum)
        text = "\n".join([source.get("title", "")] * 2 + [source.get("summary", ""), source.get("body", "")])
        terms = searcher.key_terms_from_text("body", text, numterms=SIMILAR_TERMS, normalize=True)
        if not terms:
            return []
        query = wq.Or(
            [wq.Term("body", word, boost=weight) for word, weight in terms]
            + [wq.Term("title", word, boost=weight * 2) for word, weight in terms]
        )
        results = searcher.search(query, limit=size * 3 + 5, mask={docnum})
        own = _Signature(source, 1.0)
        candidates = [(hit, hit.fields()) for hit in results[: size * 3 + 5]]
        candidates = [(hit, fields) for hit, fields in candidates if not own.same_as(_Signature(fields, 1.0))]
        hits = []
        for (hit, fields), group in fold_duplicates(candidates)[:size]:
            snippet = lead(fields.get("summary") or fields.get("subtitle") or fields.get("body", ""))
            hits.append(_make_hit(fields, snippet, float(hit.score or 0.0), len(group) - 1))
        return hits

    # --- documents ------------------------------------------------------------------------------

    @_reading
    def document(self, doc_id: str) -> Document | None:
        fields = self._searcher().document(id=doc_id)
        if fields is None:
            return None
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


@dataclass(frozen=True)
class _Page:
    total: int
    hits: list[Hit]
    facets: dict[str, dict[str, int]]


def _make_hit(fields: dict[str, Any], snippet: str, score: float, duplicates: int) -> Hit:
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


class _Signature:
    """What decides that two articles are the same: the file checksum, or (near-identical) the
    overlap of their word 4-shingles, computed only when a comparison needs them."""

    def __init__(self, fields: Mapping[str, Any], score: float):
        self.fields = fields
        checksum = fields.checksum if isinstance(fields, _LazyFields) else fields.get("checksum")
        self.checksum = str(checksum or "")
        self.score = score
        self._shingles: frozenset[int] | None = None

    @property
    def shingles(self) -> frozenset[int]:
        if self._shingles is None:
            text = f"{self.fields.get('title', '')} {self.fields.get('body', '')}".lower()
            words = _SHINGLE_WORD.findall(text)
            self._shingles = frozenset(hash(tuple(words[i:i + 4])) for i in range(max(1, len(words) - 3)))
        return self._shingles

    def same_as(self, other: "_Signature") -> bool:
        if self.checksum and self.checksum == other.checksum:
            return True
        # Near-identical texts score nearly the same for any query: a cheap test that spares
        # the shingle comparison for almost every pair.
        high, low = max(self.score, other.score), min(self.score, other.score)
        if low < high * NEAR_DUPLICATE_SCORE:
            return False
        small, large = sorted((len(self.shingles), len(other.shingles)))
        if not small or small < NEAR_DUPLICATE * large:
            return False
        common = len(self.shingles & other.shingles)
        return common >= NEAR_DUPLICATE * (small + large - common)


T = TypeVar("T")


class _LazyFields(Mapping[str, Any]):
    """A hit's stored fields, unpickled only when read: folding duplicates needs the checksum
    (a column, cheap) of every fetched hit but the text of only a few."""

    def __init__(self, hit: WhooshHit, checksum: Any):
        self._hit = hit
        self._data: dict[str, Any] | None = None
        self.checksum = checksum.decode("ascii", "replace") if isinstance(checksum, bytes) else checksum

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._hit.fields()
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._load()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._load())

    def __len__(self) -> int:
        return len(self._load())


def _lazy(searcher: WhooshSearcher, hits: Any) -> list[tuple[WhooshHit, _LazyFields]]:
    reader = searcher.reader()
    checksums = reader.column_reader("checksum") if reader.has_column("checksum") else None
    return [(hit, _LazyFields(hit, checksums[hit.docnum] if checksums is not None else None)) for hit in hits]


def fold_duplicates(ranked: list[tuple[T, dict[str, Any]]], scores: list[float] | None = None) -> list[tuple[tuple[T, dict[str, Any]], list[T]]]:
    """Ranked (hit, stored fields) -> [(best hit, its group)], each group holding an article and
    the identical or near-identical articles ranked below it. `scores` (one per item) lets the
    near-duplicate test skip pairs whose scores differ; without them every pair is compared."""
    kept: list[tuple[tuple[T, dict[str, Any]], list[T], _Signature]] = []
    by_checksum: dict[str, list[T]] = {}
    for index, item in enumerate(ranked):
        signature = _Signature(item[1], scores[index] if scores else 1.0)
        group = by_checksum.get(signature.checksum) if signature.checksum else None
        if group is None:
            group = _near_duplicate_group(kept, signature, ordered=scores is not None)
        if group is not None:
            group.append(item[0])
            continue
        group = [item[0]]
        kept.append((item, group, signature))
        if signature.checksum:
            by_checksum[signature.checksum] = group
    return [(first, group) for first, group, _ in kept]


def _near_duplicate_group(kept: list, signature: _Signature, ordered: bool) -> list | None:
    # Scanned from the lowest-scoring kept article up: in score order, once a kept article
    # scores well above this one, all those before it do too.
    for _first, group, other in reversed(kept):
        if ordered and signature.score < other.score * NEAR_DUPLICATE_SCORE:
            return None
        if other.same_as(signature):
            return group
    return None


def _fetch(request: SearchRequest) -> int:
    """Duplicates are folded after ranking, so read a little past the page to still fill it."""
    return request.page * request.size + max(10, request.size // 2)


def _join(*notices: str) -> str:
    return "; ".join(n for n in notices if n)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
