"""The Flask app: the search page, the article view, the help page, the Atom feed and the JSON API.

Each HTML page and its JSON twin are rendered from the same view data (a plain dict built by one
function), so the page and the API cannot drift apart. Everything that depends only on the index
and the query string carries an ETag tied to the index generation: a repeated request is answered
from a small in-process cache (or with 304) until the index changes.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import gzip
import hashlib
import hmac
import html
import logging
import re
import secrets
import threading
import unicodedata
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from functools import lru_cache, partial, wraps
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import orjson
from flask import Flask, Response, abort, render_template, request, send_from_directory, url_for
from waitress import create_server
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import PathConverter

from .config import Config
from .index import IndexMissing, IndexReader, index_stats, read_status
from .query import MAX_QUERY_CHARS, QueryTooLong
from .schema import TextAnalyzer
from .snippets import marked
from .search import MAX_PAGE, MAX_PAGE_SIZE, BadRequest, SearchRequest, Searcher

log = logging.getLogger("searchd.web")

StatusProvider = Callable[[], dict[str, Any]]

MAX_BODY_BYTES = 64 * 1024
# Below this a gzip header and the CPU it costs are not worth it.
GZIP_MIN_BYTES = 1024
COMPRESSIBLE = {
    "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
    "application/atom+xml", "application/opensearchdescription+xml", "image/svg+xml", "text/plain",
}
PAGE_SIZE = 10  # results per page unless `size` says otherwise
FEED_SIZE = 20
SIMILAR_SIZE = 5
SUGGEST_SIZE = 8
# Versioned static URLs (?v=<hash of the file>) never change content, so browsers may keep them.
STATIC_MAX_AGE = 365 * 24 * 3600
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# Arguments that shape a search; anything else in the query string is ignored (and not cached).
SEARCH_ARGS = ("q", "page", "size", "sort", "category", "from", "to")
# What /healthz tells a client without the token (when one is set): what a health check needs,
# nothing that names the folder, its files or the process.
PUBLIC_HEALTH = ("status", "documents", "pending", "progress", "last_commit")


def web_dir() -> Path:
    """Templates and static files: inside the package when installed from a wheel, the top-level
    web/ folder in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "web", here.parent / "web"):
        if (candidate / "templates").is_dir():
            return candidate
    raise RuntimeError("searchd's web/ folder (templates and static files) is missing")


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


# --- request arguments --------------------------------------------------------------------------

def _int_arg(args: Mapping[str, str], name: str, default: int) -> int:
    # Only a missing argument takes the default: `size=` is as wrong as `size=x` (and the OpenAPI
    # description says so), so a client's bug is reported instead of guessed around.
    if name not in args:
        return default
    raw = args[name].strip()
    if not re.fullmatch(r"[+-]?\d{1,9}", raw):
        raise BadRequest(f"{name} must be a whole number, got {raw[:40]!r}")
    return int(raw)


_DATE_FORMATS = (("%Y-%m-%d", "day"), ("%Y-%m", "month"), ("%Y", "year"))


def _date_arg(args: Mapping[str, str], name: str, end: bool = False) -> datetime | None:
    """`from`/`to` as a day, a month or a year; `to` means the end of that period, so that
    from=2025&to=2025 is the whole of 2025."""
    if name not in args:
        return None
    raw = args[name]
    # strptime alone would take "2025-2-3" and " 2025": the OpenAPI description does not.
    formats = _DATE_FORMATS if re.fullmatch(r"[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?", raw) else ()
    for fmt, unit in formats:
        try:
            start = datetime.strptime(raw, fmt)
        except ValueError:
            continue
        if not end:
            return start
        if unit == "year":
            return start.replace(month=12, day=31, hour=23, minute=59, second=59)
        if unit == "month":
            last = calendar.monthrange(start.year, start.month)[1]
            return start.replace(day=last, hour=23, minute=59, second=59)
        return start.replace(hour=23, minute=59, second=59)
    raise BadRequest(f"{name} must be a date like 2025-01-31, 2025-01 or 2025, got {raw[:40]!r}")


