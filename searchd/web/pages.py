"""The HTML side: the search page, the article page, help, the Atom feed of a search, OpenSearch
(so browsers can add searchd as a search engine) and the static files."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Blueprint, Response, render_template, request, send_from_directory

from ..query import MAX_QUERY_CHARS
from .caching import index_cached
from .views import site

# Versioned static URLs (?v=<hash of the file>) never change content, so browsers may keep them.
STATIC_MAX_AGE = 365 * 24 * 3600

pages = Blueprint("pages", __name__)


def _template_args() -> dict[str, Any]:
    return {"args": request.args, "max_query": MAX_QUERY_CHARS}


def _indexing() -> dict[str, int] | None:
    return site().indexing()


@pages.get("/", endpoint="home")
@pages.get("/search")
@index_cached(vary=_indexing)
def results_page() -> str:
    view = site().search_view(request.args) if request.args.get("q", "").strip() else None
    return render_template("search.html", view=view, indexing=_indexing(), **_template_args())


@pages.get("/doc/<path:doc_id>")
@index_cached
def document_page(doc_id: str) -> str:
    return render_template("doc.html", doc=site().document_view(doc_id, request.args.get("q", "")), **_template_args())


@pages.get("/help")
def help_page() -> str:
    return render_template("help.html", **_template_args())


@pages.get("/search.atom")
@index_cached
def atom_feed() -> Response:
    view = site().feed_view(request.args.to_dict())
    body = render_template("feed.atom.xml", view=view, q=request.args.get("q", ""), **_template_args())
    return Response(body, mimetype="application/atom+xml")


@pages.get("/opensearch.xml")
def opensearch() -> Response:
    return Response(render_template("opensearch.xml"), mimetype="application/opensearchdescription+xml")


@pages.get("/opensearch/suggest")
@index_cached
def opensearch_suggest() -> Response:
    """Completions in the OpenSearch suggestions format, for the browser's address bar."""
    view = site().suggest_view(request.args)
    return Response(orjson.dumps([view["query"], view["suggestions"]]), mimetype="application/x-suggestions+json")


@pages.get("/favicon.ico")
def favicon() -> Response:
    return static_file("favicon.svg")


@pages.get("/static/<path:filename>", endpoint="static")
def static_file(filename: str) -> Response:
    current = site()
    max_age = STATIC_MAX_AGE if request.args.get("v") == current.static_versions.get(filename) else 0
    response = send_from_directory(current.static_dir, filename, max_age=max_age)
    if max_age:
        response.cache_control.immutable = True
    else:
        response.cache_control.no_cache = True
    return response
