"""The web app over real HTTP semantics (Flask's test client) on a real index built from real
files: page and JSON twins, facets, sort, paging, article view, feed, caching, compression,
security headers, token, CORS, errors, and escaping of hostile input everywhere."""

from __future__ import annotations

import base64
import gzip
import html
import json
import re
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient

from searchd.config import Config
from searchd.web import create_app, serving

from .conftest import build_index, write_files

ATOM = "{http://www.w3.org/2005/Atom}"
XSS_TITLE = '<script>alert("xss-title")</script> Solar sabotage'
XSS_BODY = "Solar <img src=x onerror=alert('xss-body')> & <b>bold</b> claims about panels."
TOPICS = ["rooftop panels", "grid storage", "desert farms", "panel recycling", "floating arrays",
          "community cooperatives", "inverter failures", "tariff disputes"]


def web_articles() -> dict[str, str]:
    """25 solar articles over three categories and three years, plus hostile ones."""
    files: dict[str, str] = {}
    categories = ["energy", "science", "world"]
    for n in range(25):
        category = categories[n % 3]
        year = 2023 + n % 3
        topic = TOPICS[n % len(TOPICS)]
        files[f"{category}/solar-{n:02d}.md"] = (
            f"---\ntitle: \"Solar report {n}: {topic.title()}\"\ndate: {year}-{(n % 12) + 1:02d}-{(n % 27) + 1:02d}\n"
            f"tags: [solar, {topic.split()[0]}]\n---\n\n"
            f"Solar power story number {n} looks at {topic} in region {n * 7}. "
            f"Engineers measured {n * 13} megawatts while {topic} kept changing the {category} outlook.\n\n"
            f"A second paragraph on {topic} and photovoltaic cells, with unique marker word{n}.\n"
        )
    files["world/hostile.json"] = json.dumps({"title": XSS_TITLE, "body": XSS_BODY, "date": "2024-06-01"})
    files["culture/coffee.txt"] = "Coffee houses of Vienna\n\nThe coffee houses of Vienna serve strudel and newspapers.\n"
    return files


