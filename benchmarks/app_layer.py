"""What searchd's web app costs a request beyond the search itself, in one process.

    .venv/bin/python benchmarks/app_layer.py FOLDER --index INDEX [--queries 5000]

On an index `searchd index` built of FOLDER, with the one- and two-word queries of the HTTP
benchmark (loadgen.random_queries; a warm-up of 500 first, a fifth of them on a small folder), CPU time per query of:

- `search`: `Searcher.search` alone, on a reader of its own;
- `app`: the Flask app called as gunicorn calls it (`/api/search?q=…&size=10`, segment_count's
  app_caller), taking turns with `search` query by query;
- `app_without_search`: the same app with `Searcher.search` answering one fixed result: routing,
  arguments, the response cache, metrics, ETag, headers and JSON, and no search.

Prints one JSON line. HTTP itself (gunicorn, the kernel) is what http_throughput.py's floor
server measures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402
from segment_count import app_caller  # noqa: E402

WARMUP = 500


def cpu_ms(calls: list[Callable[[], object]]) -> float:
    started = time.process_time()
    for call in calls:
        call()
    return 1000 * (time.process_time() - started) / max(1, len(calls))


def measure(folder: Path, index_dir: Path, count: int) -> dict:
    from searchd.config import Config
    from searchd.engines import open_engine
    from searchd.search import Searcher
    from searchd.web.args import search_request_from

    queries = loadgen.random_queries(folder, WARMUP + count)
    reserved = min(WARMUP, len(queries) // 5)  # a small folder has fewer distinct queries
    warm, asked = queries[:reserved], queries[reserved:]
    if not warm:
        raise SystemExit(f"error: too few title words in {folder} to make queries of")
    call = app_caller(folder, index_dir)
    searcher = Searcher(open_engine(Config(folder=folder, index_dir=index_dir)).open_reader())

    def search(query: str) -> object:
        return searcher.search(search_request_from({"q": query, "size": "10"}))

    for query in warm:
        call(query)
        search(query)
    app = searched = 0.0
    for query in asked:  # taking turns: the machine's moments fall on both alike
        app += cpu_ms([lambda: call(query)])
        searched += cpu_ms([lambda: search(query)])
    fixed = search(warm[0])
    original = Searcher.search
    Searcher.search = lambda self, request: fixed  # type: ignore[method-assign]
    try:
        without = cpu_ms([lambda query=query: call(query) for query in asked])
    finally:
        Searcher.search = original  # type: ignore[method-assign]
    return {"queries": len(asked), "app_ms": round(app / len(asked), 3), "search_ms": round(searched / len(asked), 3),
            "app_without_search_ms": round(without, 3)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--index", type=Path, required=True, help="an index `searchd index` built of the folder")
    parser.add_argument("--queries", type=int, default=5000)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.folder, args.index, args.queries)))


if __name__ == "__main__":
    main()
