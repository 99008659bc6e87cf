"""Hostile requests against a live `searchd serve` over real HTTP: fuzzed parameters, absurd
paging, over-long URLs and bodies, wrong methods, path traversal in every encoding, and XSS
payloads in every field that reaches HTML, JSON or Atom. Only 2xx/3xx/4xx may come back, and no
response ever shows a traceback or a byte from outside the folder.
"""

from __future__ import annotations

import json
import urllib.parse
import xml.etree.ElementTree as ET
from typing import Iterator

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from relkit import Reply, Searchd, article_text, get, raw

SECRET = "TOPSECRETMARKER4711"  # written beside the folder and the index: must never be served

XSS = {
    "title": '<script>alert("title")</script>',
    "body": '<img src=x onerror=alert("body")>',
    "tag": '<svg/onload=alert("tag")>',
    "name": '"><img src=x onerror=alert(5)>.md',
    "json": '</script><script>alert("json")</script>',
    "query": '"><script>alert("q")</script>',
}
PAYLOAD_MARKERS = ('<script>alert', '<img src=x onerror', '<svg/onload')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Searchd]:
    base = tmp_path_factory.mktemp("requests")
    folder, index_dir = base / "articles", base / "index"
    (folder / "world").mkdir(parents=True)
    (base / "secret.txt").write_text(SECRET)
    (folder / "world" / "plain.txt").write_text(article_text("plainarticle"))
    (folder / "world" / "xss-title.txt").write_text(f"{XSS['title']}\n\nxsstitle {XSS['body']} words.\n")
    (folder / "world" / "xss-tags.md").write_text(
        f"---\ntitle: Tagged xsstag\ntags: ['{XSS['tag']}', plain]\nurl: javascript:alert(1)\n---\n\nxsstag body {XSS['body']}\n")
    (folder / "world" / XSS["name"]).write_text("Named xssname\n\nxssname body words\n")
    (folder / "world" / "xss.json").write_text(json.dumps({"title": XSS["json"], "body": "xssjson body " + XSS["body"],
                                                           "url": "javascript:alert(2)", "tags": [XSS["tag"]]}))
    proc = Searchd("serve", folder, index_dir, base / "serve.log").start()
    try:
        proc.wait_ready().wait_caught_up()
        yield proc
    finally:
        proc.stop()
    assert "Traceback" not in proc.log(), proc.log()[-4000:]


def assert_sane(reply: Reply, what: str = "") -> None:
    assert 200 <= reply.status < 500, f"{what}: HTTP {reply.status}: {reply.text[:500]}"
    assert b"Traceback" not in reply.body, what
    assert SECRET.encode() not in reply.body, what
    assert b"root:x:0:0" not in reply.body, what


def assert_no_raw_payload(reply: Reply, what: str) -> None:
    for marker_text in PAYLOAD_MARKERS:
        assert marker_text.encode() not in reply.body, f"{what}: unescaped {marker_text!r}"


# --- XSS ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("q", ["xsstitle", "xsstag", "xssname", "xssjson", XSS["query"], f"xsstitle {XSS['query']}"])
def test_payloads_are_escaped_in_html_json_and_atom(server: Searchd, q: str) -> None:
    query = urllib.parse.urlencode({"q": q})
    for route in ("/search", "/search.atom"):
        reply = get(server.port, f"{route}?{query}")
        assert reply.status == 200, (route, reply.status)
        assert_sane(reply, route)
        assert_no_raw_payload(reply, route)
        if route.endswith(".atom"):
            ET.fromstring(reply.body)  # well-formed XML despite every payload
    api = get(server.port, f"/api/search?{query}")
    assert api.status == 200 and api.headers["content-type"].startswith("application/json")
    assert api.headers.get("x-content-type-options") == "nosniff"
    data = api.json()
    assert data["query"] == q  # JSON carries the exact text; only the snippet is HTML
    for hit in data["hits"]:
        for marker_text in PAYLOAD_MARKERS:
            assert marker_text not in hit["snippet"], hit
    if q == "xsstitle":  # the payload is in the snippet (app.js sets it as innerHTML), escaped
        assert "&lt;img src=x onerror" in data["hits"][0]["snippet"], data["hits"][0]


