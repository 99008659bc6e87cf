"""The JSON API: the same view data as the pages (views.py), as JSON; its OpenAPI description;
and /healthz for load balancers and deploy scripts."""

from __future__ import annotations

from flask import Blueprint, Response, request

from .caching import index_cached
from .errors import json_response
from .security import authorized
from .views import site

api = Blueprint("api", __name__)


@api.get("/api/search")
@index_cached
def api_search() -> Response:
    return json_response(site().search_view(request.args))


@api.get("/api/suggest")
@index_cached
def api_suggest() -> Response:
    return json_response(site().suggest_view(request.args))


@api.get("/api/doc/<path:doc_id>")
@index_cached
def api_document(doc_id: str) -> Response:
    return json_response(site().document_view(doc_id, request.args.get("q", "")))


@api.get("/api/similar/<path:doc_id>")
@index_cached
def api_similar(doc_id: str) -> Response:
    return json_response(site().similar_view(doc_id, request.args))


@api.get("/api/openapi.json")
def api_openapi() -> Response:
    return json_response(site().openapi)


@api.get("/healthz")
def healthz() -> Response:
    response = json_response(site().health_view(authorized()))
    response.headers["Cache-Control"] = "no-store"
    return response
