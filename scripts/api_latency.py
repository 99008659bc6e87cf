#!/usr/bin/env python3
"""Median latency of GET /api/search over real HTTP, with and without the response cache.

    .venv/bin/python scripts/api_latency.py [--corpus ../shared/corpora/bbc.tar.gz] [--rounds 20]

Extracts the corpus to a temporary folder, indexes it, then serves the same index twice with
waitress (response cache on, then off) and times repeated searches over one keep-alive
connection. "cached" is a repeat of a query already answered for this index generation; "304"
is a repeat that sends the ETag back; "uncached" runs the search every time.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tarfile
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from searchd.config import Config
from searchd.folder import FileRules
from searchd.engines.whoosh import WhooshEngine
from searchd.sync import index_once
from searchd.web import create_app, serving

REPO = Path(__file__).resolve().parent.parent
QUERIES = ["economy", "mobile phone", "england rugby", "oil prices", "election labour", "film award",
           "music chart", "broadband", "tax", "china growth", "champions league", "games console",
           "government plans", "\"prime minister\"", "music OR film", "technolog*", "interest rates",
           "world cup", "stock market", "virus software"]


def timed_gets(base: str, paths: list[str], rounds: int, etags: bool = False) -> list[float]:
    """Milliseconds per request; each path is requested once first (not timed) to warm up."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    known: dict[str, str] = {}
    for path in paths:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        known[path] = response.headers["ETag"]
    samples = []
    for _ in range(rounds):
        for path in paths:
            headers = {"If-None-Match": known[path]} if etags else {}
            started = time.perf_counter()
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            samples.append((time.perf_counter() - started) * 1000)
            assert response.status == (304 if etags else 200), response.status
    connection.close()
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=REPO / ".." / "shared" / "corpora" / "bbc.tar.gz")
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    paths = ["/api/search?" + urlencode({"q": q}) for q in QUERIES]

    with tempfile.TemporaryDirectory(prefix="searchd-latency-") as tmp:
        folder, index_dir = Path(tmp) / "articles", Path(tmp) / "index"
        with tarfile.open(options.corpus) as tar:
            tar.extractall(folder, filter="data")
        started = time.perf_counter()
        report = index_once(WhooshEngine(index_dir), folder, FileRules(), 10 * 1024 * 1024)
        print(f"indexed {options.corpus.name}: {report.summary()} ({time.perf_counter() - started:.1f}s)")
        config = Config(folder=folder, index_dir=index_dir)
        results = {}
        with serving(create_app(config), threads=4) as base:
            results["cached (repeat query)"] = timed_gets(base, paths, options.rounds)
            results["304 (If-None-Match)"] = timed_gets(base, paths, options.rounds, etags=True)
        with serving(create_app(config, cache_entries=0), threads=4) as base:
            results["uncached"] = timed_gets(base, paths, options.rounds)
    print(f"GET /api/search, {len(QUERIES)} queries x {options.rounds} rounds, one keep-alive connection:")
    for name, samples in results.items():
        ordered = sorted(samples)
        print(f"  {name:<22} median {statistics.median(samples):7.2f} ms   "
              f"p90 {ordered[int(len(ordered) * 0.9)]:7.2f} ms   n={len(samples)}")


if __name__ == "__main__":
    main()