# `sort:date` / `sort:newest` / `sort:relevance` typed in the box: an explicit sort= argument wins.
_SORT_IN_QUERY = re.compile(r"(?:^|\s)sort:(date|newest|relevance)(?=\s|$)", re.IGNORECASE)


def _sort_from_query(q: str) -> tuple[str, str | None]:
    match = _SORT_IN_QUERY.search(q)
    if match is None:
        return q, None
    rest = (q[:match.start()] + " " + q[match.end():]).strip()
    return rest, "relevance" if match.group(1).lower() == "relevance" else "date"


def search_request_from(args: Mapping[str, str]) -> SearchRequest:
    date_from, date_to = _date_arg(args, "from"), _date_arg(args, "to", end=True)
    q, typed_sort = _sort_from_query(args.get("q", ""))
    if args.get("category") == "":
        raise BadRequest("category must not be empty; leave it out to search every category")
    search = SearchRequest(
        q=q,
        page=_int_arg(args, "page", 1),
        size=_int_arg(args, "size", PAGE_SIZE),
        sort=args.get("sort", typed_sort or "relevance"),
        category=args.get("category", ""),
        date_from=date_from,
        date_to=date_to,
    )
    search.validate()
    return search


def _echo(search: SearchRequest, args: Mapping[str, str]) -> dict[str, str]:
    """The sort and filters in force: the page keeps them in its links, a client can check what
    was applied."""
    return {"sort": search.sort, "category": search.category,
            "from": args.get("from", ""), "to": args.get("to", "")}


# --- marking the query's words in an article ----------------------------------------------------

# Parts of a query that name no words of the text: negated terms, filters, ranges, sort orders.
_NOT_TEXT = re.compile(
    r'(?:(?:^|\s)(?:-|NOT\s+)(?:\w+:)?(?:"[^"]*"|\S+))'
    r'|(?:\b(?:category|cat|tags?|date|after|before|sort|year|id|format|path):(?:"[^"]*"|\[[^\]]*\]|\{[^}]*\}|\S+))'
)
# What is left to drop before reading words: field names (title:), slops and fuzziness (~2).
_SYNTAX = re.compile(r"\b\w+:|~\d*")
_QUERY_WORD = re.compile(r"\w+(?:[.'’]\w+)*\*?")
_OPERATORS = {"AND", "OR", "NOT", "ANDNOT", "ANDMAYBE", "TO"}


@dataclass(frozen=True)
class Marker:
    """Marks the words of a query in a text the way the index reads them: "talks" marks "talk",
    "cafe" marks "café", "negot*" marks "negotiations". Output is escaped text plus <mark>."""

    stems: frozenset[str]
    prefixes: tuple[str, ...]

    @classmethod
    def for_query(cls, q: str) -> "Marker":
        analyzer = _analyzer()
        stems: set[str] = set()
        prefixes: list[str] = []
        for word in _QUERY_WORD.findall(_SYNTAX.sub(" ", _NOT_TEXT.sub(" ", q[:MAX_QUERY_CHARS]))):
            if word.rstrip("*") in _OPERATORS:
                continue
            if word.endswith("*"):
                prefixes.append(_fold(word.rstrip("*")))
            else:
                stems.update(token.text for token in analyzer(word))
        return cls(frozenset(stems), tuple(p for p in prefixes if p))

    def __bool__(self) -> bool:
        return bool(self.stems or self.prefixes)

    def mark(self, text: str) -> str:
        if not self:
            return html.escape(text, quote=False)
        spans: list[tuple[int, int]] = []
        for token in _analyzer()(text, chars=True):
            original = text[token.startchar:token.endchar]
            if token.text in self.stems or (self.prefixes and _fold(original).startswith(self.prefixes)):
                spans.append((token.startchar, token.endchar))
        return marked(text, spans)


@lru_cache(maxsize=1)
def _analyzer() -> Any:
    """The index's own analyzer (built once: its stemming cache is worth keeping)."""
    return TextAnalyzer()


def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


# --- the response cache -------------------------------------------------------------------------

