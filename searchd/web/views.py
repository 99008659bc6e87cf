"""The view data: one plain dict per page, built here and rendered by the pages blueprint as HTML
and by the API blueprint as JSON, so that a page and its JSON twin cannot drift apart. Views that
depend only on the index and the arguments are cached until the index changes."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson
from flask import abort, current_app

from ..config import Config
from ..engines.base import EngineReader, EngineUnavailable, IndexMissing
from ..search import MAX_PAGE, MAX_PAGE_SIZE, BadRequest, Hit, Searcher
from .args import SEARCH_ARGS, echo, int_arg, search_request_from
from .caching import ResponseCache
from .marking import Marker
from .metrics import Metrics

StatusProvider = Callable[[], dict[str, Any]]

# What /healthz tells a client without the token (when one is set): what a health check needs,
# nothing that names the folder, its files or the process.
PUBLIC_HEALTH = ("status", "documents", "pending", "progress", "last_commit")
FEED_SIZE = 20
SIMILAR_SIZE = 5
SUGGEST_SIZE = 8


@dataclass
class Site:
    """Everything the app's views share: settings, the search service, the view cache, where the
    daemon's status comes from, and what makes this server instance's ETags its own."""

    config: Config
    searcher: Searcher
    status: StatusProvider
    cache: ResponseCache
    static_dir: Path
    static_versions: dict[str, str]  # file -> hash of its content (versioned URLs)
    openapi: dict[str, Any]
    metrics: Metrics
    instance: str = field(default_factory=lambda: secrets.token_hex(4))

    def search_view(self, args: Mapping[str, str]) -> dict[str, Any]:
        # A plain dict of the first values: Werkzeug's MultiDict builds (and catches) an HTTP
        # exception for each argument a request leaves out, a dozen per search.
        args = dict(args)
        search = search_request_from(args)

        def build() -> dict[str, Any]:
            result = self.searcher.search(search)
            self.metrics.searched(result.took_ms / 1000, generation, self.searcher.document_count)
            # One level deep: the hits stay dataclasses, which orjson and the templates read as
            # they are (a deep copy with asdict was half of the web layer's time per search).
            view = _fields(result)
            view["pages"] = min(result.pages, MAX_PAGE)
            view["filters"] = echo(search, args)
            if search.date_from and search.date_to and search.date_from > search.date_to:
                # Each date is valid, and the OpenAPI description cannot relate two parameters:
                # an empty period is answered (nothing is in it), and said to be one.
                view["notice"] = "; ".join(filter(None, [view["notice"], "from is after to: no article is dated in that period"]))
            return view

        key = ("search", tuple((name, args.get(name, "")) for name in SEARCH_ARGS))
        generation = self.searcher.generation()
        return self.cache.get_or_build(generation, key, build)

    def similar_hits(self, doc_id: str, size: int) -> list[Hit]:
        # Cached (a more-like-this query is the costly part of an article page); the article
        # itself is not, as one may be megabytes long.
        return self.cache.get_or_build(self.searcher.generation(), ("similar", doc_id, size),
                                       lambda: self.searcher.similar(doc_id, size=size))

    def document_view(self, doc_id: str, q: str) -> dict[str, Any]:
        document = self.searcher.document(doc_id)
        if document is None:
            abort(404, description=f"no article with id {doc_id!r}")
        view = asdict(document)
        marker = Marker.for_query(q, self.searcher.near_words)
        view["query"] = q
        view["marked"] = {
            "title": marker.mark(document.title),
            "subtitle": marker.mark(document.subtitle),
            "summary": marker.mark(document.summary),
            "body": [marker.mark(paragraph) for paragraph in document.body],
        }
        view["similar"] = self.similar_hits(doc_id, SIMILAR_SIZE)
        return view

    def similar_view(self, doc_id: str, args: Mapping[str, str]) -> dict[str, Any]:
        size = int_arg(args, "size", SIMILAR_SIZE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        if self.searcher.document(doc_id) is None:
            abort(404, description=f"no article with id {doc_id!r}")
        return {"id": doc_id, "hits": self.similar_hits(doc_id, size)}

    def suggest_view(self, args: Mapping[str, str]) -> dict[str, Any]:
        q = args.get("q", "")
        return {"query": q, "suggestions": self.searcher.suggest(q, size=int_arg(args, "size", SUGGEST_SIZE))}

    def health_view(self, authorized: bool) -> dict[str, Any]:
        data = self.status()
        nodes = self.searcher.engine.nodes()  # a clustered engine: which of its servers answer
        if nodes:
            data = {**data, "nodes": nodes}
        if authorized:
            return data
        public = {name: data.get(name) for name in PUBLIC_HEALTH}
        if nodes:  # how many answer, not where they are
            public["nodes"] = {"answering": sum(1 for node in nodes if node["ok"]), "total": len(nodes)}
        return public

    def indexing(self) -> dict[str, int] | None:
        """{done, total} while a bulk index runs: the search page says so rather than look empty."""
        progress = self.status().get("progress")
        return progress if isinstance(progress, dict) else None

    def feed_view(self, args: Mapping[str, str]) -> dict[str, Any] | None:
        """The newest articles of a search, for its Atom feed."""
        args = {**args, "sort": "date", "page": "1", "size": str(FEED_SIZE)}
        return self.search_view(args) if args.get("q", "").strip() else None


def _fields(record: Any) -> dict[str, Any]:
    return {f.name: getattr(record, f.name) for f in fields(record)}


def site() -> Site:
    return current_app.extensions["searchd"]


def default_status(reader: EngineReader) -> StatusProvider:
    """Status for a process that only reads: the index itself plus what the writer last wrote."""

    def status() -> dict[str, Any]:
        report = reader.daemon_status()
        try:
            stats = reader.stats()
        except EngineUnavailable as exc:  # a cluster with no node answering
            return {**report, "status": "unavailable", "documents": 0, "pending": report.get("pending", 0),
                    "last_commit": None, "error": str(exc)}
        except IndexMissing:
            return {**report, "status": "indexing" if report else "no index", "documents": 0,
                    "pending": report.get("pending", 0), "last_commit": None}
        return {
            **report,
            "status": report.get("status", "ok"),
            "documents": stats.documents,
            "segments": stats.segments,
            "pending": report.get("pending", 0),
            "last_commit": stats.last_commit,
        }

    return status


def published_status(path: Path, fallback: StatusProvider) -> StatusProvider:
    """Status for a worker of `searchd serve`: what its daemon last published to `path` (kept in
    memory by the server, so it is there also when the index's disk is full); the engine's copy
    before the first."""

    def status() -> dict[str, Any]:
        try:
            return orjson.loads(path.read_bytes())
        except (OSError, ValueError):
            return fallback()

    return status
