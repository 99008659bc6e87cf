"""Ranking variants measured on every judged collection in one run: SciFact train, NFCorpus train
(tune), NFCorpus dev (confirm) and Cranfield, plus the stock baseline (SQLite FTS5's bm25 over
one field, any word). The numbers in docs/relevance.md come from here.

    python benchmarks/relevance.py                       # default ranking + FTS5, all four sets
    python benchmarks/relevance.py --variant title1 --variant no-proximity
    python benchmarks/relevance.py --sets nfcorpus-train nfcorpus-dev --variant fts5

Each variant is a set of the Whoosh engine's `Ranking` overrides sent through `Searcher.ranked_ids`,
the path of `GET /api/search?q=<raw text>`. Corpora are extracted from ../shared/corpora into a
temporary folder (`--work DIR` to keep and reuse them and their indexes).
"""

from __future__ import annotations

import argparse
import re
import sqlite3
import sys
import tarfile
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from searchd import evaluate
from searchd.config import DEFAULT_MAX_FILE_BYTES
from searchd.engines.whoosh import Ranking, WhooshEngine
from searchd.engines.whoosh import searcher as whoosh_searcher
from searchd.folder import FileRules
from searchd.search import Searcher
from searchd.sync import index_once

# name -> (archive, folder inside it, queries file, qrels file)
SETS = {
    "scifact-train": ("scifact-train.tar.gz", "scifact-train", "queries.tsv", "qrels.tsv"),
    "nfcorpus-train": ("nfcorpus-train.tar.gz", "nfcorpus-train", "queries.tsv", "qrels.tsv"),
    "nfcorpus-dev": ("nfcorpus-train.tar.gz", "nfcorpus-train", "queries_dev.tsv", "qrels_dev.tsv"),
    "cranfield": ("cranfield.tar.gz", "cranfield", "queries.tsv", "qrels.tsv"),
}

# Overrides of Ranking's defaults, by name (docs/relevance.md has what each measured).
_TITLE = (("subtitle", 1.2), ("summary", 1.2), ("body", 1.0))
VARIANTS: dict[str, dict] = {
    "default": {},
    # Pseudo-relevance feedback (on by default)
    "no-feedback": {"feedback_docs": 0},
    "feedback-depth-10": {"feedback_docs": 10, "feedback_depth": 10},
    "feedback-depth-15": {"feedback_docs": 10, "feedback_depth": 15},
    "feedback-depth-50": {"feedback_docs": 10, "feedback_depth": 50},
    "feedback-depth-100": {"feedback_docs": 10, "feedback_depth": 100},
    "feedback-weight-1": {"feedback_docs": 10, "feedback_weight": 1.0},
    "feedback-weight-3": {"feedback_docs": 10, "feedback_weight": 3.0},
    "feedback-5-docs": {"feedback_docs": 5},
    "feedback-20-terms": {"feedback_docs": 10, "feedback_terms": 20},
    # How words combine
    "any-word": {"all_required_up_to": 0},
    "function-words": {"ignore_function_words": False},
    "proximity": {"proximity_weight": 0.3},
    # BM25F
    "k1-1.6": {"bm25": (("*", 1.6, 0.75),)},
    "k1-2.0": {"bm25": (("*", 2.0, 0.75),)},
    "b-0.6": {"bm25": (("*", 1.2, 0.6),)},
    "title-1.0": {"field_weights": (("title", 1.0),) + _TITLE},
    "title-2.0": {"field_weights": (("title", 2.0),) + _TITLE},
    # Near-duplicate folding off (measurement only: not a Ranking setting)
    "no-folding": {"fold": False},
}

Ranker = Callable[[str], list[str]]


def overrides(variant: str) -> dict:
    """A variant's Ranking overrides; "a+b" applies a's, then b's."""
    merged: dict = {}
    for name in variant.split("+"):
        merged.update(VARIANTS[name])
    return merged


def corpus(work: Path, corpora: Path, name: str) -> Path:
    archive, folder, _, _ = SETS[name]
    root = work / folder
    if not root.is_dir():
        path = corpora / archive
        if not path.is_file():
            sys.exit(f"corpus {path} not found (../shared/corpora beside the checkout; --corpora DIR)")
        with tarfile.open(path) as tar:
            tar.extractall(work, filter="data")
    return root