@dataclass
class ResponseCache:
    """Recently built views keyed by (index generation, route, arguments). A new generation
    empties it, so nothing stale is ever served. capacity=0 turns it off."""

    capacity: int = 512
    hits: int = 0
    misses: int = 0
    _generation: Any = None
    _entries: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get_or_build(self, generation: Any, key: tuple, build: Callable[[], Any]) -> Any:
        if self.capacity <= 0:
            return build()
        with self._lock:
            if generation != self._generation:
                self._entries.clear()
                self._generation = generation
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
            self.misses += 1
        value = build()  # outside the lock: two threads may build the same view, never block
        with self._lock:
            if generation == self._generation:
                self._entries[key] = value
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
        return value


# --- authentication -----------------------------------------------------------------------------

def supplied_token(header: str) -> str | None:
    """The token from `Bearer TOKEN`, or the password of HTTP Basic (any user name)."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2]
    return None


def token_matches(header: str, token: str) -> bool:
    supplied = supplied_token(header)
    # compare_digest: the time taken does not tell an attacker how much of a guess was right.
    return supplied is not None and hmac.compare_digest(supplied.encode("utf-8"), token.encode("utf-8"))


# --- the app ------------------------------------------------------------------------------------

def default_status(index_dir: Path) -> StatusProvider:
    """Status for a process that only reads: the index itself plus what the writer last wrote."""

    def status() -> dict[str, Any]:
        report = read_status(index_dir)
        try:
            ix = IndexReader(index_dir).open()
        except IndexMissing:
            return {**report, "status": "indexing" if report else "no index", "documents": 0,
                    "pending": report.get("pending", 0), "last_commit": None}
        stats = index_stats(ix)
        return {
            **report,
            "status": report.get("status", "ok"),
            "documents": stats.documents,
            "segments": stats.segments,
            "pending": report.get("pending", 0),
            "last_commit": stats.last_commit,
        }

    return status


def _static_versions(static: Path) -> dict[str, str]:
    return {
        path.relative_to(static).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in static.rglob("*") if path.is_file()
    }


def create_app(config: Config, status: StatusProvider | None = None, cache_entries: int = 512,
               warm_up: bool = False) -> Flask:
    folder = web_dir()
    app = Flask("searchd", template_folder=str(folder / "templates"), static_folder=None)
    # Ids are file paths, and a file name may contain a newline: Werkzeug's default path converter
    # ("[^/].*?") stops at one, so such an article would answer 404.
    app.url_map.converters["path"] = _AnyPath
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    searcher = Searcher(Path(config.index_dir))
    if warm_up:
        threading.Thread(target=searcher.warm_up, name="searchd-warm-up", daemon=True).start()
    status = status or default_status(Path(config.index_dir))
    cache = ResponseCache(cache_entries)
    static_dir = folder / "static"
    versions = _static_versions(static_dir)
    # Part of every ETag: a restarted server (perhaps with new templates) never answers 304 to a
    # page an older one rendered.
    instance = secrets.token_hex(4)
    openapi = orjson.loads((folder / "openapi.json").read_bytes())
    app.extensions["searchd"] = {"searcher": searcher, "status": status, "config": config, "cache": cache}

    # --- views: one dict per page, shared by the HTML page and its JSON twin --------------------

    def search_view(args: Mapping[str, str]) -> dict[str, Any]:
        search = search_request_from(args)

        def build() -> dict[str, Any]:
            result = searcher.search(search)
            view = asdict(result)
            view["pages"] = min(result.pages, MAX_PAGE)
            view["filters"] = _echo(search, args)
            if search.date_from and search.date_to and search.date_from > search.date_to:
                # Each date is valid, and the OpenAPI description cannot relate two parameters:
                # an empty period is answered (nothing is in it), and said to be one.
                view["notice"] = "; ".join(filter(None, [view["notice"], "from is after to: no article is dated in that period"]))
            return view

        key = ("search", tuple((name, args.get(name, "")) for name in SEARCH_ARGS))
        return cache.get_or_build(searcher.generation(), key, build)

    def similar_hits(doc_id: str, size: int) -> list[dict[str, Any]]:
        # Cached (a more-like-this query is the costly part of an article page); the article
        # itself is not, as one may be megabytes long.
        return cache.get_or_build(searcher.generation(), ("similar", doc_id, size),
                                  lambda: [asdict(hit) for hit in searcher.similar(doc_id, size=size)])

    def document_view(doc_id: str, q: str) -> dict[str, Any]:
        document = searcher.document(doc_id)
        if document is None:
            abort(404, description=f"no article with id {doc_id!r}")
        view = asdict(document)
        marker = Marker.for_query(q)
        view["query"] = q
        view["marked"] = {
            "title": marker.mark(document.title),
            "subtitle": marker.mark(document.subtitle),
            "summary": marker.mark(document.summary),
            "body": [marker.mark(paragraph) for paragraph in document.body],
        }
        view["similar"] = similar_hits(doc_id, SIMILAR_SIZE)
        return view

    def similar_view(doc_id: str, args: Mapping[str, str]) -> dict[str, Any]:
        size = _int_arg(args, "size", SIMILAR_SIZE)
        if not 1 <= size <= MAX_PAGE_SIZE:
            raise BadRequest(f"size must be between 1 and {MAX_PAGE_SIZE}")
        if searcher.document(doc_id) is None:
            abort(404, description=f"no article with id {doc_id!r}")
        return {"id": doc_id, "hits": similar_hits(doc_id, size)}

    def suggest_view(args: Mapping[str, str]) -> dict[str, Any]:
        q = args.get("q", "")
        if len(q) > MAX_QUERY_CHARS:
            raise QueryTooLong(f"query is {len(q)} characters long; the limit is {MAX_QUERY_CHARS}")
        size = _int_arg(args, "size", SUGGEST_SIZE)
        if not 1 <= size <= 50:
            raise BadRequest("size must be between 1 and 50")
        # Complete the word being typed; the words before it stay as they are.
        head, _, last = q.rpartition(" ")
        words = searcher.suggest(last, size=size) if last.strip() else []
        completions = [f"{head} {word}".strip() for word in words]
        return {"query": q, "suggestions": completions}

    # --- caching and conditional requests -------------------------------------------------------

    def index_etag(vary: Any) -> str:
        args = sorted(request.args.items(multi=True))
        raw = orjson.dumps([instance, searcher.generation(), request.path, args, vary])
        return hashlib.sha256(raw).hexdigest()[:32]

    def index_cached(route: Callable[..., Any], vary: Callable[[], Any] = lambda: None) -> Callable[..., Any]:
        """Answers 304 when the client already has this response for the current index (and the
        same `vary()`: what else the response shows)."""

        @wraps(route)
        def wrapper(*a: Any, **kw: Any) -> Response:
            etag = index_etag(vary())
            if request.if_none_match.contains_weak(etag):
                response = Response(status=304)
            else:
                response = app.make_response(route(*a, **kw))
            response.set_etag(etag, weak=True)
            # no-cache = keep it, but ask each time (cheap: the answer is usually 304).
            response.headers["Cache-Control"] = "private, no-cache" if config.token else "no-cache"
            return response

        return wrapper

    def indexing() -> dict[str, int] | None:
        """{done, total} while a bulk index runs: the search page says so rather than look empty."""
        progress = status().get("progress")
        return progress if isinstance(progress, dict) else None

    def template_args() -> dict[str, Any]:
        return {"args": request.args, "max_query": MAX_QUERY_CHARS}

    @app.template_global()
    def asset(filename: str) -> str:
        return url_for("static", filename=filename, v=versions.get(filename, instance))

    @app.template_global()
    def search_url(view: Mapping[str, Any], changes: Mapping[str, Any] | None = None, **more: Any) -> str:
        """A results URL keeping the current query and filters, with the changes applied (a dict,
        because `from` is a Python keyword)."""
        params = {"q": view.get("query", ""), **view.get("filters", {}), "page": view.get("page", 1),
                  "size": view.get("size", PAGE_SIZE)}
        params.update(changes or {})
        params.update(more)
        for name, default in (("sort", "relevance"), ("page", 1), ("size", PAGE_SIZE)):
            if params.get(name) == default:
                params[name] = None
        return url_for("results_page", **{k: v for k, v in params.items() if v not in (None, "")})

    @app.template_global()
    def atom_time(value: str | None) -> str:
        """RFC 3339 in UTC, as Atom wants; article dates carry no zone and are read as UTC."""
        when = datetime.fromisoformat(value) if value else datetime.now(timezone.utc)
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        return when.isoformat(timespec="seconds") + "Z"

    @app.template_global()
    def doc_url(doc_id: str, q: str = "") -> str:
        return url_for("document_page", doc_id=doc_id, q=q or None)

    # --- HTML pages -----------------------------------------------------------------------------

    @app.get("/", endpoint="home")
    @app.get("/search")
    @partial(index_cached, vary=indexing)
    def results_page() -> str:
        view = search_view(request.args) if request.args.get("q", "").strip() else None
        return render_template("search.html", view=view, indexing=indexing(), **template_args())

    @app.get("/doc/<path:doc_id>")
    @index_cached
    def document_page(doc_id: str) -> str:
        return render_template("doc.html", doc=document_view(doc_id, request.args.get("q", "")), **template_args())

    @app.get("/help")
    def help_page() -> str:
        return render_template("help.html", **template_args())

    @app.get("/search.atom")
    @index_cached
    def atom_feed() -> Response:
        args = {**request.args.to_dict(), "sort": "date", "page": "1", "size": str(FEED_SIZE)}
        view = search_view(args) if args.get("q", "").strip() else None
        body = render_template("feed.atom.xml", view=view, q=args.get("q", ""), **template_args())
        return Response(body, mimetype="application/atom+xml")

    @app.get("/opensearch.xml")
    def opensearch() -> Response:
        body = render_template("opensearch.xml")
        return Response(body, mimetype="application/opensearchdescription+xml")

    @app.get("/opensearch/suggest")
    @index_cached
    def opensearch_suggest() -> Response:
        """Completions in the OpenSearch suggestions format, for the browser's address bar."""
        view = suggest_view(request.args)
        return Response(orjson.dumps([view["query"], view["suggestions"]]), mimetype="application/x-suggestions+json")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return static_file("favicon.svg")

    @app.get("/static/<path:filename>", endpoint="static")
    def static_file(filename: str) -> Response:
        max_age = STATIC_MAX_AGE if request.args.get("v") == versions.get(filename) else 0
        response = send_from_directory(static_dir, filename, max_age=max_age)
        if max_age:
            response.cache_control.immutable = True
        else:
            response.cache_control.no_cache = True
        return response

    # --- JSON API -------------------------------------------------------------------------------

    @app.get("/api/search")
    @index_cached
    def api_search() -> Response:
        return json_response(search_view(request.args))

    @app.get("/api/suggest")
    @index_cached
    def api_suggest() -> Response:
        return json_response(suggest_view(request.args))

    @app.get("/api/doc/<path:doc_id>")
    @index_cached
    def api_document(doc_id: str) -> Response:
        return json_response(document_view(doc_id, request.args.get("q", "")))

    @app.get("/api/similar/<path:doc_id>")
    @index_cached
    def api_similar(doc_id: str) -> Response:
        return json_response(similar_view(doc_id, request.args))

    @app.get("/api/openapi.json")
    def api_openapi() -> Response:
        return json_response(openapi)

    @app.get("/healthz")
    def healthz() -> Response:
        data = status()
        if config.token and not token_matches(request.headers.get("Authorization", ""), config.token):
            data = {name: data.get(name) for name in PUBLIC_HEALTH}
        response = json_response(data)
        response.headers["Cache-Control"] = "no-store"
        return response

    # --- errors ---------------------------------------------------------------------------------

    @app.errorhandler(BadRequest)
    @app.errorhandler(QueryTooLong)
    def bad_request(exc: ValueError) -> Response | tuple[str, int]:
        return _error(400, "bad_request", str(exc))

    @app.errorhandler(IndexMissing)
    def no_index(exc: IndexMissing) -> Response | tuple[str, int]:
        return _error(503, "index_unavailable", str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[str, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        response = _error(exc.code or 500, code, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response = app.make_response(response)
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response | tuple[str, int]:
        log.exception("unhandled error on %s", request.path)
        return _error(500, "internal_error", "the server hit an unexpected error; it has been logged")

    # --- before and after every request ---------------------------------------------------------

    @app.before_request
    def guard() -> Response | None:
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            abort(413, description=f"request bodies are limited to {MAX_BODY_BYTES} bytes")
        if request.method == "OPTIONS" and config.cors_origins and _is_api(request.path):
            return _preflight(config)
        if config.token and request.endpoint not in _OPEN_ENDPOINTS and not token_matches(
            request.headers.get("Authorization", ""), config.token
        ):
            response = app.make_response(_error(401, "unauthorized", "this searchd requires a token: "
                                                "send `Authorization: Bearer TOKEN` or log in with the token as password"))
            response.headers.add("WWW-Authenticate", 'Basic realm="searchd", charset="UTF-8"')
            response.headers.add("WWW-Authenticate", 'Bearer realm="searchd"')
            return response
        return None

    @app.after_request
    def finish(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if config.cors_origins and _is_api(request.path):
            _allow_origin(response, config.cors_origins)
        _gzip(response)
        return response

    return app


@contextmanager
def serving(app: Flask, host: str = "127.0.0.1", port: int = 0, threads: int = 4) -> Iterator[str]:
    """Serve `app` with waitress on a background thread; yields the base URL. For tests, the
    screenshot script and benchmarks: `searchd serve` runs waitress in the foreground instead."""
    server = create_server(app, host=host, port=port, threads=threads, ident="searchd")
    thread = threading.Thread(target=server.run, name="searchd-http", daemon=True)
    thread.start()

    def close_everything() -> None:
        # Runs on the server's own loop thread (closing sockets from another thread races its
        # select()); with every channel closed, the loop ends by itself.
        for channel in list(server._map.values()):
            channel.close()

    try:
        yield f"http://{host}:{server.effective_port}"
    finally:
        server.trigger.pull_trigger(close_everything)
        thread.join(timeout=10)
        server.task_dispatcher.shutdown()


# Answered without the token: the health check, and the page's own CSS, script and icon (the
# login page uses them; they hold nothing of the folder).
_OPEN_ENDPOINTS = frozenset({"healthz", "static", "favicon"})


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path == "/healthz"


def _allowed_origin(origins: tuple[str, ...]) -> str | None:
    origin = request.headers.get("Origin", "")
    if not origin:
        return None
    if "*" in origins:
        return "*"
    return origin if origin in origins else None


def _allow_origin(response: Response, origins: tuple[str, ...]) -> None:
    response.vary.add("Origin")
    allowed = _allowed_origin(origins)
    if allowed:
        response.headers["Access-Control-Allow-Origin"] = allowed
        response.headers["Access-Control-Expose-Headers"] = "ETag"


def _preflight(config: Config) -> Response:
    response = Response(status=204)
    if _allowed_origin(config.cors_origins):
        response.headers["Access-Control-Allow-Methods"] = "GET, HEAD, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, If-None-Match"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


def _gzip(response: Response) -> None:
    if response.mimetype not in COMPRESSIBLE:
        return
    response.vary.add("Accept-Encoding")
    if (response.status_code != 200 or "Content-Encoding" in response.headers
            or request.method == "HEAD" or not request.accept_encodings["gzip"]):
        return
    if response.content_length is not None and response.content_length < GZIP_MIN_BYTES:
        return
    # Static files stream from an open file by default: read it whole to compress, then close it.
    source = response.response
    response.direct_passthrough = False
    data = response.get_data()
    if hasattr(source, "close"):
        source.close()
    if len(data) < GZIP_MIN_BYTES:
        return
    response.set_data(gzip.compress(data, compresslevel=6))
    response.headers["Content-Encoding"] = "gzip"
    etag, weak = response.get_etag()
    if etag and not weak:  # the compressed bytes differ: a strong validator would lie
        response.set_etag(etag, weak=True)


def _error(status: int, code: str, message: str) -> Response | tuple[str, int]:
    if _is_api(request.path):
        return json_response({"error": {"code": code, "message": message}}, status)
    return render_template("error.html", status=status, message=message, args=request.args,
                           max_query=MAX_QUERY_CHARS), status


class _AnyPath(PathConverter):
    regex = "[^/](?s:.*?)"
