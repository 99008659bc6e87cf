"""The search service over an engine: a plain request in (query text, page, filters), a plain
result out (hits with snippets, total, facets, did-you-mean, notices, timing). Whatever the
engine, the query is read by searchd's query language, a misspelt query gets a did-you-mean, and
a keyword query that finds nothing falls back to articles with some of its words, saying so.
The web app, the CLI and `searchd eval` all search through here, so they rank alike. (An engine
may rank a keyword query's partial matches after its full ones: the page then says so.)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Hashable

from .engines.base import Document, EngineQuery, EngineReader, EngineResults, Hit, QueryTree
from .query import MAX_QUERY_CHARS, ParsedQuery, QueryTooLong, parse, relaxed

MAX_PAGE_SIZE = 100
MAX_PAGE = 1000
MAX_SUGGESTIONS = 50
# Below this many hits a query gets a did-you-mean check.
FEW_HITS = 3
# Seconds between warm-up attempts while there is no index yet.
WARM_UP_RETRY = 0.5

_SUGGESTABLE_WORD = re.compile(r"(?<![\w*?])[^\W\d_]{3,}(?![\w*?~:(])")
_LAST_WORD = re.compile(r"(\w+)$")


class BadRequest(ValueError):
    """A request the caller must change (HTTP 400): the message names the problem."""


@dataclass(frozen=True)
class SearchRequest:
    q: str = ""
    page: int = 1
    size: int = 10
    sort: str | None = None  # "relevance" or "date"; None: as typed in the query (sort:date), else relevance
    category: str = ""
    date_from: datetime | None = None
    date_to: datetime | None = None

    def validate(self) -> None:
        if not 1 <= self.size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        if not 1 <= self.page <= MAX_PAGE:
            raise BadRequest(f"page must be between 1 and {MAX_PAGE}")
        if self.sort not in (None, "relevance", "date"):
            raise BadRequest("sort must be 'relevance' or 'date'")


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


class Searcher:
    """Thread-safe, as the engine reader it wraps."""

    def __init__(self, reader: EngineReader):
        self.engine = reader

    def generation(self) -> Hashable:
        return self.engine.generation()

    def warm_up(self, retry_every: float = WARM_UP_RETRY) -> None:
        """The engine's warm-up, tried again until there is an index to warm up: a web worker
        started before the first bulk index finished would otherwise make the first query that
        needs did-you-mean wait for the whole vocabulary (0.8 s for Reuters' 61,000 words)."""
        while not self.engine.warm_up():
            time.sleep(retry_every)

    def document_count(self) -> int:
        return self.engine.document_count()

    # --- search ---------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult:
        request.validate()
        started = time.perf_counter()
        parsed = parse(request.q)
        query = self._query(parsed, request)
        if query is None:
            return SearchResult(request.q, 0, request.page, request.size, _ms(started), [], notice=parsed.notice,
                                results_for=request.q)
        results, notice, suggestion, results_for = self._answer(parsed, query, request.q)
        return SearchResult(
            query=request.q,
            total=results.total,
            page=request.page,
            size=request.size,
            took_ms=_ms(started),
            hits=results.hits,
            facets=results.facets,
            suggestion=suggestion,
            notice=notice,
            results_for=results_for,
        )

    def ranked_ids(self, text: str, limit: int = 100) -> list[str]:
        """The ids `search(SearchRequest(q=text, size=limit))` would return, in order, without the
        snippets and facets (for relevance evaluation)."""
        parsed = parse(text)
        query = self._query(parsed, SearchRequest(q=text, size=limit), snippets=False)
        if query is None:
            return []
        return [hit.id for hit in self._answer(parsed, query, text)[0].hits]

    @staticmethod
    def _query(parsed: ParsedQuery, request: SearchRequest, snippets: bool = True) -> EngineQuery | None:
        if parsed.tree is None:
            return None
        return EngineQuery(
            tree=parsed.tree,
            offset=(request.page - 1) * request.size,
            limit=request.size,
            sort=request.sort or parsed.sort or "relevance",
            category=request.category,
            date_from=request.date_from,
            date_to=request.date_to,
            snippets=snippets,
            facets=snippets,
        )

    def _answer(self, parsed: ParsedQuery, query: EngineQuery,
                text: str) -> tuple[EngineResults, str, str | None, str]:
        """The query as read; with few hits, a did-you-mean; with none, the corrected query's
        results or else those of the looser reading (any of the words), each saying so. Also
        returns the query whose results these are."""
        results = self.engine.search(query)
        notice = _join(parsed.notice, results.notice)
        suggestion = None
        results_for = text
        if results.matched < FEW_HITS:
            suggestion = self._did_you_mean(text, results.matched)
            corrected = parse(suggestion).tree if suggestion is not None else None
            loose = relaxed(query.tree)
            if results.matched == 0 and corrected is not None:
                results = self.engine.search(_with_tree(query, corrected))
                notice = _join(notice, f"no results for {text.strip()}; showing results for {suggestion}")
                results_for = suggestion
            elif results.total == 0 and loose is not None:
                results = self.engine.search(_with_tree(query, loose))
                results = replace(results, complete=0, partial=bool(results.total))
        return results, _join(notice, _partial_notice(results)), suggestion, results_for

    def _did_you_mean(self, text: str, hits: int) -> str | None:
        """Replace unknown words by their nearest frequent neighbours; offer the result only if
        it finds more than the query as typed."""
        changed = False

        def fix(match: re.Match[str]) -> str:
            nonlocal changed
            word = match.group(0)
            if match.start() > 0 and text[match.start() - 1] in ":~^":
                return word  # a field value or an operator argument, not a word to correct
            better = self.engine.correct(word)
            if better is None:
                return word
            changed = True
            return better

        corrected = _SUGGESTABLE_WORD.sub(fix, text.strip())
        if not changed:
            return None
        tree = parse(corrected).tree
        if tree is None:
            return None
        return corrected if self.engine.count(tree) > hits else None

    # --- autocomplete, similar articles, documents ----------------------------------------------

    def suggest(self, q: str, size: int = 8) -> list[str]:
        """Completions of the last word typed, most frequent first, as whole query strings."""
        if len(q) > MAX_QUERY_CHARS:
            raise QueryTooLong(f"query is {len(q)} characters long; the limit is {MAX_QUERY_CHARS}")
        if not 1 <= size <= MAX_SUGGESTIONS:
            raise BadRequest(f"size must be between 1 and {MAX_SUGGESTIONS}")
        match = _LAST_WORD.search(q)
        if match is None:
            return []
        head = q[:match.start()]
        return [head + word for word in self.engine.complete(match.group(1), size)]

    def similar(self, doc_id: str, size: int = 5) -> list[Hit]:
        """Articles sharing the key terms of `doc_id` (the article itself and its copies excluded)."""
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        return self.engine.similar(doc_id, size)

    def document(self, doc_id: str) -> Document | None:
        return self.engine.document(doc_id)

    def near_words(self, word: str, distance: int) -> list[str]:
        return self.engine.near_words(word, distance)


def _partial_notice(results: EngineResults) -> str:
    """Said whenever the page shows articles that have only some of the words."""
    if not results.partial:
        return ""
    if not results.complete:
        return "no article has all the words; showing articles with some of them"
    have = "article has" if results.complete == 1 else "articles have"
    return f"only {results.complete:,} {have} all the words; after them, articles with some of them"


def _with_tree(query: EngineQuery, tree: QueryTree) -> EngineQuery:
    return replace(query, tree=tree)


def _join(*notices: str) -> str:
    return "; ".join(n for n in notices if n)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


__all__ = ["BadRequest", "Document", "Hit", "SearchRequest", "SearchResult", "Searcher"]
