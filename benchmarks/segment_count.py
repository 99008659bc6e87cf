"""What the background merge of big segments buys a search: the same index in the segments a bulk
index leaves and merged into one, the same queries, interleaved rounds in one process.

    .venv/bin/python benchmarks/segment_count.py                 # Reuters-21578, 3 rounds
    .venv/bin/python benchmarks/segment_count.py --rounds 5
    .venv/bin/python benchmarks/segment_count.py --profile     # and cProfile a round on the merged index

`searchd index` builds the index; a copy is merged the way the daemon does once idle
(`WhooshWriter.merge()`, engines/whoosh/merging.py). Each round asks both indexes the same
1,000 one- and two-word queries of the HTTP benchmark (loadgen.random_queries, after 200 warm-up
queries), new ones each round (as under wrk, no query is asked twice: a repeated one finds its
words' postings in the caches, and costs about the same on either index), through the Flask app
called as gunicorn calls it (`/api/search?q=…&size=10`: top 10, snippets, facets), the two
indexes taking turns to go first: CPU per query and p50 for each, and their ratio.
"""

from __future__ import annotations

import argparse
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
import loadgen  # noqa: E402
from stats import percentile  # noqa: E402

WARMUP, ASKED = 200, 1000


def build(work: Path) -> tuple[Path, Path, Path]:
    archives = corpora.require_archives(corpora.shared_corpora(HERE.parent), ["reuters"])
    corpus = corpora.reuters_corpus(corpora.read_reuters(archives["reuters"], work), work)
    as_built, merged = work / "index-bulk", work / "index-merged"
    subprocess.run([sys.executable, "-m", "searchd", "index", str(corpus.root), "--index", str(as_built)],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.copytree(as_built, merged)
    merge(merged)
    return corpus.root, as_built, merged


def merge(index_dir: Path) -> None:
    from searchd.engines.whoosh import WhooshEngine

    writer = WhooshEngine(index_dir).open_writer()
    try:
        while writer.merge() or writer.merging:
            time.sleep(0.1)
    finally:
        writer.close()


def app_caller(root: Path, index_dir: Path):
    from searchd.config import Config
    from searchd.web import create_app

    app = create_app(Config(folder=root, index_dir=index_dir))

    def call(query: str) -> None:
        path, _, query_string = loadgen.search_path(query).partition("?")
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query_string,
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
                   "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(), "wsgi.errors": sys.stderr,
                   "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
                   "HTTP_HOST": "127.0.0.1:8080", "REMOTE_ADDR": "127.0.0.1"}
        statuses: list[str] = []
        b"".join(app(environ, lambda status, headers, exc_info=None: statuses.append(status)))
        if not statuses[0].startswith("200"):
            raise RuntimeError(f"{query!r}: {statuses[0]}")

    return call


def segments(index_dir: Path) -> int:
    from searchd.engines.whoosh import WhooshEngine

    return WhooshEngine(index_dir).open_reader().stats().segments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="then a round of new queries on the merged index under cProfile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="searchd-segments-") as tmp:
        root, as_built, merged = build(Path(tmp))
        queries = loadgen.random_queries(root, WARMUP + ASKED * (args.rounds + 1))
        callers = {"bulk": app_caller(root, as_built), "merged": app_caller(root, merged)}
        for call in callers.values():
            for query in queries[:WARMUP]:
                call(query)
        print(f"segments: bulk {segments(as_built)}, merged {segments(merged)}; "
              f"{ASKED} queries a round, load average {open('/proc/loadavg').read().split()[:3]}")
        for number in range(1, args.rounds + 1):
            figures = {}
            asked = queries[WARMUP + (number - 1) * ASKED:WARMUP + number * ASKED]
            for name in (["bulk", "merged"] if number % 2 else ["merged", "bulk"]):
                call = callers[name]
                seconds, cpu = [], time.process_time()
                for query in asked:
                    started = time.perf_counter()
                    call(query)
                    seconds.append(time.perf_counter() - started)
                seconds.sort()
                figures[name] = (1000 * (time.process_time() - cpu) / ASKED, 1000 * percentile(seconds, 50))
            (bulk_cpu, bulk_p50), (merged_cpu, merged_p50) = figures["bulk"], figures["merged"]
            print(f"round {number}: CPU per query bulk {bulk_cpu:.2f} ms, merged {merged_cpu:.2f} ms "
                  f"({merged_cpu / bulk_cpu:.2f}x); p50 {bulk_p50:.2f} vs {merged_p50:.2f} ms ({merged_p50 / bulk_p50:.2f}x)")
        if args.profile:
            profile(callers["merged"], queries[WARMUP + args.rounds * ASKED:])


def profile(call, queries: list[str]) -> None:
    """Where a search's time goes on the merged index (cumulative, as a share of the whole;
    cProfile slows Python code more than C code, so read the shares as a guide)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    for query in queries:
        call(query)
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    rows = sorted(((cumulative, f"{Path(path).name}:{name}") for (path, _, name), (_, _, _, cumulative, _)
                   in stats.stats.items() if "searchd" in path or "flask" in path or "whoosh" in path),  # type: ignore[attr-defined]
                  reverse=True)
    print(f"cProfile of {len(queries)} new queries on the merged index, {1000 * total / len(queries):.2f} ms a query under it:")
    for cumulative, where in rows[:40]:
        print(f"  {100 * cumulative / total:5.1f}%  {where}")


if __name__ == "__main__":
    main()