@pytest.fixture(scope="module")
def web_index(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("web")
    folder = write_files(root / "articles", web_articles())
    build_index(folder, root / "index")
    return folder, root / "index"


@pytest.fixture(scope="module")
def app(web_index: tuple[Path, Path]) -> Flask:
    folder, index_dir = web_index
    return create_app(Config(folder=folder, index_dir=index_dir))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def html_of(client: FlaskClient, url: str, **kw) -> str:
    response = client.get(url, **kw)
    assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
    return response.get_data(as_text=True)


# --- the page and its JSON twin -----------------------------------------------------------------

def test_results_page_and_api_show_the_same_hits(client: FlaskClient) -> None:
    api = client.get("/api/search?q=solar&size=10").get_json()
    page = html_of(client, "/search?q=solar")
    assert api["total"] == 26 and len(api["hits"]) == 10 and api["pages"] == 3
    linked = re.findall(r'class="hit-link" href="/doc/([^"?]+)\?q=solar"', page)
    assert linked == [hit["id"] for hit in api["hits"]]
    assert f"{api['total']} results" in page and "page 1 of 3" in page
    assert "<mark>Solar</mark>" in page or "<mark>solar</mark>" in page
    assert '<title>solar – searchd</title>' in page
    first = api["hits"][0]
    assert set(first) >= {"id", "title", "summary", "snippet", "score", "date", "category", "path", "duplicates"}


def test_facets_count_and_filter_by_category_and_year(client: FlaskClient) -> None:
    api = client.get("/api/search?q=solar").get_json()
    assert api["facets"]["category"] == {"energy": 9, "world": 9, "science": 8}
    assert api["facets"]["year"] == {"2023": 9, "2024": 9, "2025": 8}
    page = html_of(client, "/search?q=solar")
    assert 'href="/search?q=solar&amp;category=science"' in page

    science = client.get("/api/search?q=solar&category=science&size=100").get_json()
    assert science["total"] == 8 and {h["category"] for h in science["hits"]} == {"science"}
    assert science["filters"]["category"] == "science"
    filtered_page = html_of(client, "/search?q=solar&category=science")
    assert 'aria-current="true">science</a>' in filtered_page and "Clear filters" in filtered_page

    year = client.get("/api/search?q=solar&from=2024&to=2024&size=100").get_json()
    assert year["total"] == 9 and all(h["date"].startswith("2024") for h in year["hits"])
    month = client.get("/api/search?q=solar&from=2023-01&to=2023-03&size=100").get_json()
    assert month["total"] >= 1 and all("2023-01" <= h["date"][:7] <= "2023-03" for h in month["hits"])


def test_sort_by_date_is_newest_first_and_pager_keeps_it(client: FlaskClient) -> None:
    data = client.get("/api/search?q=solar&sort=date&size=100").get_json()
    dates = [hit["date"] for hit in data["hits"]]
    assert dates == sorted(dates, reverse=True) and len(dates) == 26
    page = html_of(client, "/search?q=solar&sort=date")
    assert 'rel="next" href="/search?q=solar&amp;sort=date&amp;page=2"' in page
    assert 'aria-current="true">Newest</a>' in page
    second = client.get("/api/search?q=solar&sort=date&page=2").get_json()
    assert [h["date"] for h in second["hits"]] == dates[10:20]


def test_the_pager_and_every_link_keep_the_page_size(client: FlaskClient) -> None:
    page = html_of(client, "/search?q=solar&size=5")
    links = [html.unescape(href) for href in re.findall(r'href="(/search\?[^"]*)"', page)]
    assert links and all("size=5" in link for link in links), [link for link in links if "size=5" not in link]
    following = re.search(r'rel="next" href="([^"]+)"', page).group(1).replace("&amp;", "&")
    second = html_of(client, following)
    assert "Page 2 of 6" in second and len(re.findall(r'class="hit"', second)) == 5
    assert '<input type="hidden" name="size" value="5">' in page  # a new query keeps it too
    default = html_of(client, "/search?q=solar")
    assert "size=" not in re.search(r'rel="next" href="([^"]+)"', default).group(1)


def test_sort_can_be_typed_in_the_query(client: FlaskClient) -> None:
    typed = client.get("/api/search?q=solar+sort:date&size=100").get_json()
    assert typed["query"] == "solar" and typed["filters"]["sort"] == "date" and typed["total"] == 26
    dates = [hit["date"] for hit in typed["hits"]]
    assert dates == sorted(dates, reverse=True)
    page = html_of(client, "/search?q=sort:newest+solar")
    assert 'aria-current="true">Newest</a>' in page and 'href="/search?q=solar&amp;sort=date&amp;page=2"' in page
    explicit = client.get("/api/search?q=solar+sort:date&sort=relevance").get_json()
    assert explicit["filters"]["sort"] == "relevance"


def test_a_did_you_mean_tells_one_story_on_the_page_in_json_and_in_the_feed(client: FlaskClient) -> None:
    api = client.get("/api/search?q=photovoltaik").get_json()
    assert api["query"] == "photovoltaik" and api["suggestion"] == "photovoltaic" and api["total"] > 0
    assert api["results_for"] == "photovoltaic" and "showing results for photovoltaic" in api["notice"]
    page = html_of(client, "/search?q=photovoltaik")
    meta = re.search(r'<p class="meta".*?</p>', page, re.S).group(0)
    assert f'{api["total"]} results</span> for <strong class="echo">photovoltaic</strong>' in meta
    assert "Did you mean" not in page  # the page already shows the suggestion's results
    feed_url = re.search(r'type="application/atom\+xml"[^>]*href="([^"]+)"', page).group(1).replace("&amp;", "&")
    feed = ET.fromstring(client.get(feed_url).data)
    newest = client.get("/api/search?q=photovoltaik&sort=date&size=20").get_json()
    assert [e.find(f"{ATOM}title").text for e in feed.findall(f"{ATOM}entry")] == [h["title"] for h in newest["hits"]]
    assert newest["hits"] and "photovoltaic" in feed.find(f"{ATOM}title").text
    assert "no results for photovoltaik" in feed.find(f"{ATOM}subtitle").text
    few = client.get("/api/search?q=photovoltaic").get_json()
    assert few["results_for"] == "photovoltaic" and few["suggestion"] is None


def test_did_you_mean_and_empty_state(client: FlaskClient) -> None:
    page = html_of(client, "/search?q=photovoltaik")
    assert "showing results for photovoltaic" in page
    empty = html_of(client, "/search?q=zzqqxxyy")
    assert "No articles match <q>zzqqxxyy</q>" in empty and "batter*" in empty and "/help" in empty


def test_help_page_documents_the_query_language(client: FlaskClient) -> None:
    page = html_of(client, "/help")
    for syntax in ["OR", "NOT", "-decaf", '"heat island"', "~3", "title:", "category:", "tag:", "batter*",
                   "zelenksy~", "date:2025", "date:[2025-01 to 2025-03]", "after:", "before:", "sort:date"]:
        assert syntax in page.replace("&#34;", '"').replace("&quot;", '"'), syntax
    assert "<title>Query language – searchd</title>" in page


def test_article_view_marks_the_query_words_from_escaped_text(client: FlaskClient) -> None:
    page = html_of(client, "/doc/world/hostile.json", query_string={"q": "panel claims -bold"})
    # "panels" is marked for "panel" (same stem); the negated word is not; markup is escaped.
    assert "<mark>panels</mark>" in page and "<mark>claims</mark>" in page
    assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold</b>" not in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert('xss-body')&gt;" in page
    api = client.get("/api/doc/world/hostile.json", query_string={"q": "sola*"}).get_json()
    assert api["marked"]["title"] == '&lt;script&gt;alert("xss-title")&lt;/script&gt; <mark>Solar</mark> sabotage'
    assert api["title"] == XSS_TITLE


@pytest.mark.parametrize("q, marked, unmarked", [
    ("title:report", ["report"], ["Solar"]),
    ('"rooftop panels"~2 tag:solar', ["Rooftop", "Panels", "rooftop", "panels"], ["Solar", "2"]),
    ("categor* OR megawatt date:2023 after:2023-01 -engineers", ["megawatts"], ["Engineers", "2023"]),
])
def test_article_view_marks_words_but_not_query_syntax(client: FlaskClient, q: str, marked: list[str], unmarked: list[str]) -> None:
    view = client.get("/api/doc/energy/solar-00.md", query_string={"q": q}).get_json()["marked"]
    text = " ".join([view["title"], *view["body"]])
    found = re.findall(r"<mark>(.*?)</mark>", text)
    assert set(marked) <= set(found) and not set(unmarked) & set(found), found


def test_article_view_links_similar_articles(client: FlaskClient) -> None:
    data = client.get("/api/similar/energy/solar-00.md?size=3").get_json()
    assert 1 <= len(data["hits"]) <= 3 and all(h["id"] != "energy/solar-00.md" for h in data["hits"])
    page = html_of(client, "/doc/energy/solar-00.md?q=solar")
    assert "Similar articles" in page
    assert f'href="/doc/{data["hits"][0]["id"]}?q=solar"' in page
    assert client.get("/api/similar/no/such.md").status_code == 404
    assert client.get("/api/doc/energy/solar-00.md").get_json()["similar"]


def test_suggest_completes_the_last_word(client: FlaskClient) -> None:
    data = client.get("/api/suggest?q=rooftop photo").get_json()
    assert data["query"] == "rooftop photo"
    assert "rooftop photovoltaic" in data["suggestions"]
    assert client.get("/api/suggest?q=").get_json()["suggestions"] == []
    assert client.get("/api/suggest?q=x&size=500").status_code == 400


# --- hostile input comes back escaped -----------------------------------------------------------

def test_hostile_title_and_body_are_escaped_in_html_json_and_atom(client: FlaskClient) -> None:
    page = html_of(client, "/search?q=sabotage")
    assert "<script>alert" not in page and "&lt;script&gt;alert(" in page
    hit = client.get("/api/search?q=claims").get_json()["hits"][0]
    assert hit["title"] == XSS_TITLE  # JSON carries the text as text
    assert "<img" not in hit["snippet"] and "&lt;img" in hit["snippet"] and "<mark>claims</mark>" in hit["snippet"]
    feed = client.get("/search.atom?q=claims")
    assert feed.mimetype == "application/atom+xml"
    root = ET.fromstring(feed.data)  # well-formed XML, so nothing broke out of its element
    entry = root.find(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title") == XSS_TITLE
    content = entry.find(f"{ATOM}content")
    assert content.get("type") == "html" and "<mark>claims</mark>" in content.text and "<img" not in content.text
    assert root.find(f"{ATOM}script") is None and b"<script>" not in feed.data


@pytest.mark.parametrize("q", ['<script>alert("q")</script>', '"><img src=x onerror=alert(1)>', "</title><svg onload=alert(1)>"])
def test_hostile_query_is_escaped_on_page_in_json_and_feed(client: FlaskClient, q: str) -> None:
    for url in ("/search", "/", "/doc/energy/solar-01.md"):
        page = client.get(url, query_string={"q": q}).get_data(as_text=True)
        assert q not in page and "<script>alert" not in page and "<img src=x" not in page and "<svg" not in page
    assert client.get("/api/search", query_string={"q": q}).get_json()["query"] == q
    feed = client.get("/search.atom", query_string={"q": q})
    assert ET.fromstring(feed.data).findtext(f"{ATOM}title") == f"searchd: {q}"


HTML_URLS = ["/", "/search?q=solar", "/search?q=", "/doc/energy/solar-00.md", "/help", "/doc/missing.md",
             "/no-such-page", "/search?q=solar&page=0"]


@pytest.mark.parametrize("url", HTML_URLS)
def test_every_html_response_carries_csp_and_security_headers(client: FlaskClient, url: str) -> None:
    response = client.get(url)
    assert response.mimetype == "text/html"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    body = response.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)", body), "inline script found"
    assert not re.search(r"\son\w+=", body.replace("onerror=alert", "")), "inline event handler found"


def test_pages_have_titles_search_link_and_favicon(client: FlaskClient) -> None:
    page = html_of(client, "/")
    assert "<title>searchd – search the articles</title>" in page
    assert '<link rel="search" type="application/opensearchdescription+xml"' in page
    assert "autofocus" in page and 'aria-keyshortcuts="/"' in page
    assert "<title>Solar report 0: Rooftop Panels – searchd</title>" in html_of(client, "/doc/energy/solar-00.md")
    assert client.get("/doc/nope.md").status_code == 404
    favicon = client.get("/favicon.ico")
    assert favicon.status_code == 200 and favicon.mimetype == "image/svg+xml"
    osd = client.get("/opensearch.xml")
    assert osd.mimetype == "application/opensearchdescription+xml"
    root = ET.fromstring(osd.data)
    templates = [u.get("template") for u in root.iter("{http://a9.com/-/spec/opensearch/1.1/}Url")]
    assert "http://localhost/search?q={searchTerms}" in templates
    assert "http://localhost/opensearch/suggest?q={searchTerms}" in templates
    suggestions = client.get("/opensearch/suggest?q=rooftop+photo")
    assert suggestions.mimetype == "application/x-suggestions+json"
    assert json.loads(suggestions.data)[0] == "rooftop photo" and "rooftop photovoltaic" in json.loads(suggestions.data)[1]


# --- API contract -------------------------------------------------------------------------------

@pytest.mark.parametrize("query, message", [
    ("size=101", "size"), ("size=0", "size"), ("page=0", "page"), ("page=1001", "page"), ("page=x", "page"),
    ("sort=score", "sort"), ("from=yesterday", "from"), ("q=" + "a" * 1001, "limit"),
    ("category=", "category"), ("from=0000", "from"), ("to=2025-13", "to"),
    ("from=2025-02-30", "from"),
])
def test_bad_parameters_are_400_json_errors(client: FlaskClient, query: str, message: str) -> None:
    response = client.get(f"/api/search?{query}" if query.startswith("q=") else f"/api/search?q=solar&{query}")
    assert response.status_code == 400 and response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == "bad_request" and message in error["message"]


def test_a_period_that_ends_before_it_starts_is_empty_and_says_so(client: FlaskClient) -> None:
    # Each date is valid on its own (OpenAPI cannot relate two parameters), so not a 400.
    data = client.get("/api/search?q=solar&from=2025&to=2024").get_json()
    assert data["total"] == 0 and "from is after to" in data["notice"]


def _parameter_accepts(spec: dict, name: str, value: str) -> bool:
    parameter = next(p for p in spec["paths"]["/api/search"]["get"]["parameters"] if p["name"] == name)
    try:
        jsonschema.validate(value, parameter["schema"], format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError:
        return False
    return True


@pytest.mark.parametrize("value", ["2025", "0001", "2025-02", "2025-02-28", "2024-02-29", "0000", "2025-13",
                                   "2025-00", "2025-02-30", "2025-02-29", "2025-2-3", "20251", ""])
def test_the_openapi_description_and_the_server_agree_on_dates(client: FlaskClient, value: str) -> None:
    spec = client.get("/api/openapi.json").get_json()
    for name in ("from", "to"):
        answer = client.get("/api/search", query_string={"q": "solar", name: value})
        assert _parameter_accepts(spec, name, value) == (answer.status_code == 200), (name, value, answer.get_json())


def test_the_openapi_description_and_the_server_agree_on_an_empty_category(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert not _parameter_accepts(spec, "category", "") and _parameter_accepts(spec, "category", "energy")
    assert client.get("/api/search?q=solar&category=").status_code == 400
    assert client.get("/search?q=solar&category=").status_code == 400


def test_other_errors_are_json_with_fitting_status(client: FlaskClient) -> None:
    missing = client.get("/api/doc/nope.md")
    assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "not_found"
    post = client.post("/api/search?q=solar")
    assert post.status_code == 405 and post.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in post.headers["Allow"]
    big = client.get("/api/search?q=solar", data=b"x" * (65 * 1024))
    assert big.status_code == 413 and big.get_json()["error"]["code"] == "request_entity_too_large"
    unknown = client.get("/api/nothing")
    assert unknown.status_code == 404 and "error" in unknown.get_json()


def test_openapi_describes_every_api_route(app: Flask, client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    routes = {re.sub(r"<path:(\w+)>", "{id}", rule.rule) for rule in app.url_map.iter_rules()}
    for path in ("/api/search", "/api/suggest", "/api/doc/{id}", "/api/similar/{id}", "/healthz", "/metrics"):
        assert path in spec["paths"] and path in routes
    required = spec["components"]["schemas"]["SearchResult"]["required"]
    assert set(required) <= set(client.get("/api/search?q=solar").get_json())


def test_healthz_reports_status_and_is_not_cached(client: FlaskClient) -> None:
    response = client.get("/healthz")
    data = response.get_json()
    assert data["documents"] == 27 and {"status", "pending", "last_commit"} <= set(data)
    assert response.headers["Cache-Control"] == "no-store"


# --- caching and compression --------------------------------------------------------------------

def test_repeated_search_is_served_from_cache_and_304_until_the_index_changes(tmp_path: Path) -> None:
    folder = write_files(tmp_path / "articles", {"a/one.txt": "Tidal power\n\nTidal turbines in the strait.\n"})
    build_index(folder, tmp_path / "index")
    app = create_app(Config(folder=folder, index_dir=tmp_path / "index"))
    cache = app.extensions["searchd"].cache
    client = app.test_client()

    first = client.get("/api/search?q=tidal")
    etag = first.headers["ETag"]
    assert first.status_code == 200 and first.get_json()["total"] == 1 and "no-cache" in first.headers["Cache-Control"]
    again = client.get("/api/search?q=tidal")
    assert again.get_data() == first.get_data() and cache.hits == 1 and cache.misses == 1
    not_modified = client.get("/api/search?q=tidal", headers={"If-None-Match": etag})
    assert not_modified.status_code == 304 and not_modified.get_data() == b""
    assert client.get("/search.atom?q=tidal", headers={"If-None-Match": etag}).status_code == 200  # other URL

    feed_before = ET.fromstring(client.get("/search.atom?q=tidal").data)
    write_files(folder, {"b/two.txt": "More tidal news\n\nA second tidal lagoon opens.\n"})
    build_index(folder, tmp_path / "index")
    changed = client.get("/api/search?q=tidal", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.get_json()["total"] == 2 and changed.headers["ETag"] != etag
    feed_after = ET.fromstring(client.get("/search.atom?q=tidal").data)
    assert len(feed_after.findall(f"{ATOM}entry")) == len(feed_before.findall(f"{ATOM}entry")) + 1
    assert "b/two.txt" in feed_after.find(f"{ATOM}entry").findtext(f"{ATOM}id")  # newest first


def test_disabled_cache_still_answers_304(tmp_path: Path, web_index: tuple[Path, Path]) -> None:
    folder, index_dir = web_index
    client = create_app(Config(folder=folder, index_dir=index_dir), cache_entries=0).test_client()
    etag = client.get("/api/search?q=solar").headers["ETag"]
    assert client.get("/api/search?q=solar", headers={"If-None-Match": etag}).status_code == 304


def test_large_responses_are_gzipped_small_ones_not(client: FlaskClient) -> None:
    plain = client.get("/api/search?q=solar&size=50")
    zipped = client.get("/api/search?q=solar&size=50", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in plain.headers
    assert zipped.headers["Content-Encoding"] == "gzip" and "Accept-Encoding" in zipped.headers["Vary"]
    assert json.loads(gzip.decompress(zipped.data))["hits"] == plain.get_json()["hits"]
    assert len(zipped.data) < len(plain.data) / 2
    small = client.get("/api/suggest?q=zzz", headers={"Accept-Encoding": "gzip"})
    assert "Content-Encoding" not in small.headers


def test_static_files_are_versioned_and_cacheable(client: FlaskClient) -> None:
    page = html_of(client, "/")
    css_url = re.search(r'href="(/static/style\.css\?v=[0-9a-f]+)"', page).group(1)
    assert re.search(r'<script src="/static/app\.js\?v=[0-9a-f]+" defer>', page)
    css = client.get(css_url)
    assert css.status_code == 200 and "immutable" in css.headers["Cache-Control"] and "max-age=31536000" in css.headers["Cache-Control"]
    unversioned = client.get("/static/style.css")
    assert "no-cache" in unversioned.headers["Cache-Control"]
    assert client.get("/static/style.css", headers={"If-None-Match": unversioned.headers["ETag"]}).status_code == 304
    assert client.get("/static/../searchd/web.py").status_code == 404


# --- token and CORS -----------------------------------------------------------------------------

def basic(password: str, user: str = "reader") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_token_is_required_everywhere_but_healthz(web_index: tuple[Path, Path]) -> None:
    folder, index_dir = web_index
    client = create_app(Config(folder=folder, index_dir=index_dir, token="s3cret-token")).test_client()
    for url in ("/", "/search?q=solar", "/api/search?q=solar", "/api/openapi.json", "/search.atom?q=solar"):
        denied = client.get(url)
        assert denied.status_code == 401, url
        assert 'Basic realm="searchd"' in denied.headers.getlist("WWW-Authenticate")[0]
    assert client.get("/api/search?q=solar").get_json()["error"]["code"] == "unauthorized"
    assert client.get("/healthz").status_code == 200
    # The login page is styled: what it links (stylesheet, script, icon) holds nothing of the folder.
    login = client.get("/search?q=solar").get_data(as_text=True)
    assets = re.findall(r'(?:href|src)="(/static/[^"]+|/favicon.ico)"', login)
    assert any("style.css" in asset for asset in assets)
    for asset in assets:
        assert client.get(html.unescape(asset)).status_code == 200, asset
    assert client.get("/api/search?q=solar", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
    assert client.get("/search?q=solar", headers=basic("s3cret-token")).status_code == 200
    for wrong in ({"Authorization": "Bearer s3cret-tokeN"}, basic("nope"), {"Authorization": "Basic !!!"},
                  {"Authorization": "s3cret-token"}, {"Authorization": "Bearer "}):
        assert client.get("/api/search?q=solar", headers=wrong).status_code == 401, wrong
    ok = client.get("/api/search?q=solar", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.headers["Cache-Control"] == "private, no-cache"


def test_cors_is_off_by_default_and_configurable(client: FlaskClient, web_index: tuple[Path, Path]) -> None:
    origin = {"Origin": "https://reader.example"}
    assert "Access-Control-Allow-Origin" not in client.get("/api/search?q=solar", headers=origin).headers
    folder, index_dir = web_index
    cors = create_app(Config(folder=folder, index_dir=index_dir, cors_origins=("https://reader.example",))).test_client()
    allowed = cors.get("/api/search?q=solar", headers=origin)
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://reader.example" and "Origin" in allowed.headers["Vary"]
    other = cors.get("/api/search?q=solar", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in other.headers
    preflight = cors.options("/api/search", headers={**origin, "Access-Control-Request-Method": "GET"})
    assert preflight.status_code == 204 and "GET" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Origin" not in cors.get("/search?q=solar", headers=origin).headers  # pages stay same-origin


def test_cors_origins_come_from_the_environment() -> None:
    config = Config.load({"SEARCHD_CORS_ORIGINS": "https://a.example, https://b.example"})
    assert config.cors_origins == ("https://a.example", "https://b.example")


# --- the real server ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def live_url(app: Flask) -> Iterator[str]:
    with serving(app) as url:
        yield url


def test_waitress_serves_pages_api_and_conditional_requests(live_url: str) -> None:
    with urllib.request.urlopen(f"{live_url}/api/search?q=solar&size=3") as response:
        data = json.loads(response.read())
        etag = response.headers["ETag"]
    assert data["total"] == 26 and len(data["hits"]) == 3
    request = urllib.request.Request(f"{live_url}/api/search?q=solar&size=3", headers={"If-None-Match": etag})
    with pytest.raises(urllib.error.HTTPError) as not_modified:
        urllib.request.urlopen(request)
    assert not_modified.value.code == 304
    with urllib.request.urlopen(urllib.request.Request(f"{live_url}/search?q=solar", headers={"Accept-Encoding": "gzip"})) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert "<mark>" in gzip.decompress(response.read()).decode()


def test_a_server_whose_wake_up_pipe_fails_still_stops_and_lets_go_of_its_port(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once in CI the loop's wake-up pipe was a closed descriptor when the server stopped: the
    stop must still end the loop and close the listening socket, not raise."""
    import socket

    from waitress.trigger import trigger

    with serving(app) as url:
        with urllib.request.urlopen(f"{url}/api/search?q=solar&size=1") as response:
            assert response.status == 200

        def bad_descriptor(self: object) -> None:
            raise OSError(9, "Bad file descriptor")

        monkeypatch.setattr(trigger, "_physical_pull", bad_descriptor)
    port = int(url.rsplit(":", 1)[1])
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_searchd_web_command_serves_with_cors_and_token(web_index: tuple[Path, Path]) -> None:
    """The real `searchd web` process: --cors and --token reach the app."""
    import subprocess
    import sys

    _, index_dir = web_index
    process = subprocess.Popen(
        [sys.executable, "-m", "searchd", "web", "--index", str(index_dir), "--port", "0",
         "--cors", "https://reader.example", "--token", "tok-123", "--threads", "2"],
        stderr=subprocess.PIPE, text=True,
    )
    try:
        line = ""
        while "serving http://" not in line:
            line = process.stderr.readline()
            assert line or process.poll() is None, "searchd web exited early"
        url = re.search(r"serving (http://\S+?)/? ", line).group(1)
        request = urllib.request.Request(f"{url}/api/search?q=solar&size=1", headers={
            "Origin": "https://reader.example", "Authorization": "Bearer tok-123"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.headers["Access-Control-Allow-Origin"] == "https://reader.example"
            assert json.loads(response.read())["total"] == 26
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(f"{url}/api/search?q=solar", timeout=10)
        assert denied.value.code == 401
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()


def test_an_article_dropped_into_the_folder_appears_in_the_feed(tmp_path: Path) -> None:
    """End to end with the real daemon: watch the folder, serve the feed, drop a file in."""
    import time

    from searchd.watcher import Daemon

    folder = write_files(tmp_path / "articles", {"news/old.txt": "Harbour news\n\nThe harbour reopened.\n"})
    config = Config(folder=folder, index_dir=tmp_path / "index")
    daemon = Daemon(config).start()
    try:
        assert daemon.wait_until_caught_up(timeout=30)
        client = create_app(config, status=daemon.status).test_client()
        before = client.get("/search.atom?q=harbour")
        assert len(ET.fromstring(before.data).findall(f"{ATOM}entry")) == 1
        write_files(folder, {"news/new.md": "---\ntitle: Harbour lights\ndate: 2031-05-01\n---\n\nNew harbour lights.\n"})
        deadline = time.monotonic() + 20
        while True:
            feed = client.get("/search.atom?q=harbour", headers={"If-None-Match": before.headers["ETag"]})
            if feed.status_code == 200:
                entries = ET.fromstring(feed.data).findall(f"{ATOM}entry")
                if len(entries) == 2:
                    break
            assert time.monotonic() < deadline, "the new article never reached the feed"
            time.sleep(0.1)
        assert entries[0].findtext(f"{ATOM}title") == "Harbour lights"  # newest first
        assert entries[0].findtext(f"{ATOM}updated") == "2031-05-01T00:00:00Z"
    finally:
        daemon.stop()


def test_unexpected_errors_are_500_json_without_details(web_index: tuple[Path, Path]) -> None:
    folder, index_dir = web_index
    app = create_app(Config(folder=folder, index_dir=index_dir))

    def broken() -> str:
        raise RuntimeError("secret internal detail")

    app.add_url_rule("/api/broken", view_func=broken)
    app.add_url_rule("/broken", view_func=broken)
    client = app.test_client()
    api = client.get("/api/broken")
    assert api.status_code == 500 and api.get_json()["error"]["code"] == "internal_error"
    assert b"secret" not in api.data
    page = client.get("/broken")
    assert page.status_code == 500 and page.mimetype == "text/html" and b"secret" not in page.data
    assert "Content-Security-Policy" in page.headers
