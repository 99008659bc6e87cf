"""Where searchd's time goes: bulk indexing and the query mix, profiled part by part.

    .venv/bin/python benchmarks/profile_parts.py                 # Reuters-21578: 4,000 articles, the query mix
    .venv/bin/python benchmarks/profile_parts.py --limit 1000    # a quicker look

Indexing: one worker's job (what sync.py's worker processes do for each segment) in this
process, under cProfile: read and parse the files, analyse and invert them, write the segment.
Queries: the committed mix (benchmarks/queries.txt) through `Searcher.search`, top 10 with
snippets, under cProfile after one warm-up round. Each part is the cumulative time of the
functions that do it, as a share of the whole. cProfile slows Python code more than C code, so
the shares are a guide to where to look, not exact figures; the benchmark's timings are taken
without it.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import corpora  # noqa: E402

INDEX_PARTS = {
    "read and parse the files (articles.py)": ("articles.py", "read_article"),
    "add the documents: analysis, postings in memory, stored fields, columns (SegmentBuilder.add)": ("segments.py", "add"),
    "of which: tokens, stems and positions (analysis.py)": ("analysis.py", "index"),
    "write the postings and the term table (segments.py)": ("segments.py", "_write_postings"),
    "pack the segment into one file (Whoosh)": ("base.py", "create_compound_file"),
}
QUERY_PARTS = {
    "read the query (query.py)": ("query.py", "read"),
    "evaluate and rank (engine.py)": ("engine.py", "rank"),
    "of which: read and decode postings not in the cache": ("engine.py", "read_postings"),
    "fold duplicates (shingles of near-equal scores)": ("search.py", "fold_duplicates"),
    "snippets (snippets.py)": ("snippets.py", "snippet"),
    "stored fields of the hits (Whoosh)": ("search.py", "stored_fields"),
    "did-you-mean (few hits)": ("search.py", "_did_you_mean"),
}


def shares(profile: cProfile.Profile, parts: dict[str, tuple[str, str]]) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    total = max(stats.total_tt, 1e-9)  # type: ignore[attr-defined]
    rows = []
    for label, (filename, function) in parts.items():
        seconds = sum(cumulative for (path, _, name), (_, _, _, cumulative, _) in stats.stats.items()  # type: ignore[attr-defined]
                      if path.endswith(filename) and name == function)
        rows.append((label, 100 * seconds / total))
    return rows


def profile_indexing(root: Path, limit: int) -> tuple[float, list[tuple[str, float]]]:
    from searchd.engines.whoosh.schema import build_schema, to_document
    from searchd.engines.whoosh.segments import SegmentBuilder
    from searchd.sync import parse_one

    files = sorted(root.rglob("*.txt"))[:limit]
    with tempfile.TemporaryDirectory() as folder:
        profile = cProfile.Profile()
        started = time.perf_counter()
        profile.enable()
        builder = SegmentBuilder(build_schema(), folder)
        for path in files:
            parsed = parse_one(root, path, path.relative_to(root).as_posix(), 10 << 20)
            if parsed.article is not None:
                builder.add(to_document(parsed.article))
        builder.finish().discard()
        profile.disable()
        seconds = time.perf_counter() - started
    return seconds / len(files) * 1000, shares(profile, INDEX_PARTS)


def profile_queries(corpus: corpora.Corpus, index_dir: Path, rounds: int) -> tuple[float, list[tuple[str, float]]]:
    from engines import SearchdEngine, load_queries

    engine = SearchdEngine()
    engine.build(corpus.root, index_dir)
    engine.open(index_dir)
    queries = load_queries(HERE / "queries.txt", corpus.top_category(), corpus.date_quantiles[2])
    for query in queries:
        engine.search(query)
    profile = cProfile.Profile()
    started = time.perf_counter()
    profile.enable()
    for _ in range(rounds):
        for query in queries:
            engine.search(query)
    profile.disable()
    per_query = (time.perf_counter() - started) / (rounds * len(queries)) * 1000
    return per_query, shares(profile, QUERY_PARTS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpora", type=Path, default=corpora.shared_corpora(REPO))
    parser.add_argument("--limit", type=int, default=4000, help="articles indexed under the profiler")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the query mix")
    args = parser.parse_args()
    try:
        archives = corpora.require_archives(args.corpora, ["reuters"])
    except corpora.CorpusMissing as missing:
        print(f"error: {missing}", file=sys.stderr)
        sys.exit(2)
    with tempfile.TemporaryDirectory(prefix="searchd-profile-") as tmp:
        work = Path(tmp)
        corpus = corpora.reuters_corpus(corpora.read_reuters(archives["reuters"], work), work)
        ms, rows = profile_indexing(corpus.root, args.limit)
        print(f"Indexing, one worker's segment of {args.limit:,} Reuters articles: {ms:.2f} ms per article under cProfile")
        print("\n| part | share |\n|---|---:|")
        for label, share in rows:
            print(f"| {label} | {share:.0f}% |")
        ms, rows = profile_queries(corpus, work / "index", args.rounds)
        print(f"\nQueries, the mix of benchmarks/queries.txt on all {corpus.documents:,} Reuters articles, "
              f"{args.rounds} rounds: {ms:.2f} ms per query under cProfile")
        print("\n| part | share |\n|---|---:|")
        for label, share in rows:
            print(f"| {label} | {share:.0f}% |")


if __name__ == "__main__":
    main()