def test_every_hostile_article_page_is_escaped(server: Searchd) -> None:
    ids = [hit["id"] for q in ("xsstitle", "xsstag", "xssname", "xssjson")
           for hit in get(server.port, "/api/search?" + urllib.parse.urlencode({"q": q})).json()["hits"]]
    assert len(ids) == 4, ids
    assert f"world/{XSS['name']}" in ids
    for doc_id in ids:
        quoted = urllib.parse.quote(doc_id)
        page = get(server.port, f"/doc/{quoted}?q={urllib.parse.quote(XSS['query'])}")
        assert page.status == 200, doc_id
        assert_no_raw_payload(page, doc_id)
        assert b'href="javascript:' not in page.body.lower()
        assert "script-src 'self'" in page.headers["content-security-policy"]
        doc = get(server.port, f"/api/doc/{quoted}").json()
        assert doc["id"] == doc_id
    titles = {get(server.port, "/api/doc/" + urllib.parse.quote(i)).json()["title"] for i in ids}
    assert XSS["title"] in titles and XSS["json"] in titles  # round trip, not mangled or double-escaped


# --- path traversal -------------------------------------------------------------------------------

TRAVERSALS = [
    "../../etc/passwd", "..%2f..%2fetc%2fpasswd", "..%2F..%2Fsecret.txt", "%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fsecret.txt", "..%5c..%5csecret.txt", "%2e%2e%5c%2e%2e%5csecret.txt", "..\\..\\secret.txt",
    "/etc/passwd", "%2fetc%2fpasswd", "//etc/passwd", "etc/passwd%00.txt", "%00", "world/plain.txt%00",
    "....//....//secret.txt", "%252e%252e%252fsecret.txt", "..%c0%af..%c0%afsecret.txt", "%c0%ae%c0%ae/secret.txt",
    "world/../../secret.txt", "world/%2e%2e/%2e%2e/secret.txt", "..%u2216..%u2216secret.txt", "%ff%fe",
    "C:%5cWindows%5cwin.ini", "file:///etc/passwd", "~root/.bashrc", "..;/..;/secret.txt",
]


