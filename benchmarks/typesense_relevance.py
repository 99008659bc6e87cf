"""Relevance of searchd on Typesense, beside searchd on Whoosh and Typesense's stock ranking
(issue 16), on the judged train queries of SciFact and NFCorpus and on Cranfield.

    .venv/bin/python benchmarks/typesense_relevance.py                     # starts its own node
    .venv/bin/python benchmarks/typesense_relevance.py --only cranfield
    .venv/bin/python benchmarks/typesense_relevance.py --typesense-url http://127.0.0.1:8108 --typesense-key K

For each collection (extracted from ../shared/corpora into a temporary directory; exit status 2
naming the archives when they are absent):

- **searchd (Whoosh)**: `searchd eval` as it is (a Whoosh index of the folder);
- **searchd (Typesense)**: `searchd eval --engine typesense`: the same folder indexed into a
  collection by searchd's Typesense engine, queried through the same search path
  (`Searcher.ranked_ids`: the query language, did-you-mean, the any-word fallback, folding);
- **Typesense (stock)**: the same collection, each query's raw text sent as `q` with
  `query_by=title,body` and every other parameter at its default (prefix on the last word,
  typo fallback, words dropped from the right when nothing matches all of them), top 100.

Scores are trec_eval's (searchd.evaluate): nDCG@10, MAP@100, Recall@100, MRR. Writes
results.json and results.md in --out; reports the load average (queries are timed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

import outputs  # noqa: E402

COLLECTIONS = {
    "scifact": ("scifact-train.tar.gz", "scifact-train"),
    "nfcorpus": ("nfcorpus-train.tar.gz", "nfcorpus-train"),
    "cranfield": ("cranfield.tar.gz", "cranfield"),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def extract(archive: Path, work: Path, folder: str) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    return work / folder


def stock_ranking(cluster, collection: str):
    """Typesense's own ranking of the raw query text: query_by=title,body, defaults otherwise."""
    from searchd.evaluate import doc_key

    def rank(text: str) -> list[str]:
        found = cluster.search(collection, {"q": text[:1000], "query_by": "title,body", "per_page": 100,
                                            "include_fields": "id", "highlight_fields": "none"})
        return [doc_key(hit["document"]["id"]) for hit in found.get("hits", [])]

    return rank


def evaluate_collection(name: str, root: Path, args: argparse.Namespace, urls: list[str], key: str) -> dict:
    from searchd.engines.typesense import TypesenseEngine
    from searchd.evaluate import default_collection, detect_gains, evaluate, read_qrels, read_queries, run

    queries_path, qrels_path = root / "queries.tsv", root / "qrels.tsv"
    docs = root / "docs"
    figures: dict = {"queries_file": queries_path.name}
    started = time.perf_counter()
    scores, summary = run(docs, queries_path, qrels_path, index_dir=Path(args.work) / f"{name}-whoosh")
    figures["whoosh"] = {**scores.__dict__, "index": summary}
    log(f"{name}: searchd (Whoosh) nDCG@10 {scores.ndcg:.4f} ({time.perf_counter() - started:.0f}s)")

    engine = TypesenseEngine(urls, key, default_collection(docs))
    started = time.perf_counter()
    scores, summary = run(docs, queries_path, qrels_path, engine=engine)
    figures["typesense"] = {**scores.__dict__, "index": summary}
    log(f"{name}: searchd (Typesense) nDCG@10 {scores.ndcg:.4f} ({time.perf_counter() - started:.0f}s)")

    scheme = detect_gains(qrels_path)
    stock = evaluate(stock_ranking(engine.cluster, engine.collection), read_queries(queries_path),
                     read_qrels(qrels_path, scheme))
    figures["stock"] = stock.__dict__
    log(f"{name}: Typesense stock nDCG@10 {stock.ndcg:.4f}")
    return figures


LABELS = {"whoosh": "searchd (Whoosh)", "typesense": "searchd (Typesense)", "stock": "Typesense stock (query_by=title,body)"}


def markdown(results: dict) -> str:
    lines = outputs.heading(results, "Relevance: searchd on Whoosh and on Typesense, Typesense stock") + [
             "| collection | system | queries | nDCG@10 | MAP@100 | Recall@100 | MRR | ms/query |",
             "|---|---|---|---|---|---|---|---|"]
    for name, figures in results["collections"].items():
        for system in ("whoosh", "typesense", "stock"):
            row = figures[system]
            lines.append(f"| {name} | {LABELS[system]} | {row['queries']} | {row['ndcg']:.4f} | {row['map']:.4f} | "
                         f"{row['recall']:.4f} | {row['mrr']:.4f} | {1000 * row['seconds'] / max(1, row['queries']):.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out-typesense-relevance")
    parser.add_argument("--corpora", type=Path, default=(REPO / ".." / "shared" / "corpora").resolve())
    parser.add_argument("--only", default="scifact,nfcorpus,cranfield")
    parser.add_argument("--typesense-url", help="use this cluster (comma-separated nodes) instead of starting a node")
    parser.add_argument("--typesense-key", default=os.environ.get("SEARCHD_TYPESENSE_KEY", ""))
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    archives = {n: args.corpora / COLLECTIONS[n][0] for n in names}
    missing = [str(p) for p in archives.values() if not p.is_file()]
    if missing:
        print(f"error: corpora not found: {', '.join(missing)} (pass --corpora DIR)", file=sys.stderr)
        sys.exit(2)
    results = outputs.begin("benchmarks/typesense_relevance.py", argv if argv is not None else sys.argv[1:], args.out,
                            collections={})
    with tempfile.TemporaryDirectory(prefix="searchd-ts-relevance-") as tmp:
        args.work = tmp
        node = None
        if args.typesense_url:
            urls, key = args.typesense_url.split(","), args.typesense_key
        else:
            from typesense_nodes import start_node

            node = start_node(workdir=Path(tmp) / "typesense")
            urls, key = node.urls, node.api_key
        try:
            for name in names:
                root = extract(archives[name], Path(tmp), COLLECTIONS[name][1])
                results["collections"][name] = evaluate_collection(name, root, args, urls, key)
                outputs.save(results, args.out)
        finally:
            if node is not None:
                node.stop()
    outputs.finish(results, args.out, markdown)

if __name__ == "__main__":
    main()
