"""What every request passes through: the body limit, the token (Bearer, or HTTP Basic with the
token as password), CORS for the JSON API when allowed, and the headers that keep pages from
being framed, sniffed or fed inline scripts."""

from __future__ import annotations

import base64
import binascii
import hmac

from flask import Flask, Response, abort, current_app, request

from ..config import Config
from . import metrics
from .caching import gzip_response
from .errors import error, is_api

MAX_BODY_BYTES = 64 * 1024
# Answered without the token: the health check (which then says only what a health check needs),
# and the page's own CSS, script and icon (the login page uses them; they hold nothing of the folder).
_OPEN_ENDPOINTS = frozenset({"api.healthz", "pages.static", "pages.favicon"})
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

# Set on every response that does not set its own.
_PROTECTION = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)


def install(app: Flask) -> None:
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.before_request(guard)
    app.after_request(finish)


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


def authorized() -> bool:
    """Whether this request may see everything: no token is set, or it carries the right one."""
    token = _config().token
    return not token or token_matches(request.headers.get("Authorization", ""), token)


def guard() -> Response | None:
    config = _config()
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        abort(413, description=f"request bodies are limited to {MAX_BODY_BYTES} bytes")
    if request.method == "OPTIONS" and config.cors_origins and is_api(request.path):
        return _preflight(config)
    if request.endpoint not in _OPEN_ENDPOINTS and not authorized() and not _open_metrics(config):
        response = current_app.make_response(error(
            401, "unauthorized",
            "this searchd requires a token: send `Authorization: Bearer TOKEN` or log in with the token as password"))
        response.headers.add("WWW-Authenticate", 'Basic realm="searchd", charset="UTF-8"')
        response.headers.add("WWW-Authenticate", 'Bearer realm="searchd"')
        return response
    return None


def _open_metrics(config: Config) -> bool:
    return config.open_metrics and request.endpoint == metrics.ENDPOINT and metrics.loopback_client()


def finish(response: Response) -> Response:
    config = _config()
    headers = response.headers
    # What Headers.setdefault does for each, with one pass over the headers instead of five.
    present = {name.lower() for name, _ in headers.items()}
    for name, value in _PROTECTION:
        if name.lower() not in present:
            headers.add(name, value)
    if config.cors_origins and is_api(request.path):
        _allow_origin(response, config.cors_origins)
    gzip_response(response)
    return response


def _config() -> Config:
    return current_app.extensions["searchd"].config


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
