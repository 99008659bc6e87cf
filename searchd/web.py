"""The Flask app: the search page, the article view and their JSON twins.

Each HTML page and its JSON twin are rendered from the same view data (a plain dict built by one
function), so the page and the API cannot drift apart.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson
from flask import Flask, Response, abort, render_template, request
from werkzeug.exceptions import HTTPException

from .config import Config
from .index import IndexMissing, IndexReader, index_stats, read_status
from .query import QueryTooLong
from .search import BadRequest, SearchRequest, Searcher

log = logging.getLogger("searchd.web")

StatusProvider = Callable[[], dict[str, Any]]


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


def _int_arg(args: Mapping[str, str], name: str, default: int) -> int:
    raw = args.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, got {raw[:40]!r}") from None


def _date_arg(args: Mapping[str, str], name: str) -> datetime | None:
    raw = args.get(name, "").strip()
    if not raw:
        return None
    for fmt in ("%Y-%m-%d", "%Y-%m", "%Y"):
        try:
            return datetime.strptime(raw, fmt)
        except ValueError:
            continue
    raise BadRequest(f"{name} must be a date like 2025-01-31, 2025-01 or 2025, got {raw[:40]!r}")


def search_request_from(args: Mapping[str, str]) -> SearchRequest:
    search = SearchRequest(
        q=args.get("q", ""),
        page=_int_arg(args, "page", 1),
        size=_int_arg(args, "size", 10),
        sort=args.get("sort", "") or "relevance",
        category=args.get("category", ""),
        date_from=_date_arg(args, "from"),
        date_to=_date_arg(args, "to"),
    )
    search.validate()
    return search


def default_status(index_dir: Path) -> StatusProvider:
    """Status for a process that only reads: the index itself plus what the writer last wrote."""

    def status() -> dict[str, Any]:
        report = read_status(index_dir)
        try:
            ix = IndexReader(index_dir).open()
        except IndexMissing:
            return {**report, "status": "indexing" if report else "no index", "documents": 0, "pending": report.get("pending", 0)}
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


def create_app(config: Config, status: StatusProvider | None = None) -> Flask:
    folder = web_dir()
    app = Flask(
        "searchd",
        template_folder=str(folder / "templates"),
        static_folder=str(folder / "static"),
        static_url_path="/static",
    )
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    searcher = Searcher(Path(config.index_dir))
    status = status or default_status(Path(config.index_dir))
    app.extensions["searchd"] = {"searcher": searcher, "status": status, "config": config}

    def search_view(args: Mapping[str, str]) -> dict[str, Any]:
        search = search_request_from(args)
        result = searcher.search(search)
        view = asdict(result)
        view["pages"] = result.pages
        return view

    def document_view(doc_id: str) -> dict[str, Any]:
        document = searcher.document(doc_id)
        if document is None:
            abort(404, description=f"no article with id {doc_id!r}")
        return asdict(document)

    @app.get("/")
    def home() -> str:
        if request.args.get("q"):
            return results_page()
        return render_template("search.html", view=None, args=request.args)

    @app.get("/search")
    def results_page() -> str:
        return render_template("search.html", view=search_view(request.args), args=request.args)

    @app.get("/doc/<path:doc_id>")
    def document_page(doc_id: str) -> str:
        return render_template("doc.html", doc=document_view(doc_id), args=request.args)

    @app.get("/api/search")
    def api_search() -> Response:
        return json_response(search_view(request.args))

    @app.get("/api/doc/<path:doc_id>")
    def api_document(doc_id: str) -> Response:
        return json_response(document_view(doc_id))

    @app.get("/healthz")
    def healthz() -> Response:
        return json_response(status())

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
        return _error(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response | tuple[str, int]:
        log.exception("unhandled error on %s", request.path)
        return _error(500, "internal_error", "the server hit an unexpected error; it has been logged")

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response

    return app


def _error(status: int, code: str, message: str) -> Response | tuple[str, int]:
    if request.path.startswith("/api/") or request.path == "/healthz":
        return json_response({"error": {"code": code, "message": message}}, status)
    return render_template("error.html", status=status, message=message, args=request.args), status
