"""The foundation end to end: folder -> index -> search -> HTTP, with real files and requests."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from searchd.config import Config
from searchd.search import SearchRequest
from searchd.web import create_app

from .conftest import REPO, SEEDS, build_index, write_files
from .daemon_helpers import searcher as open_searcher

SEARCHD = [sys.executable, "-m", "searchd"]


def _ids(result) -> list[str]:
    return [hit.id for hit in result.hits]


def test_reconcile_adds_updates_deletes_and_is_idempotent(make_folder, tmp_path):
    folder = make_folder({"a/one.txt": "One\n\nApples are red.", "a/two.txt": "Two\n\nPears are green."})
    index_dir = tmp_path / "index"

    first = build_index(folder, index_dir)
    assert (first.added, first.updated, first.deleted, first.unchanged) == (2, 0, 0, 0)
    again = build_index(folder, index_dir)
    assert (again.added, again.updated, again.deleted, again.unchanged) == (0, 0, 0, 2)

    (folder / "a/one.txt").write_text("One\n\nApples are yellow now.", encoding="utf-8")
    (folder / "a/two.txt").unlink()
    write_files(folder, {"b/three.md": "---\ntitle: Three\n---\nPlums are purple."})
    changed = build_index(folder, index_dir)
    assert (changed.added, changed.updated, changed.deleted) == (1, 1, 1)

    searcher = open_searcher(index_dir)
    assert _ids(searcher.search(SearchRequest(q="yellow"))) == ["a/one.txt"]
    assert searcher.search(SearchRequest(q="red")).total == 0
    assert searcher.search(SearchRequest(q="pears")).total == 0
    assert _ids(searcher.search(SearchRequest(q="plums"))) == ["b/three.md"]
    assert build_index(folder, index_dir).changed == 0


def test_skipped_files_are_reported_and_good_files_indexed(make_folder, tmp_path):
    folder = make_folder({
        "good.txt": "Good\n\nA perfectly fine article about otters.",
        "empty.txt": "",
        "binary.txt": b"\x00\x01\x02binary\x00" * 50,
        "big.txt": "Big\n\n" + "word " * 300,
    })
    report = build_index(folder, tmp_path / "index", max_bytes=1000)
    assert report.added == 1
    assert report.skipped == {
        "binary.txt": "binary data, not text",
        "big.txt": "too large (0.0 MB > limit 0.0 MB)",
        "empty.txt": "empty file",
    }
    assert "3 skipped" in report.summary()
    assert _ids(open_searcher(tmp_path / "index").search(SearchRequest(q="otters"))) == ["good.txt"]


def test_title_match_ranks_above_body_only_mention(make_folder, tmp_path):
    folder = make_folder({
        "body-mention.txt": "Harbour news\n\nThe council met. Someone mentioned lighthouses once in passing.",
        "title-match.txt": "Lighthouses of the north coast\n\nA tour of old towers along the coast.",
        "other.txt": "Farming\n\nWheat and barley prices rose.",
    })
    build_index(folder, tmp_path / "index")
    result = open_searcher(tmp_path / "index").search(SearchRequest(q="lighthouses"))
    assert _ids(result) == ["title-match.txt", "body-mention.txt"]


def test_snippet_marks_the_matched_word_and_escapes_text(make_folder, tmp_path):
    folder = make_folder({"x.txt": "Title\n\nThe <b>bold</b> claim: otters & beavers build dams."})
    build_index(folder, tmp_path / "index")
    hit = open_searcher(tmp_path / "index").search(SearchRequest(q="beavers")).hits[0]
    assert "<mark>beavers</mark>" in hit.snippet
    assert "&lt;b&gt;bold&lt;/b&gt;" in hit.snippet and "&amp;" in hit.snippet
    assert "<b>" not in hit.snippet


def test_latin1_file_keeps_its_accents(tmp_path):
    build_index(SEEDS, tmp_path / "index")
    searcher = open_searcher(tmp_path / "index")
    result = searcher.search(SearchRequest(q="café"))
    assert _ids(result) == ["culture/cafe-culture-latin1.txt"]
    assert "<mark>cafés</mark>" in result.hits[0].snippet
    document = searcher.document("culture/cafe-culture-latin1.txt")
    assert document.title == "Café Culture Returns to the Old Town"
    assert "crème brûlée" in document.body[0] and "£5" in document.body[1]


# --- HTTP through the real Flask app ---------------------------------------------------------

@pytest.fixture
def seeded_client(tmp_path):
    folder = tmp_path / "articles"
    shutil.copytree(SEEDS, folder)
    write_files(folder, {
        "world/xss.json": json.dumps({
            "title": "<script>alert(1)</script>",
            "body": "An article whose title tries to run a script: xsstest.",
        })
    })
    build_index(folder, tmp_path / "index")
    app = create_app(Config(folder=folder, index_dir=tmp_path / "index"))
    return app.test_client()


def test_api_search_shape_and_seed_first(seeded_client):
    response = seeded_client.get("/api/search?q=zelensky")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    data = response.get_json()
    assert {"query", "total", "page", "size", "took_ms", "hits"} <= data.keys()
    assert data["query"] == "zelensky" and data["page"] == 1 and data["size"] == 10
    first = data["hits"][0]
    assert {"id", "title", "summary", "snippet", "score", "date", "category", "path"} <= first.keys()
    assert first["id"] == "world/us-russia-talks-saudi-arabia.txt"
    assert first["title"] == "Diplomatic Resurgence: U.S. and Russia Seek Common Ground"
    assert first["category"] == "world"
    assert "<mark>Zelensky</mark>" in first["snippet"]


def test_results_page_links_to_documents(seeded_client):
    page = seeded_client.get("/search?q=coffee").get_data(as_text=True)
    assert "Coffee Prices Hit a Record as Harvests Shrink" in page
    assert 'href="/doc/business/coffee-prices-record.json' in page
    doc = seeded_client.get("/doc/business/coffee-prices-record.json")
    assert doc.status_code == 200
    assert "Roasters have begun to pass the cost on." in doc.get_data(as_text=True)
    api_doc = seeded_client.get("/api/doc/business/coffee-prices-record.json").get_json()
    assert api_doc["tags"] == ["commodities", "coffee", "agriculture"]


def test_script_title_is_escaped_in_html_and_json(seeded_client):
    page = seeded_client.get("/search?q=xsstest").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    doc_page = seeded_client.get("/doc/world/xss.json").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in doc_page
    hit = seeded_client.get("/api/search?q=xsstest").get_json()["hits"][0]
    assert hit["title"] == "<script>alert(1)</script>"  # JSON carries the data; HTML escapes it
    assert "<script" not in hit["snippet"]


def test_query_text_is_escaped_on_the_page(seeded_client):
    page = seeded_client.get('/search?q=<img src=x onerror=alert(1)>').get_data(as_text=True)
    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


@pytest.mark.parametrize("path", ["/doc/../../etc/passwd", "/doc/%2e%2e/%2e%2e/etc/passwd", "/doc/nope.txt", "/api/doc/nope.txt"])
def test_unknown_and_traversal_ids_are_404(seeded_client, path):
    response = seeded_client.get(path)
    assert response.status_code == 404
    assert "root:" not in response.get_data(as_text=True)


def test_api_errors_are_json_4xx(seeded_client):
    for url, code in [
        ("/api/search?q=x&size=1000", 400),
        ("/api/search?q=x&page=0", 400),
        ("/api/search?q=x&page=abc", 400),
        ("/api/search?q=" + "x" * 1001, 400),
        ("/api/nothing-here", 404),
    ]:
        response = seeded_client.get(url)
        assert response.status_code == code, url
        error = response.get_json()["error"]
        assert error["code"] and error["message"]


def test_unparseable_queries_get_an_answer(seeded_client):
    for q in ['"zelensky rubio', "zelensky ((", "title:", "AND OR NOT", "a:b/c-d%"]:
        response = seeded_client.get("/api/search", query_string={"q": q})
        assert response.status_code == 200, q
    data = seeded_client.get("/api/search", query_string={"q": '"zelensky rubio'}).get_json()
    assert data["hits"][0]["id"] == "world/us-russia-talks-saudi-arabia.txt"
    assert data["notice"].startswith("unbalanced quote")


def test_healthz(seeded_client):
    data = seeded_client.get("/healthz").get_json()
    assert data["documents"] == 7
    assert {"status", "documents", "pending", "last_commit"} <= data.keys()


# --- the CLI and the served app as a user runs them -----------------------------------------

def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*SEARCHD, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_cli_index_search_status(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    first = _run("index", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("6 added, 0 updated, 0 deleted, 0 unchanged, 0 skipped")
    second = _run("index", cwd=tmp_path)
    assert second.stdout.startswith("0 added, 0 updated, 0 deleted, 6 unchanged, 0 skipped")

    found = _run("search", "solid state batteries", "--json", cwd=tmp_path)
    assert json.loads(found.stdout)["hits"][0]["id"] == "technology/solid-state-batteries.html"
    plain = _run("search", "coffee", cwd=tmp_path)
    assert "Coffee Prices Hit a Record" in plain.stdout

    status = json.loads(_run("status", "--json", cwd=tmp_path).stdout)
    assert status["documents"] == 6 and status["daemon_running"] is False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait_for(predicate, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.1)


def test_serve_indexes_watches_and_answers_over_http(tmp_path):
    shutil.copytree(SEEDS, tmp_path / "seeds")
    port = _free_port()
    env = {**os.environ, "SEARCHD_PORT": str(port)}
    server = subprocess.Popen([*SEARCHD, "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _get_json(f"{base}/healthz")["status"] == "ok")
        data = _get_json(f"{base}/api/search?q=zelensky")
        assert data["hits"][0]["id"] == "world/us-russia-talks-saudi-arabia.txt"
        assert "<mark>Zelensky</mark>" in data["hits"][0]["snippet"]

        write_files(tmp_path / "seeds", {"world/new.txt": "Fresh report\n\nA quokka was seen in the harbour."})
        _wait_for(lambda: _get_json(f"{base}/api/search?q=quokka")["total"] == 1, timeout=10)
        (tmp_path / "seeds/world/new.txt").unlink()
        _wait_for(lambda: _get_json(f"{base}/api/search?q=quokka")["total"] == 0, timeout=10)
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert server.returncode == 0, output
    assert "Traceback" not in output


@pytest.mark.slow
def test_wheel_contains_templates_and_static_files(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    wheel = next(tmp_path.glob("searchd-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "searchd/web/templates/search.html" in names
    assert "searchd/web/static/style.css" in names
    assert "searchd/cli.py" in names


def test_sorting_by_date_keeps_the_total_and_orders_newest_first(make_folder, tmp_path):
    folder = make_folder({
        f"n/{i:02d}.json": json.dumps({"title": f"Otter report {i}", "date": f"2024-01-{i + 1:02d}",
                                        "body": "Otters were counted on the river again."})
        for i in range(30)
    })
    build_index(folder, tmp_path / "index")
    searcher = open_searcher(tmp_path / "index")
    by_relevance = searcher.search(SearchRequest(q="otters", size=5))
    newest = searcher.search(SearchRequest(q="otters", size=5, sort="date"))
    assert by_relevance.total == newest.total == 30  # more than the hits fetched for one page
    assert [hit.id for hit in newest.hits] == [f"n/{i:02d}.json" for i in (29, 28, 27, 26, 25)]
