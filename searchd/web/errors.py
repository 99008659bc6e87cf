"""Every error as the client expects it: JSON `{"error": {"code", "message"}}` on the API, an HTML
page elsewhere; 500s are logged and say nothing of the cause."""

from __future__ import annotations

import logging

import orjson
from flask import Flask, Response, current_app, render_template, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from ..engines.base import EngineUnavailable, IndexMissing
from ..query import MAX_QUERY_CHARS, QueryTooLong
from ..search import BadRequest

log = logging.getLogger("searchd.web")


def install(app: Flask) -> None:
    app.register_error_handler(BadRequest, _bad_request)
    app.register_error_handler(QueryTooLong, _bad_request)
    app.register_error_handler(IndexMissing, _no_index)
    app.register_error_handler(EngineUnavailable, _no_index)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)


def json_response(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status=status, mimetype="application/json")


def is_api(path: str) -> bool:
    return path.startswith("/api/") or path in ("/healthz", "/metrics")


def error(status: int, code: str, message: str) -> Response | tuple[str, int]:
    if is_api(request.path):
        return json_response({"error": {"code": code, "message": message}}, status)
    return render_template("error.html", status=status, message=message, args=request.args,
                           max_query=MAX_QUERY_CHARS), status


def _bad_request(exc: ValueError) -> Response | tuple[str, int]:
    return error(400, "bad_request", str(exc))


def _no_index(exc: IndexMissing | EngineUnavailable) -> Response | tuple[str, int]:
    return error(503, "index_unavailable", str(exc))


def _http_error(exc: HTTPException) -> Response | tuple[str, int]:
    code = (exc.name or "error").lower().replace(" ", "_")
    response = error(exc.code or 500, code, exc.description or exc.name)
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        response = current_app.make_response(response)
        response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    return response


def _unexpected(exc: Exception) -> Response | tuple[str, int]:
    log.exception("unhandled error on %s", request.path)
    return error(500, "internal_error", "the server hit an unexpected error; it has been logged")
