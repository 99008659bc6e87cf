"""A short run of benchmarks/http_throughput.py (searchd and Typesense under wrk) on generated
archives laid out like the shared BBC and Reuters ones, and its clear refusal without them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import build_index, write_files
from .test_bench import make_archives

REPO = Path(__file__).resolve().parent.parent
HARNESS = REPO / "benchmarks" / "http_throughput.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(HARNESS), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_short_run_measures_both_servers(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk; scripts/test.sh installs it)")
    make_archives(tmp_path, articles=40)
    out = tmp_path / "out"
    done = run("--corpora", str(tmp_path), "--out", str(out), "--seconds", "2", "--connections", "1,4",
               "--queries", "400", "--inprocess-queries", "40", "--searchd-args", "--workers 2")
    assert done.returncode == 0, done.stderr[-3000:]

    results = json.loads((out / "results.json").read_text())
    assert [c["name"] for c in results["corpora"]] == ["bbc", "reuters"]
    for corpus in results["corpora"]:
        assert corpus["searchd"]["command"].endswith("--workers 2")
        # All of searchd's processes are measured: the main one, its daemon, two web workers.
        roles = corpus["searchd"]["memory"]["4"]["pss_mb_by_role"]
        assert {"main", "daemon", "web workers"} <= set(roles) and corpus["searchd"]["memory"]["4"]["processes"] >= 4
        for engine in ("searchd", "floor", "typesense"):
            figures = corpus[engine]
            # Both do the work the comparison claims: hits, highlighted snippets, the facet.
            assert figures["answers"]["hits_per_query"] > 0
            assert figures["answers"]["hits_with_marked_snippet"] > 0
            assert figures["answers"]["queries_with_category_facet"] > 0
            assert list(figures["levels"]) == ["1", "4"]
            for level in figures["levels"].values():
                assert level["requests"] > 0 and level["errors"] == 0
                assert 0 < level["p50_ms"] <= level["p90_ms"] <= level["p99_ms"]
            assert all(m["pss_mb"] > 0 and m["processes"] >= 1 for m in figures["memory"].values())
        assert corpus["typesense"]["documents"] == corpus["documents"]
        # The floor server answers with one of searchd's own answers, through searchd's web server.
        assert corpus["floor"]["answer_bytes"] > 0 and "floor_server.py" in corpus["floor"]["command"]
        assert corpus["floor"]["command"].endswith("--workers 2")
        for engine in ("searchd", "fts5"):  # in process, the same work: hits with a marked snippet
            figures = corpus["in_process"][engine]
            assert figures["p50_ms"] > 0 and figures["hits_per_query"] > 0 and figures["hits_with_marked_snippet"] > 0
    indexing = results["corpora"][1]["indexing"]  # Reuters: `searchd index` against naive Whoosh
    assert indexing["searchd"]["seconds"] > 0 and indexing["naive_whoosh"]["seconds"] > 0 and indexing["speedup"] > 0
    assert "indexing" not in results["corpora"][0]
    assert (out / "http_throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "results.md").read_text()
    assert "| searchd | 4 |" in report and "### Targets" in report
    assert "8 connections" not in report  # no target is judged on a level that was not run
    assert "`searchd index`, whole process" in report


def test_refuses_clearly_without_the_archives(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk; scripts/test.sh installs it)")
    done = run("--corpora", str(tmp_path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    assert "bbc.tar.gz" in done.stderr and "reuters21578.tar.gz" in done.stderr


def test_app_layer_splits_the_app_from_the_search(tmp_path: Path) -> None:
    """benchmarks/app_layer.py on a real index: the app with its search, the search alone, and
    the app answering a fixed result, each measured (and the app without search the cheapest)."""
    from .test_web import web_articles

    folder = write_files(tmp_path / "articles", web_articles())
    build_index(folder, tmp_path / "index")
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "app_layer.py"), str(folder),
                           "--index", str(tmp_path / "index"), "--queries", "60"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout)
    assert figures["queries"] > 0
    assert figures["app_ms"] > 0 and figures["search_ms"] > 0
    assert 0 < figures["app_without_search_ms"] < figures["app_ms"]
