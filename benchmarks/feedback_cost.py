"""What pseudo-relevance feedback costs a search, in one process: the same index searched with the
default ranking (feedback on) and with feedback off, query by query in turns, CPU time
(time.process_time) of `Searcher.search` as the page calls it (top 10, snippets, facets). The
queries are distinct random one- and two-word queries (benchmarks/loadgen.py: nothing cached).

    .venv/bin/python benchmarks/feedback_cost.py --corpora-dir ../shared/corpora --work /tmp/fbcost

Prints the mean and median CPU per query of each side and their ratio, per corpus, with the load.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402
import loadgen  # noqa: E402
from searchd.config import DEFAULT_MAX_FILE_BYTES  # noqa: E402
from searchd.engines.whoosh import Ranking, WhooshEngine  # noqa: E402
from searchd.folder import FileRules  # noqa: E402
from searchd.search import Searcher, SearchRequest  # noqa: E402
from searchd.sync import index_once  # noqa: E402


def prepare(name: str, shared: Path, work: Path) -> corpora.Corpus:
    archives = corpora.require_archives(shared, [name])
    if name == "bbc":
        return corpora.prepare_bbc(archives["bbc"], work)
    return corpora.reuters_corpus(corpora.read_reuters(archives["reuters"], work), work)


def measure(corpus: corpora.Corpus, index_dir: Path, count: int, warm: int) -> dict[str, list[float]]:
    index_once(WhooshEngine(index_dir), corpus.root, FileRules(), DEFAULT_MAX_FILE_BYTES)
    sides = {"on": Searcher(WhooshEngine(index_dir).open_reader()),
             "off": Searcher(WhooshEngine(index_dir, replace(Ranking(), feedback_docs=0)).open_reader())}
    queries = loadgen.random_queries(corpus.root, warm + count)
    for query in queries[:warm]:  # open the index, fill the posting caches with common terms
        for searcher in sides.values():
            searcher.search(SearchRequest(q=query))
    times: dict[str, list[float]] = {name: [] for name in sides}
    order = list(sides.items())
    for number, query in enumerate(queries[warm:]):
        # Each side goes first every other query: the first to search a query pays for reading
        # its postings from the page cache.
        for name, searcher in order if number % 2 else order[::-1]:
            started = time.process_time()
            searcher.search(SearchRequest(q=query))
            times[name].append(time.process_time() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora-dir", type=Path, default=corpora.shared_corpora(HERE.parent))
    parser.add_argument("--work", type=Path, required=True, help="where corpora and indexes go (kept)")
    parser.add_argument("--corpora", nargs="+", default=["reuters", "bbc"], choices=["reuters", "bbc"])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--warm", type=int, default=100)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    for name in args.corpora:
        corpus = prepare(name, args.corpora_dir, args.work)
        load_before = Path("/proc/loadavg").read_text().split()[:3]
        times = measure(corpus, args.work / f"{name}.index", args.queries, args.warm)
        load_after = Path("/proc/loadavg").read_text().split()[:3]
        on, off = (statistics.mean(times[side]) * 1000 for side in ("on", "off"))
        median_on, median_off = (statistics.median(times[side]) * 1000 for side in ("on", "off"))
        print(f"{name}: {len(times['on'])} queries; CPU ms per query, mean: feedback off {off:.2f}, on {on:.2f}, "
              f"ratio {on / off:.3f}; median: off {median_off:.2f}, on {median_on:.2f}, ratio {median_on / median_off:.3f}; "
              f"load {' '.join(load_before)} -> {' '.join(load_after)}", flush=True)


if __name__ == "__main__":
    main()