def searchd_ranker(docs: Path, index_dir: Path, overrides: dict, depth: int) -> Ranker:
    overrides = dict(overrides)
    fold = overrides.pop("fold", True)
    engine = WhooshEngine(index_dir, replace(Ranking(), **overrides))
    index_once(engine, docs, FileRules(), DEFAULT_MAX_FILE_BYTES)
    searcher = Searcher(engine.open_reader())

    def rank(text: str) -> list[str]:
        return [evaluate.doc_key(doc) for doc in searcher.ranked_ids(text[:1000], limit=depth)]

    def unfolded(text: str) -> list[str]:
        """Neither near-identical nor byte-identical articles folded."""
        folding, ranking = whoosh_searcher.fold, whoosh_searcher.rank
        whoosh_searcher.fold = _no_folding
        whoosh_searcher.rank = lambda *args, **kwargs: ranking(*args, **{**kwargs, "fold_copies": False})
        try:
            return rank(text)
        finally:
            whoosh_searcher.fold, whoosh_searcher.rank = folding, ranking

    return rank if fold else unfolded


def _no_folding(ranked, scores=None, cache=None):  # type: ignore[no-untyped-def]
    return [(item, [item[0]]) for item in ranked]


def fts5_ranker(docs: Path, db_path: Path, depth: int) -> Ranker:
    """Stock SQLite FTS5: one column (title and text), porter stemming, bm25() with its defaults
    (k1 1.2, b 0.75), the query's words joined by OR."""
    fresh = not db_path.exists()
    db = sqlite3.connect(db_path)
    if fresh:
        db.execute("CREATE VIRTUAL TABLE docs USING fts5(id UNINDEXED, text, tokenize='porter unicode61')")
        with db:
            db.executemany("INSERT INTO docs(id, text) VALUES (?, ?)",
                           ((p.stem, p.read_text(encoding="utf-8", errors="replace")) for p in sorted(docs.iterdir())))

    def rank(text: str) -> list[str]:
        words = re.findall(r"\w+", text.lower())
        if not words:
            return []
        match = " OR ".join(f'"{w}"' for w in dict.fromkeys(words))
        rows = db.execute("SELECT id FROM docs WHERE docs MATCH ? ORDER BY bm25(docs) LIMIT ?", (match, depth))
        return [row[0] for row in rows]

    return rank


def measure(rank: Ranker, root: Path, name: str) -> evaluate.Scores:
    _, _, queries, qrels = SETS[name]
    gains = evaluate.detect_gains(root / qrels)
    return evaluate.evaluate(rank, evaluate.read_queries(root / queries), evaluate.read_qrels(root / qrels, gains))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", choices=list(SETS), default=list(SETS))
    parser.add_argument("--variant", action="append", help=f"fts5 or one of: {', '.join(VARIANTS)}")
    parser.add_argument("--depth", type=int, default=100, help="results per query (100: MAP@100 and R@100 exact)")
    parser.add_argument("--work", type=Path, help="where corpora and indexes go [default: a temporary folder]")
    parser.add_argument("--corpora", type=Path, default=Path(__file__).resolve().parents[1] / ".." / "shared" / "corpora")
    args = parser.parse_args()
    variants = args.variant or ["fts5", "default"]
    work = args.work or Path(tempfile.mkdtemp(prefix="searchd-relevance-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"{'variant':<24} {'set':<15} {'nDCG@10':>8} {'MAP@100':>8} {'R@100':>7} {'MRR':>7} {'queries':>7} {'s':>6}")
    for variant in variants:
        for name in args.sets:
            root = corpus(work, args.corpora.resolve(), name)
            docs = root / "docs"
            if variant == "fts5":
                rank = fts5_ranker(docs, work / f"{root.name}.fts5.sqlite", args.depth)
            else:
                rank = searchd_ranker(docs, work / f"{root.name}.index", overrides(variant), args.depth)
            started = time.perf_counter()
            s = measure(rank, root, name)
            print(f"{variant:<24} {name:<15} {s.ndcg:8.5f} {s.map:8.4f} {s.recall:7.4f} {s.mrr:7.4f} {s.queries:7d}"
                  f" {time.perf_counter() - started:6.0f}", flush=True)


if __name__ == "__main__":
    main()
