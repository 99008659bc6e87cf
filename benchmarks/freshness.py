"""Freshness of the indexing daemon, and the bulk speed of its start-up reconcile.

    .venv/bin/python benchmarks/freshness.py                 # Reuters-21578, 300 ops, both probes
    .venv/bin/python benchmarks/freshness.py --ops 60 --limit 3000   # a quick look

1. Extracts ../shared/corpora/reuters21578.tar.gz (21,577 articles) into a temporary folder.
2. Baseline: naive Whoosh (one writer, StemmingAnalyzer, path + content fields, one commit).
3. searchd: `searchd watch` started on an empty index, as deployed (deploy/searchd-watch.service);
   its start-up reconcile indexes the folder (articles/s, MB/s, peak RSS of the process and its
   parser workers), timed until it reports "ok" in index/status.json.
4. With that daemon running: creates, modifies, then deletes files one at a time (a third each)
   and measures from the write until the change is visible, through a Searcher in this process
   (a reader of the index, like `searchd web`) and through GET /api/search of a `searchd web`
   process. p50/p95/max. The daemon, the web server and this prober are separate processes, so
   the prober's polling does not compete with the daemon for one interpreter lock.

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
import signal
import socket
import subprocess
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

from searchd.engines.whoosh import WhooshEngine  # noqa: E402
from searchd.engines.whoosh.store import read_status  # noqa: E402
from searchd.search import SearchRequest, Searcher  # noqa: E402

SEARCHD = [sys.executable, "-m", "searchd"]


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
    """Samples the RSS of a process plus its children (the parser workers) every 50 ms."""

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self.peak = 0
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        process = psutil.Process(self.pid)
        while not self._halt.is_set():
            try:
                total = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
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


def start_daemon(folder: Path, index_dir: Path, log: Path) -> tuple[subprocess.Popen, Bulk]:
    """`searchd watch` on an empty index, timed until its start-up reconcile is done."""
    count, megabytes = folder_size(folder)
    started = time.perf_counter()
    proc = subprocess.Popen([*SEARCHD, "watch", "--folder", str(folder), "--index", str(index_dir)],
                            stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=REPO)
    with PeakRss(proc.pid) as rss:
        while read_status(index_dir).get("state") != "ok" or read_status(index_dir).get("pid") != proc.pid:
            if proc.poll() is not None:
                raise SystemExit(f"searchd watch exited with {proc.returncode}; see {log}")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
    return proc, Bulk(seconds, count, megabytes, rss.peak / 1e6)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebProcess:
    """`searchd web` (reads the index the daemon writes), asked over one keep-alive connection."""

    def __init__(self, index_dir: Path, log: Path):
        self.port = free_port()
        self.proc = subprocess.Popen([*SEARCHD, "web", "--index", str(index_dir), "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=log.open("wb"), cwd=REPO)
        deadline = time.monotonic() + 30
        while True:
            try:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                self.conn.request("GET", "/healthz")
                self.conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise SystemExit(f"searchd web did not start; see {log}")
                time.sleep(0.1)

    def hits(self, token: str) -> set[str]:
        self.conn.request("GET", "/api/search?" + urllib.parse.urlencode({"q": token, "size": 10}))
        response = self.conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"/api/search answered {response.status}: {body[:200]!r}")
        return {hit["id"] for hit in json.loads(body)["hits"]}

    def close(self) -> None:
        self.conn.close()
        stop(self.proc)


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
        index_dir = work / "index"
        daemon, bulk = start_daemon(folder, index_dir, work / "watch.log")
        print(f"searchd start-up reconcile: {bulk.articles} articles in {bulk.seconds:.1f}s", flush=True)
        results: dict = {"machine": machine(), "articles": bulk.articles, "megabytes": round(bulk.megabytes, 1),
                         "bulk": {"searchd": bulk.__dict__, "naive_whoosh": baseline.__dict__,
                                  "speedup": round(baseline.seconds / bulk.seconds, 2)}}
        web = None
        try:
            searcher = Searcher(WhooshEngine(index_dir).open_reader())
            probes: dict[str, Callable[[str], set[str]]] = {
                "searcher": lambda token: {hit.id for hit in searcher.search(SearchRequest(q=token)).hits}}
            if not args.no_http:
                web = WebProcess(index_dir, work / "web.log")
                probes["http"] = web.hits
            for name, probe in probes.items():
                latencies = measure(folder, args.ops, probe, tag=name[0])
                results[f"freshness_{name}"] = summary(latencies)
                print(f"freshness via {name}: {json.dumps(results[f'freshness_{name}']['all'])}", flush=True)
            time.sleep(0.5)
            status = read_status(index_dir)
            results["daemon"] = {key: status.get(key) for key in ("documents", "segments", "commits", "observer")}
        finally:
            if web is not None:
                web.close()
            results["daemon_exit_code"] = stop(daemon)
            results["load_average"] = os.getloadavg()
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
    print(f"\ndaemon after the run: {results['daemon']}, exit code {results['daemon_exit_code']}, "
          f"load average at the end {results['load_average']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