@pytest.mark.parametrize("prefix", ["/doc/", "/api/doc/", "/api/similar/", "/static/"])
def test_path_traversal_in_every_encoding(server: Searchd, prefix: str) -> None:
    for attempt in TRAVERSALS:
        reply = raw(server.port, f"GET {prefix}{attempt} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        if reply.status == 308:  # Werkzeug merges doubled slashes by redirecting: follow it once
            location = urllib.parse.urlsplit(reply.headers["location"])
            assert location.netloc in ("", "x"), reply.headers["location"]  # never off-site
            reply = raw(server.port, f"GET {location.path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert reply.status == 404, (prefix + attempt, reply.status)
        assert_sane(reply, prefix + attempt)
    reply = raw(server.port, f"GET {prefix}..\x00/secret.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    assert reply.status == 400, reply.status  # a raw NUL byte in the request line: not HTTP
    assert_sane(reply, "raw NUL")


def test_real_document_still_fetchable(server: Searchd) -> None:
    assert get(server.port, "/doc/world/plain.txt").status == 200
    assert get(server.port, "/api/doc/world/plain.txt").json()["id"] == "world/plain.txt"


# --- absurd parameters, methods, sizes --------------------------------------------------------------

@pytest.mark.parametrize("name", ["page", "size"])
@pytest.mark.parametrize("value", ["-1", "0", "-99999999999999999999", "10" * 40, "1e3", "abc", " 5", "٣", "NaN", "", "1.5", "0x10"])
def test_huge_and_negative_paging(server: Searchd, name: str, value: str) -> None:
    for route in ("/search", "/api/search", "/search.atom", "/api/suggest", "/api/similar/world/plain.txt"):
        reply = get(server.port, f"{route}?q=plainarticle&{name}={urllib.parse.quote(value)}")
        assert_sane(reply, f"{route} {name}={value!r}")


ROUTES = ["/", "/search?q=x", "/doc/world/plain.txt", "/api/search?q=x", "/api/doc/world/plain.txt", "/api/suggest?q=pl",
          "/api/similar/world/plain.txt", "/api/openapi.json", "/search.atom?q=x", "/opensearch.xml", "/help", "/healthz",
          "/static/style.css", "/favicon.ico", "/no/such/route"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD", "PROPFIND", "FOO"])
def test_wrong_methods(server: Searchd, method: str) -> None:
    for route in ROUTES:
        reply = get(server.port, route, method=method, body=b"x=1" if method in ("POST", "PUT", "PATCH") else None)
        assert_sane(reply, f"{method} {route}")
        if method in ("POST", "PUT", "DELETE", "PATCH", "TRACE"):
            assert reply.status in (404, 405), (method, route, reply.status)


def test_over_long_urls_and_bodies(server: Searchd) -> None:
    for length in (1_001, 8_000):
        reply = get(server.port, "/api/search?q=" + "a" * length)
        assert_sane(reply, f"q of {length}")
        assert reply.status == 400 and "characters long" in reply.json()["error"]["message"]
    # gunicorn caps the request line at 8,190 bytes: "URI Too Long", before any worker reads it.
    reply = get(server.port, "/api/search?q=" + "a" * 60_000)
    assert_sane(reply, "q of 60,000")
    assert reply.status == 414, reply.status
    for route in ("/search?q=", "/api/search?q=", "/doc/"):
        reply = raw(server.port, f"GET {route}{'b' * 400_000} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        assert reply.status == 414, (route, reply.status)
    # Refused without reading it: a 413, or (when the server closes while the client is still
    # sending) the connection cut under the client's feet. Either way nothing is read into memory.
    try:
        reply = get(server.port, "/api/search?q=x", method="POST", body=b"x" * (5 * 1024 * 1024))
        assert reply.status == 413, reply.status
    except (BrokenPipeError, ConnectionResetError):
        pass
    huge_header = raw(server.port, b"GET /api/search?q=x HTTP/1.1\r\nHost: x\r\nX-Big: " + b"h" * 300_000 + b"\r\nConnection: close\r\n\r\n")
    assert huge_header.status == 431, huge_header.status  # a header field is capped at 8,190 bytes
    assert get(server.port, "/healthz").status == 200  # and the server is still there


# --- property-based fuzzing -----------------------------------------------------------------------

PARAMS = ["q", "page", "size", "sort", "category", "from", "to", "v", "format"]
text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80)
junk = st.one_of(text, st.integers(-10**12, 10**12).map(str), st.sampled_from(["", "date", "relevance", "2025-01", "9999-99-99", "*", "tag:x"]))
query_text = st.one_of(
    text,
    st.lists(st.sampled_from(['AND', 'OR', 'NOT', '"', '(', ')', '*', '?', '~', ':', 'title:', 'tag:', '[', ']', 'TO', '^2',
                              '-', '+', '\\', 'date:>2020', 'zelensky', 'ü', '{', '}', '/', "'"]), max_size=12).map(" ".join),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(route=st.sampled_from(["/search", "/api/search", "/api/suggest", "/search.atom", "/", "/api/similar/world/plain.txt"]),
       q=query_text, params=st.dictionaries(st.sampled_from(PARAMS), junk, max_size=4), raw_bytes=st.binary(max_size=20))
def test_fuzz_every_parameter(server: Searchd, route: str, q: str, params: dict[str, str], raw_bytes: bytes) -> None:
    query = urllib.parse.urlencode({"q": q, **params})
    query += "&category=" + urllib.parse.quote_from_bytes(raw_bytes)  # invalid UTF-8 too
    reply = get(server.port, f"{route}?{query}")
    assert_sane(reply, f"{route}?{query}")
    if route.startswith("/api/") and reply.status >= 400:
        error = reply.json()["error"]
        assert error["code"] and error["message"]
