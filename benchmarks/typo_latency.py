"""Milliseconds for did-you-mean and autocomplete on an existing index.

    .venv/bin/python benchmarks/typo_latency.py INDEX_DIR

One-letter typos (a dropped letter) of frequent index words are searched through the search
service (zero hits -> correction -> corrected results), and 2-4 letter prefixes are completed.
Median and 95th percentile, after a warm-up query; also what building the did-you-mean
vocabulary costs (what the first did-you-mean after a commit pays).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from pathlib import Path

from searchd.engines.whoosh import WhooshEngine
from searchd.engines.whoosh.searcher import _read_vocabulary
from searchd.search import SearchRequest, Searcher


def typo_latency(index_dir: Path, samples: int = 200, seed: int = 7) -> dict[str, float]:
    reader = WhooshEngine(index_dir).open_reader()
    searcher = Searcher(reader)
    searcher.search(SearchRequest(q="warm up"))
    started = time.perf_counter()
    _read_vocabulary(reader._current())
    build_ms = (time.perf_counter() - started) * 1000
    vocabulary = reader.vocabulary()
    rng = random.Random(seed)
    words = [w for w in vocabulary.words if w.isalpha() and 6 <= len(w) <= 12]
    chosen = rng.sample(words, min(samples, len(words)))
    typo_ms, complete_ms, corrected = [], [], 0
    for word in chosen:
        i = rng.randrange(1, len(word) - 1)
        typo = word[:i] + word[i + 1:]
        started = time.perf_counter()
        result = searcher.search(SearchRequest(q=typo))
        typo_ms.append((time.perf_counter() - started) * 1000)
        corrected += result.suggestion is not None
        started = time.perf_counter()
        searcher.suggest(word[: rng.randint(2, 4)])
        complete_ms.append((time.perf_counter() - started) * 1000)

    def p95(values: list[float]) -> float:
        return sorted(values)[int(0.95 * (len(values) - 1))]

    return {
        "vocabulary_words": len(vocabulary.words),
        "vocabulary_build_ms": round(build_ms, 1),
        "typo_search_median_ms": round(statistics.median(typo_ms), 1),
        "typo_search_p95_ms": round(p95(typo_ms), 1),
        "typos_with_suggestion": round(corrected / len(chosen), 3),
        "autocomplete_median_ms": round(statistics.median(complete_ms), 1),
        "autocomplete_p95_ms": round(p95(complete_ms), 1),
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: benchmarks/typo_latency.py INDEX_DIR")
    print(json.dumps(typo_latency(Path(sys.argv[1])), indent=2))
