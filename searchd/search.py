"""The search side: a plain request in, plain results out (hits with snippets, facets, timing).

Readers never write. Each thread keeps its own Whoosh searcher and refreshes it only when the
index generation changes, so a commit is visible to the next query and an unchanged index costs
nothing to re-open.
"""

from __future__ import annotations

import html
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from whoosh import highlight, query as wq, sorting
from whoosh.searching import Hit as WhooshHit, Searcher as WhooshSearcher

from .index import IndexMissing, IndexReader
from .query import QueryReader

MAX_PAGE_SIZE = 100
MAX_PAGE = 1000
SNIPPET_CHARS = 240


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


class Searcher:
    def __init__(self, index_dir: Path):
        self.reader = IndexReader(Path(index_dir))
        self._local = threading.local()
        self._formatter = _MarkFormatter()
        self._fragmenter = highlight.ContextFragmenter(maxchars=SNIPPET_CHARS, surround=60)

    # --- searcher lifecycle ---------------------------------------------------------------------

    def _searcher(self) -> WhooshSearcher:
        version = self.reader.version()
        local = self._local
        current = getattr(local, "searcher", None)
        if current is not None and local.version == version:
            return current
        if current is not None and local.version[0] == version[0]:
            local.searcher = current.refresh()
        else:
            if current is not None:
                current.close()
            ix = self.reader.open()
            local.searcher = ix.searcher()
            local.query_reader = QueryReader(ix.schema)
        local.version = version
        return local.searcher

    def generation(self) -> tuple[str, int]:
        return self.reader.version()

    def document_count(self) -> int:
        try:
            return self._searcher().doc_count()
        except IndexMissing:
            return 0

    # --- search ---------------------------------------------------------------------------------

    def search(self, request: SearchRequest) -> SearchResult:
        request.validate()
        started = time.perf_counter()
        searcher = self._searcher()
        parsed = self._local.query_reader.read(request.q)
        if parsed.query is wq.NullQuery:
            return SearchResult(request.q, 0, request.page, request.size, _ms(started), [], notice=parsed.notice)
        filters = self._filters(request)
        kwargs: dict[str, Any] = {
            "limit": request.page * request.size,
            "groupedby": {
                "category": sorting.FieldFacet("category", maptype=sorting.Count),
                "year": sorting.FieldFacet("year", maptype=sorting.Count),
            },
            "terms": True,
        }
        if filters is not None:
            kwargs["filter"] = filters
        if request.sort == "date":
            kwargs["sortedby"] = sorting.FieldFacet("date", reverse=True)
        results = searcher.search(parsed.query, **kwargs)
        results.fragmenter = self._fragmenter
        results.formatter = self._formatter
        start = (request.page - 1) * request.size
        hits = [self._hit(hit) for hit in results[start:start + request.size]]
        facets = {
            name: dict(sorted(results.groups(name).items(), key=lambda kv: (-kv[1], str(kv[0]))))
            for name in ("category", "year")
        }
        facets = {name: {str(k): v for k, v in counts.items() if k} for name, counts in facets.items()}
        return SearchResult(
            query=request.q,
            total=results.scored_length() if request.sort == "date" else len(results),
            page=request.page,
            size=request.size,
            took_ms=_ms(started),
            hits=hits,
            facets=facets,
            notice=parsed.notice,
        )

    def _filters(self, request: SearchRequest) -> wq.Query | None:
        parts: list[wq.Query] = []
        if request.category:
            parts.append(wq.Term("category", request.category))
        if request.date_from or request.date_to:
            parts.append(wq.DateRange("date", request.date_from, request.date_to))
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else wq.And(parts)

    def _hit(self, hit: WhooshHit) -> Hit:
        fields = hit.fields()
        snippet = hit.highlights("body", top=2) or hit.highlights("summary", top=1)
        if not snippet:
            snippet = lead(fields.get("summary") or fields.get("subtitle") or fields.get("body", ""))
        return Hit(
            id=fields["id"],
            title=fields.get("title") or fields["id"],
            summary=fields.get("summary", ""),
            snippet=snippet,
            score=round(float(hit.score or 0.0), 4),
            date=_iso(fields.get("date")),
            category=fields.get("category", ""),
            path=fields["id"],
            tags=_tags(fields.get("tags", "")),
        )

    # --- documents ------------------------------------------------------------------------------

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


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
