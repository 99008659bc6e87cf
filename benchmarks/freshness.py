"""Freshness of the indexing daemon, and the bulk speed of its start-up reconcile.

    .venv/bin/python benchmarks/freshness.py                 # Reuters-21578, 300 ops, both probes
    .venv/bin/python benchmarks/freshness.py --ops 60 --limit 3000   # a quick look

1. Extracts ../shared/corpora/reuters21578.tar.gz (21,577 articles) into a temporary folder.
2. Baseline: naive Whoosh (one writer, StemmingAnalyzer, path + content fields, one commit).
3. searchd: a Daemon started on an empty index; its start-up reconcile indexes the folder
   (articles/s, MB/s, peak RSS of the process and its parser workers).
4. With that daemon running: creates, modifies, then deletes files one at a time (a third each)
   and measures from the write until the change is visible, through an in-process Searcher and
   through GET /api/search of the web app served by waitress in this process. p50/p95/max.

Exits with status 2, naming the archive, when ../shared/corpora is absent.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import platform
import shutil
import socket
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

REPO = Path(__file__).resolve().parent.parent

from searchd.config import Config  # noqa: E402
from searchd.search import SearchRequest, Searcher  # noqa: E402
from searchd.watcher import Daemon  # noqa: E402


@dataclass(frozen=True)
class Bulk:
    seconds: float
    articles: int
    megabytes: float
    peak_rss_mb: float

    def row(self, name: str) -> str:
        return (f"| {name} | {self.articles:,} | {self.seconds:.1f} | {self.articles / self.seconds:,.0f} | "
                f"{self.megabytes / self.seconds:.2f} | {self.peak_rss_mb:.0f} |")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def extract(archive: Path, work: Path, limit: int | None) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    docs = work / "reuters21578" / "docs"
    folder = work / "articles"
    folder.mkdir()
    for number, path in enumerate(sorted(docs.glob("*.txt"))):
        if limit is not None and number >= limit:
            break
        path.rename(folder / path.name)
    return folder


class PeakRss:
    """Samples the RSS of this process plus its children (the parser workers) every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._halt.is_set():
            try:
                total = me.memory_info().rss + sum(c.memory_info().rss for c in me.children(recursive=True))
            except psutil.Error:
                total = 0
            self.peak = max(self.peak, total)
            time.sleep(0.05)

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._halt.set()
        self._thread.join()


def folder_size(folder: Path) -> tuple[int, float]:
    sizes = [p.stat().st_size for p in folder.iterdir()]
    return len(sizes), sum(sizes) / 1e6


def naive_whoosh(folder: Path, work: Path) -> Bulk:
    from whoosh import index
    from whoosh.analysis import StemmingAnalyzer
    from whoosh.fields import ID, TEXT, Schema

    count, megabytes = folder_size(folder)
    target = work / "naive"
    target.mkdir()
    with PeakRss() as rss:
        started = time.perf_counter()
        ix = index.create_in(str(target), Schema(path=ID(stored=True, unique=True),
                                                 content=TEXT(analyzer=StemmingAnalyzer(), stored=True)))
        writer = ix.writer()
        for path in folder.iterdir():
            writer.add_document(path=path.name, content=path.read_text(encoding="utf-8", errors="replace"))
        writer.commit()
        seconds = time.perf_counter() - started
    return Bulk(seconds, count, megabytes, rss.peak / 1e6)


def start_daemon(folder: Path, index_dir: Path) -> tuple[Daemon, Bulk]:
    count, megabytes = folder_size(folder)
    with PeakRss() as rss:
        started = time.perf_counter()
        daemon = Daemon(Config(folder=folder, index_dir=index_dir)).start()
        if not daemon.wait_until_caught_up(3600):
            raise SystemExit("the start-up reconcile did not finish")
        seconds = time.perf_counter() - started
    return daemon, Bulk(seconds, count, megabytes, rss.peak / 1e6)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebApp:
    """The real web app (searchd.web) served by waitress on a thread of this process."""

    def __init__(self, config: Config, daemon: Daemon):
        from waitress import create_server

        from searchd.web import create_app

        self.port = free_port()
        app = create_app(Config(folder=config.folder, index_dir=config.index_dir, port=self.port), status=daemon.status)
        self.server = create_server(app, host="127.0.0.1", port=self.port, threads=4)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)

    def hits(self, token: str) -> set[str]:
        # `size` and a cache-busting parameter are not needed: the app caches per index generation.
        self.conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": token, "size": 10}))
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/api/search answered {response.status}: {body[:200]!r}")
        return {hit["id"] for hit in json.loads(body)["hits"]}

    def close(self) -> None:
        self.conn.close()
        self.server.close()


def article(token: str) -> str:
    return f"Freshness probe {token}\n\nA short article written by the benchmark; it mentions {token} once.\n"


