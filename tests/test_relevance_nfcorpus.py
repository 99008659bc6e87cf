"""Ranking cannot silently regress on short queries: NFCorpus's 324 dev queries (titles,
questions and single keywords over 3,633 medical abstracts) through `searchd eval`'s path,
against the floor measured in docs/relevance.md. Cranfield's floor
(test_relevance_cranfield.py) watches long questions; this one watches the search box."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchd import evaluate

from .conftest import extract_corpus

# Measured with the default ranking: nDCG@10 0.3035, MRR@10 0.4991 (docs/relevance.md); stock
# SQLite FTS5 bm25 measures 0.2914, the default without pseudo-relevance feedback 0.2979, and
# the ranking before issue 17 0.2779 (keyword queries required all their words). The floor is
# issue 17's target: a change that costs NFCorpus's short queries has to be looked at.
NDCG_FLOOR = 0.30
MRR_FLOOR = 0.49

pytestmark = [pytest.mark.corpus, pytest.mark.slow]


def test_nfcorpus_dev_ndcg_stays_above_the_floor(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = extract_corpus(tmp_path_factory, "nfcorpus-train") / "nfcorpus-train"
    index_dir: Path = tmp_path_factory.mktemp("nfcorpus-index")
    # Depth 10: nDCG@10 and MRR are exact, and the run takes seconds.
    scores, _ = evaluate.run(root / "docs", root / "queries_dev.tsv", root / "qrels_dev.tsv", index_dir, depth=10)
    assert scores.queries == 324
    assert scores.ndcg >= NDCG_FLOOR, scores.lines()
    assert scores.mrr >= MRR_FLOOR, scores.lines()
