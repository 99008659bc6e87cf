"""The app factory: one Flask app over one search service, with the pages and API blueprints,
the security and caching hooks, the error handlers, and the template helpers."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import orjson
from flask import Flask, url_for
from werkzeug.routing import PathConverter

from ..config import Config
from ..engines import open_engine
from ..search import Searcher
from . import errors, metrics, security
from .api import api
from .args import PAGE_SIZE
from .caching import ResponseCache, static_versions
from .metrics import Metrics
from .pages import pages
from .views import Site, StatusProvider, default_status, published_status


def web_dir() -> Path:
    """Templates, static files and the OpenAPI description: inside the package when installed
    from a wheel, the top-level web/ folder in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here, here.parent.parent / "web"):
        if (candidate / "templates").is_dir():
            return candidate
    raise RuntimeError("searchd's web/ folder (templates and static files) is missing")


def create_app(config: Config, status: StatusProvider | None = None, cache_entries: int = 512,
               warm_up: bool = False, instance: str | None = None, status_file: Path | None = None) -> Flask:
    """`status` is the daemon's, when it runs in this process; `status_file` where the daemon of
    `searchd serve` publishes it; otherwise what the daemon last published is read from the
    engine. `instance` names the server in ETags: the worker processes of one server share it,
    so a client's ETag is good in any of them."""
    folder = web_dir()
    app = Flask("searchd", template_folder=str(folder / "templates"), static_folder=None)
    # Ids are file paths, and a file name may contain a newline: Werkzeug's default path converter
    # ("[^/].*?") stops at one, so such an article would answer 404.
    app.url_map.converters["path"] = _AnyPath
    reader = open_engine(config).open_reader()
    searcher = Searcher(reader)
    if warm_up:
        threading.Thread(target=searcher.warm_up, name="searchd-warm-up", daemon=True).start()
    status = status or default_status(reader)
    if status_file is not None:
        status = published_status(status_file, status)
    site = Site(
        config=config,
        searcher=searcher,
        status=status,
        cache=ResponseCache(cache_entries),
        static_dir=folder / "static",
        static_versions=static_versions(folder / "static"),
        openapi=orjson.loads((folder / "openapi.json").read_bytes()),
        metrics=Metrics(),
        **({"instance": instance} if instance else {}),
    )
    app.extensions["searchd"] = site
    metrics.install(app, site.metrics)  # first: its clock starts before the other hooks run
    app.register_blueprint(pages)
    app.register_blueprint(api)
    errors.install(app)
    security.install(app)
    _template_helpers(app, site)
    return app


def _template_helpers(app: Flask, site: Site) -> None:
    @app.template_global()
    def asset(filename: str) -> str:
        return url_for("pages.static", filename=filename, v=site.static_versions.get(filename, site.instance))

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
        return url_for("pages.results_page", **{k: v for k, v in params.items() if v not in (None, "")})

    @app.template_global()
    def atom_time(value: str | None) -> str:
        """RFC 3339 in UTC, as Atom wants; article dates carry no zone and are read as UTC."""
        when = datetime.fromisoformat(value) if value else datetime.now(timezone.utc)
        if when.tzinfo is not None:
            when = when.astimezone(timezone.utc).replace(tzinfo=None)
        return when.isoformat(timespec="seconds") + "Z"

    @app.template_global()
    def doc_url(doc_id: str, q: str = "") -> str:
        return url_for("pages.document_page", doc_id=doc_id, q=q or None)


class _AnyPath(PathConverter):
    regex = "[^/](?s:.*?)"