def measure(folder: Path, ops: int, probe: Callable[[str], set[str]], tag: str, timeout: float = 10.0) -> dict[str, list[float]]:
    """ops/3 creates, then ops/3 modifies of those files, then ops/3 deletes, one at a time; each
    timed from just before the write until `probe` shows the change."""
    third = max(1, ops // 3)
    names = [f"fresh-{tag}-{i}.txt" for i in range(third)]
    latencies: dict[str, list[float]] = {"create": [], "modify": [], "delete": []}

    def wait_for(check: Callable[[], bool], started: float) -> float:
        while not check():
            if time.perf_counter() - started > timeout:
                raise SystemExit(f"change not visible after {timeout}s")
            time.sleep(0.001)
        return (time.perf_counter() - started) * 1000

    for i, name in enumerate(names):
        token = f"zq{tag}c{i}x"
        started = time.perf_counter()
        (folder / name).write_text(article(token), encoding="utf-8")
        latencies["create"].append(wait_for(lambda: probe(token) == {name}, started))
    for i, name in enumerate(names):
        token = f"zq{tag}m{i}x"
        started = time.perf_counter()
        (folder / name).write_text(article(token), encoding="utf-8")
        latencies["modify"].append(wait_for(lambda: probe(token) == {name}, started))
    for i, name in enumerate(names):
        token = f"zq{tag}m{i}x"
        started = time.perf_counter()
        (folder / name).unlink()
        latencies["delete"].append(wait_for(lambda: not probe(token), started))
    return latencies


def summary(latencies: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    everything = [v for values in latencies.values() for v in values]
    rows = {**latencies, "all": everything}
    return {name: {"n": len(values), "p50": round(percentile(values, 50), 1), "p95": round(percentile(values, 95), 1),
                   "max": round(max(values), 1)} for name, values in rows.items()}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory:.0f} GB RAM, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=(REPO / ".." / "shared" / "corpora").resolve())
    parser.add_argument("--ops", type=int, default=300, help="file operations per probe (a third each)")
    parser.add_argument("--limit", type=int, default=None, help="index only the first N Reuters articles")
    parser.add_argument("--no-http", action="store_true", help="probe only through the in-process Searcher")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    archive = args.corpora / "reuters21578.tar.gz"
    if not archive.is_file():
        print(f"corpus not found: {archive} (../shared/corpora next to the repository; use --corpora)", file=sys.stderr)
        raise SystemExit(2)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    work = Path(tempfile.mkdtemp(prefix="searchd-freshness-"))
    try:
        folder = extract(archive, work, args.limit)
        print(f"machine: {machine()}", flush=True)
        baseline = naive_whoosh(folder, work)
        print(f"naive Whoosh: {baseline.articles} articles in {baseline.seconds:.1f}s", flush=True)
        daemon, bulk = start_daemon(folder, work / "index")
        print(f"searchd start-up reconcile: {bulk.articles} articles in {bulk.seconds:.1f}s", flush=True)
        results: dict = {"machine": machine(), "articles": bulk.articles, "megabytes": round(bulk.megabytes, 1),
                         "bulk": {"searchd": bulk.__dict__, "naive_whoosh": baseline.__dict__,
                                  "speedup": round(baseline.seconds / bulk.seconds, 2)}}
        try:
            searcher = Searcher(work / "index")
            probes: dict[str, Callable[[str], set[str]]] = {
                "searcher": lambda token: {hit.id for hit in searcher.search(SearchRequest(q=token)).hits}}
            web = None
            if not args.no_http:
                web = WebApp(daemon.config, daemon)
                probes["http"] = web.hits
            for name, probe in probes.items():
                latencies = measure(folder, args.ops, probe, tag=name[0])
                results[f"freshness_{name}"] = summary(latencies)
                print(f"freshness via {name}: {json.dumps(results[f'freshness_{name}']['all'])}", flush=True)
            status = daemon.status()
            results["daemon"] = {key: status[key] for key in ("documents", "segments", "commits", "observer")}
            if web is not None:
                web.close()
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print()
    print("| indexer | articles | seconds | articles/s | MB/s | peak RSS MB |")
    print("|---|---:|---:|---:|---:|---:|")
    print(bulk.row("searchd start-up reconcile"))
    print(baseline.row("naive Whoosh (one writer, StemmingAnalyzer, one commit)"))
    print(f"\nspeed-up: {results['bulk']['speedup']}x\n")
    print("| probe | operation | n | p50 ms | p95 ms | max ms |")
    print("|---|---|---:|---:|---:|---:|")
    for probe in ("searcher", "http"):
        for op, row in results.get(f"freshness_{probe}", {}).items():
            print(f"| {probe} | {op} | {row['n']} | {row['p50']} | {row['p95']} | {row['max']} |")
    print(f"\ndaemon after the run: {results['daemon']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
