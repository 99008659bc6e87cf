"""Relevance evaluation: run judged queries through the same search path as `GET /api/search`
and score the rankings with trec_eval's definitions.

Metrics (trec_eval names in brackets), averaged over the queries that have at least one
relevant document in the judgements:

- nDCG@k [ndcg_cut.k]: DCG = sum(gain_i / log2(i + 1)) over the first k results, divided by the
  DCG of the ideal ordering of all judged documents; gains are the judgement grades themselves.
- MAP@100 [map_cut.100]: sum of precision@i at each relevant result in the first 100, divided by
  the number of relevant documents.
- Recall@100 [recall.100]: relevant documents in the first 100 / relevant documents.
- MRR [recip_rank]: 1 / rank of the first relevant result (0 when none is retrieved).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    from .engines import Engine

# Grades as judged -> gains. Cranfield codes 1 (complete answer) .. 4 (minimum interest); -1 is
# "not relevant". Graded collections with 0/1/2 (SciFact) are used as they are.
GAIN_MAPS: dict[str, dict[int, int]] = {
    "cranfield": {1: 4, 2: 3, 3: 2, 4: 1, 5: 0, -1: 0},
}

Qrels = dict[str, dict[str, int]]  # query id -> document id -> gain (> 0 means relevant)


@dataclass(frozen=True)
class Scores:
    ndcg: float
    map: float
    recall: float
    mrr: float
    queries: int
    k: int
    seconds: float

    def lines(self) -> list[str]:
        return [
            f"queries      {self.queries}",
            f"nDCG@{self.k:<7} {self.ndcg:.4f}",
            f"MAP@100      {self.map:.4f}",
            f"Recall@100   {self.recall:.4f}",
            f"MRR          {self.mrr:.4f}",
            f"time         {self.seconds:.1f} s ({1000 * self.seconds / max(1, self.queries):.1f} ms/query)",
        ]


def read_queries(path: Path) -> dict[str, str]:
    """qid <TAB> text, one per line."""
    queries: dict[str, str] = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            qid, _, text = line.partition("\t")
            queries[qid.strip()] = text.strip()
    return queries


def read_qrels(path: Path, gains: str = "") -> Qrels:
    """qid <TAB> docid <TAB> grade (TREC's four-column `qid 0 docid grade` is read too)."""
    mapping = GAIN_MAPS.get(gains, {})
    qrels: Qrels = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 4:
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            continue
        qid, docid, grade = parts[0], parts[1], int(parts[2])
        gain = mapping.get(grade, grade) if mapping else grade
        qrels.setdefault(qid, {})[docid] = max(0, gain)
    return qrels


def doc_key(article_id: str) -> str:
    """An indexed article id ("docs/4983.txt") -> the collection's document id ("4983")."""
    return PurePosixPath(article_id).stem


def ndcg(ranking: list[str], judged: Mapping[str, int], k: int) -> float:
    dcg = sum(judged.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[:k]
    best = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / best if best else 0.0


def average_precision(ranking: list[str], judged: Mapping[str, int], depth: int = 100) -> float:
    relevant = sum(1 for g in judged.values() if g > 0)
    found, total = 0, 0.0
    for i, doc in enumerate(ranking[:depth]):
        if judged.get(doc, 0) > 0:
            found += 1
            total += found / (i + 1)
    return total / relevant if relevant else 0.0


def recall(ranking: list[str], judged: Mapping[str, int], depth: int = 100) -> float:
    relevant = sum(1 for g in judged.values() if g > 0)
    return sum(1 for doc in ranking[:depth] if judged.get(doc, 0) > 0) / relevant if relevant else 0.0


def reciprocal_rank(ranking: list[str], judged: Mapping[str, int]) -> float:
    for i, doc in enumerate(ranking):
        if judged.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def evaluate(
    rank: Callable[[str], list[str]],
    queries: Mapping[str, str],
    qrels: Qrels,
    k: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> Scores:
    """`rank(text)` returns collection document ids, best first (at least 100 when it can)."""
    judged = [qid for qid in queries if any(g > 0 for g in qrels.get(qid, {}).values())]
    started = time.perf_counter()
    sums = [0.0, 0.0, 0.0, 0.0]
    for number, qid in enumerate(judged, 1):
        ranking = rank(queries[qid])
        rels = qrels[qid]
        for i, value in enumerate(
            (ndcg(ranking, rels, k), average_precision(ranking, rels), recall(ranking, rels), reciprocal_rank(ranking, rels))
        ):
            sums[i] += value
        if progress is not None:
            progress(number, len(judged))
    count = max(1, len(judged))
    return Scores(*(s / count for s in sums), queries=len(judged), k=k, seconds=time.perf_counter() - started)


def detect_gains(path: Path) -> str:
    """Cranfield-style qrels (1 = best .. 4, -1 = not relevant) are recognised by their -1s."""
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if parts and parts[-1] == "-1":
            return "cranfield"
    return ""


def default_index_dir(docs: Path) -> Path:
    """A reusable index per evaluated folder, outside the folder (which may be read-only)."""
    import hashlib
    import tempfile

    digest = hashlib.blake2b(str(Path(docs).resolve()).encode(), digest_size=6).hexdigest()
    return Path(tempfile.gettempdir()) / f"searchd-eval-{Path(docs).resolve().name}-{digest}"


def default_collection(docs: Path) -> str:
    """The Typesense collection of an evaluated folder (reused like its Whoosh index)."""
    return "eval-" + default_index_dir(docs).name.removeprefix("searchd-eval-").replace("_", "-")[-50:]


def run(docs: Path, queries_path: Path, qrels_path: Path, index_dir: Path | None = None, k: int = 10,
        gains: str | None = None, progress: Callable[[int, int], None] | None = None,
        depth: int = 100, engine: "Engine | None" = None) -> tuple[Scores, str]:
    """Index (or reuse) docs, then evaluate every judged query through the search path the API
    uses (`Searcher.ranked_ids`, the same reading, ranking and folding as GET /api/search).
    MAP@100 and Recall@100 need depth 100; nDCG@k alone is exact with depth k (and faster).
    The engine is a Whoosh index in `index_dir` unless another is given."""
    from .config import DEFAULT_MAX_FILE_BYTES
    from .engines.whoosh import WhooshEngine
    from .folder import FileRules
    from .search import Searcher
    from .sync import index_once

    if engine is None:
        engine = WhooshEngine(Path(index_dir) if index_dir else default_index_dir(docs))
    summary = index_once(engine, Path(docs), FileRules(), DEFAULT_MAX_FILE_BYTES).summary()
    searcher = Searcher(engine.open_reader())
    depth = max(depth, k)

    def rank(text: str) -> list[str]:
        return [doc_key(doc_id) for doc_id in searcher.ranked_ids(text[:1000], limit=min(depth, 100))]

    scheme = detect_gains(qrels_path) if gains is None else gains
    scores = evaluate(rank, read_queries(queries_path), read_qrels(qrels_path, scheme), k=k, progress=progress)
    return scores, summary
