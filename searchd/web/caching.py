"""Not doing work twice: recently built views are kept until the index changes, a client that has
a response gets 304 while the index is unchanged, large responses are gzipped, and static files
have versioned URLs a browser may keep for a year."""

from __future__ import annotations

import gzip
import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Hashable

import orjson
from flask import Response, current_app, request

# Below this a gzip header and the CPU it costs are not worth it.
GZIP_MIN_BYTES = 1024
COMPRESSIBLE = {
    "text/html", "text/css", "text/javascript", "application/javascript", "application/json",
    "application/atom+xml", "application/opensearchdescription+xml", "image/svg+xml", "text/plain",
}


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

    def get_or_build(self, generation: Hashable, key: tuple, build: Callable[[], Any]) -> Any:
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


def index_cached(route: Callable[..., Any] | None = None, *,
                 vary: Callable[[], Any] = lambda: None) -> Any:
    """A route whose answer depends only on the index and its arguments (and on `vary()`, what
    else the response shows): it carries a weak ETag tied to the index generation (and this server
    instance: a restarted server, perhaps with new templates, never answers 304 to a page an older
    one rendered), and answers 304 when the client already has it."""
    if route is None:
        return lambda route: index_cached(route, vary=vary)

    @wraps(route)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        site = current_app.extensions["searchd"]
        raw = orjson.dumps([site.instance, site.searcher.generation(), request.path,
                            sorted(request.args.items(multi=True)), vary()], default=str)
        etag = hashlib.sha256(raw).hexdigest()[:32]
        if request.if_none_match.contains_weak(etag):
            response = Response(status=304)
        else:
            response = current_app.make_response(route(*args, **kwargs))
        response.set_etag(etag, weak=True)
        # no-cache = keep it, but ask each time (cheap: the answer is usually 304).
        response.headers["Cache-Control"] = "private, no-cache" if site.config.token else "no-cache"
        return response

    return wrapper


def static_versions(static: Path) -> dict[str, str]:
    """Static file -> a hash of its content, for URLs that change whenever the file does."""
    return {
        path.relative_to(static).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        for path in static.rglob("*") if path.is_file()
    }


def gzip_response(response: Response) -> None:
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
